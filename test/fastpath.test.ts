// The extension fast path: one call per job, leaving the same state the contract's
// grant → claim → complete sequence leaves.
import { describe, expect, it } from 'vitest';
import { buildCompleteAndClaimNext, claimNextEligible, completeAndClaimNext, type ClaimNextEligibleResult, type CompleteAndClaimNextResult } from '../generated/fastpath.js';
import { createExecution } from '../generated/execution.js';
import { ExecKeys, PartitionKeys } from '../generated/keys.js';
import { issueClaimGrant } from '../generated/scheduling.js';
import { executionPartition, newAttemptId, newLeaseId, type ExecutionId, type LaneId } from '../runtime/ids.js';
import { DEFAULT_PARTITION_CONFIG } from '../runtime/partition.js';
import { useServer } from './support/client.js';
import { newExecutionId, uniqueLane } from './support/ids.js';
import { checkExecutionInvariants } from './support/invariants.js';
import { createWaiting } from './support/lifecycle.js';
import { fcallPatched } from './support/raw.js';

const worker = { workerId: 'fast', workerInstanceId: 'fast-1', leaseTtlMs: 30_000 };

describe('fast path extensions', () => {
  const { client, redis } = useServer();

  async function lane(count: number, partition: number, priorities: number[] = []): Promise<{ laneId: LaneId; ids: ExecutionId[] }> {
    const laneId = uniqueLane('fast');
    const ids: ExecutionId[] = [];
    for (let i = 0; i < count; i++) ids.push((await createWaiting(client, { laneId, executionId: newExecutionId(partition), priority: priorities[i] ?? 0 })).executionId);
    return { laneId, ids };
  }

  const claimArgs = (laneId: LaneId, partition: number) => ({ ...worker, laneId, partition, leaseId: newLeaseId(), attemptId: newAttemptId() });

  it('claims the head of a lane without a grant, in claim order, then answers empty', async () => {
    const partition = 11;
    const { laneId, ids } = await lane(2, partition, [0, 5]);
    const first = await claimNextEligible(client, claimArgs(laneId, partition));
    expect(first).toMatchObject({ status: 'claimed', executionId: ids[1], leaseEpoch: 1, attemptIndex: 0, attemptType: 'initial' });
    const second = await claimNextEligible(client, claimArgs(laneId, partition));
    expect(second).toMatchObject({ status: 'claimed', executionId: ids[0] });
    await expect(claimNextEligible(client, claimArgs(laneId, partition))).resolves.toEqual({ status: 'empty' });
    for (const id of ids) expect(await checkExecutionInvariants(redis, id)).toEqual([]);
    const exec = new ExecKeys(ids[1]!);
    expect(await redis.hgetall(exec.core())).toMatchObject({ lifecycle_phase: 'active', ownership_state: 'leased', current_worker_id: 'fast' });
    expect(await redis.exists(exec.claimGrant())).toBe(0);
  });

  it('answers the claimed execution\'s input with withInput, in the claim and in the complete-and-claim-next', async () => {
    const partition = 12;
    const laneId = uniqueLane('fast');
    const a = newExecutionId(partition);
    await createExecution(client, { executionId: a, laneId, namespace: 'default', executionKind: 'mail', inputPayload: '{"to":"x"}', tagsJson: { team: 'core' } });
    // Without withInput the reply is what it always was.
    const plain = await claimNextEligible(client, claimArgs(laneId, partition));
    expect(plain).toMatchObject({ status: 'claimed', executionId: a });
    expect(plain).not.toHaveProperty('executionKind');
    expect(plain).not.toHaveProperty('payload');
    const other = uniqueLane('fast');
    const c = newExecutionId(partition);
    const d = newExecutionId(partition);
    await createExecution(client, { executionId: c, laneId: other, namespace: 'default', priority: 5, executionKind: 'mail', inputPayload: 'raw text', tagsJson: { k: 'v' } });
    // c first (higher priority): same-millisecond creations would otherwise tie and order by id.
    await createExecution(client, { executionId: d, laneId: other, namespace: 'default', executionKind: 'bare' });
    const first = await claimNextEligible(client, { ...claimArgs(other, partition), withInput: true });
    expect(first).toMatchObject({ status: 'claimed', executionId: c, executionKind: 'mail', payload: 'raw text', tagsJson: '{"k":"v"}' });
    expect(first).not.toHaveProperty('flowId');
    expect(first).not.toHaveProperty('policyJson');
    if (first.status !== 'claimed') throw new Error('not claimed');
    const next = await completeAndClaimNext(client, {
      executionId: c, laneId: other, workerInstanceId: worker.workerInstanceId, workerId: worker.workerId, leaseId: first.leaseId, leaseEpoch: first.leaseEpoch,
      attemptId: first.attemptId, attemptIndex: first.attemptIndex, nextLeaseId: newLeaseId(), nextAttemptId: newAttemptId(), leaseTtlMs: 30_000, withInput: true,
    });
    expect(next).toMatchObject({ status: 'claimed_next', nextExecutionId: d, executionKind: 'bare' });
    expect(next).not.toHaveProperty('payload');
    expect(next).not.toHaveProperty('tagsJson');
    const withPolicy = uniqueLane('fast');
    const e = newExecutionId(partition);
    await createExecution(client, { executionId: e, laneId: withPolicy, namespace: 'default', executionKind: 'p', policyJson: { retry_policy: { max_retries: 2 } } });
    const third = await claimNextEligible(client, { ...claimArgs(withPolicy, partition), withInput: true });
    expect(third.status === 'claimed' && JSON.parse(third.policyJson ?? 'null')).toMatchObject({ retry_policy: { max_retries: 2 } });
  });

  it('skips a head with another worker\'s grant, or requiring capabilities the worker lacks', async () => {
    const partition = 12;
    const laneId = uniqueLane('fast');
    const granted = await createWaiting(client, { laneId, executionId: newExecutionId(partition), priority: 9 });
    const needsGpu = await createWaiting(client, { laneId, executionId: newExecutionId(partition), priority: 8, policyJson: { routing_requirements: { required_capabilities: ['gpu'] } } });
    const plain = await createWaiting(client, { laneId, executionId: newExecutionId(partition), priority: 1 });
    await issueClaimGrant(client, { executionId: granted.executionId, laneId, workerId: 'other', workerInstanceId: 'other-1', grantTtlMs: 10_000 });
    const claimed = await claimNextEligible(client, claimArgs(laneId, partition));
    expect(claimed).toMatchObject({ status: 'claimed', executionId: plain.executionId });
    expect(await redis.hget(new ExecKeys(needsGpu.executionId).core(), 'last_capability_mismatch_at')).not.toBeNull();
    const withGpu = await claimNextEligible(client, { ...claimArgs(laneId, partition), workerCapabilitiesCsv: ['gpu'] });
    expect(withGpu).toMatchObject({ status: 'claimed', executionId: needsGpu.executionId });
  });

  it('runs a whole lane with one call per job, and the state matches the contract path', async () => {
    const partition = 13;
    const { laneId, ids } = await lane(5, partition);
    let claim: ClaimNextEligibleResult | CompleteAndClaimNextResult = await claimNextEligible(client, claimArgs(laneId, partition));
    const done: string[] = [];
    while (claim.status === 'claimed' || claim.status === 'claimed_next') {
      const current: ExecutionId = claim.status === 'claimed' ? claim.executionId : claim.nextExecutionId;
      done.push(current);
      claim = await completeAndClaimNext(client, {
        executionId: current, laneId, workerInstanceId: worker.workerInstanceId, workerId: worker.workerId,
        leaseId: claim.leaseId, leaseEpoch: claim.leaseEpoch, attemptId: claim.attemptId, attemptIndex: claim.attemptIndex,
        resultPayload: `done ${current}`, nextLeaseId: newLeaseId(), nextAttemptId: newAttemptId(), leaseTtlMs: 30_000,
      });
    }
    expect(claim).toEqual({ status: 'completed' });
    // Equal priorities created in the same millisecond tie on score; the set is what matters.
    expect([...done].sort()).toEqual([...ids].sort());
    const index = PartitionKeys.forPartition(partition);
    expect(await redis.zcard(index.laneTerminal(laneId))).toBe(5);
    expect(await redis.zcard(index.laneEligible(laneId))).toBe(0);
    for (const id of ids) {
      expect(await checkExecutionInvariants(redis, id)).toEqual([]);
      expect(await redis.hget(new ExecKeys(id).core(), 'public_state')).toBe('completed');
      const history = await redis.xrange(new ExecKeys(id).leaseHistory(), '-', '+');
      expect(history.map(([, f]) => f[1])).toEqual(['acquired', 'released']);
    }
  });

  it('claims nothing when the completion is refused, and validates the next claim before completing', async () => {
    const partition = 14;
    const { laneId, ids } = await lane(2, partition);
    const first = await claimNextEligible(client, claimArgs(laneId, partition));
    if (first.status !== 'claimed') throw new Error('expected a claim');
    const base = {
      executionId: first.executionId, laneId, workerInstanceId: worker.workerInstanceId, workerId: worker.workerId,
      leaseId: newLeaseId(), leaseEpoch: first.leaseEpoch, attemptId: first.attemptId, attemptIndex: 0,
      nextLeaseId: newLeaseId(), nextAttemptId: newAttemptId(), leaseTtlMs: 30_000,
    };
    await expect(completeAndClaimNext(client, base)).rejects.toMatchObject({ code: 'stale_lease' });
    const request = buildCompleteAndClaimNext({ ...base, leaseId: first.leaseId }, DEFAULT_PARTITION_CONFIG);
    await expect(fcallPatched(redis, request, { 10: 'soon' })).resolves.toEqual([0, 'invalid_input', expect.any(String)]);
    expect(await redis.hget(new ExecKeys(first.executionId).core(), 'lifecycle_phase')).toBe('active');
    const other = ids.find((id) => id !== first.executionId)!;
    expect(await redis.hget(new ExecKeys(other).core(), 'lifecycle_phase')).toBe('runnable');
    expect(executionPartition(first.executionId)).toBe(partition);
  });
});
