import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  blockExecutionForAdmission,
  buildBlockExecutionForAdmission,
  buildCreateBudget,
  buildReportUsageAndCheck,
  buildResetBudget,
  buildUnblockExecution,
  createBudget,
  reportUsageAndCheck,
  resetBudget,
  unblockExecution,
} from '../generated/budget.js';
import { completeExecution } from '../generated/execution.js';
import { ExecKeys, PartitionKeys } from '../generated/keys.js';
import { reportUsage, usageDedupKey } from '../operations/admission.js';
import { ArgumentError, ScriptError } from '../runtime/errors.js';
import { newBudgetId, type ExecutionId, type LaneId } from '../runtime/ids.js';
import { DEFAULT_PARTITION_CONFIG } from '../runtime/partition.js';
import { budgetKeys, createTestBudget, type TestBudget } from './support/budget.js';
import { useServer } from './support/client.js';
import { claim, createClaimed, createWaiting } from './support/lifecycle.js';
import { fcallPatched, keyStates } from './support/raw.js';

const NOW = 1_700_000_000_000;
const DEFAULT = DEFAULT_PARTITION_CONFIG;

function budgetStateKeys(b: TestBudget): string[] {
  return [b.keys.definition(), b.keys.limits(), b.keys.usage(), b.partition.budgetResets(), b.partition.budgetPolicies()];
}

async function scriptError(promise: Promise<unknown>): Promise<ScriptError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ScriptError);
  return error as ScriptError;
}

