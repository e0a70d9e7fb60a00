// Where a Worker with the default `partitions` looks (worker/lane-partitions.ts, issue 16):
// only the partitions holding its lanes' unfinished work, found at start, named by wake-ups
// and claims, re-checked slowly; yet nothing is lost — work that lands on a partition it had
// not discovered is still claimed (wake-up, or the probe of every partition without one), and
// work present at start on any partition is found and moved on by its sweep.
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { claimExecution, createExecution } from '../generated/execution.js';
import { issueClaimGrant } from '../generated/scheduling.js';
import { newAttemptId, newLeaseId } from '../runtime/ids.js';
import { createFlowFor, cancelExecutionById, submitExecution } from '../operations/executions.js';
import { FlowFabricClient } from '../runtime/client.js';
import { soloPartition } from '../runtime/partition.js';
import { startServer } from '../tools/local-server.js';
import { LanePartitions } from '../worker/lane-partitions.js';
import { ioredisWakeSource, Worker, type WorkerOptions } from '../worker/index.js';
import { useServer } from './support/client.js';
import { flowIdOn, newExecutionId, uniqueLane } from './support/ids.js';

describe('a default Worker looks only where its lanes live', () => {
  const { client, redis } = useServer();
  const open: Worker[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((w) => w.close({ timeoutMs: 1000 })));
  });

  function worker(options: Omit<WorkerOptions, 'client' | 'handler'>): Worker {
    const w = new Worker({ client, handler: () => 'done', installWaitpointSecrets: false, wakeUp: ioredisWakeSource(redis), ...options });
    open.push(w);
    return w;
  }

  async function create(lane: ReturnType<typeof uniqueLane>, partition: number, delayUntil?: number) {
    const executionId = newExecutionId(partition);
    await createExecution(client, { executionId, laneId: lane, namespace: 'default', executionKind: 'k', ...(delayUntil !== undefined ? { delayUntil } : {}) });
    return executionId;
  }

  /** A partition that is not the lane's crc16 one (the re-check looks there every step). */
  const away = (lane: ReturnType<typeof uniqueLane>, wanted: number) => (wanted === soloPartition(lane, client.partitions) ? wanted + 1 : wanted);

  it('discovery finds the partitions holding unfinished work of each lane, not finished work or other lanes', async () => {
    const a = uniqueLane();
    const b = uniqueLane();
    const [pa, pd, pt, pb] = [away(a, 17), away(a, 42), away(a, 120), away(b, 99)];
    await create(a, pa);
    await create(a, pd, Date.now() + 60_000);
    await cancelExecutionById(client, await create(a, pt)); // terminal only: nothing to do there
    await create(b, pb);
    const where = new LanePartitions(client, { lanes: [a, b], workerInstanceId: 'w-1', onError: (error) => expect.fail(String(error)) });
    expect(where.of(a)).toEqual([]);
    expect(where.sweepTargets()).toEqual([]);
    await where.discover();
    expect([...where.of(a)].sort((x, y) => x - y)).toEqual([pa, pd].sort((x, y) => x - y));
    expect(where.of(b)).toEqual([pb]);
    const targets = Object.fromEntries(where.sweepTargets().map((t) => [t.partition, t.lanes]));
    expect(targets).toEqual({ [pa]: [a], [pd]: [a], [pb]: [b] });
  });

  it('a re-check drops a partition whose work finished, but keeps one a wake-up named while it read', async () => {
    const lane = uniqueLane();
    const [p1, p2, named] = [away(lane, 30), away(lane, 31), away(lane, 200)];
    const first = await create(lane, p1);
    await create(lane, p2);
    const where = new LanePartitions(client, { lanes: [lane], workerInstanceId: 'w-2', onError: (error) => expect.fail(String(error)) });
    await where.discover();
    expect(new Set(where.of(lane))).toEqual(new Set([p1, p2]));
    await cancelExecutionById(client, first);
    const reading = where.discover();
    expect(where.learn(lane, named)).toBe(true); // after the read was sent: nothing there yet
    await reading;
    expect(new Set(where.of(lane))).toEqual(new Set([p2, named]));
    await where.discover(); // a later read that finds nothing there drops it
    expect(where.of(lane)).toEqual([p2]);
  });

  it('each re-check step looks at the lanes\' own crc16 partitions, where a delayed create (no wake-up) lands', async () => {
    const lane = uniqueLane();
    const where = new LanePartitions(client, { lanes: [lane], workerInstanceId: 'w-3', onError: (error) => expect.fail(String(error)) });
    await where.discover();
    const home = soloPartition(lane, client.partitions);
    await create(lane, home, Date.now() + 60_000);
    expect(where.of(lane)).toEqual([]);
    await where.step();
    expect(where.of(lane)).toEqual([home]);
    where.lookEverywhere(); // no wake-ups: claims probe every partition, the sweep stays narrow
    expect(where.of(lane)).toHaveLength(client.partitions.numFlowPartitions);
    expect(where.sweepTargets().map((t) => t.partition)).toEqual([home]);
  });

  it('explicit partitions still win: looked in as given, nothing learned outside them', async () => {
    const lane = uniqueLane();
    const where = new LanePartitions(client, { lanes: [lane], explicit: [3, 4, 5], workerInstanceId: 'w-4', onError: () => undefined });
    await where.discover();
    expect(new Set(where.of(lane))).toEqual(new Set([3, 4, 5]));
    expect(where.learn(lane, 4)).toBe(true);
    expect(where.learn(lane, 9)).toBe(false);
    expect(where.learn(uniqueLane(), 4)).toBe(false);
    expect(where.sweepTargets().map((t) => t.partition).sort()).toEqual([3, 4, 5]);
  });

  it('an idle default Worker claims an execution on a flow partition it had not discovered at start, through the wake-up', async () => {
    const lane = uniqueLane();
    const w = worker({ lanes: lane, concurrency: 2, idleBackoff: { minMs: 5000, maxMs: 5000 }, housekeepingIntervalMs: false });
    await w.start();
    await sleep(300); // its first round found nothing anywhere: asleep for 5 s
    expect(w.counters.claimMisses).toBeGreaterThan(0);
    const flowId = await createFlowFor(client, { kind: 'idle', flowId: flowIdOn(away(lane, 77)) });
    const completed = new Promise<void>((resolve) => w.once('completed', () => resolve()));
    const started = performance.now();
    await submitExecution(client, { lane, kind: 'member', flowId });
    await completed;
    expect(performance.now() - started).toBeLessThan(1000); // not the 5 s poll
    expect(w.counters).toMatchObject({ completed: 1, errors: 0 });
  });

  it('without wake-ups a default Worker still claims it: its claims probe every partition', async () => {
    const lane = uniqueLane();
    const w = worker({ lanes: lane, wakeUp: false, idleBackoff: { minMs: 10, maxMs: 100 }, housekeepingIntervalMs: false });
    await w.start();
    await sleep(200);
    const flowId = await createFlowFor(client, { kind: 'idle', flowId: flowIdOn(away(lane, 78)) });
    const completed = new Promise<void>((resolve) => w.once('completed', () => resolve()));
    await submitExecution(client, { lane, kind: 'member', flowId });
    await completed;
    expect(w.counters).toMatchObject({ completed: 1, errors: 0 });
  });

  it('work waiting at start on any partition is found: the sweep promotes a delayed execution there (no engine) and the worker runs it', async () => {
    const lane = uniqueLane();
    const executionId = await create(lane, away(lane, 150), Date.now() + 300);
    const w = worker({ lanes: lane, idleBackoff: { minMs: 10, maxMs: 200 }, housekeepingIntervalMs: 100 });
    const done = new Promise<string>((resolve) => w.once('completed', (event) => resolve(event.executionId)));
    await w.start();
    expect(await done).toBe(executionId);
  });

  it('a lease lost on a flow partition is reclaimed by a default Worker that started after the claim (found by the discovery)', async () => {
    const lane = uniqueLane();
    const executionId = await create(lane, away(lane, 201));
    // A worker that claims with a short lease and dies: nothing renews it.
    const dead = { workerId: 'ff-worker', workerInstanceId: `dead-${lane}` };
    await issueClaimGrant(client, { executionId, laneId: lane, ...dead, grantTtlMs: 5000 });
    await claimExecution(client, { executionId, laneId: lane, ...dead, leaseId: newLeaseId(), leaseTtlMs: 300, attemptId: newAttemptId() });
    const w = worker({ lanes: lane, idleBackoff: { minMs: 10, maxMs: 200 }, housekeepingIntervalMs: 100 });
    const claimed = new Promise<string>((resolve) => w.once('claimed', (event) => resolve(event.attemptKind)));
    const done = new Promise<string>((resolve) => w.once('completed', (event) => resolve(event.executionId)));
    await w.start();
    expect(await claimed).toBe('reclaim');
    expect(await done).toBe(executionId);
  });
});

