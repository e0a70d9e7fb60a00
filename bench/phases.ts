// `npm run bench:phases [-- --n=1000] [--callgrind]`: the server cost of each step of the
// lifecycle on its own: create, claim grant, claim and complete (each pipelined, 1000 calls
// per round trip, so per-call I/O is small), then the fast path (one worker, one call per
// job) and the suspension cycle (one worker, five calls: suspend, signal, grant, resumed
// claim, complete; reported per cycle). Prints server CPU µs per call (INFO cpu), or, with --callgrind, the instructions
// the server ran per call — a figure that does not move with the machine's load. The
// floor steps are case 7's command-only replay of create, grant, claim and complete, the fcall
// steps its FCALL cost alone (a no-op function given the same KEYS and ARGV). For --callgrind,
// run redis-server under `valgrind --tool=callgrind` and point REDIS_URL at it: the script
// zeroes and reads the counters around each step with callgrind_control, and dumps a
// profile of each step.
import { execFileSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { buildClaimExecution, buildCompleteExecution, parseClaimExecution, parseCompleteExecution } from '../generated/execution.js';
import { buildIssueClaimGrant, parseIssueClaimGrant } from '../generated/scheduling.js';
import { call, FlowFabricClient } from '../runtime/client.js';
import { newAttemptId, newLeaseId, parseLaneId } from '../runtime/ids.js';
import { soloExecutionId } from '../runtime/partition.js';
import { startServer } from '../tools/local-server.js';
import { randomExecutionId, serverCpuSeconds } from './context.js';
import { FLOOR_PHASES, floorScript, lifecycleRequests, NOOP_LIBRARY } from './cases/floor.js';
import { benchWorker, createMany, ensureSecrets, fastWorker, grantAndClaim, pipelined, suspendResumeComplete, type Held } from './engine.js';

const argv = process.argv.slice(2);
const n = Number(argv.find((a) => a.startsWith('--n='))?.slice(4) ?? 10_000);
const callgrind = argv.includes('--callgrind');

/** Instructions counted so far by the callgrind-run server (all its threads). */
function callgrindTotal(): number {
  const out = execFileSync('callgrind_control', ['-e'], { encoding: 'utf8' });
  return [...out.matchAll(/^\s*Th \d+\s+([\d,]+)/gm)].reduce((sum, m) => sum + Number(m[1]!.replace(/,/g, '')), 0);
}

async function step(redis: Redis, name: string, block: () => Promise<void>, per = 'call'): Promise<void> {
  if (callgrind) {
    execFileSync('callgrind_control', ['-z'], { stdio: 'ignore' });
    await block();
    console.log(`${name.padEnd(16)} ${(callgrindTotal() / n / 1000).toFixed(1)} k instructions per ${per}`);
    // A profile dump of this step alone (callgrind.out.<pid>.<k>), for callgrind_annotate.
    execFileSync('callgrind_control', ['-d', name.replace(/\W+/g, '-')], { stdio: 'ignore' });
    return;
  }
  const before = await serverCpuSeconds(redis);
  await block();
  console.log(`${name.padEnd(16)} ${((((await serverCpuSeconds(redis)) - before) * 1e6) / n).toFixed(1)} µs server CPU per ${per}`);
}

async function main(): Promise<void> {
  const server = process.env.REDIS_URL ? undefined : await startServer();
  const redis = new Redis(process.env.REDIS_URL ?? server!.url, { maxRetriesPerRequest: 1 });
  const client = FlowFabricClient.fromIoredis(redis);
  try {
    await client.ensureLibrary();
    const run = `${process.pid}-${Date.now()}`;
    const laneId = parseLaneId(`phases-${run}`);
    const ids = Array.from({ length: n }, randomExecutionId);
    const worker = benchWorker(0);
    const leases = ids.map(() => ({ leaseId: newLeaseId(), attemptId: newAttemptId() }));
    const p = client.partitions;
    await step(redis, 'create', () => createMany(client, ids, laneId));
    await step(redis, 'grant', () =>
      pipelined(client, n, (i) => call(buildIssueClaimGrant({ executionId: ids[i]!, laneId, ...worker, grantTtlMs: 600_000 }, p), parseIssueClaimGrant)),
    );
    await step(redis, 'claim', () =>
      pipelined(client, n, (i) => call(buildClaimExecution({ executionId: ids[i]!, laneId, ...worker, ...leases[i]!, leaseTtlMs: 600_000 }, p), parseClaimExecution)),
    );
    await step(redis, 'complete', () =>
      pipelined(client, n, (i) =>
        call(
          buildCompleteExecution({ executionId: ids[i]!, laneId, workerInstanceId: worker.workerInstanceId, ...leases[i]!, leaseEpoch: 1, attemptIndex: 0 }, p),
          parseCompleteExecution,
        ),
      ),
    );
    // Case 7's floor: the same four steps' Redis commands in one EVAL loop, no Lua logic, no per-call cost.
    for (const phase of FLOOR_PHASES) await step(redis, `floor ${phase}`, async () => void (await redis.eval(floorScript(phase, n, `floor-${run}-`), 0)));
    // Case 7's FCALL cost alone: a no-op function given each step's KEYS and ARGV, pipelined as the
    // steps above. Contract − floor − this is what the Lua logic of the four calls costs.
    await redis.call('FUNCTION', 'LOAD', 'REPLACE', NOOP_LIBRARY);
    try {
      for (const [phase, request] of Object.entries(lifecycleRequests(client, laneId))) {
        await step(redis, `fcall ${phase}`, async () => {
          for (let start = 0; start < n; start += 1_000) {
            const batch = redis.pipeline();
            for (let i = start; i < Math.min(n, start + 1_000); i++) batch.call('FCALL', 'ffbench_noop', request.keys.length, ...request.keys, ...request.argv);
            await batch.exec();
          }
        });
      }
    } finally {
      await redis.call('FUNCTION', 'DELETE', 'ffbench_noop');
    }
    const fastLane = parseLaneId(`phases-fast-${run}`);
    await createMany(client, Array.from({ length: n }, () => soloExecutionId(fastLane, p)), fastLane);
    await step(redis, 'fast path', async () => void (await fastWorker(client, fastLane, worker)), 'job');
    // The same with the claimed execution's input answered in the call (what the Worker asks for).
    const inputLane = parseLaneId(`phases-input-${run}`);
    await createMany(client, Array.from({ length: n }, () => soloExecutionId(inputLane, p)), inputLane);
    await step(redis, 'fast + input', async () => void (await fastWorker(client, inputLane, worker, { withInput: true })), 'job');
    const cycleLane = parseLaneId(`phases-suspend-${run}`);
    const cycleIds = Array.from({ length: n }, randomExecutionId);
    await ensureSecrets(client, cycleIds);
    await createMany(client, cycleIds, cycleLane);
    const held: Held[] = [];
    for (const executionId of cycleIds) held.push({ executionId, worker, lease: await grantAndClaim(client, executionId, cycleLane, worker) });
    await step(redis, 'suspension cycle', async () => {
      for (const h of held) await suspendResumeComplete(client, cycleLane, h);
    }, 'cycle');
  } finally {
    redis.disconnect();
    await server?.stop();
  }
}

await main();
