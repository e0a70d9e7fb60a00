// Workers in separate processes against one server:
// - soak: 8 workers in each of 2 processes (one on the admission path, one on the fast path)
//   over 300 executions (FF_WORKER_SOAK=1: 2,000), a fixed 20% of attempts throwing, retry
//   policy of one retry: every execution ends exactly as its planned attempts say, attempts
//   of one execution never overlap, and the counters add up;
// - a worker process SIGKILLed mid-task: with the engine marking the expired lease, another
//   worker runs the execution again as a reclaim, and the first lease's late complete is
//   refused;
// - a suspension resumed by a signal sent from another process.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { Engine } from '../engine/index.js';
import { completeExecution } from '../generated/execution.js';
import { buildCreateExecution, parseCreateExecution } from '../generated/execution.js';
import { call, FlowFabricClient } from '../runtime/client.js';
import { startServer } from '../tools/local-server.js';
import { getExecution, retryPolicyJson, submitExecution, waitForOutcome } from '../operations/executions.js';
import { ensureWaitpointSecrets } from '../operations/waitpoints.js';
import { isScriptError } from '../runtime/errors.js';
import { type ExecutionId, type LaneId } from '../runtime/ids.js';
import { soloExecutionId, spreadLanePartitioner } from '../runtime/partition.js';
import { Worker, type Task, type WorkerCounters } from '../worker/index.js';
import { useServer } from './support/client.js';
import { uniqueLane } from './support/ids.js';
import type { ChildConfig } from './support/worker-child.js';
import { throws } from './support/worker-plan.js';

const root = join(import.meta.dirname, '..');
const SOAK = process.env.FF_WORKER_SOAK ? 2000 : 300;

interface Child {
  readonly process: ChildProcess;
  readonly output: Promise<string>;
  readonly exited: Promise<number | null>;
}

const children: Child[] = [];

function startChild(config: Omit<ChildConfig, 'url'> & { url?: string }): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', join(root, 'test', 'support', 'worker-child.ts'), JSON.stringify({ url: inject('redisUrl'), ...config })], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  proc.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const child = { process: proc, exited, output: exited.then(() => (err && !out ? `ERR ${err}` : out)) };
  children.push(child);
  return child;
}

afterAll(() => {
  for (const child of children) if (child.process.exitCode === null) child.process.kill('SIGKILL');
});

interface LogEntry {
  readonly ev: 'start' | 'end' | 'ready';
  readonly id: ExecutionId;
  readonly attempt: number;
  readonly kind: string;
  readonly pid: number;
  readonly at: number;
  readonly fail?: boolean;
  readonly lease?: { leaseId: string; leaseEpoch: number; attemptId: string; attemptIndex: number; laneId: LaneId; executionId: ExecutionId };
}

async function readLog(redis: Redis, key: string): Promise<LogEntry[]> {
  return (await redis.lrange(key, 0, -1)).map((line) => JSON.parse(line) as LogEntry);
}

async function waitForLog(redis: Redis, key: string, test: (entries: LogEntry[]) => boolean, timeoutMs = 15_000): Promise<LogEntry[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const entries = await readLog(redis, key);
    if (test(entries)) return entries;
    if (Date.now() > deadline) throw new Error(`log ${key}: condition not met in ${timeoutMs} ms (${entries.length} entries)`);
    await sleep(25);
  }
}

