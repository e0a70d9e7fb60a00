// This project's Worker (worker/) as case 12 drives it: throughput of N queued no-op jobs on
// the fast path and on the admission-checked path, creation-to-completion latency at a fixed
// creation rate, and idle workers (the engine runs during the case, started by it).
import { Engine } from '../engine/index.js';
import type { FlowFabricClient } from '../runtime/client.js';
import type { ExecutionId, LaneId } from '../runtime/ids.js';
import { laneHashPartitioner, soloExecutionId } from '../runtime/partition.js';
import { wakeChannel, Worker, type ClaimPath } from '../worker/index.js';
import { benchLane, serverCpuSeconds, type Context } from './context.js';
import { createMany } from './engine.js';
import { median, openLoop } from './measure.js';
import type { Dedicated } from './servers.js';

/** One drain of N queued jobs: wall time, server CPU (s) and this process's CPU (s). */
export interface Drain {
  readonly ms: number;
  readonly serverCpu: number;
  readonly clientCpu: number;
  /** Server CPU (s) of queueing the N jobs beforehand (creates / addBulk). */
  readonly enqueueCpu: number;
}

/** Creation-to-completion latencies (ms), and where the time went when the side can tell. */
export interface LatencyRun {
  readonly latencies: number[];
  readonly breakdown?: string;
}

export interface DrainSide {
  readonly label: string;
  drain(ctx: Context, n: number): Promise<Drain>;
  /** Creation-to-completion latencies (ms) of n jobs created at ratePerSecond while the workers run. */
  latency?(ctx: Context, n: number, ratePerSecond: number): Promise<LatencyRun>;
}

/** The first of the ascending `times` at or after `t` (binary search: thousands of wake-ups). */
function firstAtOrAfter(times: readonly number[], t: number): number | undefined {
  let low = 0;
  let high = times.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (times[mid]! < t) low = mid + 1;
    else high = mid;
  }
  return times[low];
}

/** The median of each stage, in ms with a decimal: "a 0.9 ms, b 2.1 ms". */
function stageMedians(stages: Readonly<Record<string, number[]>>): string {
  return Object.entries(stages)
    .map(([stage, values]) => `${stage} ${median(values).toFixed(1)} ms`)
    .join(', ');
}

/** Why the project's Worker cannot be measured, or undefined once it can. */
export const OURS_MISSING: string | undefined = undefined;

/**
 * A Worker on one solo lane, looking only in the lane's partitions (what the partitioner
 * names, here one), lease renewal on (default 30 s lease, renewed every 10 s), housekeeping
 * on (its defaults).
 */
function laneWorker(client: FlowFabricClient, laneId: LaneId, claimPath: ClaimPath, concurrency: number, onCompleted: (id: ExecutionId) => void): Worker {
  const worker = new Worker({
    client,
    lanes: laneId,
    handler: async () => undefined,
    concurrency,
    claimPath,
    partitions: laneHashPartitioner.partitionsOf(laneId, client.partitions),
    installWaitpointSecrets: false, // the engine's boot installed them
  });
  worker.on('completed', (event) => onCompleted(event.executionId));
  return worker;
}

