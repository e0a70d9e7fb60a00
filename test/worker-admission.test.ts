// The Worker's admission-checked claim path (issue 16: its latency): one grant cycle for all
// free slots, each task started as soon as its claim answers, every admission check kept. A
// burst of executions runs on every free slot at once; a quota's concurrency cap still
// bounds how many run; a Worker given its own one-grant cycle (issueNextGrant) still claims;
// a round that took what it saw is not followed by empty rounds at every freed slot.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { ExecKeys } from '../generated/keys.js';
import { issueNextGrant } from '../operations/scheduler.js';
import { submitExecution, waitForOutcome } from '../operations/executions.js';
import type { ExecutionId } from '../runtime/ids.js';
import { laneHashPartitioner } from '../runtime/partition.js';
import { Worker, type WorkerOptions } from '../worker/index.js';
import { createTestQuota } from './support/budget.js';
import { useServer } from './support/client.js';
import { uniqueLane } from './support/ids.js';

describe('Worker, admission path', () => {
  const { client, redis } = useServer();
  const open: Worker[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((w) => w.close({ timeoutMs: 1000 })));
  });

  function worker(options: Omit<WorkerOptions, 'client'>): Worker {
    const w = new Worker({ client, claimPath: 'admission', housekeepingIntervalMs: false, installWaitpointSecrets: false, idleBackoff: { minMs: 10, maxMs: 50 }, ...options });
    open.push(w);
    return w;
  }

  /** A handler that holds every task until `count` run at once (or 3 s pass), recording the most seen at once. */
  function barrier(count: number) {
    let running = 0;
    let most = 0;
    let open: () => void = () => undefined;
    const all = new Promise<void>((resolve) => (open = resolve));
    return {
      get most() {
        return most;
      },
      handler: async () => {
        running += 1;
        most = Math.max(most, running);
        if (running >= count) open();
        await Promise.race([all, sleep(3000)]);
        running -= 1;
        return 'ok';
      },
    };
  }

  it('runs a burst on every free slot at once, each execution once', async () => {
    const lane = uniqueLane('admit');
    const b = barrier(8);
    const claimed: ExecutionId[] = [];
    const w = worker({ lanes: lane, concurrency: 8, handler: b.handler });
    w.on('claimed', (e) => claimed.push(e.executionId));
    await w.start();
    const ids = await Promise.all(Array.from({ length: 8 }, (_, i) => submitExecution(client, { lane, kind: 'burst', input: { i } }).then((r) => r.executionId)));
    const started = performance.now();
    const views = await Promise.all(ids.map((id) => waitForOutcome(client, id, { timeoutMs: 5000 })));
    expect(views.every((v) => v.publicState === 'completed')).toBe(true);
    // All eight held the barrier together: it opened, well before its 3 s fallback.
    expect(b.most).toBe(8);
    expect(performance.now() - started).toBeLessThan(2500);
    expect(claimed.sort()).toEqual([...ids].sort());
    expect(w.counters).toMatchObject({ claimed: 8, completed: 8, errors: 0 });
  });

  it("keeps a quota's concurrency cap: no more run at once than it admits, the rest are blocked for quota", async () => {
    const lane = uniqueLane('admit');
    const quota = await createTestQuota(client, { maxConcurrent: 2 });
    const b = barrier(8);
    const w = worker({ lanes: lane, concurrency: 8, handler: b.handler });
    const ids: ExecutionId[] = [];
    for (let i = 0; i < 6; i++) ids.push((await submitExecution(client, { lane, kind: 'capped', quotaPolicyId: quota.quotaPolicyId })).executionId);
    await w.start();
    await sleep(500);
    expect(w.counters.inFlight).toBe(2);
    const reasons = await Promise.all(ids.map(async (id) => redis.hget(new ExecKeys(id).core(), 'blocking_reason')));
    expect(reasons.filter((r) => r === 'waiting_for_quota')).toHaveLength(4);
    expect(b.most).toBe(2);
  });

  it('claims with a one-grant cycle of its own, run once per free slot', async () => {
    const lane = uniqueLane('admit');
    let cycles = 0;
    const w = worker({
      lanes: lane,
      concurrency: 4,
      handler: () => 'ok',
      issueNextGrant: (c, request) => {
        cycles += 1;
        return issueNextGrant(c, request);
      },
    });
    await w.start();
    const ids = await Promise.all(Array.from({ length: 6 }, () => submitExecution(client, { lane, kind: 'own' }).then((r) => r.executionId)));
    const views = await Promise.all(ids.map((id) => waitForOutcome(client, id, { timeoutMs: 5000 })));
    expect(views.every((v) => v.publicState === 'completed')).toBe(true);
    expect(cycles).toBeGreaterThanOrEqual(6);
    expect(w.counters).toMatchObject({ completed: 6, errors: 0 });
  });

  it('after a round that took what it saw, a freed slot starts no round: the next waits for work or the back-off', async () => {
    const lane = uniqueLane('admit');
    let done!: () => void;
    const completed = new Promise<void>((resolve) => (done = resolve));
    // Told the lane's partition, so the poll finds the execution at its first round.
    const partitions = laneHashPartitioner.partitionsOf(lane, client.partitions);
    const w = worker({ lanes: lane, partitions, concurrency: 4, handler: () => 'ok', wakeUp: false, idleBackoff: { minMs: 1500, maxMs: 1500 } });
    w.on('completed', () => done());
    await w.start();
    await sleep(200); // Its first round found nothing: asleep for 1.5 s.
    expect(w.counters.claimMisses).toBe(1);
    await submitExecution(client, { lane, kind: 'one' });
    await completed; // Claimed by the poll, 1 of 4 slots; the round saw nothing more.
    const misses = w.counters.claimMisses;
    await sleep(400);
    // The slot freed by the completion woke nothing: no empty round since.
    expect(w.counters).toMatchObject({ claimMisses: misses, completed: 1, inFlight: 0 });
  });
});
