// Case 4: N executions through create → claim grant → claim → complete with 16 concurrent
// workers, against BullMQ running N jobs through addBulk → Worker(concurrency 16) →
// complete on the same server. Rounds alternate the two sides so both see the same server
// state; each round uses a fresh lane / queue name.
import { Queue, Worker as BullWorker } from 'bullmq';
import { completeExecution } from '../../generated/execution.js';
import { soloExecutionId } from '../../runtime/partition.js';
import { benchLane, randomExecutionId, serverCpuSeconds, type Case, type Context, type Row } from '../context.js';
import { addJobs, bullConnection, bullmqVersion, completions } from '../bull.js';
import { ENQUEUE_CHUNK, benchWorker, createMany, fastWorker, grantAndClaim } from '../engine.js';
import { inFlight, median, rounds } from '../measure.js';

const WORKERS = 16;

/** One side's round: phase durations (ms) and server CPU (s) of the enqueue and work phases. */
interface Phases {
  readonly enqueueMs: number;
  readonly workMs: number;
  readonly enqueueCpu: number;
  readonly workCpu: number;
}

/** Times one phase and the server CPU it used. */
async function phase(ctx: Context, block: () => Promise<unknown>): Promise<{ ms: number; cpu: number }> {
  const cpuBefore = await serverCpuSeconds(ctx.redis);
  const started = performance.now();
  await block();
  const ms = performance.now() - started;
  return { ms, cpu: (await serverCpuSeconds(ctx.redis)) - cpuBefore };
}

async function oursRound(ctx: Context, n: number): Promise<Phases> {
  const laneId = benchLane(ctx, 'life');
  const ids = Array.from({ length: n }, randomExecutionId);
  const workers = Array.from({ length: WORKERS }, (_, i) => benchWorker(i));
  const enqueue = await phase(ctx, () => createMany(ctx.client, ids, laneId));
  const work = await phase(ctx, () =>
    inFlight(n, WORKERS, async (index, lane) => {
      const executionId = ids[index]!;
      const worker = workers[lane]!;
      const lease = await grantAndClaim(ctx.client, executionId, laneId, worker);
      await completeExecution(ctx.client, { executionId, laneId, workerInstanceId: worker.workerInstanceId, ...lease });
    }),
  );
  return { enqueueMs: enqueue.ms, workMs: work.ms, enqueueCpu: enqueue.cpu, workCpu: work.cpu };
}

/** The extension fast path: a solo lane (all on its partition), pipelined creates, one FCALL per job. */
async function fastRound(ctx: Context, n: number): Promise<Phases> {
  const laneId = benchLane(ctx, 'fast');
  const ids = Array.from({ length: n }, () => soloExecutionId(laneId, ctx.client.partitions));
  const workers = Array.from({ length: WORKERS }, (_, i) => benchWorker(i));
  const enqueue = await phase(ctx, () => createMany(ctx.client, ids, laneId));
  const work = await phase(ctx, () => Promise.all(workers.map((worker) => fastWorker(ctx.client, laneId, worker))));
  return { enqueueMs: enqueue.ms, workMs: work.ms, enqueueCpu: enqueue.cpu, workCpu: work.cpu };
}

async function bullRound(ctx: Context, n: number, round: number): Promise<Phases> {
  const connection = bullConnection(ctx.url);
  const name = `bench-${ctx.runId}-${round}`;
  const queue = new Queue(name, { connection });
  await queue.waitUntilReady();
  const worker = new BullWorker(name, async () => undefined, { connection, concurrency: WORKERS, autorun: false });
  try {
    await worker.waitUntilReady();
    const enqueue = await phase(ctx, () => addJobs(queue, n));
    const work = await phase(ctx, async () => {
      const done = completions(worker, n);
      void worker.run();
      await done;
    });
    return { enqueueMs: enqueue.ms, workMs: work.ms, enqueueCpu: enqueue.cpu, workCpu: work.cpu };
  } finally {
    await worker.close();
    await queue.close();
  }
}

interface Summary {
  readonly total: number;
  readonly enqueue: number;
  readonly work: number;
  readonly cpuPerJob: number;
  readonly enqueueCpuPerJob: number;
  readonly workCpuPerJob: number;
  readonly totals: number[];
}

function summarise(results: readonly Phases[], n: number): Summary {
  const rate = (ms: number) => (n * 1000) / ms;
  const perJob = (cpu: number) => (cpu * 1e6) / n;
  const totals = results.map((r) => rate(r.enqueueMs + r.workMs));
  return {
    total: median(totals),
    enqueue: median(results.map((r) => rate(r.enqueueMs))),
    work: median(results.map((r) => rate(r.workMs))),
    cpuPerJob: median(results.map((r) => perJob(r.enqueueCpu + r.workCpu))),
    enqueueCpuPerJob: median(results.map((r) => perJob(r.enqueueCpu))),
    workCpuPerJob: median(results.map((r) => perJob(r.workCpu))),
    totals,
  };
}

