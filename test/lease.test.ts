import { describe, expect, it } from 'vitest';
import { completeExecution } from '../generated/execution.js';
import { ExecKeys, PartitionKeys } from '../generated/keys.js';
import { buildMarkLeaseExpiredIfDue, buildRenewLease, buildRevokeLease, markLeaseExpiredIfDue, renewLease, revokeLease } from '../generated/lease.js';
import { appendFrame } from '../generated/stream.js';
import { ArgumentError, ScriptError } from '../runtime/errors.js';
import { newLeaseId } from '../runtime/ids.js';
import { DEFAULT_PARTITION_CONFIG } from '../runtime/partition.js';
import { useServer } from './support/client.js';
import { newExecutionId } from './support/ids.js';
import { checkExecutionInvariants } from './support/invariants.js';
import { createClaimed, createWaiting, type Claimed } from './support/lifecycle.js';
import { fcallPatched, keyStates, sleep } from './support/raw.js';

const P = DEFAULT_PARTITION_CONFIG;

/** The error a call rejected with (fails the test when it resolved). */
async function failure(promise: Promise<unknown>): Promise<ScriptError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ScriptError);
  return error as ScriptError;
}

function renewArgs(c: Claimed, leaseTtlMs = 60_000) {
  return { executionId: c.executionId, attemptIndex: c.lease.attemptIndex, attemptId: c.lease.attemptId, leaseId: c.lease.leaseId, leaseEpoch: c.lease.leaseEpoch, leaseTtlMs };
}

function completeArgs(c: Claimed) {
  return { executionId: c.executionId, laneId: c.laneId, workerInstanceId: c.workerInstanceId, ...c.lease };
}

function appendArgs(c: Claimed, payload = 'hello') {
  return { executionId: c.executionId, attemptIndex: c.lease.attemptIndex, leaseId: c.lease.leaseId, leaseEpoch: c.lease.leaseEpoch, attemptId: c.lease.attemptId, frameType: 'text_chunk', payload };
}

/** Every key the lease functions touch for one claimed execution. */
function leaseKeys(c: Claimed): string[] {
  const exec = new ExecKeys(c.executionId);
  const index = new PartitionKeys(exec.tag);
  return [exec.core(), exec.leaseCurrent(), exec.leaseHistory(), index.leaseExpiry(), index.workerLeases(c.workerInstanceId), exec.streamMeta(0)];
}

