// Case 8: server memory per retained completed execution against BullMQ's completed job,
// on two dedicated servers started for the case: one with the server's defaults, one with
// the setting `ff-script doctor` recommends (stream-node-max-bytes 512). On each, N
// executions run create → claim → complete (fast path, one solo lane; the stored state is
// the contract's, minus the grant hash that is deleted by the claim anyway) and N BullMQ
// jobs run addBulk → Worker → completed (kept, its default). Figures: used_memory delta / N
// (everything: keys, index entries, BullMQ's events stream), and MEMORY USAGE summed over
// one execution's (job's) own keys, by key.
//
// Then what that setting costs the output-frame streams: on each server, F frames appended
// to one attempt's stream (ff_append_frame, pipelined) and read back (ff_read_attempt_stream,
// pages of 1000): frames/s, server CPU per frame, bytes per frame. Blocks alternate between
// the two servers, so drift on a shared machine hits both alike.
import { appendFrame, buildAppendFrame, parseAppendFrame, readAttemptStream } from '../../generated/stream.js';
import { claimNextEligible, type ClaimNextEligibleResult } from '../../generated/fastpath.js';
import { call } from '../../runtime/client.js';
import { newAttemptId, newLeaseId } from '../../runtime/ids.js';
import { soloExecutionId, soloPartition } from '../../runtime/partition.js';
import { bullmqVersion, runBullJobs } from '../bull.js';
import { benchLane, serverCpuSeconds, type Case, type Context, type Row } from '../context.js';
import { benchWorker, createMany, fastWorker, pipelined } from '../engine.js';
import { median } from '../measure.js';
import { RECOMMENDED_SETTINGS, keyBytes, usedMemory, withServers, type Dedicated } from '../servers.js';

const WORKERS = 16;
const FRAME_PAYLOAD = 'x'.repeat(48); // a token or log line

interface Footprint {
  readonly perExecution: number;
  readonly ownKeys: number;
  readonly breakdown: string;
}

/** Shortens a key to its role: ff:exec:{fp:7}:{fp:7}:<uuid>:lease:history → exec:lease:history. */
function role(key: string, id: string): string {
  return key.replace(/\{fp:\d+\}:/g, '').replace(id, '·').replace(/^ff:/, '').replace(/:·/, '');
}

async function oursFootprint(ctx: Context, s: Dedicated, n: number): Promise<Footprint> {
  const laneId = benchLane(ctx, 'mem');
  const ids = Array.from({ length: n }, () => soloExecutionId(laneId, s.client.partitions));
  const before = await usedMemory(s.redis);
  await createMany(s.client, ids, laneId);
  const done = await Promise.all(Array.from({ length: WORKERS }, (_, i) => fastWorker(s.client, laneId, benchWorker(i))));
  if (done.reduce((a, b) => a + b, 0) !== n) throw new Error(`completed ${done.reduce((a, b) => a + b, 0)} of ${n}`);
  const perExecution = ((await usedMemory(s.redis)) - before) / n;
  const uuid = ids[0]!.slice(ids[0]!.indexOf('}:') + 2);
  const own = await keyBytes(s.redis, `*${uuid}*`);
  const breakdown = Object.entries(own.keys)
    .sort(([, a], [, b]) => b - a)
    .map(([key, bytes]) => `${role(key, uuid)} ${bytes}`)
    .join(', ');
  return { perExecution, ownKeys: own.total, breakdown };
}

async function bullFootprint(ctx: Context, s: Dedicated, n: number, round: number): Promise<Footprint> {
  const name = `mem-${ctx.runId}-${s.label}-${round}`;
  const before = await usedMemory(s.redis);
  await runBullJobs(s.server.url, name, n, WORKERS);
  const perExecution = ((await usedMemory(s.redis)) - before) / n;
  const job = await keyBytes(s.redis, `bull:${name}:1`);
  return { perExecution, ownKeys: job.total, breakdown: `job hash ${job.total}; plus its completed-set entry and events-stream entries (capped)` };
}

/** Claims one fresh execution of a new lane on `s`: the stream's owner. */
async function heldExecution(ctx: Context, s: Dedicated): Promise<Extract<ClaimNextEligibleResult, { status: 'claimed' }>> {
  const laneId = benchLane(ctx, 'frames');
  await createMany(s.client, [soloExecutionId(laneId, s.client.partitions)], laneId);
  const claim = await claimNextEligible(s.client, {
    ...benchWorker(0), laneId, partition: soloPartition(laneId, s.client.partitions), leaseId: newLeaseId(), attemptId: newAttemptId(), leaseTtlMs: 600_000,
  });
  if (claim.status !== 'claimed') throw new Error('no execution to hold');
  return claim;
}

interface FrameBlock {
  readonly appendMs: number;
  readonly appendCpu: number;
  readonly readMs: number;
  readonly readCpu: number;
  readonly bytes: number;
}

