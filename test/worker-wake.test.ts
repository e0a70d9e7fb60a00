// Wake-ups (issue 16): the library publishes the partition on ff:wake:<lane> when it makes an
// execution eligible, and an idle Worker subscribed to its lanes claims at once instead of
// at its next poll (here a 5 s back-off, so only a wake-up can be that quick).
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { createExecution } from '../generated/execution.js';
import { promoteDelayed } from '../generated/scheduling.js';
import { submitExecution } from '../operations/executions.js';
import { ioredisWakeSource, wakeChannel, Worker, type WorkerOptions } from '../worker/index.js';
import { useServer } from './support/client.js';
import { newExecutionId, uniqueLane } from './support/ids.js';

describe('Worker wake-ups', () => {
  const { client, redis } = useServer();
  const open: Worker[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((w) => w.close({ timeoutMs: 1000 })));
  });

  /** An idle worker that polls only every 5 s and does no housekeeping. */
  function sleepyWorker(options: Omit<WorkerOptions, 'client' | 'handler'>): Worker {
    const w = new Worker({
      client,
      handler: () => 'done',
      idleBackoff: { minMs: 5000, maxMs: 5000 },
      housekeepingIntervalMs: false,
      installWaitpointSecrets: false,
      wakeUp: ioredisWakeSource(redis),
      ...options,
    });
    open.push(w);
    return w;
  }

  for (const claimPath of ['fast', 'admission', 'direct'] as const) {
    it(`an idle worker with a 5 s back-off picks up a new execution within milliseconds (${claimPath} path)`, async () => {
      const lane = uniqueLane();
      const w = sleepyWorker({ lanes: lane, claimPath, concurrency: 4 });
      await w.start();
      await sleep(300); // Its first round found nothing: asleep for 5 s.
      expect(w.counters.claimMisses).toBeGreaterThan(0);
      const latencies: number[] = [];
      for (let i = 0; i < 3; i++) {
        const completed = new Promise<number>((resolve) => w.once('completed', () => resolve(performance.now())));
        const created = performance.now();
        await submitExecution(client, { lane, kind: 'wake', input: { i } });
        latencies.push((await completed) - created);
        await sleep(200); // Idle again.
      }
      console.log(`wake-up to completion, ${claimPath} path: ${latencies.map((ms) => ms.toFixed(0)).join(', ')} ms`);
      // Without the wake-up each would take up to the 5 s back-off.
      expect(Math.max(...latencies)).toBeLessThan(1000);
      expect(w.counters).toMatchObject({ completed: 3, errors: 0 });
    });
  }

  it('with wakeUp: false the same worker waits for its poll', async () => {
    const lane = uniqueLane();
    const w = sleepyWorker({ lanes: lane, claimPath: 'fast', wakeUp: false });
    await w.start();
    await sleep(300);
    await submitExecution(client, { lane, kind: 'wake' });
    await sleep(1000);
    expect(w.counters.completed).toBe(0);
  });

  it('create and delayed promotion publish the partition on the lane channel; a delayed create does not', async () => {
    const lane = uniqueLane();
    const subscriber = redis.duplicate();
    const messages: string[] = [];
    subscriber.on('message', (channel: string, message: string) => {
      if (channel === wakeChannel(lane)) messages.push(message);
    });
    try {
      await subscriber.subscribe(wakeChannel(lane));
      const eligible = newExecutionId(17);
      const delayed = newExecutionId(42);
      await createExecution(client, { executionId: eligible, laneId: lane, namespace: 'default', executionKind: 'k' });
      const now = Date.now();
      await createExecution(client, { executionId: delayed, laneId: lane, namespace: 'default', executionKind: 'k', delayUntil: now + 60_000 });
      await sleep(100);
      expect(messages).toEqual(['{fp:17}']);
      await promoteDelayed(client, { executionId: delayed, laneId: lane, nowMs: now + 61_000 });
      await sleep(100);
      expect(messages).toEqual(['{fp:17}', '{fp:42}']);
    } finally {
      subscriber.disconnect();
    }
  });
});
