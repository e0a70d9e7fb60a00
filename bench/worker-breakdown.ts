// Where the fast-path Worker's server work per job goes, next to the bare fast-path loop
// (case 12's two sides, issue 16): on one fresh server with the engine running, each side
// drains N queued no-op jobs; per job: commands by name (INFO commandstats: calls and
// server µs) and FCALLs by function (the client's onCall hook), this process's CPU per job,
// and the Worker's start-up time. Two rounds (the first warms the JIT).
// Run: npx tsx bench/worker-breakdown.ts [n] [worker]   (`worker`: the Worker side only)
//      CLAIM_PATH=admission …: the Worker on the admission path instead of the fast path
//      PROFILE=<dir> …: also a CPU profile of this process per drain, <dir>/<side>.cpuprofile
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { Redis } from 'ioredis';
import { Engine } from '../engine/index.js';
import { FlowFabricClient } from '../runtime/client.js';
import { parseLaneId, type LaneId } from '../runtime/ids.js';
import { laneHashPartitioner, soloExecutionId } from '../runtime/partition.js';
import { startServer } from '../tools/local-server.js';
import { Worker } from '../worker/index.js';
import { serverCpuSeconds } from './context.js';
import { benchWorker, createMany, fastWorker } from './engine.js';

const n = Number(process.argv[2] ?? 20_000);
const only = process.argv[3];
/** CLAIM_PATH=admission: the Worker side on the admission path (default the fast path). */
const claimPath = process.env['CLAIM_PATH'] === 'admission' ? 'admission' : 'fast';
const CONCURRENCY = 16;

type Stats = Map<string, { calls: number; usec: number }>;

async function commandStats(redis: Redis): Promise<Stats> {
  const stats: Stats = new Map();
  for (const line of (await redis.info('commandstats')).split('\r\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line);
    if (m) stats.set(m[1]!, { calls: Number(m[2]), usec: Number(m[3]) });
  }
  return stats;
}

async function measure(label: string, redis: Redis, fcalls: Map<string, number>, body: () => Promise<void>): Promise<void> {
  fcalls.clear();
  const before = await commandStats(redis);
  const cpu = await serverCpuSeconds(redis);
  // PROFILE=dir: a CPU profile of this process during the drain alone (dir/<label>.cpuprofile).
  const session = process.env['PROFILE'] ? new Session() : undefined;
  if (session) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  const clientCpu = process.cpuUsage();
  const started = performance.now();
  await body();
  const ms = performance.now() - started;
  const clientUsage = process.cpuUsage(clientCpu);
  if (session) {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(`${process.env['PROFILE']}/${label.replace(/\W+/g, '-')}.cpuprofile`, JSON.stringify(profile));
    session.disconnect();
  }
  const serverCpu = (await serverCpuSeconds(redis)) - cpu;
  const after = await commandStats(redis);
  console.log(`\n== ${label}: ${((n * 1000) / ms).toFixed(0)} jobs/s, server CPU ${((serverCpu * 1e6) / n).toFixed(1)} µs/job, client CPU ${((clientUsage.user + clientUsage.system) / n).toFixed(1)} µs/job`);
  const rows = [...after].map(([name, a]) => {
    const b = before.get(name) ?? { calls: 0, usec: 0 };
    return { name, calls: (a.calls - b.calls) / n, usec: (a.usec - b.usec) / n };
  });
  for (const r of rows.filter((r) => r.calls > 0).sort((x, y) => y.usec - x.usec)) console.log(`  ${r.name.padEnd(20)} ${r.calls.toFixed(3)} calls/job  ${r.usec.toFixed(1)} µs/job`);
  for (const [fn, count] of [...fcalls].sort((x, y) => y[1] - x[1])) console.log(`  fcall ${fn.padEnd(34)} ${(count / n).toFixed(3)} /job (${count})`);
}

const server = await startServer();
const redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
const fcalls = new Map<string, number>();
const client = FlowFabricClient.fromIoredis(redis, { onCall: (e) => fcalls.set(e.fn, (fcalls.get(e.fn) ?? 0) + 1) });
await client.ensureLibrary();
const engine = new Engine({ client, logLevel: 'error' });
await engine.start();
try {
  for (let round = 0; round < 2; round++) {
    if (only !== 'worker') {
      const bare = parseLaneId(`bare-${round}`) as LaneId;
      await createMany(client, Array.from({ length: n }, () => soloExecutionId(bare, client.partitions)), bare);
      await measure('bare fast-path loop', redis, fcalls, async () => {
        await Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => fastWorker(client, bare, benchWorker(i))));
      });
    }
    const lane = parseLaneId(`worker-${round}`) as LaneId;
    await createMany(client, Array.from({ length: n }, () => soloExecutionId(lane, client.partitions)), lane);
    let completed = 0;
    let finish: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (finish = resolve));
    const worker = new Worker({
      client, lanes: lane, handler: async () => undefined, concurrency: CONCURRENCY, claimPath,
      partitions: laneHashPartitioner.partitionsOf(lane, client.partitions), installWaitpointSecrets: false,
    });
    worker.on('completed', () => { if (++completed === n) finish(); });
    worker.on('error', (e) => console.error('worker error', e));
    let firstClaim = 0;
    worker.once('claimed', () => (firstClaim = performance.now()));
    let startMs = 0;
    let t0 = 0;
    await measure(`Worker, ${claimPath} path`, redis, fcalls, async () => {
      t0 = performance.now();
      await worker.start();
      startMs = performance.now() - t0;
      await done;
    });
    console.log(`  start() ${startMs.toFixed(1)} ms, first claim after ${(firstClaim - t0).toFixed(1)} ms`);
    console.log('  worker counters', JSON.stringify(worker.counters));
    await worker.close();
  }
} finally {
  await engine.stop();
  redis.disconnect();
  await server.stop();
}
