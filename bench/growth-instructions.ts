// `npm run bench:growth-instructions [-- --full]`: case 9's blocks counted in server
// instructions instead of CPU time, so keyspace-size effects on caches (which CPU time
// sees and instruction counts do not) are told apart from work that grows with the data.
// Per size: a native redis-server is filled exactly as case 9 fills it and saved (SAVE);
// the RDB is then loaded by a redis-server running under `valgrind --tool=callgrind`, and
// `rounds` blocks are run against it, reading the instruction counter of that process
// (callgrind_control -e <pid>) around each step. Sizes: 1k eligible (the baseline), 100k
// eligible, 1k eligible + 100k retained terminal; --full adds 1M eligible and 1M retained
// (loading those under valgrind takes many minutes and ~4 GB).
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { Engine } from '../engine/index.js';
import { FlowFabricClient } from '../runtime/client.js';
import { freePort } from '../tools/local-server.js';
import { block, fill, type Filled, type Round, type Subject } from './cases/growth.js';
import type { Context } from './context.js';
import { median } from './measure.js';
import { RECOMMENDED_SETTINGS, dedicatedServer, type Dedicated } from './servers.js';

const full = process.argv.includes('--full');
const rounds = Number(process.argv.find((a) => a.startsWith('--rounds='))?.slice(9) ?? 3);

/**
 * Instructions counted so far by the main thread of one callgrind-run process: commands and
 * Lua run there, and its count only grows (the background threads' lines come and go).
 */
function instructions(pid: number): number {
  const out = execFileSync('callgrind_control', ['-e', String(pid)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const main = /^\s*Th 1\s+([\d,]+)/m.exec(out);
  if (!main) throw new Error(`callgrind_control -e ${pid} printed no main-thread count:\n${out}`);
  return Number(main[1]!.replace(/,/g, ''));
}

async function waitForPing(port: number, child: ChildProcess, limitMs: number): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`the callgrind server exited with ${child.exitCode}`);
    const probe = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 0, lazyConnect: true, retryStrategy: () => null });
    probe.on('error', () => undefined); // refused while the server loads its data
    try {
      await probe.connect();
      if ((await probe.ping()) === 'PONG') return;
    } catch {
      // still loading or not listening yet
    } finally {
      probe.disconnect();
    }
    await new Promise((resolve) => setTimeout(resolve, 2_000));
  }
  throw new Error(`the callgrind server did not answer within ${limitMs / 1000} s`);
}

async function measure(ctx: Context, subject: Subject): Promise<{ subject: Subject; rounds: Round[]; loadSeconds: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'ff-growth-'));
  let native: Dedicated | undefined;
  let child: ChildProcess | undefined;
  try {
    native = await dedicatedServer(subject.label, [...RECOMMENDED_SETTINGS, '--dir', dir]);
    const filled = await fill(ctx, native, subject);
    await native.redis.call('SAVE');
    await native.stop();
    native = undefined;

    const port = await freePort();
    child = spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${join(dir, 'callgrind.out.%p')}`, 'redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...RECOMMENDED_SETTINGS], { stdio: 'ignore' });
    const loadStarted = performance.now();
    await waitForPing(port, child, 60 * 60_000);
    const loadSeconds = (performance.now() - loadStarted) / 1000;
    const redis = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1, commandTimeout: 600_000 });
    const client = FlowFabricClient.fromIoredis(redis);
    const pid = child.pid!;
    const s: Dedicated = { ...filled.s, redis, client, stop: async () => undefined };
    const engine = new Engine({ client, lanes: [filled.laneId], completionListener: false, boot: false, logLevel: 'error' });
    // Counts in "seconds" units for the block code: instructions / 1e6, so µs-per-job reads as instructions-per-job.
    const f: Filled = { ...filled, s, engine, meter: async () => instructions(pid) / 1e6 };
    const results: Round[] = [];
    for (let r = 0; r < rounds; r++) results.push(await block(f));
    await redis.call('SHUTDOWN', 'NOSAVE').catch(() => undefined);
    redis.disconnect();
    return { subject, rounds: results, loadSeconds };
  } finally {
    await native?.stop();
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const subjects: Subject[] = [
    { label: '1k eligible', eligible: 1_024, retained: 0 },
    { label: '100k eligible', eligible: 102_400, retained: 0 },
    ...(full ? [{ label: '1M eligible', eligible: 1_048_576, retained: 0 }] : []),
    { label: '1k eligible + 100k retained', eligible: 1_024, retained: 102_400 },
    ...(full ? [{ label: '1k eligible + 1M retained', eligible: 1_024, retained: 1_048_576 }] : []),
  ];
  // The fill code needs only these parts of a bench context.
  const ctx = { runId: `gi${process.pid.toString(36)}` } as Context;
  const results = [];
  for (const subject of subjects) {
    process.stderr.write(`${subject.label}… `);
    results.push(await measure(ctx, subject));
    process.stderr.write(`loaded under callgrind in ${results.at(-1)!.loadSeconds.toFixed(0)} s\n`);
  }
  const base = results[0]!;
  const k = (x: number) => `${(x / 1000).toFixed(1)} k`;
  console.log(`Server instructions (callgrind), median of ${rounds} blocks; ratio to ${base.subject.label}:\n`);
  console.log('| Size | fast-path claim | complete | grant path claim | engine scanner cycle | HGET of a random core |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    const cell = (pick: (x: Round) => number) => {
      const value = median(r.rounds.map(pick));
      const ratio = value / median(base.rounds.map(pick));
      return `${k(value)}${r === base ? '' : ` (${ratio.toFixed(2)}×)`}`;
    };
    console.log(`| ${r.subject.label} | ${cell((x) => x.claim * 1e6)} | ${cell((x) => x.complete * 1e6)} | ${cell((x) => x.grant * 1e6)} | ${cell((x) => x.scan * 1e6)} | ${cell((x) => x.touch * 1e6)} |`);
  }
}

await main();