describe('ff_renew_lease', () => {
  const { client, redis } = useServer();

  it('extends the lease on exec_core, lease_current and lease_expiry, and nothing else', async () => {
    const c = await createClaimed(client);
    const exec = new ExecKeys(c.executionId);
    const index = new PartitionKeys(exec.tag);
    const historyBefore = await redis.xlen(exec.leaseHistory());
    const result = await renewLease(client, { ...renewArgs(c, 90_000), leaseHistoryGraceMs: 5000 });
    expect(result.status).toBe('OK');

    const core = await redis.hgetall(exec.core());
    const renewedAt = Number(core.lease_last_renewed_at);
    expect(result.expiresAt).toBe(renewedAt + 90_000);
    expect(core).toMatchObject({
      lease_expires_at: String(result.expiresAt),
      lease_renewal_deadline: String(renewedAt + 60_000),
      last_mutation_at: String(renewedAt),
      current_lease_id: c.lease.leaseId,
      current_lease_epoch: '1',
      ownership_state: 'leased',
    });
    expect(await redis.hgetall(exec.leaseCurrent())).toMatchObject({
      lease_id: c.lease.leaseId,
      lease_epoch: '1',
      expires_at: String(result.expiresAt),
      renewal_deadline: String(renewedAt + 60_000),
      last_renewed_at: String(renewedAt),
    });
    expect(await redis.call('PEXPIRETIME', exec.leaseCurrent())).toBe(result.expiresAt + 5000);
    expect(Number(await redis.zscore(index.leaseExpiry(), c.executionId))).toBe(result.expiresAt);
    // The active index keeps the claim-time score, and renewals are not recorded.
    expect(Number(await redis.zscore(index.laneActive(c.laneId), c.executionId))).toBe(c.claim.leaseExpiresAt);
    expect(await redis.xlen(exec.leaseHistory())).toBe(historyBefore);
    expect(await checkExecutionInvariants(redis, c.executionId)).toEqual([]);
  });

  it('uses the default history grace of 60 s', async () => {
    const c = await createClaimed(client);
    const { expiresAt } = await renewLease(client, renewArgs(c, 1000));
    expect(await redis.call('PEXPIRETIME', new ExecKeys(c.executionId).leaseCurrent())).toBe(expiresAt + 60_000);
  });

  it('keeps a lease alive past its original expiry; without renewal it expires', async () => {
    const renewed = await createClaimed(client, {}, { leaseTtlMs: 300 });
    await renewLease(client, renewArgs(renewed, 60_000));
    const lapsing = await createClaimed(client, {}, { leaseTtlMs: 300 });
    await sleep(350);
    await expect(markLeaseExpiredIfDue(client, { executionId: renewed.executionId })).resolves.toEqual({ status: 'ALREADY_SATISFIED', reason: 'not_yet_expired' });
    await expect(markLeaseExpiredIfDue(client, { executionId: lapsing.executionId })).resolves.toEqual({ status: 'marked_expired' });
    // The holder can still finish the renewed one.
    await expect(completeExecution(client, completeArgs(renewed))).resolves.toEqual({ status: 'OK', publicState: 'completed' });
    expect(await checkExecutionInvariants(redis, renewed.executionId)).toEqual([]);
    expect(await checkExecutionInvariants(redis, lapsing.executionId)).toEqual([]);
  });

  it('refuses a lease that has lapsed: marks it expired and closes its stream', async () => {
    const c = await createClaimed(client, {}, { leaseTtlMs: 150 });
    await appendFrame(client, appendArgs(c));
    await sleep(200);
    const error = await failure(renewLease(client, renewArgs(c)));
    expect(error.code).toBe('lease_expired');
    const exec = new ExecKeys(c.executionId);
    expect(await redis.hgetall(exec.core())).toMatchObject({ ownership_state: 'lease_expired_reclaimable', attempt_state: 'attempt_interrupted', lifecycle_phase: 'active' });
    expect(await redis.hgetall(exec.streamMeta(0))).toMatchObject({ closed_reason: 'lease_expired' });
    const history = await redis.xrange(exec.leaseHistory(), '-', '+');
    expect(history.at(-1)?.[1].slice(0, 2)).toEqual(['event', 'expired']);
    // A second renewal finds it expired again and writes nothing more.
    const before = await keyStates(redis, leaseKeys(c));
    expect((await failure(renewLease(client, renewArgs(c)))).code).toBe('lease_expired');
    expect(await keyStates(redis, leaseKeys(c))).toEqual(before);
    expect(await checkExecutionInvariants(redis, c.executionId)).toEqual([]);
  });

  it('answers execution_not_found for an unknown execution', async () => {
    const c = await createClaimed(client);
    const error = await failure(renewLease(client, { ...renewArgs(c), executionId: newExecutionId() }));
    expect(error.code).toBe('execution_not_found');
  });

  it('answers execution_not_active with the outcome and epoch once completed', async () => {
    const c = await createClaimed(client);
    await completeExecution(client, completeArgs(c));
    const error = await failure(renewLease(client, renewArgs(c)));
    expect(error.code).toBe('execution_not_active');
    expect(error.details).toEqual(['success', '1']);
  });

  it('answers lease_revoked after a revocation, and when only lease_revoked_at is set', async () => {
    const revoked = await createClaimed(client);
    await revokeLease(client, { executionId: revoked.executionId, workerInstanceId: revoked.workerInstanceId });
    expect((await failure(renewLease(client, renewArgs(revoked)))).code).toBe('lease_revoked');

    const marked = await createClaimed(client);
    await redis.hset(new ExecKeys(marked.executionId).core(), 'lease_revoked_at', '1');
    expect((await failure(renewLease(client, renewArgs(marked)))).code).toBe('lease_revoked');
  });

  it.each([
    ['attempt index', { attemptIndex: 1 }],
    ['attempt id', { attemptId: newLeaseId() as never }],
    ['lease id', { leaseId: newLeaseId() }],
    ['lease epoch', { leaseEpoch: 2 }],
  ])('answers stale_lease for another %s and writes nothing', async (_what, override) => {
    const c = await createClaimed(client);
    const before = await keyStates(redis, leaseKeys(c));
    expect((await failure(renewLease(client, { ...renewArgs(c), ...override }))).code).toBe('stale_lease');
    expect(await keyStates(redis, leaseKeys(c))).toEqual(before);
  });

  it('refuses bad durations before the round trip', () => {
    const args = { executionId: newExecutionId(), attemptIndex: 0, attemptId: newLeaseId() as never, leaseId: newLeaseId(), leaseEpoch: 1 };
    expect(() => buildRenewLease({ ...args, leaseTtlMs: 0 }, P)).toThrow(ArgumentError);
    expect(() => buildRenewLease({ ...args, leaseTtlMs: 1.5 }, P)).toThrow(ArgumentError);
    expect(() => buildRenewLease({ ...args, leaseTtlMs: 1000, leaseHistoryGraceMs: -1 }, P)).toThrow(ArgumentError);
  });

  it('answers malformed ARGV with invalid_input and writes nothing (deviation: the reference accepts fractions)', async () => {
    const c = await createClaimed(client);
    const request = buildRenewLease(renewArgs(c), P);
    const before = await keyStates(redis, leaseKeys(c));
    const cases: Record<number, string | null>[] = [
      { 5: 'soon' }, { 5: '1.5' }, { 5: '0' }, { 5: '-100' }, { 5: '' }, { 5: '1000000000000001' },
      { 6: 'x' }, { 6: '2.5' }, { 6: '-1' }, { 6: null },
      { 0: '' }, { 0: newExecutionId() },
    ];
    for (const patch of cases) {
      const reply = await fcallPatched(redis, request, patch);
      expect(reply, JSON.stringify(patch)).toEqual([0, 'invalid_input', expect.any(String)]);
    }
    expect(await keyStates(redis, leaseKeys(c))).toEqual(before);
  });

  it('treats an empty lease_expires_at as expired (deviation: the reference raised a runtime error)', async () => {
    const c = await createClaimed(client);
    await redis.hset(new ExecKeys(c.executionId).core(), 'lease_expires_at', '');
    expect((await failure(renewLease(client, renewArgs(c)))).code).toBe('lease_expired');
    expect(await redis.hget(new ExecKeys(c.executionId).core(), 'ownership_state')).toBe('lease_expired_reclaimable');
  });
});

