// Case 12: worker against worker, and idle workers.
// Throughput: N no-op jobs queued up front, then drained by (a) the bare fast-path loop
// (16 loops of claimNextEligible → completeAndClaimNext, case 4's; and the same asking for
// each claimed execution's input, as the Worker does), (b) this project's
// Worker (concurrency 16, lease renewal on) on the fast path and (c) on the
// admission-checked path, and (d) a BullMQ Worker (concurrency 16, its defaults: stalled
// checks on, completed jobs kept). All on the bench's server, one unmeasured warm-up drain
// per side, then sides in rotating order per round. All sides share one fresh server started for this case (earlier cases leave
// hundreds of thousands of executions that the engine's index reconciler would read), and
// the engine (engine/, all scanners, completion listener) runs for the whole throughput and
// latency part, as in production: its background cost lands on every side alike.
// Per side: jobs/s of the drain, server CPU µs/job (Δ used_cpu_sys+user), client CPU µs/job
// (Δ process.cpuUsage of this process, which also runs the producer and the engine).
// Latency: jobs created at a fixed rate, half the slowest side's measured throughput (so
// every side runs below its capacity), while the workers run; creation to completion, p50
// and p99.
// Idle: 100 idle workers of each kind on a dedicated server each (started at the same time,
// plus an empty control server): server CPU per second and commands per second, the
// control server's CPU subtracted.
import { Queue, Worker as BullWorker } from 'bullmq';
import { createExecution } from '../../generated/execution.js';
import type { LaneId } from '../../runtime/ids.js';
import { soloExecutionId } from '../../runtime/partition.js';
import { addJobs, bullConnection, bullmqVersion, completions } from '../bull.js';
import { benchLane, serverCpuSeconds, type Case, type Context, type Row } from '../context.js';
import { benchWorker, createMany, fastWorker } from '../engine.js';
import { median, openLoop } from '../measure.js';
import { commandsProcessed, withServers, type Dedicated } from '../servers.js';
import { Engine } from '../../engine/index.js';
import { OURS_MISSING, engineIdle, oursSides, oursIdle, type DrainSide, type Drain, type LatencyRun } from '../worker-sides.js';

const CONCURRENCY = 16;

export async function measureDrain(ctx: Context, prepare: () => Promise<() => Promise<void>>): Promise<Drain> {
  const enqueueStart = await serverCpuSeconds(ctx.redis);
  const run = await prepare();
  const enqueueCpu = (await serverCpuSeconds(ctx.redis)) - enqueueStart;
  const cpu = await serverCpuSeconds(ctx.redis);
  const client = process.cpuUsage();
  const started = performance.now();
  await run();
  const ms = performance.now() - started;
  const clientUsage = process.cpuUsage(client);
  return { ms, serverCpu: (await serverCpuSeconds(ctx.redis)) - cpu, clientCpu: (clientUsage.user + clientUsage.system) / 1e6, enqueueCpu };
}

/**
 * (a) The bare fast-path loop: the floor the Worker is held against; and the same loop asking
 * each call for the claimed execution's input (with_input), which any worker that hands a
 * handler its input must read: what is left between it and the Worker is the Worker's own.
 */
function bareLoopSide(withInput: boolean): DrainSide {
  return {
    label: withInput ? 'bare fast-path loop, input read' : 'bare fast-path loop',
    async drain(ctx, n) {
      const laneId = benchLane(ctx, withInput ? 'bare-input' : 'bare');
      return measureDrain(ctx, async () => {
        await createMany(ctx.client, Array.from({ length: n }, () => soloExecutionId(laneId, ctx.client.partitions)), laneId);
        return async () => {
          const done = await Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => fastWorker(ctx.client, laneId, benchWorker(i), { withInput })));
          if (done.reduce((a, b) => a + b, 0) !== n) throw new Error('the bare loop missed executions');
        };
      });
    },
  };
}
const bareLoop = bareLoopSide(false);
const bareLoopWithInput = bareLoopSide(true);