/** Appends `frames` frames to a new attempt's stream, then reads them all back, timing each half. */
async function frameBlock(ctx: Context, s: Dedicated, frames: number): Promise<FrameBlock> {
  const held = await heldExecution(ctx, s);
  const base = { executionId: held.executionId, attemptIndex: held.attemptIndex, leaseId: held.leaseId, leaseEpoch: held.leaseEpoch, frameType: 'token' };
  await appendFrame(s.client, { ...base, payload: FRAME_PAYLOAD }); // creates the stream and its meta
  const memBefore = await usedMemory(s.redis);
  let cpu = await serverCpuSeconds(s.redis);
  let started = performance.now();
  await pipelined(s.client, frames, () => call(buildAppendFrame({ ...base, payload: FRAME_PAYLOAD }, s.client.partitions), parseAppendFrame));
  const appendMs = performance.now() - started;
  const appendCpu = (await serverCpuSeconds(s.redis)) - cpu;
  const bytes = ((await usedMemory(s.redis)) - memBefore) / frames;
  cpu = await serverCpuSeconds(s.redis);
  started = performance.now();
  let from = '-';
  let read = 0;
  for (let page = 0; page < frames; page++) {
    const reply = await readAttemptStream(s.client, { executionId: held.executionId, attemptIndex: held.attemptIndex, fromId: from, countLimit: 1000 });
    if (reply.entries.length === 0) break;
    read += reply.entries.length;
    from = `(${reply.entries[reply.entries.length - 1]!.id}`;
  }
  const readMs = performance.now() - started;
  const readCpu = (await serverCpuSeconds(s.redis)) - cpu;
  if (read < frames) throw new Error(`read ${read} of ${frames + 1} frames`);
  return { appendMs, appendCpu, readMs, readCpu, bytes };
}

export const memory: Case = {
  name: '8 memory',
  async run(ctx: Context): Promise<Row[]> {
    const n = ctx.quick ? 2_000 : 10_000;
    const frames = ctx.quick ? 2_000 : 10_000;
    const blocks = ctx.quick ? 2 : 6;
    return withServers([{ label: 'default' }, { label: 'recommended', args: RECOMMENDED_SETTINGS }], async ([plain, tuned]) => {
      const rows: Row[] = [];
      const c = this.name;
      const footprints: { s: Dedicated; ours: Footprint; bull: Footprint }[] = [];
      for (const s of [plain!, tuned!]) {
        const ours = await oursFootprint(ctx, s, n);
        const bull = await bullFootprint(ctx, s, n, 1);
        footprints.push({ s, ours, bull });
      }
      for (const { s, ours, bull } of footprints) {
        const setting = s.label === 'default' ? 'server defaults' : `stream-node-max-bytes 512 (doctor's advice)`;
        rows.push(
          {
            case: c, measurement: `ff-script bytes per retained completed execution, ${setting}`, value: ours.perExecution, unit: 'B',
            ratio: { value: ours.perExecution / bull.perExecution, of: 'ff/BullMQ' },
            note: `used_memory Δ / ${n} after create → claim → complete (fast path, solo lane); own keys (MEMORY USAGE) ${ours.ownKeys} B: ${ours.breakdown}`,
          },
          {
            case: c, measurement: `BullMQ bytes per completed job, ${setting}`, value: bull.perExecution, unit: 'B',
            note: `BullMQ ${bullmqVersion()} defaults (completed jobs kept), used_memory Δ / ${n}; ${bull.breakdown}`,
          },
        );
      }
      // Output-frame streams with and without the setting, blocks alternating between servers.
      const results: Record<string, FrameBlock[]> = { default: [], recommended: [] };
      for (let b = 0; b < blocks; b++) {
        const order = b % 2 === 0 ? [plain!, tuned!] : [tuned!, plain!];
        for (const s of order) results[s.label]!.push(await frameBlock(ctx, s, frames));
      }
      const summary = (label: string) => {
        const r = results[label]!;
        return {
          append: median(r.map((x) => (frames * 1000) / x.appendMs)),
          appendCpu: median(r.map((x) => (x.appendCpu * 1e6) / frames)),
          read: median(r.map((x) => (frames * 1000) / x.readMs)),
          readCpu: median(r.map((x) => (x.readCpu * 1e6) / frames)),
          bytes: median(r.map((x) => x.bytes)),
        };
      };
      const d = summary('default');
      const t = summary('recommended');
      const pairRatio = (pick: (x: FrameBlock) => number) => ({ value: median(results.recommended!.map((x, i) => pick(x) / pick(results.default![i]!))), of: '512/default' });
      const settings = `${frames} frames of ${FRAME_PAYLOAD.length} B per block, ${blocks} blocks per server alternating; append pipelined 1000 per round trip, read in pages of 1000`;
      rows.push(
        { case: c, measurement: 'frame append, server defaults', value: d.append, unit: 'frames/s', note: `${d.appendCpu.toFixed(1)} µs server CPU per frame; ${d.bytes.toFixed(0)} B per frame; ${settings}` },
        {
          case: c, measurement: 'frame append, stream-node-max-bytes 512', value: t.append, unit: 'frames/s', ratio: pairRatio((x) => x.appendMs === 0 ? 0 : 1 / x.appendMs),
          note: `${t.appendCpu.toFixed(1)} µs server CPU per frame (${(t.appendCpu / d.appendCpu).toFixed(2)}× defaults); ${t.bytes.toFixed(0)} B per frame (${(t.bytes / d.bytes).toFixed(2)}×)`,
        },
        { case: c, measurement: 'frame read, server defaults', value: d.read, unit: 'frames/s', note: `${d.readCpu.toFixed(2)} µs server CPU per frame` },
        {
          case: c, measurement: 'frame read, stream-node-max-bytes 512', value: t.read, unit: 'frames/s', ratio: pairRatio((x) => 1 / x.readMs),
          note: `${t.readCpu.toFixed(2)} µs server CPU per frame (${(t.readCpu / d.readCpu).toFixed(2)}× defaults)`,
        },
      );
      return rows;
    });
  },
};
