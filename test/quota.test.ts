import { describe, expect, it } from 'vitest';
import {
  buildCheckAdmissionAndRecord,
  buildCreateQuotaPolicy,
  buildReleaseAdmission,
  checkAdmissionAndRecord,
  createQuotaPolicy,
  releaseAdmission,
  type CheckAdmissionAndRecordArgs,
} from '../generated/quota.js';
import { ArgumentError, ScriptError } from '../runtime/errors.js';
import { newQuotaPolicyId, type ExecutionId } from '../runtime/ids.js';
import { createTestQuota, quotaKeys, type TestQuota } from './support/budget.js';
import { useServer } from './support/client.js';
import { newExecutionId } from './support/ids.js';
import { fcallPatched, keyStates } from './support/raw.js';

const NOW = 1_700_000_000_000;
const DIM = 'requests_per_window';

function quotaStateKeys(q: TestQuota, ...executions: ExecutionId[]): string[] {
  return [
    q.keys.definition(), q.keys.window(DIM), q.keys.concurrency(), q.keys.admittedSet(), q.partition.quotaPolicies(),
    ...executions.map((e) => q.keys.admitted(e)),
  ];
}

describe('ff_create_quota_policy', () => {
  const { client, redis } = useServer();

  it('creates the definition, a zero counter and the index entry', async () => {
    const quotaPolicyId = newQuotaPolicyId();
    const result = await createQuotaPolicy(client, { quotaPolicyId, windowSeconds: 30, maxRequestsPerWindow: 10, maxConcurrent: 2, nowMs: NOW });
    expect(result).toEqual({ status: 'OK', quotaPolicyId });
    const q = quotaKeys(client, quotaPolicyId);
    expect(await redis.hgetall(q.keys.definition())).toEqual({
      quota_policy_id: quotaPolicyId, requests_per_window_seconds: '30', max_requests_per_window: '10', active_concurrency_cap: '2', created_at: String(NOW),
    });
    expect(await redis.get(q.keys.concurrency())).toBe('0');
    expect(await redis.ttl(q.keys.concurrency())).toBe(-1);
    expect(await redis.sismember(q.partition.quotaPolicies(), quotaPolicyId)).toBe(1);
    expect(await redis.exists(q.keys.window(DIM), q.keys.admittedSet())).toBe(0);
  });

  it('answers ALREADY_SATISFIED on a replay and writes nothing', async () => {
    const q = await createTestQuota(client, { maxConcurrent: 1 });
    await redis.set(q.keys.concurrency(), '1');
    await redis.srem(q.partition.quotaPolicies(), q.quotaPolicyId);
    const before = await keyStates(redis, quotaStateKeys(q));
    await expect(createQuotaPolicy(client, { quotaPolicyId: q.quotaPolicyId, windowSeconds: 5, maxRequestsPerWindow: 5, maxConcurrent: 5 })).resolves.toEqual({ status: 'ALREADY_SATISFIED', quotaPolicyId: q.quotaPolicyId });
    expect(await keyStates(redis, quotaStateKeys(q))).toEqual(before);
  });

  it('refuses bad limits before the round trip', () => {
    const quotaPolicyId = newQuotaPolicyId();
    expect(() => buildCreateQuotaPolicy({ quotaPolicyId, windowSeconds: 0, maxRequestsPerWindow: 1, maxConcurrent: 1 }, client.partitions)).toThrow(ArgumentError);
    expect(() => buildCreateQuotaPolicy({ quotaPolicyId, windowSeconds: 1, maxRequestsPerWindow: -1, maxConcurrent: 1 }, client.partitions)).toThrow(/max_requests_per_window/);
  });

  it.each([
    ['a non-numeric window', { 1: 'minute' }],
    ['a zero window', { 1: '0' }],
    ['a negative rate limit', { 2: '-1' }],
    ['a non-numeric cap', { 3: 'two' }],
    ['a non-numeric now_ms', { 4: 'now' }],
    ['a policy id that is not the key\'s', { 0: newQuotaPolicyId() }],
  ] as const)('answers invalid_input for %s and writes nothing (deviation)', async (_label, patch) => {
    const q = quotaKeys(client, newQuotaPolicyId());
    const request = buildCreateQuotaPolicy({ quotaPolicyId: q.quotaPolicyId, windowSeconds: 10, maxRequestsPerWindow: 1, maxConcurrent: 1 }, client.partitions);
    expect(await fcallPatched(redis, request, patch)).toEqual([0, 'invalid_input', expect.any(String)]);
    expect(await redis.exists(q.keys.definition(), q.keys.concurrency())).toBe(0);
    expect(await redis.sismember(q.partition.quotaPolicies(), q.quotaPolicyId)).toBe(0);
  });
});

