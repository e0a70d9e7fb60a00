// The Worker in one process against the real server: the three claim paths, results and
// counters, retries from the stored policy, renewal beyond the lease TTL, a revoked lease,
// suspension and resume, attempt timeouts, graceful shutdown, capabilities, presence.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { GlobalKeys } from '../generated/keys.js';
import { revokeLease } from '../generated/lease.js';
import { getExecution, signalExecution, submitExecution, waitForOutcome, type SubmitOptions } from '../operations/executions.js';
import { expireSuspensionOf } from '../operations/waitpoints.js';
import type { ExecutionId } from '../runtime/ids.js';
import { LeaseLostError, NonRetryableError, Worker, type Task, type WorkerEvent, type WorkerOptions } from '../worker/index.js';
import { useServer } from './support/client.js';
import { uniqueLane } from './support/ids.js';

describe('Worker', () => {
  const { client, redis } = useServer();
  const open: Worker<any>[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((w) => w.close({ timeoutMs: 1000 })));
  });

  function worker<I = unknown>(options: Omit<WorkerOptions<I>, 'client'>): Worker<I> {
    const w = new Worker<I>({ client, housekeepingIntervalMs: 100, idleBackoff: { minMs: 10, maxMs: 100 }, installWaitpointSecrets: false, ...options });
    open.push(w);
    return w;
  }

  async function submitMany(count: number, options: Partial<SubmitOptions> & { lane: string }): Promise<ExecutionId[]> {
    const ids: ExecutionId[] = [];
    for (let i = 0; i < count; i++) ids.push((await submitExecution(client, { kind: 'double', input: { n: i }, ...options })).executionId);
    return ids;
  }

  for (const claimPath of ['direct', 'fast', 'admission'] as const) {
    it(`runs every execution once and completes it with the handler's result (${claimPath} path)`, async () => {
      const lane = uniqueLane();
      const ids = await submitMany(20, { lane });
      const seen = new Map<string, number>();
      const w = worker<{ n: number }>({
        lanes: lane,
        claimPath,
        concurrency: 4,
        handler: async (task) => {
          seen.set(task.executionId, (seen.get(task.executionId) ?? 0) + 1);
          expect(task).toMatchObject({ kind: 'double', attemptIndex: 0, attemptKind: 'fresh', laneId: lane });
          return { doubled: task.input.n * 2 };
        },
      });
      await w.start();
      const views = await Promise.all(ids.map((id) => waitForOutcome(client, id, { timeoutMs: 10_000 })));
      views.forEach((view, i) => expect(view).toMatchObject({ publicState: 'completed', resultJson: { doubled: i * 2 } }));
      expect([...seen.values()].every((n) => n === 1)).toBe(true);
      expect(seen.size).toBe(20);
      await w.close();
      expect(w.counters).toMatchObject({ claimed: 20, completed: 20, failed: 0, inFlight: 0, leaseLost: 0 });
    });
  }

  it('announces itself while running and withdraws on close; a second worker with the same instance id is refused', async () => {
    const lane = uniqueLane();
    const w = worker({ lanes: lane, capabilities: ['gpu', 'cpu'], workerInstanceId: `inst-${lane}`, handler: () => undefined });
    await w.start();
    expect(await redis.get(GlobalKeys.workerCaps(`inst-${lane}`))).toBe('cpu,gpu');
    expect(await redis.sismember(GlobalKeys.workersIndex(), `inst-${lane}`)).toBe(1);
    expect(await redis.pttl(GlobalKeys.workerAlive(`inst-${lane}`))).toBeGreaterThan(30_000);
    const twin = new Worker({ client, lanes: lane, workerInstanceId: `inst-${lane}`, handler: () => undefined, installWaitpointSecrets: false });
    await expect(twin.start()).rejects.toThrow(/duplicate worker_instance_id/);
    await w.close();
    expect(await redis.exists(GlobalKeys.workerAlive(`inst-${lane}`), GlobalKeys.workerCaps(`inst-${lane}`))).toBe(0);
    expect(await redis.sismember(GlobalKeys.workersIndex(), `inst-${lane}`)).toBe(0);
    // Closed while starting: it still ends up withdrawn, and cannot be started again.
    const brief = new Worker({ client, lanes: lane, capabilities: ['x'], workerInstanceId: `brief-${lane}`, handler: () => undefined, installWaitpointSecrets: false });
    const starting = brief.start();
    await brief.close();
    await starting;
    expect(await redis.exists(GlobalKeys.workerAlive(`brief-${lane}`), GlobalKeys.workerCaps(`brief-${lane}`))).toBe(0);
    await expect(brief.start()).rejects.toThrow(/closed/);
  });

  it('retries a thrown error per the stored retry policy, and fails a NonRetryableError at once', async () => {
    const lane = uniqueLane();
    const retry = { maxRetries: 2, backoff: { type: 'fixed' as const, delayMs: 0 } };
    const [flaky] = await submitMany(1, { lane, kind: 'flaky', retry });
    const [fatal] = await submitMany(1, { lane, kind: 'fatal', retry });
    const [hopeless] = await submitMany(1, { lane, kind: 'hopeless', retry });
    const events: WorkerEvent[] = [];
    const w = worker({
      lanes: lane,
      handler: (task: Task) => {
        if (task.kind === 'flaky' && task.attemptIndex < 2) throw new Error(`boom ${task.attemptIndex}`);
        if (task.kind === 'fatal') throw new NonRetryableError('bad input');
        if (task.kind === 'hopeless') throw new Error('always');
        expect(task.attemptKind).toBe('retry');
        return 'ok';
      },
    });
    w.on('event', (e) => events.push(e));
    await w.start();
    expect(await waitForOutcome(client, flaky!, { timeoutMs: 10_000 })).toMatchObject({ publicState: 'completed', attempts: 3, retryCount: 2 });
    expect(await waitForOutcome(client, fatal!, { timeoutMs: 10_000 })).toMatchObject({ publicState: 'failed', attempts: 1, failureReason: 'bad input' });
    expect(await waitForOutcome(client, hopeless!, { timeoutMs: 10_000 })).toMatchObject({ publicState: 'failed', attempts: 3, failureReason: 'always' });
    await w.close();
    expect(w.counters).toMatchObject({ claimed: 7, completed: 1, retried: 4, failed: 2 });
    expect(events.filter((e) => e.type === 'retrying').map((e) => e.type === 'retrying' && e.reason)).toContain('boom 0');
  });

  it('keeps a lease alive for a handler running 3× its TTL', async () => {
    const lane = uniqueLane();
    const [id] = await submitMany(1, { lane });
    // 1 s leases renewed every 333 ms: with the whole suite running, a loaded 2-core machine
    // has delayed ticks past a 300 ms (and a 600 ms) lease.
    const w = worker({ lanes: lane, leaseTtlMs: 1000, handler: async (task: Task) => {
      await sleep(3000);
      expect(task.signal.aborted).toBe(false);
      return 'slow';
    } });
    await w.start();
    const view = await waitForOutcome(client, id!, { timeoutMs: 15_000 });
    await w.close();
    expect({ view, counters: w.counters }).toMatchObject({ view: { publicState: 'completed', result: '"slow"', attempts: 1 }, counters: { leaseLost: 0, completed: 1 } });
    expect(w.counters.renewals).toBeGreaterThanOrEqual(2);
  });

  it('aborts the handler when its lease is revoked, refuses its late complete, and reclaims the execution', async () => {
    const lane = uniqueLane();
    const [id] = await submitMany(1, { lane });
    let late: unknown;
    let reason: unknown;
    const kinds: string[] = [];
    const w = worker({ lanes: lane, leaseTtlMs: 600, handler: async (task: Task) => {
      kinds.push(task.attemptKind);
      if (task.attemptKind === 'reclaim') return 'again';
      await new Promise<void>((resolve) => task.signal.addEventListener('abort', () => resolve()));
      reason = task.signal.reason;
      late = await task.complete('late').catch((e: unknown) => e);
      return undefined;
    } });
    const lost = new Promise((resolve) => w.once('leaseLost', resolve));
    await w.start();
    for (let i = 0; i < 100 && (await getExecution(client, id!))?.publicState !== 'active'; i++) await sleep(20);
    await revokeLease(client, { executionId: id!, workerInstanceId: w.workerInstanceId, revokeReason: 'test' });
    expect(await lost).toMatchObject({ type: 'leaseLost', executionId: id, code: 'lease_revoked' });
    // Revocation leaves no lease expiry to find: the sweep finds it in the lane's active
    // index once the claim-time lease expiry has passed, and reclaims it.
    const view = await waitForOutcome(client, id!, { timeoutMs: 10_000 });
    expect({ view, kinds }).toMatchObject({ view: { publicState: 'completed', result: '"again"', attempts: 2 }, kinds: ['fresh', 'reclaim'] });
    expect(reason).toBeInstanceOf(LeaseLostError);
    expect(late).toBeInstanceOf(LeaseLostError);
  });

  it('suspends, frees the slot, and runs the handler again with the signal that resumed it', async () => {
    const lane = uniqueLane();
    const [id] = await submitMany(1, { lane, input: { n: 1 } });
    const runs: string[] = [];
    const w = worker<{ n: number }>({ lanes: lane, installWaitpointSecrets: true, handler: async (task) => {
      runs.push(task.attemptKind);
      if (task.attemptKind !== 'resumed') {
        await task.suspend({ signals: ['approve'], timeoutMs: 60_000 });
        return;
      }
      expect(task.signals.map((s) => [s.name, s.data])).toEqual([['approve', { by: 'ann' }]]);
      return { approvedBy: (task.signals[0]?.data as { by: string }).by };
    } });
    await w.start();
    for (let i = 0; i < 100 && (await getExecution(client, id!))?.publicState !== 'suspended'; i++) await sleep(20);
    for (let i = 0; i < 50 && w.counters.inFlight > 0; i++) await sleep(10);
    expect(w.counters).toMatchObject({ suspended: 1, inFlight: 0 });
    await signalExecution(client, id!, { name: 'approve', data: { by: 'ann' } });
    expect(await waitForOutcome(client, id!, { timeoutMs: 5000 })).toMatchObject({ publicState: 'completed', resultJson: { approvedBy: 'ann' }, attempts: 1 });
    expect(runs).toEqual(['fresh', 'resumed']);
  });

  it('applies the suspension timeout behaviour: fail, or resume the handler without signals', async () => {
    const lane = uniqueLane();
    const [failing] = await submitMany(1, { lane, kind: 'fail' });
    const [resuming] = await submitMany(1, { lane, kind: 'auto_resume' });
    const runs: string[] = [];
    const w = worker({ lanes: lane, installWaitpointSecrets: true, concurrency: 2, handler: async (task: Task) => {
      runs.push(`${task.kind}:${task.attemptKind}`);
      if (task.attemptKind === 'resumed') return `resumed with ${task.signals.length} signals`;
      await task.suspend({ signals: ['never'], timeoutMs: 50, onTimeout: task.kind === 'fail' ? 'fail' : 'auto_resume' });
    } });
    await w.start();
    for (const id of [failing!, resuming!]) {
      for (let i = 0; i < 100 && (await getExecution(client, id))?.publicState !== 'suspended'; i++) await sleep(20);
    }
    await sleep(80);
    // What the engine's suspension-timeout scanner calls once the timeout passed (an engine
    // here would scan every test's suspensions on the shared server).
    await expireSuspensionOf(client, failing!);
    await expireSuspensionOf(client, resuming!);
    expect(await waitForOutcome(client, failing!, { timeoutMs: 5000 })).toMatchObject({ publicState: 'failed', failureReason: 'suspension_timeout:fail' });
    expect(await waitForOutcome(client, resuming!, { timeoutMs: 5000 })).toMatchObject({ publicState: 'completed', result: '"resumed with 0 signals"' });
    expect(runs.sort()).toEqual(['auto_resume:fresh', 'auto_resume:resumed', 'fail:fresh']);
  });

  it('aborts a handler past the attempt timeout and fails the attempt (retried per policy)', async () => {
    const lane = uniqueLane();
    const [id] = await submitMany(1, { lane, retry: { maxRetries: 1, backoff: { type: 'fixed', delayMs: 0 } } });
    const reasons: unknown[] = [];
    const w = worker({ lanes: lane, attemptTimeoutMs: 100, handler: async (task: Task) => {
      if (task.attemptIndex === 1) return 'second';
      await new Promise<void>((resolve) => task.signal.addEventListener('abort', () => resolve()));
      reasons.push(task.signal.reason);
      await expect(task.complete('too late')).rejects.toThrow(/exceeded 100 ms/);
    } });
    await w.start();
    expect(await waitForOutcome(client, id!, { timeoutMs: 5000 })).toMatchObject({ publicState: 'completed', result: '"second"', attempts: 2 });
    expect(String(reasons[0])).toMatch(/exceeded 100 ms/);
  });

  it('takes turns between its lanes: a short lane is not stuck behind a long one', async () => {
    const long = uniqueLane('long');
    const short = uniqueLane('short');
    await submitMany(30, { lane: long, kind: 'long' });
    const shortIds = await submitMany(3, { lane: short, kind: 'short' });
    const order: string[] = [];
    const w = worker({ lanes: [long, short], claimPath: 'direct', handler: (task: Task) => void order.push(task.kind) });
    await w.start();
    for (const id of shortIds) await waitForOutcome(client, id, { timeoutMs: 10_000 });
    await w.close();
    // One slot, lanes in turn: the 3 short jobs are among the first few claims.
    expect(order.lastIndexOf('short')).toBeLessThan(10);
  });

  it('close() lets running handlers finish within the deadline', async () => {
    const lane = uniqueLane();
    const [id] = await submitMany(1, { lane });
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const w = worker({ lanes: lane, handler: async () => {
      started();
      await sleep(200);
      return 'finished';
    } });
    await w.start();
    await running;
    await w.close({ timeoutMs: 5000 });
    expect((await getExecution(client, id!))?.publicState).toBe('completed');
    expect(w.counters).toMatchObject({ completed: 1, released: 0, inFlight: 0 });
  });

  it('close() past its deadline aborts the handler and gives the execution back for another worker to resume', async () => {
    const lane = uniqueLane();
    const [id] = await submitMany(1, { lane });
    let signal: AbortSignal | undefined;
    const first = worker({ lanes: lane, handler: (task: Task) => {
      signal = task.signal;
      return new Promise(() => undefined); // Never finishes.
    } });
    await first.start();
    for (let i = 0; i < 100 && !signal; i++) await sleep(10);
    const started = Date.now();
    await first.close({ timeoutMs: 100 });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(signal?.aborted).toBe(true);
    expect(first.counters).toMatchObject({ released: 1, inFlight: 0 });
    const given = await getExecution(client, id!);
    expect(given?.state).toMatchObject({ lifecyclePhase: 'runnable', attemptState: 'attempt_interrupted' });
    const second = worker({ lanes: lane, handler: (task: Task) => `second took ${task.attemptKind}` });
    await second.start();
    expect(await waitForOutcome(client, id!, { timeoutMs: 5000 })).toMatchObject({ publicState: 'completed', result: '"second took resumed"', attempts: 1 });
  });

  it('an execution requiring gpu is taken only by a worker advertising gpu', async () => {
    const lane = uniqueLane();
    const gpuJobs = await submitMany(4, { lane, kind: 'gpu', requiredCapabilities: ['gpu'] });
    const plainJobs = await submitMany(4, { lane, kind: 'plain' });
    const ranBy = new Map<string, string>();
    const cpu = worker({ lanes: lane, workerInstanceId: `cpu-${lane}`, claimPath: 'direct', handler: (task: Task) => void ranBy.set(task.executionId, 'cpu') });
    await cpu.start();
    for (const id of plainJobs) expect(await waitForOutcome(client, id, { timeoutMs: 5000 })).toMatchObject({ publicState: 'completed' });
    // No live worker advertises gpu: the cpu worker blocks them as route-blocked (engine.md §4.4).
    for (const id of gpuJobs) {
      for (let i = 0; i < 100 && (await getExecution(client, id))?.state.blockingReason !== 'waiting_for_capable_worker'; i++) await sleep(20);
      expect((await getExecution(client, id))?.state.eligibilityState).toBe('blocked_by_route');
    }
    // A capable worker unblocks what it can run and takes it; the cpu worker leaves it alone.
    const gpu = worker({ lanes: lane, capabilities: ['gpu'], workerInstanceId: `gpu-${lane}`, claimPath: 'direct', handler: (task: Task) => void ranBy.set(task.executionId, 'gpu') });
    await gpu.start();
    for (const id of gpuJobs) expect(await waitForOutcome(client, id, { timeoutMs: 10_000 })).toMatchObject({ publicState: 'completed' });
    expect(gpuJobs.map((id) => ranBy.get(id))).toEqual(['gpu', 'gpu', 'gpu', 'gpu']);
    expect(plainJobs.map((id) => ranBy.get(id))).toEqual(['cpu', 'cpu', 'cpu', 'cpu']);
  });
});
