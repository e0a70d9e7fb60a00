// Case 9: how the claim path's server cost per job and a scanner cycle's cost move as data
// grows. One dedicated server per size (stream-node-max-bytes 512 on all of them, so a
// million retained executions fit in memory), each holding one lane whose executions are
// spread evenly over all 256 partitions:
//   - "1k": 1,024 eligible (4 per partition), the baseline;
//   - "100k": 102,400 eligible ("10k" in --quick); "1M": 1,048,576 eligible (--growth-full);
//   - "+retained": the baseline's 1,024 eligible after 102,400 executions of the same lane
//     ran create → claim → complete and stay terminal (10k in --quick; 1M with --growth-full).
// Each round visits every server in turn (order rotating) and measures on it:
//   - fast-path claim: 256 claimNextEligible (one per partition), pipelined; then their
//     completeExecution, pipelined (measured apart);
//   - grant path: per partition the scheduler's head read (ZRANGEBYSCORE … LIMIT 0 1), then
//     issueClaimGrant and claimExecution for each head, pipelined;
//   - one cycle of every scanner of the engine (engine/, Engine.runOnce, its defaults,
//     lanes given) except the index reconciler, over all partitions;
//   - a control: HGET of one field of random existing executions' cores (4 per partition),
//     the cost of touching a key at all, which tells cache and dictionary effects of a larger
//     keyspace apart from the Lua's own work;
// then refills exactly the partitions it consumed (not measured), so sizes stay constant.
// Server CPU is Δ(used_cpu_sys + used_cpu_user) of that server; ratios are medians of
// per-round ratios against the 1k server measured in the same round.
// The index reconciler, which the reference runs over every execution each cycle, reads a
// bounded slice per partition and cycle here (docs/engine.md): its cost per cycle grows with
// the data up to that bound (reached at ~51k executions) and is flat beyond. One cycle of it
// is measured once per server, at the end, and reported in a row of its own.
import { randomUUID } from 'node:crypto';
import { Engine, SCANNER_NAMES, type ScannerName } from '../../engine/index.js';
import { scanLimits } from '../../engine/engine.js';
import { buildClaimExecution, buildCompleteExecution, parseClaimExecution, parseCompleteExecution } from '../../generated/execution.js';
import { buildClaimNextEligible, parseClaimNextEligible } from '../../generated/fastpath.js';
import { PartitionKeys } from '../../generated/keys.js';
import { buildIssueClaimGrant, parseIssueClaimGrant } from '../../generated/scheduling.js';
import { call } from '../../runtime/client.js';
import { newAttemptId, newLeaseId, parseExecutionId, type ExecutionId, type LaneId } from '../../runtime/ids.js';
import { hashTag } from '../../runtime/partition.js';
import { benchLane, serverCpuSeconds, type Case, type Context, type Row } from '../context.js';
import { benchWorker, createMany, pipelinedValues } from '../engine.js';
import { median } from '../measure.js';
import { RECOMMENDED_SETTINGS, usedMemory, withServers, type Dedicated } from '../servers.js';

export const PARTITIONS = 256;
/** The index reconciler's executions per partition and cycle at the engine's defaults. */
const RECONCILER_SLICE = scanLimits('index_reconciler').maxPerPartition;
const WORKER = benchWorker(0);

/** An execution id on partition p: the growth case spreads its lane evenly by construction. */
const idOn = (partition: number): ExecutionId => parseExecutionId(`${hashTag('fp', partition)}:${randomUUID()}`);
export const evenIds = (count: number): ExecutionId[] => Array.from({ length: count }, (_, i) => idOn(i % PARTITIONS));

export interface Subject {
  readonly label: string;
  readonly eligible: number;
  readonly retained: number;
}

export interface Filled extends Subject {
  readonly s: Dedicated;
  /** The server cost counter the blocks read before and after each step: server CPU seconds by default. */
  readonly meter?: () => Promise<number>;
  /** The engine's scanners on this server, driven one cycle at a time (never started). */
  readonly engine: Engine;
  readonly laneId: LaneId;
  readonly fillSeconds: number;
  readonly bytes: number;
}

