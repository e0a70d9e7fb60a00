// Multi-step paths through the execution and scheduling functions: retry after failure,
// lease expiry and reclaim, the reclaim limit, cancel from every reachable state, and claim
// order after a priority change. Each ends with the shared consistency check.
import { describe, expect, it } from 'vitest';
import { claimExecution, completeExecution, failExecution, delayExecution, moveToWaitingChildren, reclaimExecution } from '../generated/execution.js';
import { ExecKeys, PartitionKeys } from '../generated/keys.js';
import { renewLease, revokeLease } from '../generated/lease.js';
import { changePriority, issueClaimGrant, issueReclaimGrant, promoteDelayed } from '../generated/scheduling.js';
import { isScriptError } from '../runtime/errors.js';
import { newAttemptId, newLeaseId } from '../runtime/ids.js';
import { readExecutionContext } from '../operations/preread.js';
import { useServer } from './support/client.js';
import { cancel, core, expire, historyEvents, holderArgs, lapseLease, laneScore, reclaim, suspendClaimed, waitUntilServerTime } from './support/exec-ops.js';
import { newExecutionId, uniqueLane } from './support/ids.js';
import { checkExecutionInvariants } from './support/invariants.js';
import { claim, createClaimed, createWaiting } from './support/lifecycle.js';

/** The fields every claim writes first in a new attempt's record, in order. */
const ATTEMPT_COMMON_FIELDS = [
  'attempt_id', 'execution_id', 'attempt_index', 'attempt_state', 'created_at', 'started_at', 'lease_id', 'lease_epoch', 'worker_id', 'worker_instance_id',
];

describe('fail with retry → delayed → promote → claim the retry attempt', () => {
  const { client, redis } = useServer();

  it('retries twice with whole-ms exponential backoff, then completes on attempt 2', async () => {
    const c = await createClaimed(client);
    const firstStart = (await core(redis, c.executionId)).started_at;
    expect(firstStart).toMatch(/^\d+$/);
    const policy = { max_retries: 2, backoff: { type: 'exponential', initial_delay_ms: 1001, max_delay_ms: 60_000, multiplier: 1.5, jitter: false } };

    const first = await failExecution(client, { ...holderArgs(c), failureReason: 'timeout talking to upstream', retryPolicyJson: policy });
    if (first.status !== 'retry_scheduled') throw new Error('expected a retry');
    expect(await laneScore(redis, c.executionId, c.laneId, 'delayed')).toBe(first.delayUntil);
    await expect(promoteDelayed(client, { executionId: c.executionId, laneId: c.laneId, nowMs: first.delayUntil - 1 })).resolves.toEqual({ status: 'not_yet_due' });
    await expect(promoteDelayed(client, { executionId: c.executionId, laneId: c.laneId, nowMs: first.delayUntil })).resolves.toEqual({ status: 'promoted' });
    expect(await core(redis, c.executionId)).toMatchObject({ public_state: 'waiting', attempt_state: 'pending_retry_attempt' });
    expect(await checkExecutionInvariants(redis, c.executionId)).toEqual([]);

    const second = await claim(client, c, { workerId: 'worker-r', attemptIndex: 1 });
    expect(second.claim).toMatchObject({ attemptIndex: 1, attemptType: 'retry', leaseEpoch: 2 });
    const exec = new ExecKeys(c.executionId);
    expect(await redis.hgetall(exec.attemptHash(1))).toMatchObject({ attempt_type: 'retry', retry_reason: 'timeout talking to upstream', previous_attempt_index: '0', attempt_state: 'started' });
    // The record's layout (HGETALL order): the common fields, where the retry comes from, its type last.
    expect(Object.keys(await redis.hgetall(exec.attemptHash(1)))).toEqual([...ATTEMPT_COMMON_FIELDS, 'retry_reason', 'previous_attempt_index', 'attempt_type']);
    expect(Object.keys(await redis.hgetall(exec.attemptHash(0)))).toEqual(expect.arrayContaining([...ATTEMPT_COMMON_FIELDS, 'attempt_type']));
    expect(await redis.hget(exec.attemptHash(0), 'attempt_state')).toBe('ended_failure');
    expect(await core(redis, c.executionId)).toMatchObject({ retry_count: '1', pending_retry_reason: '', pending_previous_attempt_index: '', current_attempt_index: '1', total_attempt_count: '2', started_at: firstStart });

    // retry_count is now 1: 1001 × 1.5 = 1501.5 ms, stored as whole ms (Q5).
    const third = await failExecution(client, { ...holderArgs(second), failureReason: 'again', retryPolicyJson: policy });
    if (third.status !== 'retry_scheduled') throw new Error('expected a second retry');
    const stored = await core(redis, c.executionId);
    expect(third.delayUntil).toBe(Number(stored.last_transition_at) + 1501);
    expect(stored.delay_until).toBe(String(third.delayUntil));
    expect(stored.pending_previous_attempt_index).toBe('1');
    await promoteDelayed(client, { executionId: c.executionId, laneId: c.laneId, nowMs: third.delayUntil });
    const last = await claim(client, c, { workerId: 'worker-r', attemptIndex: 2 });
    expect(last.claim).toMatchObject({ attemptIndex: 2, attemptType: 'retry', leaseEpoch: 3 });

    // The retries are used up: the next failure would be terminal; this attempt succeeds.
    await completeExecution(client, { ...holderArgs(last), resultPayload: 'ok' });
    expect(await core(redis, c.executionId)).toMatchObject({ public_state: 'completed', retry_count: '2' });
    expect(await checkExecutionInvariants(redis, c.executionId)).toEqual([]);
  });

  it('fails terminally once max_retries is used up', async () => {
    const c = await createClaimed(client);
    const policy = { max_retries: 1, backoff: { type: 'fixed', delay_ms: 10 } };
    const first = await failExecution(client, { ...holderArgs(c), retryPolicyJson: policy });
    if (first.status !== 'retry_scheduled') throw new Error('expected a retry');
    await promoteDelayed(client, { executionId: c.executionId, laneId: c.laneId, nowMs: first.delayUntil });
    const second = await claim(client, c, { attemptIndex: 1 });
    await expect(failExecution(client, { ...holderArgs(second), retryPolicyJson: policy })).resolves.toEqual({ status: 'terminal_failed' });
    expect(await core(redis, c.executionId)).toMatchObject({ public_state: 'failed', retry_count: '1' });
    expect(await checkExecutionInvariants(redis, c.executionId)).toEqual([]);
  });
});