describe('Workers in several processes', () => {
  const { client, redis } = useServer();

  it(`soak: 2 processes × 8 workers over ${SOAK} executions, 20% of attempts throwing`, { timeout: SOAK > 300 ? 300_000 : 60_000 }, async () => {
    const lane = uniqueLane('soak');
    const log = `test:worker-soak:${lane}`;
    const failRate = 0.2;
    const partitioner = spreadLanePartitioner(16);
    const retry = retryPolicyJson({ maxRetries: 1, backoff: { type: 'fixed', delayMs: 0 } });
    const ids = Array.from({ length: SOAK }, () => soloExecutionId(lane, client.partitions, undefined, partitioner));
    for (let i = 0; i < ids.length; i += 500) {
      const batch = ids.slice(i, i + 500).map((executionId, j) =>
        call(buildCreateExecution({ executionId, laneId: lane, namespace: 'soak', executionKind: 'soak', inputPayload: String(i + j), policyJson: { retry_policy: retry } }, client.partitions), parseCreateExecution),
      );
      expect((await client.batch(batch)).every((r) => r.ok)).toBe(true);
    }
    const a = startChild({ mode: 'soak', lane, log, workers: 8, concurrency: 2, failRate, claimPath: 'admission', name: 'adm' });
    const b = startChild({ mode: 'soak', lane, log, workers: 8, concurrency: 2, failRate, claimPath: 'fast', name: 'fast' });

    // The plan: attempt 0 throws with 20%; then attempt 1 runs and throws with 20%; one retry allowed.
    const planned = new Map(ids.map((id) => {
      const first = throws(id, 0, failRate);
      const second = first && throws(id, 1, failRate);
      return [id, { attempts: first ? 2 : 1, outcome: second ? 'failed' : 'completed' }] as const;
    }));
    const views = [];
    for (const id of ids) views.push(await waitForOutcome(client, id, { timeoutMs: SOAK > 300 ? 240_000 : 45_000 }));
    a.process.kill('SIGTERM');
    b.process.kill('SIGTERM');
    const counters = (await Promise.all([a.output, b.output])).map((text) => JSON.parse(text) as WorkerCounters);
    const entries = (await readLog(redis, log)).filter((e) => e.ev !== 'ready');
    await redis.del(log);

    for (const view of views) {
      const plan = planned.get(view.executionId)!;
      expect({ id: view.executionId, state: view.publicState, attempts: view.attempts }).toEqual({ id: view.executionId, state: plan.outcome, attempts: plan.attempts });
    }
    // Every attempt started and ended once, attempts in order and never overlapping.
    const byExecution = new Map<string, LogEntry[]>();
    for (const e of entries) byExecution.set(e.id, [...(byExecution.get(e.id) ?? []), e]);
    expect(byExecution.size).toBe(SOAK);
    for (const [id, list] of byExecution) {
      const plan = planned.get(id as ExecutionId)!;
      expect(list.map((e) => `${e.ev}:${e.attempt}`)).toEqual(plan.attempts === 2 ? ['start:0', 'end:0', 'start:1', 'end:1'] : ['start:0', 'end:0']);
      for (let i = 1; i < list.length; i++) expect(list[i]!.at).toBeGreaterThanOrEqual(list[i - 1]!.at);
    }
    // Counters add up across both processes.
    const sum = (k: keyof WorkerCounters) => counters.reduce((s, c) => s + c[k], 0);
    const completed = views.filter((v) => v.publicState === 'completed').length;
    const attempts = [...planned.values()].reduce((s, p) => s + p.attempts, 0);
    expect(sum('completed')).toBe(completed);
    expect(sum('failed')).toBe(SOAK - completed);
    expect(sum('retried')).toBe(attempts - SOAK);
    expect(sum('claimed')).toBe(attempts);
    expect(sum('leaseLost')).toBe(0);
    expect(sum('inFlight')).toBe(0);
    expect(counters.every((c) => c.claimed > 0)).toBe(true); // Both processes took part.
  });

  it('a worker process killed mid-task: its execution is reclaimed by another worker after the lease expires, and the old lease is refused', async () => {
    // A server of its own: the engine's lease-expiry scanner looks at every partition.
    const server = await startServer();
    const own = new Redis(server.url, { maxRetriesPerRequest: 1 });
    const ownClient = FlowFabricClient.fromIoredis(own);
    const engine = new Engine({ client: ownClient, completionListener: false, scanners: ['lease_expiry'], intervals: { lease_expiry: 100 }, logLevel: 'error' });
    let rescuer: Worker | undefined;
    try {
      await engine.start(); // Boot loads the library and the key rings.
      const lane = uniqueLane('kill');
      const log = `test:worker-kill:${lane}`;
      const { executionId } = await submitExecution(ownClient, { lane, kind: 'k', input: 'x' });
      const victim = startChild({ url: server.url, mode: 'hang', lane, log, leaseTtlMs: 400, claimPath: 'direct', name: 'victim' });
      const [started] = (await waitForLog(own, log, (e) => e.some((x) => x.ev === 'start'))).filter((x) => x.ev === 'start');
      victim.process.kill('SIGKILL');
      await victim.exited;

      // The engine marks the lease expired; the worker (no self-service) reclaims it.
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      let kind: string | undefined;
      rescuer = new Worker({ client: ownClient, lanes: lane, leaseTtlMs: 2000, claimPath: 'direct', housekeepingIntervalMs: 100, selfService: false, idleBackoff: { minMs: 10, maxMs: 50 }, installWaitpointSecrets: false,
        handler: async (task: Task) => {
          kind = task.attemptKind;
          await held;
          return 'rescued';
        } });
      await rescuer.start();
      for (let i = 0; i < 200 && kind === undefined; i++) await sleep(25);
      expect(kind).toBe('reclaim');
      // While the reclaim attempt runs, the killed worker's lease can no longer finish it.
      const lease = started!.lease!;
      const late = await completeExecution(ownClient, {
        executionId, laneId: lane, workerInstanceId: `victim-${started!.pid}-0`, leaseId: lease.leaseId as never, leaseEpoch: lease.leaseEpoch,
        attemptId: lease.attemptId as never, attemptIndex: lease.attemptIndex, resultPayload: 'late',
      }).catch((e: unknown) => e);
      expect(isScriptError(late, 'stale_lease')).toBe(true);
      release();
      expect(await waitForOutcome(ownClient, executionId, { timeoutMs: 5000 })).toMatchObject({ publicState: 'completed', result: '"rescued"', attempts: 2, reclaimCount: 1 });
      await rescuer.close({ timeoutMs: 1000 });
      expect(rescuer.counters).toMatchObject({ reclaimed: 1, completed: 1 });
    } finally {
      await rescuer?.close({ timeoutMs: 1000 });
      await engine.stop();
      own.disconnect();
      await server.stop();
    }
  });

  it('a worker process killed mid-attempt with an attempt timeout: the engine expires the attempt it registered at claim', async () => {
    // A server of its own: the engine's attempt-timeout scanner looks at every partition.
    const server = await startServer();
    const own = new Redis(server.url, { maxRetriesPerRequest: 1 });
    const ownClient = FlowFabricClient.fromIoredis(own);
    const engine = new Engine({ client: ownClient, completionListener: false, scanners: ['attempt_timeout'], intervals: { attempt_timeout: 100 }, logLevel: 'error' });
    try {
      await engine.start();
      const lane = uniqueLane('timeout');
      const log = `test:worker-timeout:${lane}`;
      const { executionId } = await submitExecution(ownClient, { lane, kind: 'k', input: 'x' });
      // The lease (30 s) outlives the test: only the registered attempt timeout can end it.
      const victim = startChild({ url: server.url, mode: 'hang', lane, log, attemptTimeoutMs: 300, claimPath: 'direct', name: 'timeout' });
      await waitForLog(own, log, (e) => e.some((x) => x.ev === 'start'));
      victim.process.kill('SIGKILL');
      await victim.exited;
      const view = await waitForOutcome(ownClient, executionId, { timeoutMs: 5000 });
      expect(view).toMatchObject({ publicState: 'expired' });
      expect(await own.hget(`ff:exec:${/\{fp:\d+\}/.exec(executionId)![0]}:${executionId}:core`, 'failure_reason')).toBe('attempt_timeout');
    } finally {
      await engine.stop();
      own.disconnect();
      await server.stop();
    }
  });

  it('a suspended handler runs again with the signal another process sent', async () => {
    await ensureWaitpointSecrets(client);
    const lane = uniqueLane('sig');
    const { executionId } = await submitExecution(client, { lane, kind: 'approval', input: { doc: 7 } });
    const w = new Worker<{ doc: number }>({ client, lanes: lane, claimPath: 'direct', installWaitpointSecrets: false, idleBackoff: { minMs: 10, maxMs: 50 }, housekeepingIntervalMs: 100,
      handler: async (task) => {
        if (task.attemptKind !== 'resumed') return void (await task.suspend({ signals: ['approved'], timeoutMs: 30_000 }));
        const signal = task.signals[0]!;
        return { doc: task.input.doc, approvedBy: (signal.data as { by: string }).by, source: signal.sourceIdentity };
      } });
    try {
      await w.start();
      for (let i = 0; i < 200 && (await getExecution(client, executionId))?.publicState !== 'suspended'; i++) await sleep(20);
      const sender = startChild({ mode: 'signal', executionId, signalName: 'approved', data: { by: 'ops' } });
      expect(await sender.exited).toBe(0);
      const done = await waitForOutcome(client, executionId, { timeoutMs: 5000 });
      expect(done.resultJson).toEqual({ doc: 7, approvedBy: 'ops', source: `pid-${sender.process.pid}` });
    } finally {
      await w.close({ timeoutMs: 1000 });
    }
  });
});