describe('ff_check_admission_and_record', () => {
  const { client, redis } = useServer();

  const check = (q: TestQuota, executionId: ExecutionId, extra: Partial<CheckAdmissionAndRecordArgs> = {}) =>
    checkAdmissionAndRecord(client, { quotaPolicyId: q.quotaPolicyId, executionId, windowSeconds: 10, rateLimit: 0, concurrencyCap: 0, ...extra });

  it('records an admission: window entry, guard, admitted set, counter', async () => {
    const q = await createTestQuota(client);
    const e = newExecutionId();
    await expect(check(q, e, { rateLimit: 5, concurrencyCap: 3, nowMs: NOW })).resolves.toEqual({ status: 'ADMITTED' });
    expect(await redis.zrange(q.keys.window(DIM), '0', '-1', 'WITHSCORES')).toEqual([e, String(NOW)]);
    expect(await redis.get(q.keys.admitted(e))).toBe('1');
    const ttl = await redis.pttl(q.keys.admitted(e));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(10_000);
    expect(await redis.smembers(q.keys.admittedSet())).toEqual([e]);
    expect(await redis.get(q.keys.concurrency())).toBe('1');
  });

  it('does not count without a cap', async () => {
    const q = await createTestQuota(client);
    await check(q, newExecutionId());
    expect(await redis.get(q.keys.concurrency())).toBe('0');
    expect(await redis.scard(q.keys.admittedSet())).toBe(1);
  });

  it('answers ALREADY_ADMITTED while the guard lives, writing nothing', async () => {
    const q = await createTestQuota(client);
    const e = newExecutionId();
    await check(q, e, { concurrencyCap: 3, nowMs: NOW });
    const before = await keyStates(redis, quotaStateKeys(q, e));
    await expect(check(q, e, { concurrencyCap: 3, nowMs: NOW + 5 })).resolves.toEqual({ status: 'ALREADY_ADMITTED' });
    expect(await keyStates(redis, quotaStateKeys(q, e))).toEqual(before);
  });

  it('answers RATE_EXCEEDED with the time until the oldest admission leaves the window', async () => {
    const q = await createTestQuota(client);
    await check(q, newExecutionId(), { rateLimit: 2, nowMs: NOW });
    await check(q, newExecutionId(), { rateLimit: 2, nowMs: NOW + 100 });
    const denied = newExecutionId();
    const before = await keyStates(redis, quotaStateKeys(q, denied));
    await expect(check(q, denied, { rateLimit: 2, nowMs: NOW + 300 })).resolves.toEqual({ status: 'RATE_EXCEEDED', retryAfterMs: 9_700 });
    expect(await keyStates(redis, quotaStateKeys(q, denied))).toEqual(before);
  });

  it('adds at most jitter_ms to the retry hint', async () => {
    const q = await createTestQuota(client);
    await check(q, newExecutionId(), { rateLimit: 1, nowMs: NOW });
    for (let i = 0; i < 5; i++) {
      const result = await check(q, newExecutionId(), { rateLimit: 1, nowMs: NOW + 1000, jitterMs: 50 });
      expect(result.status).toBe('RATE_EXCEEDED');
      const hint = result.status === 'RATE_EXCEEDED' ? result.retryAfterMs : -1;
      expect(hint).toBeGreaterThanOrEqual(9_000);
      expect(hint).toBeLessThanOrEqual(9_050);
    }
  });

  it('trims admissions older than the window before counting', async () => {
    const q = await createTestQuota(client);
    const old = newExecutionId();
    await check(q, old, { rateLimit: 1, nowMs: NOW });
    await redis.del(q.keys.admitted(old));
    const fresh = newExecutionId();
    await expect(check(q, fresh, { rateLimit: 1, nowMs: NOW + 10_000 })).resolves.toEqual({ status: 'ADMITTED' });
    expect(await redis.zrange(q.keys.window(DIM), '0', '-1')).toEqual([fresh]);
  });

  it('answers CONCURRENCY_EXCEEDED when the counter reached the cap', async () => {
    const q = await createTestQuota(client);
    await check(q, newExecutionId(), { concurrencyCap: 1 });
    const denied = newExecutionId();
    await expect(check(q, denied, { concurrencyCap: 1 })).resolves.toEqual({ status: 'CONCURRENCY_EXCEEDED' });
    expect(await redis.zscore(q.keys.window(DIM), denied)).toBeNull();
    expect(await redis.exists(q.keys.admitted(denied))).toBe(0);
    expect(await redis.get(q.keys.concurrency())).toBe('1');
  });

  it('does not count an execution twice when re-admitted after its guard expired (deviation)', async () => {
    const q = await createTestQuota(client);
    const e = newExecutionId();
    await check(q, e, { concurrencyCap: 5 });
    await redis.del(q.keys.admitted(e)); // as if the guard's window had passed
    await expect(check(q, e, { concurrencyCap: 5 })).resolves.toEqual({ status: 'ADMITTED' });
    expect(await redis.get(q.keys.concurrency())).toBe('1');
    expect(await redis.zcard(q.keys.window(DIM))).toBe(1);
  });

  it.each([
    ['a non-numeric now_ms', { 0: 'now' }],
    ['a zero window', { 1: '0' }],
    ['a negative rate limit', { 2: '-1' }],
    ['a non-numeric cap', { 3: 'x' }],
    ['an execution id that is not the guard key\'s', { 4: newExecutionId() }],
    ['a non-numeric jitter', { 5: 'some' }],
    ['a negative jitter', { 5: '-3' }],
  ] as const)('answers invalid_input for %s and writes nothing (deviation)', async (_label, patch) => {
    const q = await createTestQuota(client);
    const first = newExecutionId();
    await check(q, first, { rateLimit: 1, nowMs: NOW });
    const e = newExecutionId();
    const request = buildCheckAdmissionAndRecord({ quotaPolicyId: q.quotaPolicyId, executionId: e, windowSeconds: 1, rateLimit: 1, concurrencyCap: 1, nowMs: NOW + 60_000 }, client.partitions);
    const before = await keyStates(redis, quotaStateKeys(q, e));
    expect(await fcallPatched(redis, request, patch)).toEqual([0, 'invalid_input', expect.any(String)]);
    // Not even the window trim (which would drop `first`) happened.
    expect(await keyStates(redis, quotaStateKeys(q, e))).toEqual(before);
  });

  it('reads the standard invalid_input failure as a ScriptError', async () => {
    const q = await createTestQuota(client);
    await redis.set(q.keys.concurrency(), 'lots');
    const error = await check(q, newExecutionId(), { concurrencyCap: 1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ScriptError);
    expect(error).toMatchObject({ code: 'invalid_input' });
  });
});

describe('ff_release_admission', () => {
  const { client, redis } = useServer();

  const admit = (q: TestQuota, executionId: ExecutionId) =>
    checkAdmissionAndRecord(client, { quotaPolicyId: q.quotaPolicyId, executionId, windowSeconds: 60, rateLimit: 0, concurrencyCap: 5 });

  it('gives the slot back: guard, set membership and counter', async () => {
    const q = await createTestQuota(client);
    const e = newExecutionId();
    await admit(q, e);
    await expect(releaseAdmission(client, { quotaPolicyId: q.quotaPolicyId, executionId: e })).resolves.toEqual({ status: 'OK', result: 'released' });
    expect(await redis.exists(q.keys.admitted(e))).toBe(0);
    expect(await redis.sismember(q.keys.admittedSet(), e)).toBe(0);
    expect(await redis.get(q.keys.concurrency())).toBe('0');
    // The window entry stays until it ages out.
    expect(await redis.zscore(q.keys.window(DIM), e)).not.toBeNull();
  });

  it('does not decrement twice on a double release, nor for an execution never admitted (deviation)', async () => {
    const q = await createTestQuota(client);
    const a = newExecutionId();
    const b = newExecutionId();
    await admit(q, a);
    await admit(q, b);
    expect(await redis.get(q.keys.concurrency())).toBe('2');
    await releaseAdmission(client, { quotaPolicyId: q.quotaPolicyId, executionId: a });
    await releaseAdmission(client, { quotaPolicyId: q.quotaPolicyId, executionId: a });
    await releaseAdmission(client, { quotaPolicyId: q.quotaPolicyId, executionId: newExecutionId() });
    expect(await redis.get(q.keys.concurrency())).toBe('1');
    expect(await redis.smembers(q.keys.admittedSet())).toEqual([b]);
  });

  it('answers invalid_input for an execution id that is not the guard key\'s and writes nothing (deviation)', async () => {
    const q = await createTestQuota(client);
    const e = newExecutionId();
    await admit(q, e);
    const request = buildReleaseAdmission({ quotaPolicyId: q.quotaPolicyId, executionId: e }, client.partitions);
    const before = await keyStates(redis, quotaStateKeys(q, e));
    expect(await fcallPatched(redis, request, { 0: newExecutionId() })).toEqual([0, 'invalid_input', expect.any(String)]);
    expect(await fcallPatched(redis, request, { 0: '' })).toEqual([0, 'invalid_input', expect.any(String)]);
    expect(await keyStates(redis, quotaStateKeys(q, e))).toEqual(before);
  });

  it('refuses a corrupt counter before any write', async () => {
    const q = await createTestQuota(client);
    const e = newExecutionId();
    await admit(q, e);
    await redis.set(q.keys.concurrency(), 'x');
    const error = await releaseAdmission(client, { quotaPolicyId: q.quotaPolicyId, executionId: e }).catch((err: unknown) => err);
    expect(error).toMatchObject({ code: 'invalid_input' });
    expect(await redis.exists(q.keys.admitted(e))).toBe(1);
  });
});
