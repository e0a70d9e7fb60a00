import { describe, expect, it } from 'vitest';
import { completeExecution } from '../generated/execution.js';
import { ExecKeys, PartitionKeys } from '../generated/keys.js';
import { markLeaseExpiredIfDue, renewLease, revokeLease } from '../generated/lease.js';
import { useServer } from './support/client.js';
import { newExecutionId } from './support/ids.js';
import { checkExecutionInvariants, checkSnapshot, derivePublicState, readExecutionSnapshot } from './support/invariants.js';
import { createClaimed, createWaiting, type Claimed } from './support/lifecycle.js';
import { sleep } from './support/raw.js';

/** The rule names of a violation list. */
function rules(violations: readonly string[]): string[] {
  return [...new Set(violations.map((v) => v.slice(0, v.indexOf(':'))))].sort();
}

describe('checkExecutionInvariants on real states', () => {
  const { client, redis } = useServer();

  function complete(c: Claimed) {
    return completeExecution(client, { executionId: c.executionId, laneId: c.laneId, workerInstanceId: c.workerInstanceId, ...c.lease });
  }

  it('passes for waiting, delayed, active, renewed and completed executions', async () => {
    const waiting = await createWaiting(client);
    const delayed = await createWaiting(client, { delayUntil: Date.now() + 60_000 });
    const active = await createClaimed(client);
    const renewed = await createClaimed(client);
    await renewLease(client, { executionId: renewed.executionId, ...renewed.lease, leaseTtlMs: 60_000 });
    const completed = await createClaimed(client);
    await complete(completed);
    for (const executionId of [waiting.executionId, delayed.executionId, active.executionId, renewed.executionId, completed.executionId]) {
      expect(await checkExecutionInvariants(redis, executionId), executionId).toEqual([]);
    }
  });

  it('passes for an expired lease (marked or not yet) and a revoked one', async () => {
    const expired = await createClaimed(client, {}, { leaseTtlMs: 50 });
    const unmarked = await createClaimed(client, {}, { leaseTtlMs: 50 });
    const revoked = await createClaimed(client);
    await sleep(80);
    await markLeaseExpiredIfDue(client, { executionId: expired.executionId });
    await revokeLease(client, { executionId: revoked.executionId, workerInstanceId: revoked.workerInstanceId });
    for (const c of [expired, unmarked, revoked]) {
      expect(await checkExecutionInvariants(redis, c.executionId), c.executionId).toEqual([]);
    }
  });

  it('reports a missing execution', async () => {
    expect(await checkExecutionInvariants(redis, newExecutionId())).toEqual(['core-exists: exec_core is missing']);
  });

  it('catches an extra lane index entry', async () => {
    const c = await createClaimed(client);
    const index = new PartitionKeys(new ExecKeys(c.executionId).tag);
    await redis.zadd(index.laneEligible(c.laneId), 1, c.executionId);
    const violations = await checkExecutionInvariants(redis, c.executionId);
    expect(violations).toEqual([`one-lane-index: active/not_applicable belongs in active, found in eligible, active`]);
  });

  it('catches a missing lane index entry and a wrong public_state', async () => {
    const c = await createWaiting(client);
    const exec = new ExecKeys(c.executionId);
    await redis.zrem(new PartitionKeys(exec.tag).laneEligible(c.laneId), c.executionId);
    await redis.hset(exec.core(), 'public_state', 'delayed');
    expect(rules(await checkExecutionInvariants(redis, c.executionId))).toEqual(['one-lane-index', 'public-state-derived']);
  });

  it('catches lease bookkeeping out of step with a live lease', async () => {
    const c = await createClaimed(client);
    const exec = new ExecKeys(c.executionId);
    const index = new PartitionKeys(exec.tag);
    await redis.zadd(index.leaseExpiry(), 1, c.executionId);
    await redis.srem(index.workerLeases(c.workerInstanceId), c.executionId);
    await redis.hset(exec.leaseCurrent(), 'lease_epoch', '9');
    await redis.hset(exec.attemptHash(0), 'attempt_state', 'suspended');
    expect(rules(await checkExecutionInvariants(redis, c.executionId))).toEqual(['lease-current', 'lease-expiry-index', 'leased-attempt-running', 'worker-leases']);
  });

  it('catches leftovers of a completed execution', async () => {
    const c = await createClaimed(client);
    await complete(c);
    const exec = new ExecKeys(c.executionId);
    const index = new PartitionKeys(exec.tag);
    await redis.zadd(index.leaseExpiry(), 1, c.executionId);
    await redis.sadd(index.workerLeases(c.workerInstanceId), c.executionId);
    await redis.hset(exec.leaseCurrent(), 'lease_id', c.lease.leaseId, 'lease_epoch', '1');
    await redis.hset(exec.attemptHash(0), 'attempt_state', 'started');
    expect(rules(await checkExecutionInvariants(redis, c.executionId))).toEqual(['lease-current', 'lease-expiry-index', 'started-attempts', 'worker-leases']);
  });

  it('catches a missing attempt and an inconsistent state vector', async () => {
    const c = await createClaimed(client);
    const exec = new ExecKeys(c.executionId);
    await redis.hset(exec.core(), 'total_attempt_count', '2', 'terminal_outcome', 'success', 'blocking_reason', 'bogus');
    expect(rules(await checkExecutionInvariants(redis, c.executionId))).toEqual(['attempt-count', 'outcome-iff-terminal', 'state-values']);
  });

  it('reads a snapshot that the rules can be run on again', async () => {
    const c = await createClaimed(client);
    const snapshot = await readExecutionSnapshot(redis, c.executionId);
    expect(snapshot).toMatchObject({ holder: c.workerInstanceId, inHolderSet: true, laneIndexes: { active: c.claim.leaseExpiresAt }, leaseExpiryScore: c.claim.leaseExpiresAt });
    expect(checkSnapshot({ ...snapshot, core: { ...snapshot.core, ownership_state: 'unowned' } }).map((v) => v.split(':')[0])).toEqual(
      expect.arrayContaining(['owned-iff-active', 'lease-current', 'worker-leases', 'lease-expiry-index']),
    );
  });
});

describe('derivePublicState', () => {
  it.each([
    [{ lifecycle_phase: 'terminal', terminal_outcome: 'success' }, 'completed'],
    [{ lifecycle_phase: 'terminal', terminal_outcome: 'none' }, 'failed'],
    [{ lifecycle_phase: 'suspended' }, 'suspended'],
    [{ lifecycle_phase: 'active', ownership_state: 'lease_revoked' }, 'active'],
    [{ lifecycle_phase: 'runnable', eligibility_state: 'eligible_now' }, 'waiting'],
    [{ lifecycle_phase: 'runnable', eligibility_state: 'not_eligible_until_time' }, 'delayed'],
    [{ lifecycle_phase: 'runnable', eligibility_state: 'blocked_by_dependencies' }, 'waiting_children'],
    [{ lifecycle_phase: 'runnable', eligibility_state: 'blocked_by_quota' }, 'rate_limited'],
    [{ lifecycle_phase: 'runnable', eligibility_state: 'blocked_by_route' }, 'waiting'],
    [{ lifecycle_phase: 'submitted' }, 'waiting'],
  ])('%j derives %s', (core, expected) => {
    expect(derivePublicState(core)).toBe(expected);
  });
});
