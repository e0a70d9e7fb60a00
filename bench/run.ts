// `npm run bench [-- --quick] [-- --only=1,4]`: runs every case against one redis-server
// (a throwaway one, persistence off, on loopback, unless REDIS_URL is set), prints a
// Markdown table to stdout (progress goes to stderr) and writes bench/results/latest.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { FlowFabricClient } from '../runtime/client.js';
import { startServer, type RunningServer } from '../tools/local-server.js';
import { ceiling } from './cases/ceiling.js';
import { clientCost } from './cases/client-cost.js';
import { floor } from './cases/floor.js';
import { lifecycle } from './cases/lifecycle.js';
import { memory } from './cases/memory.js';
import { growth } from './cases/growth.js';
import { scaleOut } from './cases/scale-out.js';
import { retention } from './cases/retention.js';
import { workers } from './cases/workers.js';
import { suspendCycle } from './cases/suspend.js';
import { tooling } from './cases/tooling.js';
import { wrapperOverhead } from './cases/wrapper.js';
import { loadedFunctions, messageOf, type Case, type Context, type Row } from './context.js';
import { DEFAULT_PLAN } from './measure.js';

const CASES: readonly Case[] = [ceiling, wrapperOverhead, clientCost, lifecycle, suspendCycle, tooling, floor, memory, retention, growth, scaleOut, workers];

interface Machine {
  readonly cpu: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly node: string;
  readonly server: string;
  /** 1-minute load average before and after the cases: other work on the machine skews results. */
  readonly load?: { readonly before: number; readonly after: number };
}

async function describeMachine(redis: Redis): Promise<Machine> {
  const info = await redis.info('server');
  const field = (name: string) => new RegExp(`^${name}:(.+)$`, 'm').exec(info)?.[1]?.trim();
  const valkey = field('valkey_version');
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    server: valkey ? `valkey ${valkey}` : `redis ${field('redis_version') ?? '?'}`,
  };
}

function formatValue(row: Row): string {
  if (row.value === undefined) return '—';
  const digits = row.unit === '×' ? 2 : row.unit.endsWith('/s') || row.value >= 100 ? 0 : 1;
  return `${row.value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })} ${row.unit}`;
}

function markdown(machine: Machine, rows: readonly Row[], quick: boolean, remote: boolean): string {
  const cell = (text: string) => text.replace(/\|/g, '\\|');
  const lines = [
    `Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB; Node ${machine.node}; ${machine.server}` +
      ` (${remote ? 'REDIS_URL' : 'throwaway server on loopback, persistence off'}; client and server share the cores).` +
      ` ${quick ? 'Quick run (small sizes).' : 'Full run.'} Results are medians of ${DEFAULT_PLAN.rounds} rounds after ${DEFAULT_PLAN.warmups} warm-up;` +
      ` ratios are medians of per-round ratios of rounds run back to back.` +
      (machine.load ? ` Load average (1 min) ${machine.load.before.toFixed(2)} before, ${machine.load.after.toFixed(2)} after.` : ''),
    '',
    '| Case | Measurement | Result | Ratio | Notes |',
    '| --- | --- | ---: | ---: | --- |',
    ...rows.map((r) =>
      `| ${cell(r.case)} | ${cell(r.measurement)} | ${formatValue(r)} | ${r.ratio ? `${r.ratio.value.toFixed(2)}× ${cell(r.ratio.of)}` : ''} | ${cell(r.note ?? '')} |`,
    ),
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const quick = argv.includes('--quick');
  const only = argv.find((a) => a.startsWith('--only='))?.slice('--only='.length).split(',');
  const selected = only ? CASES.filter((c) => only.includes(c.name.split(' ')[0]!)) : CASES;

  let server: RunningServer | undefined;
  const url = process.env.REDIS_URL ?? (server = await startServer()).url;
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    const client = FlowFabricClient.fromIoredis(redis);
    await client.ensureLibrary();
    const ctx: Context = {
      quick,
      flags: new Set(argv.filter((a) => a.startsWith('--'))),
      url,
      redis,
      client,
      runId: `${Date.now().toString(36)}${process.pid.toString(36)}`,
      plan: DEFAULT_PLAN,
      generated: (await import('../generated/index.js')) as Record<string, unknown>,
      loaded: await loadedFunctions(redis),
    };
    const described = await describeMachine(redis);
    const loadBefore = loadavg()[0]!;
    const rows: Row[] = [];
    const started = performance.now();
    for (const c of selected) {
      const caseStarted = performance.now();
      process.stderr.write(`${c.name}… `);
      try {
        rows.push(...(await c.run(ctx)));
      } catch (error) {
        rows.push({ case: c.name, measurement: '(case failed)', value: undefined, unit: '', note: `failed: ${messageOf(error)}` });
      }
      process.stderr.write(`${((performance.now() - caseStarted) / 1000).toFixed(1)} s\n`);
    }
    const seconds = (performance.now() - started) / 1000;
    const machine: Machine = { ...described, load: { before: loadBefore, after: loadavg()[0]! } };
    process.stderr.write(`all cases: ${seconds.toFixed(1)} s\n`);

    const resultsDir = join(dirname(fileURLToPath(import.meta.url)), 'results');
    mkdirSync(resultsDir, { recursive: true });
    const report = { date: new Date().toISOString(), quick, seconds, machine, plan: DEFAULT_PLAN, rows };
    writeFileSync(join(resultsDir, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
    console.log(markdown(machine, rows, quick, server === undefined));
  } finally {
    redis.disconnect();
    await server?.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