describe('lease expiry → reclaim grant → reclaim', () => {
  const { client, redis } = useServer();

  it('hands the execution to a new worker and fences the old lease out', async () => {
    const old = await createClaimed(client, {}, { workerId: 'slow', workerInstanceId: 'slow-1', leaseTtlMs: 60 });
    await expect(issueReclaimGrant(client, { executionId: old.executionId, laneId: old.laneId, workerId: 'fast', workerInstanceId: 'fast-1', grantTtlMs: 5000 })).rejects.toMatchObject({ code: 'execution_not_reclaimable' });
    await lapseLease(client, redis, old.executionId, old.claim.leaseExpiresAt);
    expect(await core(redis, old.executionId)).toMatchObject({ ownership_state: 'lease_expired_reclaimable', public_state: 'active' });

    const fresh = await reclaim(client, old.executionId, old.laneId, 'fast');
    expect(fresh.result).toMatchObject({ attemptIndex: 1, attemptType: 'reclaim', leaseEpoch: 2 });

    // The old holder wakes up: every write with its lease is refused.
    const late = await completeExecution(client, { ...holderArgs(old), resultPayload: 'late' }).catch((e: unknown) => e);
    expect(isScriptError(late, 'stale_lease')).toBe(true);
    await expect(renewLease(client, { executionId: old.executionId, attemptIndex: 0, attemptId: old.lease.attemptId, leaseId: old.lease.leaseId, leaseEpoch: 1, leaseTtlMs: 1000 })).rejects.toMatchObject({ code: 'stale_lease' });
    await expect(failExecution(client, holderArgs(old))).rejects.toMatchObject({ code: 'stale_lease' });
    expect(await redis.exists(new ExecKeys(old.executionId).result())).toBe(0);

    const index = new PartitionKeys(new ExecKeys(old.executionId).tag);
    expect(await redis.sismember(index.workerLeases('slow-1'), old.executionId)).toBe(0);
    await completeExecution(client, { executionId: old.executionId, laneId: old.laneId, workerInstanceId: fresh.workerInstanceId, ...fresh.lease, resultPayload: 'done' });
    expect(await core(redis, old.executionId)).toMatchObject({ public_state: 'completed', lease_reclaim_count: '1', current_lease_epoch: '2' });
    expect((await historyEvents(redis, old.executionId)).map((e) => e.event)).toEqual(['acquired', 'expired', 'reclaimed', 'released']);
    expect(await checkExecutionInvariants(redis, old.executionId)).toEqual([]);
  });

  it('marks the lease expired on the holder’s own late write, then reclaims', async () => {
    const c = await createClaimed(client, {}, { leaseTtlMs: 50 });
    await waitUntilServerTime(redis, c.claim.leaseExpiresAt);
    await expect(completeExecution(client, holderArgs(c))).rejects.toMatchObject({ code: 'lease_expired' });
    const r = await reclaim(client, c.executionId, c.laneId);
    expect(r.result.attemptType).toBe('reclaim');
    expect(await checkExecutionInvariants(redis, c.executionId)).toEqual([]);
  });
});