export const lifecycle: Case = {
  name: '4 lifecycle',
  async run(ctx: Context): Promise<Row[]> {
    const n = ctx.quick ? 2_000 : 20_000;
    let round = 0;
    const results = await rounds(ctx.plan, async (warmup) => {
      const size = warmup ? Math.max(500, n / 4) : n;
      round += 1;
      return { ours: await oursRound(ctx, size), fast: await fastRound(ctx, size), bull: await bullRound(ctx, size, round) };
    });
    const ours = summarise(results.map((r) => r.ours), n);
    const fast = summarise(results.map((r) => r.fast), n);
    const bull = summarise(results.map((r) => r.bull), n);
    const fastRatio = (pick: (s: Phases) => number, of: string, duration: boolean) => ({
      value: median(results.map((r) => (duration ? pick(r.bull) / pick(r.fast) : pick(r.fast) / pick(r.bull)))),
      of,
    });
    // Rounds are paired (same round, same server state): ratios are medians of per-round
    // ratios. For a duration the rate ratio ff/BullMQ is BullMQ's time over ours.
    const ratio = (pick: (s: Phases) => number, of: string, duration: boolean) => ({
      value: median(results.map((r) => (duration ? pick(r.bull) / pick(r.ours) : pick(r.ours) / pick(r.bull)))),
      of,
    });
    const c = this.name;
    const oursSettings = `one ioredis connection; creates pipelined ${ENQUEUE_CHUNK} per client.batch; ${WORKERS} workers each issueClaimGrant → claimExecution → completeExecution (3 FCALLs), ids handed out in-process (no scheduler scan); completed executions kept (terminal index)`;
    const bullSettings = `BullMQ ${bullmqVersion()} defaults (removeOnComplete off: every completed job kept; events stream capped at its default); addBulk ${ENQUEUE_CHUNK} per call; Worker concurrency ${WORKERS}, no-op processor`;
    return [
      { case: c, measurement: `ff-script, N=${n}, end to end (create + work phase)`, value: ours.total, unit: 'jobs/s', ratio: ratio((p) => p.enqueueMs + p.workMs, 'ff/BullMQ', true), note: oursSettings, rounds: ours.totals },
      { case: c, measurement: `BullMQ, N=${n}, end to end (addBulk + worker phase)`, value: bull.total, unit: 'jobs/s', note: bullSettings, rounds: bull.totals },
      { case: c, measurement: 'ff-script create phase (pipelined)', value: ours.enqueue, unit: 'jobs/s', ratio: ratio((p) => p.enqueueMs, 'ff/BullMQ addBulk', true) },
      { case: c, measurement: 'ff-script grant + claim + complete phase', value: ours.work, unit: 'jobs/s', ratio: ratio((p) => p.workMs, 'ff/BullMQ worker', true) },
      { case: c, measurement: 'BullMQ addBulk phase', value: bull.enqueue, unit: 'jobs/s' },
      { case: c, measurement: 'BullMQ worker phase', value: bull.work, unit: 'jobs/s' },
      {
        case: c,
        measurement: 'ff-script server CPU per job',
        value: ours.cpuPerJob,
        unit: 'µs/job',
        ratio: ratio((p) => p.enqueueCpu + p.workCpu, 'ff/BullMQ', false),
        note: `create ${ours.enqueueCpuPerJob.toFixed(1)} + grant/claim/complete ${ours.workCpuPerJob.toFixed(1)} µs; Δ(used_cpu_sys + used_cpu_user) / jobs`,
      },
      {
        case: c,
        measurement: `ff-script fast path, N=${n}, end to end`,
        value: fast.total,
        unit: 'jobs/s',
        ratio: fastRatio((p) => p.enqueueMs + p.workMs, 'fast/BullMQ', true),
        note: `extensions: ${WORKERS} workers each claimNextEligible once, then completeAndClaimNext per job (1 FCALL per job); solo lane on one partition; creates pipelined as above`,
        rounds: fast.totals,
      },
      {
        case: c,
        measurement: 'ff-script fast path server CPU per job',
        value: fast.cpuPerJob,
        unit: 'µs/job',
        ratio: fastRatio((p) => p.enqueueCpu + p.workCpu, 'fast/BullMQ', false),
        note: `create ${fast.enqueueCpuPerJob.toFixed(1)} + claim/complete ${fast.workCpuPerJob.toFixed(1)} µs`,
      },
      {
        case: c,
        measurement: 'BullMQ server CPU per job',
        value: bull.cpuPerJob,
        unit: 'µs/job',
        note: `addBulk ${bull.enqueueCpuPerJob.toFixed(1)} + worker ${bull.workCpuPerJob.toFixed(1)} µs`,
      },
    ];
  },
};
