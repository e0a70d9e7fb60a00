// The producer side (operations/executions.ts) and the waitpoint-secret bootstrap, against a
// real server: what submitExecution stores, what getExecution reads back, waiting for an
// outcome, signalling a suspended execution by id.
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { claimExecution, completeExecution } from '../generated/execution.js';
import { createFlow } from '../generated/flow.js';
import { ExecKeys, PartitionKeys } from '../generated/keys.js';
import { issueClaimGrant } from '../generated/scheduling.js';
import { suspendExecution } from '../generated/suspension.js';
import { FlowFabricClient } from '../runtime/client.js';
import { newAttemptId, newFlowId, newLeaseId, newSuspensionId, newWaitpointId, executionPartition, type ExecutionId, type LaneId } from '../runtime/ids.js';
import { soloPartition } from '../runtime/partition.js';
import { cancelExecutionById, getExecution, OutcomeTimeoutError, retryPolicyJson, signalExecution, submitExecution, waitForOutcome } from '../operations/executions.js';
import { ensureWaitpointSecrets, WaitpointSecretMissingError } from '../operations/waitpoints.js';
import { startServer } from '../tools/local-server.js';
import { useServer } from './support/client.js';
import { uniqueLane } from './support/ids.js';

async function claimAs(client: FlowFabricClient, executionId: ExecutionId, laneId: LaneId, workerInstanceId = 'p-1') {
  await issueClaimGrant(client, { executionId, laneId, workerId: 'p', workerInstanceId, grantTtlMs: 5000 });
  const claim = await claimExecution(client, { executionId, laneId, workerId: 'p', workerInstanceId, leaseId: newLeaseId(), attemptId: newAttemptId(), leaseTtlMs: 30_000 });
  return { leaseId: claim.leaseId, leaseEpoch: claim.leaseEpoch, attemptId: claim.attemptId, attemptIndex: claim.attemptIndex };
}