describe('ff_create_budget', () => {
  const { client, redis } = useServer();

  it('creates the definition, limits, index entry and reset schedule', async () => {
    const budgetId = newBudgetId();
    const result = await createBudget(client, {
      budgetId, scopeType: 'flow', scopeId: 'f-1', enforcementMode: 'strict', onHardLimit: 'fail', onSoftLimit: 'warn',
      resetIntervalMs: 60_000, nowMs: NOW,
      dimensions: [{ dimension: 'tokens', hardLimit: 100, softLimit: 80 }, { dimension: 'cost', hardLimit: 0, softLimit: 5 }],
    });
    expect(result).toEqual({ status: 'OK', budgetId });
    const b = budgetKeys(client, budgetId);
    expect(await redis.hgetall(b.keys.definition())).toEqual({
      budget_id: budgetId, scope_type: 'flow', scope_id: 'f-1', enforcement_mode: 'strict', on_hard_limit: 'fail', on_soft_limit: 'warn',
      reset_interval_ms: '60000', breach_count: '0', soft_breach_count: '0', created_at: String(NOW), last_updated_at: String(NOW),
      next_reset_at: String(NOW + 60_000),
    });
    expect(await redis.hgetall(b.keys.limits())).toEqual({ 'hard:tokens': '100', 'soft:tokens': '80', 'hard:cost': '0', 'soft:cost': '5' });
    expect(await redis.exists(b.keys.usage())).toBe(0);
    expect(await redis.sismember(b.partition.budgetPolicies(), budgetId)).toBe(1);
    expect(Number(await redis.zscore(b.partition.budgetResets(), budgetId))).toBe(NOW + 60_000);
  });

  it('does not schedule a budget without a reset interval, and uses the server clock without now_ms', async () => {
    const before = Date.now();
    const b = await createTestBudget(client);
    const definition = await redis.hgetall(b.keys.definition());
    expect(definition.next_reset_at).toBeUndefined();
    expect(Number(definition.created_at)).toBeGreaterThanOrEqual(before - 1000);
    expect(await redis.zscore(b.partition.budgetResets(), b.budgetId)).toBeNull();
  });

  it('answers ALREADY_SATISFIED on a replay, keeps the limits and heals the index', async () => {
    const b = await createTestBudget(client);
    await redis.srem(b.partition.budgetPolicies(), b.budgetId);
    const again = await createBudget(client, {
      budgetId: b.budgetId, scopeType: 'x', scopeId: 'y', enforcementMode: 'z', onHardLimit: 'a', onSoftLimit: 'b',
      dimensions: [{ dimension: 'tokens', hardLimit: 5, softLimit: 1 }],
    });
    expect(again).toEqual({ status: 'ALREADY_SATISFIED', budgetId: b.budgetId });
    expect(await redis.hget(b.keys.limits(), 'hard:tokens')).toBe('100');
    expect(await redis.hget(b.keys.definition(), 'scope_type')).toBe('execution');
    expect(await redis.sismember(b.partition.budgetPolicies(), b.budgetId)).toBe(1);
  });

  it('fills in a stub definition left by another implementation (deviation)', async () => {
    const b = budgetKeys(client, newBudgetId());
    await redis.hset(b.keys.definition(), 'last_updated_at', '1');
    const result = await createBudget(client, {
      budgetId: b.budgetId, scopeType: 's', scopeId: 'i', enforcementMode: 'e', onHardLimit: 'h', onSoftLimit: 'w',
      dimensions: [{ dimension: 'tokens', hardLimit: 10, softLimit: 0 }],
    });
    expect(result.status).toBe('OK');
    expect(await redis.hget(b.keys.limits(), 'hard:tokens')).toBe('10');
  });

  it('refuses bad arguments before the round trip', () => {
    const base = { budgetId: newBudgetId(), scopeType: 's', scopeId: 'i', enforcementMode: 'e', onHardLimit: 'h', onSoftLimit: 'w' };
    expect(() => buildCreateBudget({ ...base, dimensions: [{ dimension: 't', hardLimit: -1, softLimit: 0 }] }, client.partitions)).toThrow(ArgumentError);
    expect(() => buildCreateBudget({ ...base, dimensions: [{ dimension: '', hardLimit: 1, softLimit: 0 }] }, client.partitions)).toThrow(/dimension/);
    expect(() => buildCreateBudget({ ...base, resetIntervalMs: 1.5, dimensions: [] }, client.partitions)).toThrow(/reset_interval_ms/);
  });

  it.each([
    ['non-numeric reset_interval_ms', { 6: 'soon' }],
    ['negative reset_interval_ms', { 6: '-5' }],
    ['non-numeric now_ms', { 7: 'now' }],
    ['non-numeric dimension count', { 8: 'x' }],
    ['a count larger than the columns (missing soft limit)', { 11: null }],
    ['a count smaller than the columns', { 8: '0' }],
    ['a non-numeric hard limit', { 10: 'lots' }],
    ['a negative soft limit', { 11: '-1' }],
    ['an empty dimension name', { 9: '' }],
    ['a budget id that is not the key\'s', { 0: '00000000-0000-4000-8000-000000000000' }],
  ] as const)('answers invalid_input for %s and writes nothing', async (_label, patch) => {
    const b = budgetKeys(client, newBudgetId());
    const request = buildCreateBudget({
      budgetId: b.budgetId, scopeType: 's', scopeId: 'i', enforcementMode: 'e', onHardLimit: 'h', onSoftLimit: 'w',
      resetIntervalMs: 1000, dimensions: [{ dimension: 'tokens', hardLimit: 10, softLimit: 5 }],
    }, client.partitions);
    const before = await keyStates(redis, budgetStateKeys(b));
    expect(await fcallPatched(redis, request, patch)).toEqual([0, 'invalid_input', expect.any(String)]);
    expect(await keyStates(redis, budgetStateKeys(b))).toEqual(before);
  });

  it.each([
    ['a non-numeric second hard limit', { 12: 'lots' }, 'dimensions[2].hard_limit must be a number, got: lots'],
    ['a negative first soft limit', { 13: '-1' }, 'dimensions[1].soft_limit must be >= 0, got: -1'],
    ['a soft limit beyond 2^53', { 14: '9007199254740993' }, 'dimensions[2].soft_limit must be an integer, got: 9007199254740993'],
    ['an empty second dimension', { 10: '' }, 'dimensions[2].dimension must not be empty'],
    ['a count one too low', { 8: '1' }, 'expected 12 ARGV for dim_count 1, got: 15'],
  ] as const)('refuses %s (after the count) with the fixed-slot text and writes nothing', async (_label, patch, detail) => {
    const b = budgetKeys(client, newBudgetId());
    const request = buildCreateBudget({
      budgetId: b.budgetId, scopeType: 's', scopeId: 'i', enforcementMode: 'e', onHardLimit: 'h', onSoftLimit: 'w', nowMs: NOW,
      dimensions: [{ dimension: 'tokens', hardLimit: 10, softLimit: 5 }, { dimension: 'calls', hardLimit: 3, softLimit: 0 }],
    }, client.partitions);
    expect(request.argv.slice(8)).toEqual(['2', 'tokens', 'calls', '10', '3', '5', '0']);
    const before = await keyStates(redis, budgetStateKeys(b));
    expect(await fcallPatched(redis, request, patch)).toEqual([0, 'invalid_input', detail]);
    expect(await keyStates(redis, budgetStateKeys(b))).toEqual(before);
    expect(await fcallPatched(redis, request)).toEqual([1, 'OK', b.budgetId]);
    expect(await redis.hgetall(b.keys.limits())).toEqual({ 'hard:tokens': '10', 'soft:tokens': '5', 'hard:calls': '3', 'soft:calls': '0' });
  });

  it('answers invalid_input (not ALREADY_SATISFIED) for a bad count on an existing budget (deviation)', async () => {
    const b = await createTestBudget(client);
    const request = buildCreateBudget({
      budgetId: b.budgetId, scopeType: 's', scopeId: 'i', enforcementMode: 'e', onHardLimit: 'h', onSoftLimit: 'w', dimensions: [],
    }, client.partitions);
    expect(await fcallPatched(redis, request, { 8: 'many' })).toEqual([0, 'invalid_input', 'dim_count must be a number, got: many']);
  });
});

