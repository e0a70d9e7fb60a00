// A local three-primary cluster for one test file, reached through the transport the file
// tests, and the scenarios every cluster transport runs the same way.
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, expect } from 'vitest';
import { completeExecution } from '../../generated/execution.js';
import { LIBRARY_VERSION } from '../../generated/library.js';
import { issueClaimGrant } from '../../generated/scheduling.js';
import { claimResumed } from '../../operations/waitpoints.js';
import { FlowFabricClient } from '../../runtime/client.js';
import { executionTag, newLeaseId } from '../../runtime/ids.js';
import { clusterSlot } from '../../runtime/partition.js';
import { startCluster, type RunningCluster } from '../../tools/local-cluster.js';
import { newExecutionId } from './ids.js';
import { createClaimed } from './lifecycle.js';
import { createSuspended, deliver } from './suspension.js';

export interface ClusterConnection {
  readonly client: FlowFabricClient;
  close(): void;
}

/** Starts a cluster before the file's tests and stops it after; `client()` is valid inside tests. */
export function useLocalCluster<C extends ClusterConnection = IoredisClusterConnection>(
  connect: (cluster: RunningCluster) => Promise<C> = ioredisCluster as unknown as (cluster: RunningCluster) => Promise<C>,
): { client(): FlowFabricClient; connection(): C } {
  let cluster: RunningCluster | undefined;
  let connection: C | undefined;
  beforeAll(async () => {
    cluster = await startCluster();
    connection = await connect(cluster);
  }, 60_000);
  afterAll(async () => {
    connection?.close();
    await cluster?.stop();
  });
  return { client: () => connection!.client, connection: () => connection! };
}

export interface IoredisClusterConnection extends ClusterConnection {
  /** The raw connection, for reading keys. */
  readonly redis: Cluster;
}

/** The ioredis Cluster adapter over the cluster's seeds. */
export async function ioredisCluster(cluster: RunningCluster): Promise<IoredisClusterConnection> {
  const redis = new Cluster([...cluster.seeds], { redisOptions: { maxRetriesPerRequest: 1 } });
  return { redis, client: FlowFabricClient.fromIoredis(redis), close: () => redis.disconnect() };
}

/** Loads the library on the three primaries once; a second call loads nothing. */
export async function expectLibraryOnEveryPrimary(client: FlowFabricClient): Promise<void> {
  const statuses = await client.ensureLibrary();
  expect(statuses).toHaveLength(3);
  expect(statuses.every((s) => s.after === LIBRARY_VERSION)).toBe(true);
  expect((await client.ensureLibrary()).every((s) => !s.loaded)).toBe(true);
}

/** Partitions whose slots are spread over every primary. */
export const SPREAD_PARTITIONS = [0, 24, 77, 86, 131, 193, 255] as const;

/** Creates, claims and completes one execution on each spread partition (each its own slot). */
export async function expectRunsOnEveryPrimary(client: FlowFabricClient): Promise<void> {
  const slots = new Set<number>();
  for (const partition of SPREAD_PARTITIONS) {
    const executionId = newExecutionId(partition);
    slots.add(clusterSlot(executionTag(executionId)));
    const c = await createClaimed(client, { executionId });
    const done = await completeExecution(client, { executionId, laneId: c.laneId, workerInstanceId: c.workerInstanceId, ...c.lease });
    expect(done.status).toBe('OK');
  }
  expect(slots.size).toBe(SPREAD_PARTITIONS.length);
}

/** Suspends, signals, resumes (resumed claim) and completes an execution on partitions of every primary. */
export async function expectResumesOnEveryPrimary(client: FlowFabricClient): Promise<void> {
  for (const partition of [3, 90, 200]) {
    const s = await createSuspended(client, { timeoutMs: 60_000 }, partition);
    await expect(deliver(client, s, 'go')).resolves.toMatchObject({ effect: 'resume_condition_satisfied' });
    await issueClaimGrant(client, { executionId: s.executionId, laneId: s.laneId, workerId: s.workerId, workerInstanceId: s.workerInstanceId, grantTtlMs: 5000 });
    const claimed = await claimResumed(client, { executionId: s.executionId, laneId: s.laneId, workerId: s.workerId, workerInstanceId: s.workerInstanceId, leaseId: newLeaseId(), leaseTtlMs: 30_000 });
    const done = await completeExecution(client, { executionId: s.executionId, laneId: s.laneId, workerInstanceId: s.workerInstanceId, attemptIndex: claimed.attemptIndex, leaseId: claimed.leaseId, leaseEpoch: claimed.leaseEpoch, attemptId: claimed.attemptId });
    expect(done).toEqual({ status: 'OK', publicState: 'completed' });
  }
}
