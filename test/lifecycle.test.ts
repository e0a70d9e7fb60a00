// The main path through the engine, end to end through the generated wrappers.
import { describe, expect, it } from 'vitest';
import { claimExecution, completeExecution } from '../generated/execution.js';
import { ExecKeys, PartitionKeys } from '../generated/keys.js';
import { issueClaimGrant } from '../generated/scheduling.js';
import { isScriptError } from '../runtime/errors.js';
import { newAttemptId, newLeaseId } from '../runtime/ids.js';
import { useServer } from './support/client.js';
import { createClaimed, createWaiting } from './support/lifecycle.js';

describe('create → grant → claim → complete', () => {
  const { client, redis } = useServer();

  it('runs one execution to completion and leaves consistent indexes', async () => {
    const c = await createClaimed(client, { priority: 1 }, { workerId: 'w1', workerInstanceId: 'w1-a' });
    expect(c.claim).toMatchObject({ status: 'OK', leaseEpoch: 1, attemptIndex: 0, attemptType: 'initial' });
    const exec = new ExecKeys(c.executionId);
    const index = new PartitionKeys(exec.tag);
    expect(await redis.hgetall(exec.core())).toMatchObject({ lifecycle_phase: 'active', ownership_state: 'leased', public_state: 'active', current_lease_epoch: '1', total_attempt_count: '1' });
    expect(await redis.zscore(index.laneEligible(c.laneId), c.executionId)).toBeNull();
    expect(Number(await redis.zscore(index.leaseExpiry(), c.executionId))).toBe(c.claim.leaseExpiresAt);
    expect(await redis.sismember(index.workerLeases('w1-a'), c.executionId)).toBe(1);
    expect(await redis.hget(exec.attemptHash(0), 'attempt_state')).toBe('started');

    const done = await completeExecution(client, { executionId: c.executionId, laneId: c.laneId, workerInstanceId: 'w1-a', resultPayload: 'out', ...c.lease });
    expect(done).toEqual({ status: 'OK', publicState: 'completed' });
    expect(await redis.hgetall(exec.core())).toMatchObject({ lifecycle_phase: 'terminal', terminal_outcome: 'success', public_state: 'completed', current_lease_id: '' });
    expect(await redis.get(exec.result())).toBe('out');
    expect(await redis.exists(exec.leaseCurrent())).toBe(0);
    expect(await redis.zscore(index.leaseExpiry(), c.executionId)).toBeNull();
    expect(await redis.zscore(index.laneActive(c.laneId), c.executionId)).toBeNull();
    expect(await redis.zscore(index.laneTerminal(c.laneId), c.executionId)).not.toBeNull();
    expect(await redis.sismember(index.workerLeases('w1-a'), c.executionId)).toBe(0);
    const history = await redis.xrange(exec.leaseHistory(), '-', '+');
    expect(history.map(([, fields]) => fields[1])).toEqual(['acquired', 'released']);

    const again = await completeExecution(client, { executionId: c.executionId, laneId: c.laneId, workerInstanceId: 'w1-a', ...c.lease }).catch((e: unknown) => e);
    expect(isScriptError(again, 'execution_not_active') && again.details).toEqual(['success', '1']);
  });

  it('rejects a claim without a grant, or by another worker', async () => {
    const c = await createWaiting(client);
    const base = { executionId: c.executionId, laneId: c.laneId, workerId: 'w1', workerInstanceId: 'w1-a', leaseId: newLeaseId(), attemptId: newAttemptId(), leaseTtlMs: 1000 };
    await expect(claimExecution(client, base)).rejects.toMatchObject({ code: 'invalid_claim_grant' });
    await issueClaimGrant(client, { executionId: c.executionId, laneId: c.laneId, workerId: 'w2', workerInstanceId: 'w2-a', grantTtlMs: 5000 });
    await expect(claimExecution(client, base)).rejects.toMatchObject({ code: 'invalid_claim_grant' });
    await expect(issueClaimGrant(client, { executionId: c.executionId, laneId: c.laneId, workerId: 'w1', workerInstanceId: 'w1-a', grantTtlMs: 5000 })).rejects.toMatchObject({ code: 'grant_already_exists' });
  });

  it('refuses a grant to a worker without the required capabilities', async () => {
    const c = await createWaiting(client, { policyJson: { routing_requirements: { required_capabilities: ['gpu', 'cuda'] } } });
    const grant = { executionId: c.executionId, laneId: c.laneId, workerId: 'w', workerInstanceId: 'w-1', grantTtlMs: 5000 };
    await expect(issueClaimGrant(client, { ...grant, workerCapabilitiesCsv: ['gpu'] })).rejects.toMatchObject({ code: 'capability_mismatch', detail: 'cuda' });
    await expect(issueClaimGrant(client, { ...grant, workerCapabilitiesCsv: ['gpu', 'cuda', 'x'] })).resolves.toEqual({ status: 'OK', executionId: c.executionId });
  });

  it('claims in priority order, then oldest first', async () => {
    const { uniqueLane } = await import('./support/ids.js');
    const laneId = uniqueLane();
    const partition = 42;
    const { newExecutionId } = await import('./support/ids.js');
    const low = await createWaiting(client, { laneId, priority: 0, executionId: newExecutionId(partition) });
    const high = await createWaiting(client, { laneId, priority: 9, executionId: newExecutionId(partition) });
    const mid = await createWaiting(client, { laneId, priority: 3, executionId: newExecutionId(partition) });
    const index = PartitionKeys.forPartition(partition);
    expect(await redis.zrange(index.laneEligible(laneId), 0, '-1')).toEqual([high.executionId, mid.executionId, low.executionId]);
  });
});