let bullRound = 0;
/** (d) BullMQ's Worker with its defaults. */
const bull: DrainSide = {
  label: 'BullMQ Worker',
  async drain(ctx, n) {
    const connection = bullConnection(ctx.url);
    const name = `workers-${ctx.runId}-${++bullRound}`;
    const queue = new Queue(name, { connection });
    const worker = new BullWorker(name, async () => undefined, { connection, concurrency: CONCURRENCY, autorun: false });
    try {
      return await measureDrain(ctx, async () => {
        await queue.waitUntilReady();
        await worker.waitUntilReady();
        await addJobs(queue, n);
        return async () => {
          const done = completions(worker, n);
          void worker.run();
          await done;
        };
      });
    } finally {
      await worker.close();
      await queue.close();
    }
  },
  async latency(ctx, n, ratePerSecond) {
    const connection = bullConnection(ctx.url);
    const name = `workers-lat-${ctx.runId}-${++bullRound}`;
    const queue = new Queue(name, { connection });
    const worker = new BullWorker(name, async () => undefined, { connection, concurrency: CONCURRENCY, autorun: false });
    const latencies: number[] = [];
    try {
      await queue.waitUntilReady();
      await worker.waitUntilReady();
      const done = new Promise<void>((resolve, reject) => {
        worker.on('completed', (job) => {
          latencies.push(Date.now() - job.timestamp);
          if (latencies.length === n) resolve();
        });
        worker.on('failed', (_job, error) => reject(error));
      });
      void worker.run();
      await openLoop(n, ratePerSecond, (count) => queue.addBulk(Array.from({ length: count }, () => ({ name: 'bench', data: {} }))));
      await done;
      return { latencies };
    } finally {
      await worker.close();
      await queue.close();
    }
  },
};

const percentile = (values: readonly number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
};

interface IdleResult {
  readonly cpuPerSecond: number;
  readonly commandsPerSecond: number;
}

/** Starts `count` idle BullMQ workers on the server and returns a stopper. */
async function bullIdle(s: Dedicated, count: number): Promise<() => Promise<void>> {
  // One Worker per instance, each with its own connections (BullMQ's default when given options).
  const connection = bullConnection(s.server.url);
  const name = 'idle';
  const workers = Array.from({ length: count }, () => new BullWorker(name, async () => undefined, { connection, concurrency: CONCURRENCY }));
  await Promise.all(workers.map((w) => w.waitUntilReady()));
  return async () => {
    await Promise.all(workers.map((w) => w.close()));
  };
}

/** One execution of oursIdle's lane, delayed by an hour: the lane lives on its partition, and the defaults sweep it. */
async function delayedOnLane(s: Dedicated): Promise<void> {
  const laneId = 'idle' as LaneId;
  await createExecution(s.client, { executionId: soloExecutionId(laneId, s.client.partitions), laneId, namespace: 'bench', executionKind: 'bench', delayUntil: Date.now() + 3_600_000 });
}

async function idleFor(servers: readonly Dedicated[], seconds: number): Promise<IdleResult[]> {
  const cpu = await Promise.all(servers.map((s) => serverCpuSeconds(s.redis)));
  const commands = await Promise.all(servers.map((s) => commandsProcessed(s.redis)));
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const cpuAfter = await Promise.all(servers.map((s) => serverCpuSeconds(s.redis)));
  const commandsAfter = await Promise.all(servers.map((s) => commandsProcessed(s.redis)));
  // Each sample adds two INFO commands of its own: those 4 are taken off.
  return servers.map((_, i) => ({ cpuPerSecond: (cpuAfter[i]! - cpu[i]!) / seconds, commandsPerSecond: (commandsAfter[i]! - commands[i]! - 4) / seconds }));
}