describe('ff_report_usage_and_check', () => {
  const { client, redis } = useServer();

  it('adds usage and answers OK', async () => {
    const b = await createTestBudget(client);
    await expect(reportUsageAndCheck(client, { budgetId: b.budgetId, usage: [{ dimension: 'tokens', delta: 30 }], nowMs: NOW })).resolves.toEqual({ status: 'OK' });
    await expect(reportUsageAndCheck(client, { budgetId: b.budgetId, usage: [{ dimension: 'tokens', delta: 20 }, { dimension: 'calls', delta: 1 }] })).resolves.toEqual({ status: 'OK' });
    expect(await redis.hgetall(b.keys.usage())).toEqual({ tokens: '50', calls: '1' });
    expect(await redis.hget(b.keys.definition(), 'breach_count')).toBe('0');
  });

  it('applies a report above the soft limit and answers SOFT_BREACH', async () => {
    const b = await createTestBudget(client);
    const result = await reportUsageAndCheck(client, { budgetId: b.budgetId, usage: [{ dimension: 'tokens', delta: 85 }], nowMs: NOW });
    expect(result).toEqual({ status: 'SOFT_BREACH', dimension: 'tokens', currentUsage: 85, softLimit: 80 });
    expect(await redis.hget(b.keys.usage(), 'tokens')).toBe('85');
    expect(await redis.hmget(b.keys.definition(), 'soft_breach_count', 'breach_count', 'last_updated_at')).toEqual(['1', '0', String(NOW)]);
  });

  it('refuses a report above a hard limit: HARD_BREACH, nothing added, breach recorded', async () => {
    const b = await createTestBudget(client, { dimensions: [{ dimension: 'calls', hardLimit: 10, softLimit: 0 }, { dimension: 'tokens', hardLimit: 100, softLimit: 0 }] });
    await reportUsageAndCheck(client, { budgetId: b.budgetId, usage: [{ dimension: 'tokens', delta: 90 }] });
    const result = await reportUsageAndCheck(client, { budgetId: b.budgetId, usage: [{ dimension: 'calls', delta: 1 }, { dimension: 'tokens', delta: 11 }], nowMs: NOW });
    expect(result).toEqual({ status: 'HARD_BREACH', dimension: 'tokens', currentUsage: 90, hardLimit: 100 });
    expect(await redis.hgetall(b.keys.usage())).toEqual({ tokens: '90' });
    expect(await redis.hmget(b.keys.definition(), 'breach_count', 'last_breach_at', 'last_breach_dim', 'last_updated_at')).toEqual(['1', String(NOW), 'tokens', String(NOW)]);
    // Exactly at the limit is still allowed (new > limit breaches).
    await expect(reportUsageAndCheck(client, { budgetId: b.budgetId, usage: [{ dimension: 'tokens', delta: 10 }] })).resolves.toMatchObject({ status: 'OK' });
  });

  it('sums a dimension named twice for the hard check (deviation)', async () => {
    const b = await createTestBudget(client);
    const result = await reportUsageAndCheck(client, { budgetId: b.budgetId, usage: [{ dimension: 'tokens', delta: 60 }, { dimension: 'tokens', delta: 60 }] });
    expect(result).toEqual({ status: 'HARD_BREACH', dimension: 'tokens', currentUsage: 0, hardLimit: 100 });
    expect(await redis.hget(b.keys.usage(), 'tokens')).toBeNull();
  });

  it('applies a replayed report once (dedup key, 24 h)', async () => {
    const b = await createTestBudget(client);
    const dedupId = `report-${b.budgetId}`;
    await expect(reportUsage(client, { budgetId: b.budgetId, usage: [{ dimension: 'tokens', delta: 10 }], dedupId })).resolves.toEqual({ status: 'OK' });
    await expect(reportUsage(client, { budgetId: b.budgetId, usage: [{ dimension: 'tokens', delta: 10 }], dedupId })).resolves.toEqual({ status: 'ALREADY_APPLIED' });
    expect(await redis.hget(b.keys.usage(), 'tokens')).toBe('10');
    const dedupKey = usageDedupKey(b.budgetId, dedupId, client.partitions);
    expect(dedupKey).toBe(b.partition.usageDedup(dedupId));
    expect(await redis.get(dedupKey)).toBe('1');
    const ttl = await redis.pttl(dedupKey);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(86_400_000);
  });

  it('leaves no dedup marker after a hard breach', async () => {
    const b = await createTestBudget(client);
    const dedupId = `breach-${b.budgetId}`;
    await expect(reportUsage(client, { budgetId: b.budgetId, usage: [{ dimension: 'tokens', delta: 500 }], dedupId })).resolves.toMatchObject({ status: 'HARD_BREACH' });
    expect(await redis.exists(usageDedupKey(b.budgetId, dedupId, client.partitions))).toBe(0);
    await expect(reportUsage(client, { budgetId: b.budgetId, usage: [{ dimension: 'tokens', delta: 500 }], dedupId })).resolves.toMatchObject({ status: 'HARD_BREACH' });
    expect(await redis.hget(b.keys.definition(), 'breach_count')).toBe('2');
  });

  it('answers budget_not_found for an unknown budget and creates no stub (deviation)', async () => {
    const b = budgetKeys(client, newBudgetId());
    const error = await scriptError(reportUsageAndCheck(client, { budgetId: b.budgetId, usage: [{ dimension: 'tokens', delta: 1 }] }));
    expect(error.code).toBe('budget_not_found');
    expect(await redis.exists(b.keys.definition(), b.keys.usage())).toBe(0);
  });

  it.each([
    ['non-numeric count', { 0: 'x' }],
    ['a count that does not match the columns', { 0: '2' }],
    ['a negative delta', { 2: '-5' }],
    ['a non-numeric delta', { 2: 'abc' }],
    ['a fractional delta', { 2: '1.5' }],
    ['an empty dimension', { 1: '' }],
    ['a non-numeric now_ms', { 3: 'now' }],
    ['a dedup key on another tag', { 4: 'ff:usagededup:{b:999}:x' }],
    ['a dedup key that is not a dedup key', { 4: 'some-other-key' }],
  ] as const)('answers invalid_input for %s and writes nothing', async (_label, patch) => {
    const b = await createTestBudget(client);
    await reportUsageAndCheck(client, { budgetId: b.budgetId, usage: [{ dimension: 'tokens', delta: 5 }] });
    const request = buildReportUsageAndCheck({ budgetId: b.budgetId, usage: [{ dimension: 'tokens', delta: 1 }], dedupKey: b.partition.usageDedup(`d-${b.budgetId}`) }, client.partitions);
    const before = await keyStates(redis, budgetStateKeys(b));
    expect(await fcallPatched(redis, request, patch)).toEqual([0, 'invalid_input', expect.any(String)]);
    expect(await keyStates(redis, budgetStateKeys(b))).toEqual(before);
    expect(await redis.exists('some-other-key', b.partition.usageDedup(`d-${b.budgetId}`))).toBe(0);
  });

  // The slots after the dimension/delta columns are placed from the count and checked by the
  // guard with the fixed-slot rules and texts (issue 11: no ARGV rule written in lua/).
  it.each([
    ['a non-numeric now_ms after two dimensions', { 5: 'now' }, 'now_ms must be a number, got: now'],
    ['a now_ms the server would not take', { 5: '-0' }, 'now_ms must be an integer, got: -0'],
    ['a non-numeric second delta', { 4: 'abc' }, 'usage[2].delta must be a number, got: abc'],
    ['a fractional second delta', { 4: '1.5' }, 'usage[2].delta must be an integer, got: 1.5'],
    ['a negative second delta', { 4: '-5' }, 'usage[2].delta must be >= 0, got: -5'],
    ['an empty second dimension', { 2: '' }, 'usage[2].dimension must not be empty'],
    ['a count one too high', { 0: '3' }, 'expected 8 or 9 ARGV for dim_count 3, got: 7'],
    ['a negative count', { 0: '-1' }, 'dim_count must be >= 0, got: -1'],
    ['a non-numeric count', { 0: 'two' }, 'dim_count must be a number, got: two'],
    ['the now_ms slot missing', { 5: null }, 'expected 6 or 7 ARGV for dim_count 2, got: 5'],
  ] as const)('refuses %s with the fixed-slot text and writes nothing', async (_label, patch, detail) => {
    const b = await createTestBudget(client);
    const request = buildReportUsageAndCheck({
      budgetId: b.budgetId, usage: [{ dimension: 'tokens', delta: 1 }, { dimension: 'calls', delta: 2 }], nowMs: NOW, dedupKey: b.partition.usageDedup(`t-${b.budgetId}`),
    }, client.partitions);
    const before = await keyStates(redis, budgetStateKeys(b));
    expect(await fcallPatched(redis, request, patch)).toEqual([0, 'invalid_input', detail]);
    expect(await keyStates(redis, budgetStateKeys(b))).toEqual(before);
    expect(await redis.exists(b.partition.usageDedup(`t-${b.budgetId}`))).toBe(0);
  });

  it('takes the tail slots at their places after the columns: now_ms stored, the dedup key set, or left out (2N + 2 ARGV)', async () => {
    const b = await createTestBudget(client);
    const dedupKey = b.partition.usageDedup(`t-${b.budgetId}`);
    const request = buildReportUsageAndCheck({ budgetId: b.budgetId, usage: [{ dimension: 'tokens', delta: 1 }, { dimension: 'calls', delta: 2 }], nowMs: NOW, dedupKey }, client.partitions);
    expect(request.argv).toEqual(['2', 'tokens', 'calls', '1', '2', String(NOW), dedupKey]);
    expect(await fcallPatched(redis, request)).toEqual([1, 'OK']);
    expect(await redis.hgetall(b.keys.usage())).toEqual({ tokens: '1', calls: '2' });
    expect(await redis.hget(b.keys.definition(), 'last_updated_at')).toBe(String(NOW));
    expect(await redis.get(dedupKey)).toBe('1');
    expect(await fcallPatched(redis, request)).toEqual([1, 'ALREADY_APPLIED']);
    // No dedup key at all (the reference's 2N + 2 form), down to no dimension.
    expect(await fcallPatched(redis, request, { 6: null })).toEqual([1, 'OK']);
    expect(await redis.hgetall(b.keys.usage())).toEqual({ tokens: '2', calls: '4' });
    expect(await redis.call('FCALL', 'ff_report_usage_and_check', 3, ...request.keys, '0', String(NOW + 1))).toEqual([1, 'OK']);
    expect(await redis.hget(b.keys.definition(), 'last_updated_at')).toBe(String(NOW + 1));
  });

  it('refuses corrupt stored usage before any write (deviation)', async () => {
    const b = await createTestBudget(client, { dimensions: [{ dimension: 'a', hardLimit: 0, softLimit: 0 }, { dimension: 'b', hardLimit: 0, softLimit: 0 }] });
    await redis.hset(b.keys.usage(), 'a', '1', 'b', 'oops');
    const before = await keyStates(redis, budgetStateKeys(b));
    const error = await scriptError(reportUsageAndCheck(client, { budgetId: b.budgetId, usage: [{ dimension: 'a', delta: 1 }, { dimension: 'b', delta: 1 }] }));
    expect(error.code).toBe('invalid_input');
    expect(await keyStates(redis, budgetStateKeys(b))).toEqual(before);
  });
});

