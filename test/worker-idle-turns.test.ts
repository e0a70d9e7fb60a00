// Workers of one lane take turns at its sweep (worker/sweep-turn.ts, issue 16): while another
// worker holds the lane's turn a worker does not sweep it, and once the turn lapses it does;
// many idle workers on one lane sweep it about once per interval between them.
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { createExecution } from '../generated/execution.js';
import { getExecution } from '../operations/executions.js';
import { FlowFabricClient } from '../runtime/client.js';
import { soloExecutionId } from '../runtime/partition.js';
import { startServer } from '../tools/local-server.js';
import { sweepTurnKey, takeSweepTurn } from '../worker/sweep-turn.js';
import { ioredisWakeSource, Worker } from '../worker/index.js';
import { useServer } from './support/client.js';
import { uniqueLane } from './support/ids.js';

describe('sweep turns', () => {
  const { client, redis } = useServer();
  const open: Worker[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((w) => w.close({ timeoutMs: 1000 })));
  });

  it('a turn is taken once until it lapses', async () => {
    const lane = uniqueLane();
    expect(await takeSweepTurn(client, lane, 'w-a', 300)).toBe(true);
    expect(await takeSweepTurn(client, lane, 'w-b', 300)).toBe(false);
    expect(await redis.get(sweepTurnKey(lane))).toBe('w-a');
    await sleep(400);
    expect(await takeSweepTurn(client, lane, 'w-b', 300)).toBe(true);
  });

  it('a default Worker does not sweep a lane whose turn another holds, and sweeps it once the turn lapses', async () => {
    const lane = uniqueLane();
    // The turn is someone else's for 1.5 s: the delayed execution, due at once, waits for it.
    await redis.set(sweepTurnKey(lane), 'someone-else', 'PX', 1500);
    const executionId = soloExecutionId(lane, client.partitions);
    await createExecution(client, { executionId, laneId: lane, namespace: 'default', executionKind: 'k', delayUntil: Date.now() + 50 });
    const w = new Worker({ client, lanes: lane, handler: () => 'done', installWaitpointSecrets: false, wakeUp: ioredisWakeSource(redis), idleBackoff: { minMs: 10, maxMs: 100 }, housekeepingIntervalMs: 100 });
    open.push(w);
    const done = new Promise<number>((resolve) => w.once('completed', () => resolve(performance.now())));
    const started = performance.now();
    await w.start();
    await sleep(800);
    expect((await getExecution(client, executionId))?.publicState).toBe('delayed');
    expect(performance.now() - started).toBeLessThan(1400); // still inside the other's turn
    const completedAt = await done;
    expect(completedAt - started).toBeGreaterThan(1200);
  });
});

describe('many idle workers on one lane', () => {
  it('sweep it about once per interval between them, not once each', { timeout: 60_000 }, async () => {
    const server = await startServer();
    const connection = new Redis(server.url, { maxRetriesPerRequest: 1 });
    const admin = new Redis(server.url, { maxRetriesPerRequest: 1 });
    try {
      const client = FlowFabricClient.fromIoredis(connection);
      await client.ensureLibrary();
      const lane = uniqueLane('turns');
      // One execution delayed by an hour: the lane lives on its partition, so it is swept.
      await createExecution(client, { executionId: soloExecutionId(lane, client.partitions), laneId: lane, namespace: 'default', executionKind: 'k', delayUntil: Date.now() + 3_600_000 });
      const count = 16;
      const intervalMs = 100;
      const workers = Array.from({ length: count }, (_, i) => new Worker({ client, lanes: lane, workerInstanceId: `turns-${i}`, handler: () => undefined, installWaitpointSecrets: false, housekeepingIntervalMs: intervalMs }));
      await Promise.all(workers.map((w) => w.start()));
      await sleep(1000);
      const reads = async () => Number(/^cmdstat_zrangebyscore:calls=(\d+)/m.exec(await admin.info('commandstats'))?.[1] ?? 0);
      const before = await reads();
      const seconds = 2;
      await sleep(seconds * 1000);
      const sweepReads = (await reads()) - before;
      await Promise.all(workers.map((w) => w.close()));
      // Each idle worker alone would sweep every 4th interval (2 reads: lease expiry, delayed):
      // 16 × 2 s / 400 ms × 2 = 160 reads. Taking turns: about one sweep per interval, 40.
      console.log(`${count} idle workers, one lane, ${intervalMs} ms interval: ${sweepReads} sweep reads in ${seconds} s`);
      expect(sweepReads).toBeGreaterThan(0);
      expect(sweepReads).toBeLessThan(80);
      expect(workers.every((w) => w.counters.errors === 0)).toBe(true);
    } finally {
      connection.disconnect();
      admin.disconnect();
      await server.stop();
    }
  });
});