describe('ff_mark_lease_expired_if_due', () => {
  const { client, redis } = useServer();

  it('marks a due lease expired, keeping the lease indexes for reclaim', async () => {
    const c = await createClaimed(client, {}, { leaseTtlMs: 100 });
    await appendFrame(client, appendArgs(c));
    const exec = new ExecKeys(c.executionId);
    const index = new PartitionKeys(exec.tag);
    const transitionBefore = await redis.hget(exec.core(), 'last_transition_at');
    await sleep(150);
    await expect(markLeaseExpiredIfDue(client, { executionId: c.executionId })).resolves.toEqual({ status: 'marked_expired' });

    const core = await redis.hgetall(exec.core());
    expect(core).toMatchObject({
      lifecycle_phase: 'active',
      ownership_state: 'lease_expired_reclaimable',
      eligibility_state: 'not_applicable',
      blocking_reason: 'waiting_for_worker',
      blocking_detail: 'lease expired, awaiting reclaim',
      terminal_outcome: 'none',
      attempt_state: 'attempt_interrupted',
      public_state: 'active',
      last_transition_at: transitionBefore,
      current_lease_id: c.lease.leaseId,
    });
    expect(core.lease_expired_at).toBe(core.last_mutation_at);
    // Kept: lease_current, lease_expiry, the worker's set, the active index, the attempt.
    expect(await redis.exists(exec.leaseCurrent())).toBe(1);
    expect(Number(await redis.zscore(index.leaseExpiry(), c.executionId))).toBe(c.claim.leaseExpiresAt);
    expect(await redis.sismember(index.workerLeases(c.workerInstanceId), c.executionId)).toBe(1);
    expect(await redis.zscore(index.laneActive(c.laneId), c.executionId)).not.toBeNull();
    expect(await redis.hget(exec.attemptHash(0), 'attempt_state')).toBe('started');
    expect(await redis.hgetall(exec.streamMeta(0))).toMatchObject({ closed_at: core.lease_expired_at, closed_reason: 'lease_expired' });
    const history = await redis.xrange(exec.leaseHistory(), '-', '+');
    expect(history.at(-1)?.[1]).toEqual([
      'event', 'expired', 'lease_id', c.lease.leaseId, 'lease_epoch', '1', 'attempt_index', '0', 'attempt_id', c.lease.attemptId,
      'worker_id', c.workerId, 'worker_instance_id', c.workerInstanceId, 'ts', core.lease_expired_at,
    ]);
    expect(await checkExecutionInvariants(redis, c.executionId)).toEqual([]);

    // Idempotent, and the holder's writes are refused from now on.
    await expect(markLeaseExpiredIfDue(client, { executionId: c.executionId })).resolves.toEqual({ status: 'ALREADY_SATISFIED', reason: 'already_expired' });
    expect(await redis.xlen(exec.leaseHistory())).toBe(history.length);
    expect((await failure(completeExecution(client, completeArgs(c)))).code).toBe('lease_expired');
    expect((await failure(appendFrame(client, appendArgs(c)))).code).toBe('stale_owner_cannot_append');
  });

  it('does not overwrite an earlier close of the stream', async () => {
    const c = await createClaimed(client, {}, { leaseTtlMs: 100 });
    await appendFrame(client, appendArgs(c));
    const meta = new ExecKeys(c.executionId).streamMeta(0);
    await redis.hset(meta, 'closed_at', '123', 'closed_reason', 'earlier');
    await sleep(150);
    await markLeaseExpiredIfDue(client, { executionId: c.executionId });
    expect(await redis.hgetall(meta)).toMatchObject({ closed_at: '123', closed_reason: 'earlier' });
  });

  it('answers not_yet_expired for a live lease and writes nothing', async () => {
    const c = await createClaimed(client);
    const before = await keyStates(redis, leaseKeys(c));
    await expect(markLeaseExpiredIfDue(client, { executionId: c.executionId })).resolves.toEqual({ status: 'ALREADY_SATISFIED', reason: 'not_yet_expired' });
    expect(await keyStates(redis, leaseKeys(c))).toEqual(before);
  });

  it('drops the stale lease_expiry entry of a missing, inactive or unowned execution', async () => {
    const missing = newExecutionId();
    const waiting = await createWaiting(client);
    const unowned = await createClaimed(client);
    await redis.hset(new ExecKeys(unowned.executionId).core(), 'ownership_state', 'unowned');
    for (const [executionId, reason] of [[missing, 'execution_not_found'], [waiting.executionId, 'not_active'], [unowned.executionId, 'unowned']] as const) {
      const expiry = new PartitionKeys(new ExecKeys(executionId).tag).leaseExpiry();
      await redis.zadd(expiry, 1, executionId);
      await expect(markLeaseExpiredIfDue(client, { executionId })).resolves.toEqual({ status: 'ALREADY_SATISFIED', reason });
      expect(await redis.zscore(expiry, executionId)).toBeNull();
    }
    expect(await redis.exists(new ExecKeys(missing).core())).toBe(0);
  });

  it('marks a leased execution whose lease_expires_at is empty', async () => {
    const c = await createClaimed(client);
    await redis.hset(new ExecKeys(c.executionId).core(), 'lease_expires_at', '');
    await expect(markLeaseExpiredIfDue(client, { executionId: c.executionId })).resolves.toEqual({ status: 'marked_expired' });
    expect(await redis.hget(new ExecKeys(c.executionId).core(), 'ownership_state')).toBe('lease_expired_reclaimable');
  });

  it('answers already_revoked after a revocation', async () => {
    const c = await createClaimed(client);
    await revokeLease(client, { executionId: c.executionId, workerInstanceId: c.workerInstanceId });
    await expect(markLeaseExpiredIfDue(client, { executionId: c.executionId })).resolves.toEqual({ status: 'ALREADY_SATISFIED', reason: 'already_revoked' });
  });

  it('answers a mismatched or empty execution_id with invalid_input and writes nothing (deviation)', async () => {
    const c = await createClaimed(client, {}, { leaseTtlMs: 50 });
    await sleep(80);
    const request = buildMarkLeaseExpiredIfDue({ executionId: c.executionId }, P);
    const before = await keyStates(redis, leaseKeys(c));
    for (const patch of [{ 0: newExecutionId() }, { 0: '' }, { 0: null }]) {
      expect(await fcallPatched(redis, request, patch), JSON.stringify(patch)).toEqual([0, 'invalid_input', expect.any(String)]);
    }
    expect(await keyStates(redis, leaseKeys(c))).toEqual(before);
  });
});