export const workers: Case & { compare(ctx: Context): Promise<Row[]> } = {
  name: '12 workers',
  async run(shared: Context): Promise<Row[]> {
    return withServers([{ label: 'workers' }], async ([server]) => {
      const ctx: Context = { ...shared, url: server!.server.url, redis: server!.redis, client: server!.client };
      const engine = new Engine({ client: ctx.client, logLevel: 'error' });
      await engine.start();
      try {
        return await this.compare(ctx);
      } finally {
        await engine.stop();
      }
    });
  },
  async compare(ctx: Context): Promise<Row[]> {
    const n = ctx.quick ? 2_000 : 20_000;
    const roundsCount = ctx.quick ? 1 : 5;
    const c = this.name;
    const rows: Row[] = [];
    const sides: DrainSide[] = [bareLoop, bareLoopWithInput, ...oursSides(ctx, CONCURRENCY), bull];
    const results = new Map<string, Drain[]>(sides.map((s) => [s.label, []]));
    // One unmeasured drain per side first (a quarter of N), as the other cases warm up: the
    // first drain of a side runs colder code (JIT) than the ones after it.
    if (!ctx.quick) for (const side of sides) await side.drain(ctx, Math.round(n / 4));
    for (let r = 0; r < roundsCount; r++) {
      for (let j = 0; j < sides.length; j++) {
        const side = sides[(j + r) % sides.length]!;
        results.get(side.label)!.push(await side.drain(ctx, n));
      }
    }
    const rate = (d: Drain) => (n * 1000) / d.ms;
    const us = (x: number) => (x * 1e6) / n;
    const summary = (label: string) => {
      const d = results.get(label)!;
      return { rate: median(d.map(rate)), server: median(d.map((x) => us(x.serverCpu))), client: median(d.map((x) => us(x.clientCpu))), enqueue: median(d.map((x) => us(x.enqueueCpu))) };
    };
    const bare = summary(bareLoop.label);
    const withInput = summary(bareLoopWithInput.label);
    const b = summary(bull.label);
    for (const side of sides) {
      const s = summary(side.label);
      const vsInput = side.label.startsWith('ff-script') ? `; against the loop that reads the input too: ${(s.server / withInput.server).toFixed(2)}× its server CPU/job, ${(s.rate / withInput.rate).toFixed(2)}× its jobs/s` : '';
      const vsBare = side === bareLoop || side === bull ? '' : `; ${(s.server / bare.server).toFixed(2)}× the bare loop's server CPU/job${side === bareLoopWithInput ? '' : ' (target ≤ 1.10)'}, ${(s.rate / bare.rate).toFixed(2)}× its jobs/s${side === bareLoopWithInput ? '' : ' (target ≥ 0.90)'}${vsInput}`;
      rows.push({
        case: c,
        measurement: `${side.label}, ${n.toLocaleString('en-US')} queued no-op jobs, concurrency ${CONCURRENCY}`,
        value: s.rate,
        unit: 'jobs/s',
        ...(side === bull ? {} : { ratio: { value: s.rate / b.rate, of: 'of BullMQ' } }),
        note: `server CPU ${s.server.toFixed(1)} µs/job${side === bull ? '' : ` (${(s.server / b.server).toFixed(2)}× BullMQ)`} (queueing beforehand: ${s.enqueue.toFixed(1)} µs/job more), client CPU ${s.client.toFixed(1)} µs/job${vsBare}${side === bull ? `; BullMQ ${bullmqVersion()} defaults` : ''}; ${roundsCount} round(s), median`,
        rounds: results.get(side.label)!.map(rate),
      });
    }

    // Latency at a fixed creation rate, ours against BullMQ.
    const latencyN = ctx.quick ? 1_000 : 5_000;
    const ratePerSecond = Math.max(50, Math.round((0.5 * Math.min(...sides.map((x) => summary(x.label).rate))) / 50) * 50);
    const latencySides = sides.filter((s) => s.latency);
    const latencies = new Map<string, LatencyRun>();
    for (const side of latencySides) latencies.set(side.label, await side.latency!(ctx, latencyN, ratePerSecond));
    const bullP50 = percentile(latencies.get(bull.label)!.latencies, 50);
    for (const side of latencySides) {
      const { latencies: l, breakdown } = latencies.get(side.label)!;
      rows.push({
        case: c,
        measurement: `${side.label}: creation to completion p50 (${latencyN.toLocaleString('en-US')} jobs created at ${ratePerSecond}/s)`,
        value: percentile(l, 50),
        unit: 'ms',
        ...(side === bull ? {} : { ratio: { value: percentile(l, 50) / bullP50, of: 'of BullMQ (target ≤ 2)' } }),
        note: `p99 ${percentile(l, 99).toFixed(1)} ms; max ${percentile(l, 100).toFixed(1)} ms; rate = half the slowest side's throughput above; client clock at creation and at completion (ours: the Worker's completed event; BullMQ: job.timestamp to its completed event)${breakdown ? `; ${breakdown}` : ''}`,
      });
    }
    if (OURS_MISSING) rows.push({ case: c, measurement: 'ff-script Worker (fast path, admission path): throughput, latency, idle', value: undefined, unit: '', note: `not available yet: ${OURS_MISSING}` });

    // Idle workers: each kind on a fresh server of its own, next to an empty control server
    // (started with it) whose own CPU is subtracted. Kinds run one after the other.
    const idleCount = 100;
    const idleSeconds = ctx.quick ? 5 : 30;
    const kinds: { label: string; start: (s: Dedicated) => Promise<() => Promise<void>>; perWorker: boolean }[] = [
      { label: `${idleCount} idle BullMQ workers (defaults)`, start: (s) => bullIdle(s, idleCount), perWorker: true },
      { label: `${idleCount} idle ff-script Workers (defaults: admission path; the lane has no work, so no partition is read)`, start: (s) => oursIdle(s, idleCount, CONCURRENCY, false), perWorker: true },
      { label: `${idleCount} idle ff-script Workers (defaults: admission path; the lane's partition holds one delayed execution, so it is swept)`, start: async (s) => (await delayedOnLane(s), oursIdle(s, idleCount, CONCURRENCY, false)), perWorker: true },
      { label: `${idleCount} idle ff-script Workers (admission path, the lane's partitions only)`, start: (s) => oursIdle(s, idleCount, CONCURRENCY, true), perWorker: true },
      { label: `${idleCount} idle ff-script Workers (fast path, the lane's partitions only)`, start: (s) => oursIdle(s, idleCount, CONCURRENCY, true, 'fast'), perWorker: true },
      { label: 'the engine alone, idle (all scanners, defaults)', start: (s) => engineIdle(s), perWorker: false },
    ];
    const idleRows: Row[] = [];
    let bullPerWorker = Number.NaN;
    for (const kind of kinds) {
      const row = await withServers([{ label: 'control' }, { label: 'idle' }], async ([control, server]) => {
        const stop = await kind.start(server!);
        try {
          await new Promise((resolve) => setTimeout(resolve, 1_500)); // past start-up
          const client = process.cpuUsage();
          const [ctl, idle] = await idleFor([control!, server!], idleSeconds);
          const clientUsage = process.cpuUsage(client);
          const net = (idle!.cpuPerSecond - ctl!.cpuPerSecond) * 1e6;
          const value = kind.perWorker ? net / idleCount : net;
          if (kind.label.includes('BullMQ')) bullPerWorker = value;
          const ours = kind.perWorker && !kind.label.includes('BullMQ');
          return {
            case: c,
            measurement: `${kind.label}, ${idleSeconds} s`,
            value,
            unit: kind.perWorker ? 'µs server CPU/s per worker' : 'µs server CPU/s',
            ...(ours ? { ratio: { value: value / bullPerWorker, of: 'of BullMQ (target ≤ 1)' } } : {}),
            note: `server ${(idle!.cpuPerSecond * 1000).toFixed(2)} ms CPU/s (control ${(ctl!.cpuPerSecond * 1000).toFixed(2)} ms/s subtracted), ${idle!.commandsPerSecond.toFixed(0)} commands/s${kind.perWorker ? ` (${(idle!.commandsPerSecond / idleCount).toFixed(2)} per worker)` : ''}; this process ${(((clientUsage.user + clientUsage.system) / 1e6 / idleSeconds) * 100).toFixed(0)}% of a core`,
          } satisfies Row;
        } finally {
          await stop();
        }
      });
      idleRows.push(row);
    }
    return [...rows, ...idleRows];
  },
};