describe('ff_reset_budget', () => {
  const { client, redis } = useServer();

  it('zeroes usage, counts the reset and reschedules', async () => {
    const b = await createTestBudget(client, { resetIntervalMs: 5000 });
    await reportUsageAndCheck(client, { budgetId: b.budgetId, usage: [{ dimension: 'tokens', delta: 50 }] });
    await reportUsageAndCheck(client, { budgetId: b.budgetId, usage: [{ dimension: 'tokens', delta: 100 }] });
    await expect(resetBudget(client, { budgetId: b.budgetId, nowMs: NOW })).resolves.toEqual({ status: 'OK', nextResetAt: NOW + 5000 });
    expect(await redis.hgetall(b.keys.usage())).toEqual({ tokens: '0' });
    expect(await redis.hmget(b.keys.definition(), 'reset_count', 'last_reset_at', 'last_breach_at', 'last_breach_dim', 'breach_count', 'next_reset_at')).toEqual(['1', String(NOW), '', '', '1', String(NOW + 5000)]);
    expect(Number(await redis.zscore(b.partition.budgetResets(), b.budgetId))).toBe(NOW + 5000);
  });

  it('answers 0 and unschedules a budget without an interval', async () => {
    const b = await createTestBudget(client);
    await redis.zadd(b.partition.budgetResets(), 1, b.budgetId);
    await expect(resetBudget(client, { budgetId: b.budgetId })).resolves.toEqual({ status: 'OK', nextResetAt: 0 });
    expect(await redis.zscore(b.partition.budgetResets(), b.budgetId)).toBeNull();
    expect(await redis.hget(b.keys.definition(), 'reset_count')).toBe('1');
  });

  it('answers budget_not_found without a stub and drops a dangling schedule entry (deviation)', async () => {
    const b = budgetKeys(client, newBudgetId());
    await redis.zadd(b.partition.budgetResets(), 1, b.budgetId);
    const error = await scriptError(resetBudget(client, { budgetId: b.budgetId }));
    expect(error.code).toBe('budget_not_found');
    expect(await redis.exists(b.keys.definition())).toBe(0);
    expect(await redis.zscore(b.partition.budgetResets(), b.budgetId)).toBeNull();
  });

  it.each([
    ['a non-numeric now_ms', { 1: 'now' }],
    ['a budget id that is not the key\'s', { 0: newBudgetId() }],
  ] as const)('answers invalid_input for %s and writes nothing', async (_label, patch) => {
    const b = await createTestBudget(client, { resetIntervalMs: 1000 });
    await reportUsageAndCheck(client, { budgetId: b.budgetId, usage: [{ dimension: 'tokens', delta: 5 }] });
    const before = await keyStates(redis, budgetStateKeys(b));
    expect(await fcallPatched(redis, buildResetBudget({ budgetId: b.budgetId }, client.partitions), patch)).toEqual([0, 'invalid_input', expect.any(String)]);
    expect(await keyStates(redis, budgetStateKeys(b))).toEqual(before);
  });

  it('refuses a corrupt stored interval before zeroing usage', async () => {
    const b = await createTestBudget(client);
    await reportUsageAndCheck(client, { budgetId: b.budgetId, usage: [{ dimension: 'tokens', delta: 5 }] });
    await redis.hset(b.keys.definition(), 'reset_interval_ms', 'weekly');
    const error = await scriptError(resetBudget(client, { budgetId: b.budgetId }));
    expect(error.code).toBe('invalid_input');
    expect(await redis.hget(b.keys.usage(), 'tokens')).toBe('5');
  });
});

