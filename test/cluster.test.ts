// The engine on a real three-primary cluster through the ioredis Cluster adapter: the
// library is loaded on every primary, and executions on partitions spread over all slots
// run their life without a single CROSSSLOT or MOVED error.
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { completeExecution } from '../generated/execution.js';
import { LIBRARY_VERSION } from '../generated/library.js';
import { FlowFabricClient } from '../runtime/client.js';
import { executionTag } from '../runtime/ids.js';
import { clusterSlot } from '../runtime/partition.js';
import { startCluster, type RunningCluster } from '../tools/local-cluster.js';
import { issueClaimGrant } from '../generated/scheduling.js';
import { newLeaseId } from '../runtime/ids.js';
import { claimResumed } from '../operations/waitpoints.js';
import { newExecutionId } from './support/ids.js';
import { createClaimed } from './support/lifecycle.js';
import { createSuspended, deliver } from './support/suspension.js';

let cluster: RunningCluster;
let connection: Cluster;
let client: FlowFabricClient;

beforeAll(async () => {
  cluster = await startCluster();
  connection = new Cluster([...cluster.seeds], { redisOptions: { maxRetriesPerRequest: 1 } });
  client = FlowFabricClient.fromIoredis(connection);
}, 60_000);

afterAll(async () => {
  connection?.disconnect();
  await cluster?.stop();
});

describe('on a three-primary cluster', () => {
  it('loads the library on every primary', async () => {
    const statuses = await client.ensureLibrary();
    expect(statuses).toHaveLength(3);
    expect(statuses.every((s) => s.after === LIBRARY_VERSION)).toBe(true);
    expect((await client.ensureLibrary()).every((s) => !s.loaded)).toBe(true);
  });

  it('runs executions on partitions owned by every primary', async () => {
    const partitions = [0, 24, 77, 86, 131, 193, 255];
    const slots = new Set<number>();
    for (const partition of partitions) {
      const executionId = newExecutionId(partition);
      slots.add(clusterSlot(executionTag(executionId)));
      const c = await createClaimed(client, { executionId });
      const done = await completeExecution(client, { executionId, laneId: c.laneId, workerInstanceId: c.workerInstanceId, ...c.lease });
      expect(done.status).toBe('OK');
    }
    expect(slots.size).toBe(partitions.length);
  });

  it('suspends, signals, resumes and completes on partitions owned by every primary', async () => {
    for (const partition of [3, 90, 200]) {
      const s = await createSuspended(client, { timeoutMs: 60_000 }, partition);
      await expect(deliver(client, s, 'go')).resolves.toMatchObject({ effect: 'resume_condition_satisfied' });
      await issueClaimGrant(client, { executionId: s.executionId, laneId: s.laneId, workerId: s.workerId, workerInstanceId: s.workerInstanceId, grantTtlMs: 5000 });
      const claimed = await claimResumed(client, { executionId: s.executionId, laneId: s.laneId, workerId: s.workerId, workerInstanceId: s.workerInstanceId, leaseId: newLeaseId(), leaseTtlMs: 30_000 });
      const done = await completeExecution(client, { executionId: s.executionId, laneId: s.laneId, workerInstanceId: s.workerInstanceId, attemptIndex: claimed.attemptIndex, leaseId: claimed.leaseId, leaseEpoch: claimed.leaseEpoch, attemptId: claimed.attemptId });
      expect(done).toEqual({ status: 'OK', publicState: 'completed' });
    }
  });
});