describe('submitExecution / getExecution', () => {
  const { client, redis } = useServer();

  it('stores the typed options as the engine reads them and reads them back', async () => {
    const lane = uniqueLane();
    const { executionId, duplicate, publicState } = await submitExecution(client, {
      lane,
      kind: 'resize',
      input: { width: 10 },
      priority: 5,
      retry: { maxRetries: 2, backoff: { type: 'fixed', delayMs: 100 } },
      tags: { team: 'media' },
      requiredCapabilities: ['gpu', 'cuda', 'gpu'],
      idempotencyKey: `k-${lane}`,
    });
    expect({ duplicate, publicState }).toEqual({ duplicate: false, publicState: 'waiting' });
    expect(executionPartition(executionId)).toBe(soloPartition(lane, client.partitions));
    const keys = new ExecKeys(executionId);
    expect(JSON.parse((await redis.get(keys.policy()))!)).toEqual({
      retry_policy: { max_retries: 2, backoff: { type: 'fixed', delay_ms: 100 } },
      routing_requirements: { required_capabilities: ['cuda', 'gpu'] },
    });
    expect(await redis.get(keys.payload())).toBe('{"width":10}');

    const view = await getExecution(client, executionId);
    expect(view).toMatchObject({
      executionId, laneId: lane, kind: 'resize', priority: 5, publicState: 'waiting', attempts: 0,
      tags: { team: 'media' }, requiredCapabilities: ['cuda', 'gpu'],
      state: { lifecyclePhase: 'runnable', eligibilityState: 'eligible_now', attemptState: 'pending_first_attempt', terminalOutcome: 'none' },
    });
    expect(view?.attemptIndex).toBeUndefined();
    expect(view?.result).toBeUndefined();

    const again = await submitExecution(client, { lane, kind: 'resize', idempotencyKey: `k-${lane}` });
    expect(again).toEqual({ executionId, duplicate: true, publicState: undefined });
  });

  it('delays, reads a completed result, and answers undefined for an unknown id', async () => {
    const lane = uniqueLane();
    const delayed = await submitExecution(client, { lane, kind: 'k', delayMs: 60_000 });
    expect(delayed.publicState).toBe('delayed');
    expect((await getExecution(client, delayed.executionId))?.delayUntil).toBeGreaterThan(Date.now());

    const { executionId } = await submitExecution(client, { lane, kind: 'k', payload: 'raw' });
    const lease = await claimAs(client, executionId, lane);
    expect((await getExecution(client, executionId))).toMatchObject({ publicState: 'active', attemptIndex: 0, attempts: 1, workerInstanceId: 'p-1' });
    await completeExecution(client, { executionId, laneId: lane, workerInstanceId: 'p-1', ...lease, resultPayload: '{"ok":true}' });
    const done = await waitForOutcome(client, executionId, { timeoutMs: 1000 });
    expect(done).toMatchObject({ publicState: 'completed', result: '{"ok":true}', resultJson: { ok: true } });
    expect(done.completedAt).toBeGreaterThan(0);

    const other = `${new PartitionKeys(new ExecKeys(executionId).tag).tag}:00000000-0000-4000-8000-000000000000` as ExecutionId;
    expect(await getExecution(client, other)).toBeUndefined();
  });

  it('waitForOutcome times out with the last state; cancelExecutionById ends a waiting execution', async () => {
    const { executionId } = await submitExecution(client, { lane: uniqueLane(), kind: 'k' });
    const error = await waitForOutcome(client, executionId, { timeoutMs: 60 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OutcomeTimeoutError);
    expect((error as OutcomeTimeoutError).last?.publicState).toBe('waiting');
    expect(await cancelExecutionById(client, executionId, 'no longer needed')).toMatchObject({ status: 'cancelled', cancelledFrom: 'runnable' });
    expect(await waitForOutcome(client, executionId, { timeoutMs: 1000 })).toMatchObject({ publicState: 'cancelled', cancellationReason: 'no longer needed' });
  });

  it('puts a flow member on its flow partition and records the membership', async () => {
    const flowId = newFlowId();
    await createFlow(client, { flowId, flowKind: 'pipeline', namespace: 'test' });
    const { executionId } = await submitExecution(client, { lane: uniqueLane(), kind: 'step', flowId });
    expect((await getExecution(client, executionId))?.flowId).toBe(flowId);
  });

  it('refuses bad options before sending anything', async () => {
    await expect(submitExecution(client, { lane: 'l', kind: 'k', input: 1, payload: 'x' })).rejects.toThrow(/not both/);
    expect(() => retryPolicyJson({ maxRetries: -1 })).toThrow(/maxRetries/);
  });

  it('signals a suspended execution by id, reading its waitpoint and token', async () => {
    await ensureWaitpointSecrets(client);
    const lane = uniqueLane();
    const { executionId } = await submitExecution(client, { lane, kind: 'k' });
    const lease = await claimAs(client, executionId, lane);
    const waitpointId = newWaitpointId();
    await suspendExecution(client, {
      executionId, laneId: lane, workerInstanceId: 'p-1', ...lease, suspensionId: newSuspensionId(), waitpointId, waitpointKey: `wpk:${waitpointId}`,
      resumeConditionJson: { condition_type: 'signal_set', required_signal_names: ['approve'], signal_match_mode: 'any', minimum_signal_count: 1 },
    });
    expect((await getExecution(client, executionId))?.publicState).toBe('suspended');
    const delivered = await signalExecution(client, executionId, { name: 'approve', data: { by: 'ann' } });
    expect(delivered).toMatchObject({ status: 'OK', effect: 'resume_condition_satisfied' });
    expect((await getExecution(client, executionId))?.state.attemptState).toBe('attempt_interrupted');
    await expect(signalExecution(client, executionId, { name: 'approve' })).rejects.toThrow(/no open waitpoint/);
  });
});

describe('ensureWaitpointSecrets on a fresh server', () => {
  it('installs a key ring on every partition once, then leaves them alone; without it suspension names the fix', async () => {
    const server = await startServer();
    const redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
    try {
      const client = FlowFabricClient.fromIoredis(redis, { partitions: { numFlowPartitions: 8, numBudgetPartitions: 2, numQuotaPartitions: 2 } });
      await client.ensureLibrary();
      const lane = uniqueLane();
      const { executionId } = await submitExecution(client, { lane, kind: 'k' });
      const lease = await claimAs(client, executionId, lane);
      const waitpointId = newWaitpointId();
      const suspend = () =>
        suspendExecution(client, {
          executionId, laneId: lane, workerInstanceId: 'p-1', ...lease, suspensionId: newSuspensionId(), waitpointId, waitpointKey: `wpk:${waitpointId}`,
          resumeConditionJson: { required_signal_names: ['go'] },
        });
      await expect(suspend()).rejects.toMatchObject({ code: 'hmac_secret_not_initialized' });
      const explained = await suspend().catch(async (e: unknown) => {
        const { explainWaitpointError } = await import('../operations/waitpoints.js');
        try {
          explainWaitpointError(e, executionPartition(executionId));
        } catch (wrapped) {
          return wrapped;
        }
      });
      expect(explained).toBeInstanceOf(WaitpointSecretMissingError);
      expect(String((explained as Error).message)).toMatch(/ensureWaitpointSecrets\(client\)/);

      const first = await ensureWaitpointSecrets(client);
      expect(first).toEqual({ installed: [0, 1, 2, 3, 4, 5, 6, 7], repaired: [], present: 0 });
      const ring = await redis.hgetall(PartitionKeys.forPartition(3).waitpointHmacSecrets());
      expect(ring.current_kid).toBe('k1');
      const second = await ensureWaitpointSecrets(client);
      expect(second).toEqual({ installed: [], repaired: [], present: 8 });
      expect(await redis.hgetall(PartitionKeys.forPartition(3).waitpointHmacSecrets())).toEqual(ring);
      await expect(suspend()).resolves.toMatchObject({ status: 'OK' });
    } finally {
      redis.disconnect();
      await server.stop();
    }
  });
});