describe('the reclaim limit', () => {
  const { client, redis } = useServer();

  it('fails the execution on the reclaim beyond max_reclaim_count', async () => {
    const c = await createClaimed(client, { policyJson: { max_reclaim_count: 1 } }, { leaseTtlMs: 50 });
    await lapseLease(client, redis, c.executionId, c.claim.leaseExpiresAt);
    const first = await reclaim(client, c.executionId, c.laneId, 'second', 50);
    await lapseLease(client, redis, c.executionId, first.result.leaseExpiresAt);

    await issueReclaimGrant(client, { executionId: c.executionId, laneId: c.laneId, workerId: 'third', workerInstanceId: 'third-1', grantTtlMs: 5000 });
    const ctx = await readExecutionContext(client.transport, c.executionId);
    const error = await reclaimExecution(client, {
      executionId: c.executionId, laneId: c.laneId, workerId: 'third', workerInstanceId: 'third-1', currentAttemptIndex: ctx.currentAttemptIndex,
      newAttemptIndex: ctx.totalAttemptCount, leaseId: newLeaseId(), attemptId: newAttemptId(), leaseTtlMs: 1000,
    }).catch((e: unknown) => e);
    expect(isScriptError(error, 'max_retries_exhausted')).toBe(true);
    const stored = await core(redis, c.executionId);
    expect(stored).toMatchObject({ lifecycle_phase: 'terminal', terminal_outcome: 'failed', failure_reason: 'max_reclaims_exceeded', lease_reclaim_count: '1', total_attempt_count: '2' });
    const index = new PartitionKeys(new ExecKeys(c.executionId).tag);
    expect(await redis.zscore(index.leaseExpiry(), c.executionId)).toBeNull();
    expect(await redis.sismember(index.workerLeases('second-1'), c.executionId)).toBe(0);
    expect(await laneScore(redis, c.executionId, c.laneId, 'terminal')).toBe(Number(stored.completed_at));
    expect(await redis.hget(new ExecKeys(c.executionId).attemptHash(1), 'attempt_state')).toBe('ended_failure');
    // As in the reference, the grant is not consumed on this path; it lapses with its TTL.
    expect(await redis.exists(new ExecKeys(c.executionId).claimGrant())).toBe(1);
    expect(await checkExecutionInvariants(redis, c.executionId)).toEqual([]);
  });
});