async function coreOf(redis: ReturnType<typeof useServer>['redis'], executionId: ExecutionId): Promise<Record<string, string>> {
  return redis.hgetall(new ExecKeys(executionId).core());
}

function lane(executionId: ExecutionId): PartitionKeys {
  return new PartitionKeys(new ExecKeys(executionId).tag);
}

describe('ff_block_execution_for_admission', () => {
  const { client, redis } = useServer();

  it('moves an eligible execution to the budget blocked index', async () => {
    const { executionId, laneId } = await createWaiting(client);
    const result = await blockExecutionForAdmission(client, { executionId, laneId, blockedSet: 'budget', blockingReason: 'waiting_for_budget', blockingDetail: 'over', nowMs: NOW });
    expect(result).toEqual({ status: 'OK', result: 'blocked' });
    expect(await coreOf(redis, executionId)).toMatchObject({
      lifecycle_phase: 'runnable', ownership_state: 'unowned', eligibility_state: 'blocked_by_budget', blocking_reason: 'waiting_for_budget',
      blocking_detail: 'over', terminal_outcome: 'none', attempt_state: 'pending_first_attempt', public_state: 'rate_limited',
      last_transition_at: String(NOW), last_mutation_at: String(NOW),
    });
    expect(await redis.zscore(lane(executionId).laneEligible(laneId), executionId)).toBeNull();
    expect(Number(await redis.zscore(lane(executionId).laneBlockedBudget(laneId), executionId))).toBe(NOW);
  });

  it.each([
    ['waiting_for_quota', 'quota', 'blocked_by_quota'],
    ['waiting_for_capable_worker', 'route', 'blocked_by_route'],
    ['paused_by_operator', 'operator', 'blocked_by_operator'],
    ['paused_by_policy', 'operator', 'blocked_by_lane_state'],
  ] as const)('blocks for %s into the %s index as %s (public_state rate_limited)', async (reason, set, eligibility) => {
    const { executionId, laneId } = await createWaiting(client);
    await blockExecutionForAdmission(client, { executionId, laneId, blockedSet: set, blockingReason: reason });
    expect(await coreOf(redis, executionId)).toMatchObject({ eligibility_state: eligibility, blocking_reason: reason, public_state: 'rate_limited', blocking_detail: '' });
    expect(await redis.zscore(lane(executionId).laneBlocked(laneId, set), executionId)).not.toBeNull();
  });

  it('re-blocking for another reason moves the execution between blocked indexes (deviation)', async () => {
    const { executionId, laneId } = await createWaiting(client);
    await blockExecutionForAdmission(client, { executionId, laneId, blockedSet: 'budget', blockingReason: 'waiting_for_budget' });
    await blockExecutionForAdmission(client, { executionId, laneId, blockedSet: 'quota', blockingReason: 'waiting_for_quota' });
    expect(await redis.zscore(lane(executionId).laneBlockedBudget(laneId), executionId)).toBeNull();
    expect(await redis.zscore(lane(executionId).laneBlockedQuota(laneId), executionId)).not.toBeNull();
    expect((await coreOf(redis, executionId)).eligibility_state).toBe('blocked_by_quota');
  });

  it('answers execution_not_found for an unknown execution', async () => {
    const { executionId, laneId } = await createWaiting(client);
    const other = `${new ExecKeys(executionId).tag}:${randomUUID()}` as ExecutionId;
    const error = await scriptError(blockExecutionForAdmission(client, { executionId: other, laneId, blockedSet: 'budget', blockingReason: 'waiting_for_budget' }));
    expect(error.code).toBe('execution_not_found');
  });

  it('answers execution_not_eligible for an active execution and execution_not_active for a terminal one', async () => {
    const claimed = await createClaimed(client);
    const active = await scriptError(blockExecutionForAdmission(client, { executionId: claimed.executionId, laneId: claimed.laneId, blockedSet: 'budget', blockingReason: 'waiting_for_budget' }));
    expect(active.code).toBe('execution_not_eligible');
    await completeExecution(client, { executionId: claimed.executionId, laneId: claimed.laneId, workerInstanceId: claimed.workerInstanceId, ...claimed.lease });
    const terminal = await scriptError(blockExecutionForAdmission(client, { executionId: claimed.executionId, laneId: claimed.laneId, blockedSet: 'budget', blockingReason: 'waiting_for_budget' }));
    expect(terminal.code).toBe('execution_not_active');
    expect(terminal.details).toEqual(['success', '1']);
  });

  it('answers execution_not_eligible for a delayed execution and leaves it delayed (deviation)', async () => {
    const { executionId, laneId } = await createWaiting(client, { delayUntil: Date.now() + 60_000 });
    const before = await coreOf(redis, executionId);
    const error = await scriptError(blockExecutionForAdmission(client, { executionId, laneId, blockedSet: 'budget', blockingReason: 'waiting_for_budget' }));
    expect(error.code).toBe('execution_not_eligible');
    expect(await coreOf(redis, executionId)).toEqual(before);
  });

  it('answers invalid_blocking_reason for an unknown reason sent directly, writing nothing', async () => {
    const { executionId, laneId } = await createWaiting(client);
    const request = buildBlockExecutionForAdmission({ executionId, laneId, blockedSet: 'budget', blockingReason: 'waiting_for_budget' }, client.partitions);
    const before = await keyStates(redis, [...request.keys]);
    expect(await fcallPatched(redis, request, { 1: 'waiting_for_godot' })).toEqual([0, 'invalid_blocking_reason']);
    expect(await keyStates(redis, [...request.keys])).toEqual(before);
  });

  it.each([
    ['a blocked index that does not match the reason', (e: ExecutionId, l: LaneId) => buildBlockExecutionForAdmission({ executionId: e, laneId: l, blockedSet: 'quota', blockingReason: 'waiting_for_budget' }, DEFAULT), {}],
    ['another lane\'s indexes', (e: ExecutionId) => buildBlockExecutionForAdmission({ executionId: e, laneId: 'other-lane' as LaneId, blockedSet: 'budget', blockingReason: 'waiting_for_budget' }, DEFAULT), {}],
    ['a non-numeric now_ms', (e: ExecutionId, l: LaneId) => buildBlockExecutionForAdmission({ executionId: e, laneId: l, blockedSet: 'budget', blockingReason: 'waiting_for_budget' }, DEFAULT), { 3: 'now' }],
    ['an execution id that is not the core key\'s', (e: ExecutionId, l: LaneId) => buildBlockExecutionForAdmission({ executionId: e, laneId: l, blockedSet: 'budget', blockingReason: 'waiting_for_budget' }, DEFAULT), { 0: `{fp:1}:${randomUUID()}` }],
  ] as const)('answers invalid_input for %s and writes nothing (deviation)', async (_label, build, patch) => {
    const { executionId, laneId } = await createWaiting(client);
    const request = build(executionId, laneId);
    const watched = [...request.keys, lane(executionId).laneEligible(laneId), lane(executionId).laneBlockedBudget(laneId)];
    const before = await keyStates(redis, watched);
    expect(await fcallPatched(redis, request, patch)).toEqual([0, 'invalid_input', expect.any(String)]);
    expect(await keyStates(redis, watched)).toEqual(before);
  });
});