/** Claims one execution per given partition (fast path) and completes them all; returns how many it claimed. */
const cost = (f: Filled): Promise<number> => (f.meter ? f.meter() : serverCpuSeconds(f.s.redis));

export async function claimAndComplete(f: Filled, partitions: readonly number[], cpu?: { claim: number; complete: number }): Promise<number> {
  const p = f.s.client.partitions;
  let before = await cost(f);
  const claims = await pipelinedValues(f.s.client, partitions.length, (i) =>
    call(buildClaimNextEligible({ ...WORKER, laneId: f.laneId, partition: partitions[i]!, leaseId: newLeaseId(), attemptId: newAttemptId(), leaseTtlMs: 600_000 }, p), parseClaimNextEligible),
  );
  const claimed = claims.flatMap((c) => (c.status === 'claimed' ? [c] : []));
  if (cpu) cpu.claim = (await cost(f)) - before;
  before = await cost(f);
  await pipelinedValues(f.s.client, claimed.length, (i) => {
    const c = claimed[i]!;
    return call(buildCompleteExecution({ executionId: c.executionId, laneId: f.laneId, workerInstanceId: WORKER.workerInstanceId, leaseId: c.leaseId, leaseEpoch: c.leaseEpoch, attemptId: c.attemptId, attemptIndex: c.attemptIndex }, p), parseCompleteExecution);
  });
  if (cpu) cpu.complete = (await cost(f)) - before;
  return claimed.length;
}

/** The scheduler's way: head of each partition's eligible set, a grant for it, the claim; then completes (not counted). */
export async function grantPath(f: Filled, partitions: readonly number[]): Promise<{ cpu: number; claimed: number }> {
  const p = f.s.client.partitions;
  const before = await cost(f);
  const heads = f.s.redis.pipeline();
  for (const partition of partitions) heads.zrangebyscore(PartitionKeys.forPartition(partition).laneEligible(f.laneId), '-inf', '+inf', 'LIMIT', 0, 1);
  const ids = ((await heads.exec()) ?? []).flatMap(([error, reply]) => (error || !Array.isArray(reply) || reply.length === 0 ? [] : [parseExecutionId(String(reply[0]))]));
  await pipelinedValues(f.s.client, ids.length, (i) => call(buildIssueClaimGrant({ executionId: ids[i]!, laneId: f.laneId, ...WORKER, grantTtlMs: 60_000 }, p), parseIssueClaimGrant));
  const leases = ids.map(() => ({ leaseId: newLeaseId(), attemptId: newAttemptId() }));
  await pipelinedValues(f.s.client, ids.length, (i) => call(buildClaimExecution({ executionId: ids[i]!, laneId: f.laneId, ...WORKER, ...leases[i]!, leaseTtlMs: 600_000 }, p), parseClaimExecution));
  const cpu = (await cost(f)) - before;
  await pipelinedValues(f.s.client, ids.length, (i) =>
    call(buildCompleteExecution({ executionId: ids[i]!, laneId: f.laneId, workerInstanceId: WORKER.workerInstanceId, ...leases[i]!, leaseEpoch: 1, attemptIndex: 0 }, p), parseCompleteExecution),
  );
  return { cpu, claimed: ids.length };
}

/** Every scanner but the index reconciler, one engine cycle each: server CPU (s). */
export async function scannerCycle(f: Filled): Promise<number> {
  const before = await cost(f);
  for (const name of CYCLE_SCANNERS) await f.engine.runOnce(name);
  return (await cost(f)) - before;
}

const CYCLE_SCANNERS: readonly ScannerName[] = SCANNER_NAMES.filter((name) => name !== 'index_reconciler');

/** HGET of one core field of 4 random existing executions per partition: server CPU (s) per key. */
export async function touchKeys(f: Filled): Promise<number> {
  const sample = f.s.redis.pipeline();
  for (let partition = 0; partition < PARTITIONS; partition++) sample.srandmember(PartitionKeys.forPartition(partition).allExecutions(), 4);
  const keys = ((await sample.exec()) ?? []).flatMap(([, reply], partition) =>
    Array.isArray(reply) ? reply.map((eid) => `ff:exec:${hashTag('fp', partition)}:${String(eid)}:core`) : [],
  );
  const before = await cost(f);
  const touch = f.s.redis.pipeline();
  for (const key of keys) touch.hget(key, 'lifecycle_phase');
  await touch.exec();
  return ((await cost(f)) - before) / Math.max(1, keys.length);
}