function side(claimPath: ClaimPath, concurrency: number): DrainSide {
  return {
    label: `ff-script Worker, ${claimPath} path`,
    async drain(ctx, n) {
      const laneId = benchLane(ctx, `worker-${claimPath}`);
      {
        const enqueueStart = await serverCpuSeconds(ctx.redis);
        await createMany(ctx.client, Array.from({ length: n }, () => soloExecutionId(laneId, ctx.client.partitions)), laneId);
        const enqueueCpu = (await serverCpuSeconds(ctx.redis)) - enqueueStart;
        let completed = 0;
        let finish: () => void = () => undefined;
        const done = new Promise<void>((resolve) => (finish = resolve));
        const worker = laneWorker(ctx.client, laneId, claimPath, concurrency, () => {
          if (++completed === n) finish();
        });
        worker.on('error', () => undefined); // counted in worker.counters; a drain that stalls shows in its time
        const cpu = await serverCpuSeconds(ctx.redis);
        const client = process.cpuUsage();
        const started = performance.now();
        await worker.start();
        await done;
        const ms = performance.now() - started;
        const clientUsage = process.cpuUsage(client);
        const serverCpu = (await serverCpuSeconds(ctx.redis)) - cpu;
        await worker.close();
        return { ms, serverCpu, clientCpu: (clientUsage.user + clientUsage.system) / 1e6, enqueueCpu };
      }
    },
    async latency(ctx, n, ratePerSecond) {
      const laneId = benchLane(ctx, `latency-${claimPath}`);
      const createdAt = new Map<ExecutionId, number>();
      const latencies: number[] = [];
      // Where the time went (performance.now(), sub-ms): creation → the lane's wake-up as a
      // subscriber of our own sees it (the Worker's arrives alike) → the Worker's claimed
      // event (its claim round: heads, admission, grant, claim) → its completed event
      // (handler, complete).
      const precise = new Map<ExecutionId, number>();
      const claimedAt = new Map<ExecutionId, number>();
      const wakes: number[] = [];
      const stages: Record<string, number[]> = { 'creation → wake-up': [], 'wake-up → claimed': [], 'claimed → completed': [] };
      let finish: () => void = () => undefined;
      const done = new Promise<void>((resolve) => (finish = resolve));
      const worker = laneWorker(ctx.client, laneId, claimPath, concurrency, (id) => {
        const at = createdAt.get(id);
        if (at !== undefined) latencies.push(Date.now() - at);
        const created = precise.get(id);
        const claimed = claimedAt.get(id);
        const wake = created === undefined ? undefined : firstAtOrAfter(wakes, created);
        if (created !== undefined && claimed !== undefined && wake !== undefined && wake <= claimed) {
          stages['creation → wake-up']!.push(wake - created);
          stages['wake-up → claimed']!.push(claimed - wake);
          stages['claimed → completed']!.push(performance.now() - claimed);
        }
        if (latencies.length === n) finish();
      });
      worker.on('claimed', (event) => claimedAt.set(event.executionId, performance.now()));
      worker.on('error', () => undefined);
      const subscriber = ctx.redis.duplicate();
      subscriber.on('message', () => wakes.push(performance.now()));
      try {
        await subscriber.subscribe(wakeChannel(laneId));
        await worker.start();
        await openLoop(n, ratePerSecond, async (count) => {
          const ids = Array.from({ length: count }, () => soloExecutionId(laneId, ctx.client.partitions));
          const now = Date.now();
          const nowPrecise = performance.now();
          for (const id of ids) {
            createdAt.set(id, now);
            precise.set(id, nowPrecise);
          }
          await createMany(ctx.client, ids, laneId);
        });
        await done;
        return { latencies, breakdown: `p50 of each stage: ${stageMedians(stages)}` };
      } finally {
        await worker.close();
        subscriber.disconnect();
      }
    },
  };
}

/** The project's Worker sides: the fast path and the admission-checked path. */
export function oursSides(_ctx: Context, concurrency: number): DrainSide[] {
  return [side('fast', concurrency), side('admission', concurrency)];
}

/**
 * Idle Workers on one lane of a dedicated server: defaults (admission path, every partition),
 * or looking only in the lane's partitions (on the given claim path).
 */
export async function oursIdle(s: Dedicated, count: number, concurrency: number, lanePartitionsOnly: boolean, claimPath?: ClaimPath): Promise<() => Promise<void>> {
  const laneId = 'idle' as LaneId;
  const workers = Array.from(
    { length: count },
    () =>
      new Worker({
        client: s.client,
        lanes: laneId,
        handler: async () => undefined,
        concurrency,
        ...(claimPath ? { claimPath } : {}),
        ...(lanePartitionsOnly ? { partitions: laneHashPartitioner.partitionsOf(laneId, s.client.partitions) } : {}),
      }),
  );
  for (const worker of workers) worker.on('error', () => undefined);
  await Promise.all(workers.map((w) => w.start()));
  return async () => {
    await Promise.all(workers.map((w) => w.close()));
  };
}

/** The engine alone, idle, on a dedicated server. */
export async function engineIdle(s: Dedicated): Promise<() => Promise<void>> {
  const engine = new Engine({ client: s.client, logLevel: 'error' });
  await engine.start();
  return () => engine.stop();
}