describe('ff_unblock_execution', () => {
  const { client, redis } = useServer();

  async function blocked(reason: 'waiting_for_budget' | 'waiting_for_quota' = 'waiting_for_budget'): Promise<{ executionId: ExecutionId; laneId: LaneId }> {
    const created = await createWaiting(client, { priority: 7 });
    await blockExecutionForAdmission(client, { ...created, blockedSet: reason === 'waiting_for_budget' ? 'budget' : 'quota', blockingReason: reason });
    return created;
  }

  it('returns a blocked execution to the eligible index, claimable again', async () => {
    const created = await blocked();
    const { executionId, laneId } = created;
    await expect(unblockExecution(client, { executionId, laneId, blockedSet: 'budget', nowMs: NOW, expectedBlockingReason: 'waiting_for_budget' })).resolves.toEqual({ status: 'OK', result: 'unblocked' });
    const core = await coreOf(redis, executionId);
    expect(core).toMatchObject({
      lifecycle_phase: 'runnable', ownership_state: 'unowned', eligibility_state: 'eligible_now', blocking_reason: 'waiting_for_worker',
      blocking_detail: '', terminal_outcome: 'none', attempt_state: 'pending_first_attempt', public_state: 'waiting', last_transition_at: String(NOW),
    });
    expect(await redis.zscore(lane(executionId).laneBlockedBudget(laneId), executionId)).toBeNull();
    expect(Number(await redis.zscore(lane(executionId).laneEligible(laneId), executionId))).toBe(-7 * 1e12 + Number(core.created_at));
    const claimed = await claim(client, created);
    expect(claimed.claim.status).toBe('OK');
  });

  it('cleans every admission blocked index of the lane (deviation)', async () => {
    const { executionId, laneId } = await blocked('waiting_for_quota');
    await redis.zadd(lane(executionId).laneBlockedRoute(laneId), 1, executionId);
    await unblockExecution(client, { executionId, laneId, blockedSet: 'budget' });
    for (const set of ['budget', 'quota', 'route', 'operator']) {
      expect(await redis.zscore(lane(executionId).laneBlocked(laneId, set), executionId)).toBeNull();
    }
    expect(await redis.zscore(lane(executionId).laneEligible(laneId), executionId)).not.toBeNull();
  });

  it('answers execution_not_found for an unknown execution', async () => {
    const { executionId, laneId } = await createWaiting(client);
    const other = `${new ExecKeys(executionId).tag}:${randomUUID()}` as ExecutionId;
    expect((await scriptError(unblockExecution(client, { executionId: other, laneId, blockedSet: 'budget' }))).code).toBe('execution_not_found');
  });

  it('answers execution_not_eligible when not blocked, blocked for another reason, or held by lane policy', async () => {
    const eligible = await createWaiting(client);
    expect((await scriptError(unblockExecution(client, { ...eligible, blockedSet: 'budget' }))).code).toBe('execution_not_eligible');
    const quota = await blocked('waiting_for_quota');
    const before = await coreOf(redis, quota.executionId);
    expect((await scriptError(unblockExecution(client, { ...quota, blockedSet: 'quota', expectedBlockingReason: 'waiting_for_budget' }))).code).toBe('execution_not_eligible');
    expect(await coreOf(redis, quota.executionId)).toEqual(before);
    const held = await createWaiting(client);
    await blockExecutionForAdmission(client, { ...held, blockedSet: 'operator', blockingReason: 'paused_by_policy' });
    expect((await scriptError(unblockExecution(client, { ...held, blockedSet: 'operator' }))).code).toBe('execution_not_eligible');
  });

  it.each([
    ['another lane\'s indexes', { laneId: 'other-lane' }, {}],
    ['a non-numeric now_ms', {}, { 1: 'now' }],
    ['an execution id that is not the core key\'s', {}, { 0: `{fp:1}:${randomUUID()}` }],
  ] as const)('answers invalid_input for %s and writes nothing (deviation)', async (_label, override, patch) => {
    const { executionId, laneId } = await blocked();
    const request = buildUnblockExecution({ executionId, laneId, blockedSet: 'budget', ...(override as { laneId?: LaneId }) }, client.partitions);
    const watched = [...request.keys, lane(executionId).laneEligible(laneId), lane(executionId).laneBlockedBudget(laneId)];
    const before = await keyStates(redis, watched);
    expect(await fcallPatched(redis, request, patch)).toEqual([0, 'invalid_input', expect.any(String)]);
    expect(await keyStates(redis, watched)).toEqual(before);
  });
});