/** One engine cycle of the index reconciler alone (a bounded slice of each partition). */
async function reconcilerPass(f: Filled): Promise<{ cpu: number; members: number }> {
  const before = await serverCpuSeconds(f.s.redis);
  await f.engine.runOnce('index_reconciler');
  return { cpu: (await serverCpuSeconds(f.s.redis)) - before, members: await allExecutions(f) };
}

async function allExecutions(f: Filled): Promise<number> {
  const pipeline = f.s.redis.pipeline();
  for (let partition = 0; partition < PARTITIONS; partition++) pipeline.scard(PartitionKeys.forPartition(partition).allExecutions());
  return ((await pipeline.exec()) ?? []).reduce((sum, [, n]) => sum + Number(n), 0);
}

export async function fill(ctx: Context, s: Dedicated, subject: Subject): Promise<Filled> {
  const started = performance.now();
  const laneId = benchLane(ctx, `growth-${subject.label}`);
  const engine = new Engine({ client: s.client, lanes: [laneId], completionListener: false, boot: false, logLevel: 'warn' });
  const f: Filled = { ...subject, s, engine, laneId, fillSeconds: 0, bytes: 0 };
  // Retained first: the lane's executions run their whole life, then stay terminal.
  const chunk = 256 * 40;
  for (let done = 0; done < subject.retained; done += chunk) {
    const count = Math.min(chunk, subject.retained - done);
    await createMany(s.client, evenIds(count), laneId);
    let left = count;
    for (let guard = 0; left > 0 && guard < 1_000; guard++) {
      const partitions = Array.from({ length: Math.min(left, 1024) }, (_, i) => i % PARTITIONS);
      left -= await claimAndComplete(f, partitions);
    }
  }
  for (let done = 0; done < subject.eligible; done += chunk) await createMany(s.client, evenIds(Math.min(chunk, subject.eligible - done)), laneId);
  return { ...f, fillSeconds: (performance.now() - started) / 1000, bytes: await usedMemory(s.redis) };
}

export interface Round {
  readonly claim: number;
  readonly complete: number;
  readonly grant: number;
  readonly scan: number;
  readonly touch: number;
}

/** One measured block on a server: claims and completes, the grant path, one scanner cycle; then refills what it used. */
export async function block(f: Filled): Promise<Round> {
  const all = Array.from({ length: PARTITIONS }, (_, i) => i);
  const cpu = { claim: 0, complete: 0 };
  const claimed = await claimAndComplete(f, all, cpu);
  const grant = await grantPath(f, all);
  const scan = await scannerCycle(f);
  const touch = await touchKeys(f);
  if (claimed !== PARTITIONS || grant.claimed !== PARTITIONS) throw new Error(`${f.label}: claimed ${claimed} and ${grant.claimed} of ${PARTITIONS}`);
  await createMany(f.s.client, [...evenIds(PARTITIONS), ...evenIds(PARTITIONS)], f.laneId);
  return { claim: cpu.claim / PARTITIONS, complete: cpu.complete / PARTITIONS, grant: grant.cpu / PARTITIONS, scan, touch };
}

const count = (n: number) => (n >= 1_000_000 ? `${Math.round(n / 1_048_576)}M` : `${Math.round(n / 1_024)}k`);