describe('ff_revoke_lease', () => {
  const { client, redis } = useServer();

  it('revokes the lease: state, indexes, lease_current and the history event', async () => {
    const c = await createClaimed(client);
    const exec = new ExecKeys(c.executionId);
    const index = new PartitionKeys(exec.tag);
    const transitionBefore = await redis.hget(exec.core(), 'last_transition_at');
    const result = await revokeLease(client, { executionId: c.executionId, workerInstanceId: c.workerInstanceId, revokeReason: 'operator_revoke' });
    expect(result).toEqual({ status: 'revoked', leaseId: c.lease.leaseId, leaseEpoch: 1 });

    const core = await redis.hgetall(exec.core());
    expect(core).toMatchObject({
      lifecycle_phase: 'active',
      ownership_state: 'lease_revoked',
      eligibility_state: 'not_applicable',
      blocking_reason: 'waiting_for_worker',
      blocking_detail: 'lease revoked: operator_revoke',
      terminal_outcome: 'none',
      attempt_state: 'attempt_interrupted',
      public_state: 'active',
      lease_revoke_reason: 'operator_revoke',
      last_transition_at: transitionBefore,
      // Kept for a later reclaim or cancel.
      current_lease_id: c.lease.leaseId,
      current_worker_instance_id: c.workerInstanceId,
      lease_expires_at: String(c.claim.leaseExpiresAt),
    });
    expect(core.lease_revoked_at).toBe(core.last_mutation_at);
    expect(await redis.exists(exec.leaseCurrent())).toBe(0);
    expect(await redis.zscore(index.leaseExpiry(), c.executionId)).toBeNull();
    expect(await redis.sismember(index.workerLeases(c.workerInstanceId), c.executionId)).toBe(0);
    expect(await redis.zscore(index.laneActive(c.laneId), c.executionId)).not.toBeNull();
    expect(await redis.hget(exec.attemptHash(0), 'attempt_state')).toBe('started');
    const history = await redis.xrange(exec.leaseHistory(), '-', '+');
    expect(history.at(-1)?.[1]).toEqual([
      'event', 'revoked', 'lease_id', c.lease.leaseId, 'lease_epoch', '1', 'attempt_index', '0', 'attempt_id', c.lease.attemptId,
      'worker_id', c.workerId, 'worker_instance_id', c.workerInstanceId, 'reason', 'operator_revoke', 'ts', core.lease_revoked_at,
    ]);
    expect(await checkExecutionInvariants(redis, c.executionId)).toEqual([]);
  });

  it('refuses the holder afterwards: complete, renew and append', async () => {
    const c = await createClaimed(client);
    await revokeLease(client, { executionId: c.executionId, workerInstanceId: c.workerInstanceId });
    expect((await failure(completeExecution(client, completeArgs(c)))).code).toBe('lease_revoked');
    expect((await failure(renewLease(client, renewArgs(c)))).code).toBe('lease_revoked');
    expect((await failure(appendFrame(client, appendArgs(c)))).code).toBe('stale_owner_cannot_append');
    expect(await redis.hget(new ExecKeys(c.executionId).core(), 'lifecycle_phase')).toBe('active');
  });

  it('is idempotent: already_revoked, and already_expired for an expired lease', async () => {
    const revoked = await createClaimed(client);
    await revokeLease(client, { executionId: revoked.executionId, workerInstanceId: revoked.workerInstanceId });
    const before = await keyStates(redis, leaseKeys(revoked));
    await expect(revokeLease(client, { executionId: revoked.executionId, workerInstanceId: revoked.workerInstanceId })).resolves.toEqual({ status: 'ALREADY_SATISFIED', reason: 'already_revoked' });
    expect(await keyStates(redis, leaseKeys(revoked))).toEqual(before);

    const expired = await createClaimed(client, {}, { leaseTtlMs: 50 });
    await sleep(80);
    await markLeaseExpiredIfDue(client, { executionId: expired.executionId });
    await expect(revokeLease(client, { executionId: expired.executionId, workerInstanceId: expired.workerInstanceId })).resolves.toEqual({ status: 'ALREADY_SATISFIED', reason: 'already_expired' });
  });

  it('revokes a lapsed lease nobody has marked yet', async () => {
    const c = await createClaimed(client, {}, { leaseTtlMs: 50 });
    await sleep(80);
    await expect(revokeLease(client, { executionId: c.executionId, workerInstanceId: c.workerInstanceId })).resolves.toMatchObject({ status: 'revoked' });
    expect(await checkExecutionInvariants(redis, c.executionId)).toEqual([]);
  });

  it('checks the expected lease id when one is given', async () => {
    const c = await createClaimed(client);
    const other = newLeaseId();
    const error = await failure(revokeLease(client, { executionId: c.executionId, workerInstanceId: c.workerInstanceId, expectedLeaseId: other }));
    expect(error.code).toBe('stale_lease');
    expect(error.details).toEqual([`expected ${other} but current is ${c.lease.leaseId}`]);
    expect(await redis.hget(new ExecKeys(c.executionId).core(), 'ownership_state')).toBe('leased');
    await expect(revokeLease(client, { executionId: c.executionId, workerInstanceId: c.workerInstanceId, expectedLeaseId: c.lease.leaseId })).resolves.toMatchObject({ status: 'revoked' });
  });

  it('answers execution_not_found and execution_not_active', async () => {
    expect((await failure(revokeLease(client, { executionId: newExecutionId(), workerInstanceId: 'w' }))).code).toBe('execution_not_found');
    const waiting = await createWaiting(client);
    const error = await failure(revokeLease(client, { executionId: waiting.executionId, workerInstanceId: 'w' }));
    expect(error.code).toBe('execution_not_active');
    expect(error.details).toEqual(['none', '0']);
  });

  it('answers no_active_lease for an active execution without a lease', async () => {
    const c = await createClaimed(client);
    await redis.hset(new ExecKeys(c.executionId).core(), 'ownership_state', 'unowned');
    expect((await failure(revokeLease(client, { executionId: c.executionId, workerInstanceId: c.workerInstanceId }))).code).toBe('no_active_lease');
  });

  it('falls back to the reason operator only when the reason is missing', async () => {
    const defaulted = await createClaimed(client);
    await revokeLease(client, { executionId: defaulted.executionId, workerInstanceId: defaulted.workerInstanceId });
    expect(await redis.hget(new ExecKeys(defaulted.executionId).core(), 'blocking_detail')).toBe('lease revoked: operator');

    const missing = await createClaimed(client);
    const request = buildRevokeLease({ executionId: missing.executionId, workerInstanceId: missing.workerInstanceId }, P);
    expect(await fcallPatched(redis, request, { 2: null })).toEqual([1, 'OK', 'revoked', missing.lease.leaseId, '1']);
    expect(await redis.hget(new ExecKeys(missing.executionId).core(), 'lease_revoke_reason')).toBe('operator');

    const empty = await createClaimed(client);
    await revokeLease(client, { executionId: empty.executionId, workerInstanceId: empty.workerInstanceId, revokeReason: '' });
    expect(await redis.hgetall(new ExecKeys(empty.executionId).core())).toMatchObject({ lease_revoke_reason: '', blocking_detail: 'lease revoked: ' });
  });

  it("also removes the execution from the recorded holder's set when another worker set is passed (deviation)", async () => {
    const c = await createClaimed(client);
    await revokeLease(client, { executionId: c.executionId, workerInstanceId: 'someone-else' });
    const index = new PartitionKeys(new ExecKeys(c.executionId).tag);
    expect(await redis.sismember(index.workerLeases(c.workerInstanceId), c.executionId)).toBe(0);
    expect(await checkExecutionInvariants(redis, c.executionId)).toEqual([]);
  });

  it('answers a mismatched or empty execution_id with invalid_input and writes nothing (deviation)', async () => {
    const c = await createClaimed(client);
    const request = buildRevokeLease({ executionId: c.executionId, workerInstanceId: c.workerInstanceId }, P);
    const before = await keyStates(redis, leaseKeys(c));
    for (const patch of [{ 0: newExecutionId() }, { 0: '' }, { 0: null }]) {
      expect(await fcallPatched(redis, request, patch), JSON.stringify(patch)).toEqual([0, 'invalid_input', expect.any(String)]);
    }
    expect(await keyStates(redis, leaseKeys(c))).toEqual(before);
  });
});