describe('idle default Workers on an empty lane', () => {
  it('send next to nothing: no sweep or probe of partitions where the lane has no work', { timeout: 60_000 }, async () => {
    const server = await startServer();
    const connections = Array.from({ length: 2 }, () => new Redis(server.url, { maxRetriesPerRequest: 1 }));
    const admin = new Redis(server.url, { maxRetriesPerRequest: 1 });
    try {
      const clients = connections.map((connection) => FlowFabricClient.fromIoredis(connection));
      await clients[0]!.ensureLibrary();
      const lane = uniqueLane('idle');
      const workers = clients.map((client, i) => new Worker({ client, lanes: lane, concurrency: 16, workerInstanceId: `idle-default-${i}`, handler: () => undefined }));
      await Promise.all(workers.map((w) => w.start()));
      await sleep(1000);
      const calls = async () => {
        const stats = await admin.info('commandstats');
        return [...stats.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)].filter(([, name]) => name !== 'info').reduce((sum, m) => sum + Number(m[2]), 0);
      };
      const before = await calls();
      await sleep(3000);
      const perWorkerPerSecond = ((await calls()) - before) / 3 / workers.length;
      await Promise.all(workers.map((w) => w.close()));
      console.log(`idle default worker on an empty lane: ${perWorkerPerSecond.toFixed(2)} commands/s`);
      // Before: ~150 commands/s each (a sweep and a claim probe over all 256 partitions).
      // Left: presence refreshes and the slow re-check (a few partitions every ~30 s).
      expect(perWorkerPerSecond).toBeLessThan(3);
      expect(workers.every((w) => w.counters.errors === 0)).toBe(true);
    } finally {
      for (const connection of [...connections, admin]) connection.disconnect();
      await server.stop();
    }
  });
});