export const growth: Case = {
  name: '9 growth',
  async run(ctx: Context): Promise<Row[]> {
    const full = ctx.flags.has('--growth-full');
    const big = ctx.quick ? 10_240 : 102_400;
    const subjects: Subject[] = [
      { label: 'base', eligible: 1_024, retained: 0 },
      { label: 'eligible', eligible: big, retained: 0 },
      ...(full ? [{ label: 'eligible-1M', eligible: 1_048_576, retained: 0 }] : []),
      { label: 'retained', eligible: 1_024, retained: full ? 1_048_576 : big },
    ];
    const roundsCount = ctx.quick ? 3 : 10;
    return withServers(subjects.map((s) => ({ label: s.label, args: RECOMMENDED_SETTINGS })), async (servers) => {
      const filled: Filled[] = [];
      for (const [i, subject] of subjects.entries()) {
        process.stderr.write(`[fill ${subject.label}] `);
        filled.push(await fill(ctx, servers[i]!, subject));
      }
      const perRound: Round[][] = [];
      for (let r = 0; r < roundsCount; r++) {
        const results: Round[] = new Array<Round>(filled.length);
        for (let j = 0; j < filled.length; j++) {
          const i = (j + r) % filled.length;
          results[i] = await block(filled[i]!);
        }
        perRound.push(results);
      }
      const reconcile: { cpu: number; members: number }[] = [];
      for (const f of filled) reconcile.push(await reconcilerPass(f));

      const c = this.name;
      const rows: Row[] = [];
      const us = (x: number) => x * 1e6;
      for (const [i, f] of filled.entries()) {
        const pick = (k: keyof Round) => median(perRound.map((r) => r[i]![k]));
        const ratio = (k: keyof Round) => ({ value: median(perRound.map((r) => r[i]![k] / r[0]![k])), of: 'of 1k' });
        const what = f.retained > 0 ? `1k eligible + ${count(f.retained)} retained terminal` : `${count(f.eligible)} eligible`;
        const base = i === 0;
        rows.push(
          {
            case: c, measurement: `fast-path claim, ${what}`, value: us(pick('claim')), unit: 'µs/job', ...(base ? {} : { ratio: ratio('claim') }),
            note: `claimNextEligible, one per partition, pipelined; complete ${us(pick('complete')).toFixed(1)} µs/job${base ? '' : ` (${ratio('complete').value.toFixed(2)}× of 1k)`}; filled in ${f.fillSeconds.toFixed(0)} s, used_memory ${(f.bytes / 2 ** 20).toFixed(0)} MiB`,
            rounds: perRound.map((r) => us(r[i]!.claim)),
          },
          {
            case: c, measurement: `grant path claim, ${what}`, value: us(pick('grant')), unit: 'µs/job', ...(base ? {} : { ratio: ratio('grant') }),
            note: 'head read (ZRANGEBYSCORE LIMIT 0 1) + issueClaimGrant + claimExecution per partition, pipelined',
            rounds: perRound.map((r) => us(r[i]!.grant)),
          },
          {
            case: c, measurement: `engine scanner cycle, ${what}`, value: us(pick('scan')), unit: 'µs/cycle', ...(base ? {} : { ratio: ratio('scan') }),
            note: `Engine.runOnce of the ${CYCLE_SCANNERS.length} scanners other than the index reconciler (defaults, lane given), all partitions`,
            rounds: perRound.map((r) => us(r[i]!.scan)),
          },
          {
            case: c, measurement: `index reconciler cycle, ${what}`, value: us(reconcile[i]!.cpu), unit: 'µs/cycle',
            ...(base ? {} : { ratio: { value: reconcile[i]!.cpu / reconcile[0]!.cpu, of: 'of 1k' } }),
            note: `Engine.runOnce('index_reconciler'), once: ${reconcile[i]!.members} executions, at most ${RECONCILER_SLICE} read per partition and cycle (${PARTITIONS * RECONCILER_SLICE} in all: the cost is flat from there on), so a full pass takes ${Math.ceil(reconcile[i]!.members / PARTITIONS / RECONCILER_SLICE)} cycle(s); the reference reads all of them every cycle`,
          },
          {
            case: c, measurement: `control: HGET of a random execution's core field, ${what}`, value: us(pick('touch')), unit: 'µs/key', ...(base ? {} : { ratio: ratio('touch') }),
            note: '1,024 random existing executions per block, pipelined: what touching any key costs at this keyspace size (cache and dictionary effects, no Lua)',
            rounds: perRound.map((r) => us(r[i]!.touch)),
          },
        );
      }
      return rows;
    });
  },
};
