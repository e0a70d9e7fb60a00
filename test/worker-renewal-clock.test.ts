// Lease renewal runs on one timer per worker (worker/lease.ts RenewalClock), not one per task:
// many tasks held at once make one timer (setInterval watched), every lease is still renewed
// on time, and the timer is cleared once the worker holds nothing.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { submitExecution, waitForOutcome } from '../operations/executions.js';
import type { ExecutionId } from '../runtime/ids.js';
import { laneHashPartitioner } from '../runtime/partition.js';
import { Worker } from '../worker/index.js';
import { useServer } from './support/client.js';
import { uniqueLane } from './support/ids.js';


describe('Worker lease renewal clock', () => {
  const { client } = useServer();
  const open: Worker[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((w) => w.close({ timeoutMs: 1000 })));
  });

  it('renews 20 leases held at once on one timer, each before it lapses', async () => {
    const lane = uniqueLane();
    let running = 0;
    let allRunning: () => void = () => undefined;
    const started = new Promise<void>((resolve) => (allRunning = resolve));
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    const w = new Worker({
      client,
      lanes: lane,
      concurrency: 20,
      // A lease that lapses after 600 ms: each task holds it for ~1 s, so only renewals keep it.
      leaseTtlMs: 600,
      renewEveryMs: 100,
      installWaitpointSecrets: false,
      partitions: laneHashPartitioner.partitionsOf(lane, client.partitions),
      idleBackoff: { minMs: 20, maxMs: 20 },
      handler: async () => {
        if (++running === 20) allRunning();
        await released;
        return 'done';
      },
    });
    open.push(w);
    await w.start();
    await sleep(50);
    const intervals = vi.spyOn(globalThis, 'setInterval');
    const ids: ExecutionId[] = [];
    for (let i = 0; i < 20; i++) ids.push((await submitExecution(client, { lane, kind: 'long', input: { i } })).executionId);
    await started;
    await sleep(1000);
    // The renewal clock's one timer, at most: no timer per task (that was 20).
    expect(intervals.mock.calls.length).toBeLessThanOrEqual(1);
    intervals.mockRestore();
    release();
    const views = await Promise.all(ids.map((id) => waitForOutcome(client, id, { timeoutMs: 10_000 })));
    expect(views.every((v) => v.publicState === 'completed' && v.attempts === 1)).toBe(true);
    // ~10 renewals per task in 1 s; fewer than 5 per task would have let leases lapse.
    expect(w.counters.renewals).toBeGreaterThanOrEqual(20 * 5);
    expect({ leaseLost: w.counters.leaseLost, completed: w.counters.completed }).toEqual({ leaseLost: 0, completed: 20 });
  });

  it('holds no renewal timer once the worker holds no task', async () => {
    const lane = uniqueLane();
    const w = new Worker({
      client,
      lanes: lane,
      concurrency: 4,
      leaseTtlMs: 3000,
      renewEveryMs: 100,
      housekeepingIntervalMs: false,
      installWaitpointSecrets: false,
      partitions: laneHashPartitioner.partitionsOf(lane, client.partitions),
      idleBackoff: { minMs: 20, maxMs: 20 },
      handler: async () => {
        await sleep(150);
        return 'done';
      },
    });
    open.push(w);
    await w.start();
    await sleep(50);
    const intervals = vi.spyOn(globalThis, 'setInterval');
    const cleared = vi.spyOn(globalThis, 'clearInterval');
    const id = (await submitExecution(client, { lane, kind: 'short', input: {} })).executionId;
    await waitForOutcome(client, id, { timeoutMs: 10_000 });
    await sleep(100); // Renewal-clock ticks after the task ended.
    // The one timer made for the task's lease was cleared once nothing was held.
    expect(intervals.mock.calls.length).toBe(1);
    const made = intervals.mock.results[0]!.value as NodeJS.Timeout;
    expect(cleared.mock.calls.some(([timer]) => timer === made)).toBe(true);
    intervals.mockRestore();
    cleared.mockRestore();
    expect(w.counters.completed).toBe(1);
  });
});
