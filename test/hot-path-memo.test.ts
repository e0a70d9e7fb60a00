// The Lua library remembers what repeats between calls (lua/helpers.lua: parsed ARGV number
// texts, hash tags, the seconds of timestamps as text). What is remembered must never let a
// foreign key through, and past their bound of 1024 entries the memos start again without
// changing any answer.
import { describe, expect, it } from 'vitest';
import { buildClaimExecution, buildCompleteExecution, buildCreateExecution, completeExecution, parseClaimExecution, parseCreateExecution } from '../generated/execution.js';
import { PartitionKeys } from '../generated/keys.js';
import { buildIssueClaimGrant, parseIssueClaimGrant } from '../generated/scheduling.js';
import { call, type Call } from '../runtime/client.js';
import { newAttemptId, newLeaseId, type ExecutionId, type LaneId } from '../runtime/ids.js';
import { useServer } from './support/client.js';
import { core } from './support/exec-ops.js';
import { newExecutionId, uniqueLane } from './support/ids.js';
import { createClaimed } from './support/lifecycle.js';
import { fcallPatched } from './support/raw.js';

const { redis, client } = useServer();

/** Runs the calls in one batch and returns their values; any failure fails the test. */
async function all<T>(calls: readonly Call<T>[]): Promise<T[]> {
  const settled = await client.batch(calls);
  return settled.map((s) => {
    if (!s.ok) throw s.error;
    return s.value as T;
  });
}

describe('hot-path memos', () => {
  it('refuses the lane and worker keys of another partition after they were used there', async () => {
    const laneId = uniqueLane('memo');
    const first = await createClaimed(client, { laneId, executionId: newExecutionId(3) });
    // The first completes with the lane's terminal and active keys and the worker's lease set on partition 3.
    await completeExecution(client, { executionId: first.executionId, laneId, workerInstanceId: first.workerInstanceId, ...first.lease });
    const second = await createClaimed(client, { laneId, executionId: newExecutionId(4) });
    const request = buildCompleteExecution({ executionId: second.executionId, laneId, workerInstanceId: second.workerInstanceId, ...second.lease }, client.partitions);
    const onThree = PartitionKeys.forPartition(3);
    for (const [slot, key, name] of [[3, onThree.workerLeases(second.workerInstanceId), 'worker_leases'], [4, onThree.laneTerminal(laneId), 'terminal'], [7, onThree.laneActive(laneId), 'active']] as const) {
      const keys = [...request.keys];
      keys[slot] = key;
      await expect(fcallPatched(redis, request, {}, keys)).resolves.toEqual([0, 'invalid_input', `KEYS[${slot + 1}] (${name}) must be ${request.keys[slot]}, got: ${key}`]);
    }
    expect((await core(redis, second.executionId)).lifecycle_phase).toBe('active');
  });

  it('answers the same past the memo bounds (1100 lease TTLs, lanes and worker instances)', async () => {
    const count = 1100;
    const p = client.partitions;
    const run = uniqueLane('bound');
    const items = Array.from({ length: count }, (_, i) => ({
      executionId: newExecutionId(i % 256) as ExecutionId,
      laneId: `${run}-${i}` as LaneId,
      workerInstanceId: `memo-worker-${run}-${i}`,
      leaseTtlMs: 60_000 + i,
    }));
    await all(items.map((it) => call(buildCreateExecution({ executionId: it.executionId, laneId: it.laneId, namespace: 'test', executionKind: 'test' }, p), parseCreateExecution)));
    await all(items.map((it) => call(buildIssueClaimGrant({ executionId: it.executionId, laneId: it.laneId, workerId: 'memo-worker', workerInstanceId: it.workerInstanceId, grantTtlMs: 60_000 }, p), parseIssueClaimGrant)));
    const claims = await all(
      items.map((it) =>
        call(
          buildClaimExecution({ executionId: it.executionId, laneId: it.laneId, workerId: 'memo-worker', workerInstanceId: it.workerInstanceId, leaseId: newLeaseId(), attemptId: newAttemptId(), leaseTtlMs: it.leaseTtlMs }, p),
          parseClaimExecution,
        ),
      ),
    );
    for (const i of [0, 1, 511, 1023, 1024, 1025, count - 1]) {
      const it = items[i]!;
      const record = await core(redis, it.executionId);
      expect(record.lane_id).toBe(it.laneId);
      expect(record.partition_id).toBe(String(i % 256));
      expect(Number(record.lease_expires_at) - Number(record.lease_acquired_at)).toBe(it.leaseTtlMs);
      expect(record.lease_expires_at).toBe(String(claims[i]!.leaseExpiresAt));
      expect(await redis.zscore(PartitionKeys.forPartition(i % 256).laneActive(it.laneId), it.executionId)).toBe(record.lease_expires_at);
      expect(await redis.sismember(PartitionKeys.forPartition(i % 256).workerLeases(it.workerInstanceId), it.executionId)).toBe(1);
    }
  });
});