describe('cancel from every reachable state', () => {
  const { client, redis } = useServer();

  async function expectCancelled(executionId: Parameters<typeof cancel>[1], laneId: Parameters<typeof laneScore>[2], from: string, options: Parameters<typeof cancel>[2] = {}) {
    await expect(cancel(client, executionId, options)).resolves.toEqual({ status: 'cancelled', cancelledFrom: from });
    expect(await core(redis, executionId)).toMatchObject({ lifecycle_phase: 'terminal', terminal_outcome: 'cancelled', public_state: 'cancelled', ownership_state: 'unowned' });
    expect(await laneScore(redis, executionId, laneId, 'terminal')).not.toBeNull();
    for (const index of ['eligible', 'delayed', 'active', 'suspended', 'blocked:dependencies'] as const) {
      expect(await laneScore(redis, executionId, laneId, index)).toBeNull();
    }
    expect(await checkExecutionInvariants(redis, executionId)).toEqual([]);
  }

  it('waiting', async () => {
    const c = await createWaiting(client);
    await expectCancelled(c.executionId, c.laneId, 'runnable');
  });

  it('delayed at creation', async () => {
    const c = await createWaiting(client, { delayUntil: Date.now() + 60_000 });
    await expectCancelled(c.executionId, c.laneId, 'runnable');
  });

  it('active, by the lease holder', async () => {
    const c = await createClaimed(client);
    await expectCancelled(c.executionId, c.laneId, 'active', { source: 'lease_holder', leaseId: c.lease.leaseId, leaseEpoch: c.lease.leaseEpoch });
  });

  it('active, by an operator override', async () => {
    const c = await createClaimed(client);
    await expectCancelled(c.executionId, c.laneId, 'active', { reason: 'operator' });
  });

  it('active with an expired lease', async () => {
    const c = await createClaimed(client, {}, { leaseTtlMs: 50 });
    await lapseLease(client, redis, c.executionId, c.claim.leaseExpiresAt);
    await expectCancelled(c.executionId, c.laneId, 'active');
    expect(await redis.hget(new ExecKeys(c.executionId).attemptHash(0), 'attempt_state')).toBe('ended_cancelled');
  });

  it('active with a revoked lease, by an operator override', async () => {
    const c = await createClaimed(client);
    await revokeLease(client, { executionId: c.executionId, workerInstanceId: c.workerInstanceId });
    await expect(cancel(client, c.executionId, { source: 'lease_holder', leaseId: c.lease.leaseId, leaseEpoch: 1 })).rejects.toMatchObject({ code: 'lease_revoked' });
    await expectCancelled(c.executionId, c.laneId, 'active');
  });

  it('after a worker delay', async () => {
    const c = await createClaimed(client);
    await delayExecution(client, { ...holderArgs(c), delayUntil: Date.now() + 60_000 });
    await expectCancelled(c.executionId, c.laneId, 'runnable');
    expect(await redis.hget(new ExecKeys(c.executionId).attemptHash(0), 'attempt_state')).toBe('ended_cancelled');
  });

  it('after a worker delay was promoted (eligible, interrupted attempt)', async () => {
    const c = await createClaimed(client);
    await delayExecution(client, { ...holderArgs(c), delayUntil: 1000 });
    await promoteDelayed(client, { executionId: c.executionId, laneId: c.laneId, nowMs: Date.now() });
    await expectCancelled(c.executionId, c.laneId, 'runnable');
  });

  it('waiting for children', async () => {
    const c = await createClaimed(client);
    await moveToWaitingChildren(client, holderArgs(c));
    await expectCancelled(c.executionId, c.laneId, 'runnable');
  });

  it('waiting for a retry', async () => {
    const c = await createClaimed(client);
    await failExecution(client, { ...holderArgs(c), retryPolicyJson: { max_retries: 3 } });
    await expectCancelled(c.executionId, c.laneId, 'runnable');
    // The failed attempt keeps its own end state.
    expect(await redis.hget(new ExecKeys(c.executionId).attemptHash(0), 'attempt_state')).toBe('ended_failure');
  });

  it('suspended (closing the suspension, waitpoint and condition)', async () => {
    const c = await createClaimed(client);
    const tag = new ExecKeys(c.executionId).tag;
    const waitpointId = await suspendClaimed(client, c, 60_000);
    const ctx = await readExecutionContext(client.transport, c.executionId);
    expect(ctx.currentWaitpointId).toBe(waitpointId);
    await expectCancelled(c.executionId, c.laneId, 'suspended');
    const index = new PartitionKeys(tag);
    expect(await redis.hgetall(new ExecKeys(c.executionId).suspensionCurrent())).toMatchObject({ close_reason: 'cancelled' });
    expect(await redis.hgetall(index.waitpoint(waitpointId))).toMatchObject({ state: 'closed', close_reason: 'cancelled' });
    expect(await redis.hgetall(index.waitpointCondition(waitpointId))).toMatchObject({ closed: '1', closed_reason: 'cancelled' });
    expect(await redis.zscore(index.suspensionTimeout(), c.executionId)).toBeNull();
    expect(await redis.hget(new ExecKeys(c.executionId).attemptHash(0), 'attempt_state')).toBe('ended_cancelled');
  });

  it('expired or completed executions cannot be cancelled', async () => {
    const c = await createWaiting(client);
    await expire(client, c.executionId);
    const error = await cancel(client, c.executionId).catch((e: unknown) => e);
    expect(isScriptError(error, 'execution_not_active') && error.details).toEqual(['expired', '0']);
  });
});

describe('claim order after a priority change', () => {
  const { client, redis } = useServer();

  it('claims by priority, then age, and follows a re-prioritised execution', async () => {
    const laneId = uniqueLane();
    const partition = 17;
    const a = await createWaiting(client, { laneId, priority: 1, executionId: newExecutionId(partition) });
    const b = await createWaiting(client, { laneId, priority: 5, executionId: newExecutionId(partition) });
    const cc = await createWaiting(client, { laneId, priority: 1, executionId: newExecutionId(partition) });
    await changePriority(client, { executionId: cc.executionId, laneId, newPriority: 9 });
    await changePriority(client, { executionId: b.executionId, laneId, newPriority: 0 });

    const eligible = PartitionKeys.forPartition(partition).laneEligible(laneId);
    const order: string[] = [];
    for (let i = 0; i < 3; i++) {
      // The scheduler's step: the head of the lane, granted, then claimed.
      const [head] = await redis.zrangebyscore(eligible, '-inf', '+inf', 'LIMIT', 0, 1);
      const executionId = head as typeof a.executionId;
      await issueClaimGrant(client, { executionId, laneId, workerId: 'w', workerInstanceId: 'w-1', grantTtlMs: 5000 });
      await claimExecution(client, { executionId, laneId, workerId: 'w', workerInstanceId: 'w-1', leaseId: newLeaseId(), attemptId: newAttemptId(), leaseTtlMs: 30_000 });
      order.push(executionId);
    }
    expect(order).toEqual([cc.executionId, a.executionId, b.executionId]);
    expect(await redis.zcard(eligible)).toBe(0);
  });
});
