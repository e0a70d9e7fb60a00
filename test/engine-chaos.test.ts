// Chaos: the engine and worker processes (worker/) under injected faults — a worker
// SIGKILLed mid-run, CLIENT KILL of every engine and worker connection, FUNCTION FLUSH,
// DEBUG SLEEP, and a server restart without persistence. At the end every execution is
// terminal exactly once (one successful attempt) with consistent indexes, and no execution
// ran in two workers at once. Short by default; FF_ENGINE_CHAOS_MS=<ms> runs longer.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createExecution } from '../generated/execution.js';
import { ExecKeys, GlobalKeys, PartitionKeys } from '../generated/keys.js';
import type { ExecutionId } from '../runtime/ids.js';
import { ENGINE_TEST_PARTITIONS, useEngineServer } from './support/engine-server.js';
import { core, sleep } from './support/exec-ops.js';
import { newExecutionId, uniqueLane } from './support/ids.js';
import { checkExecutionInvariants } from './support/invariants.js';

const CHAOS_MS = Number(process.env.FF_ENGINE_CHAOS_MS ?? 3_000);
const root = join(import.meta.dirname, '..');
const env = useEngineServer();

const FAST = { lease_expiry: 100, delayed_promoter: 100, attempt_timeout: 200, suspension_timeout: 200, execution_deadline: 200, unblock: 200, dependency_reconciler: 500 };

interface WorkerProcess {
  readonly id: string;
  readonly child: ChildProcess;
  killedAt?: number;
}

async function startWorker(url: string, lane: string, id: string): Promise<WorkerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'test', 'support', 'engine-chaos-worker.ts'), url, lane, id], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const deadline = Date.now() + 15_000;
  while (!out.includes('ready')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`worker ${id} did not start:\n${out}`);
    await sleep(20);
  }
  return { id, child };
}

async function stopWorker(worker: WorkerProcess): Promise<void> {
  if (worker.child.exitCode !== null || worker.child.signalCode !== null) return;
  const exited = new Promise((resolve) => worker.child.once('exit', resolve));
  worker.child.kill('SIGTERM');
  await Promise.race([exited, sleep(5000).then(() => worker.child.kill('SIGKILL'))]);
}

interface Run {
  worker: string;
  attempt: string;
  start: number;
  end?: number;
}

function runsOf(lines: string[]): Run[] {
  const runs: Run[] = [];
  for (const line of lines) {
    const [kind, worker, attempt, at] = line.split('|') as [string, string, string, string];
    if (kind === 'start') runs.push({ worker, attempt, start: Number(at) });
    else {
      const run = runs.find((r) => r.worker === worker && r.attempt === attempt && r.end === undefined);
      if (run) run.end = Number(at);
    }
  }
  return runs;
}

async function waitAllTerminal(executions: readonly ExecutionId[], timeoutMs: number): Promise<ExecutionId[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const phases = await Promise.all(executions.map(async (e) => (await core(env.redis(), e)).lifecycle_phase));
    const open = executions.filter((_, i) => phases[i] !== 'terminal');
    if (open.length === 0 || Date.now() > deadline) return open;
    await sleep(100);
  }
}

describe('engine and workers under faults', () => {
  it('finish every execution exactly once, never in two workers at once', async () => {
    const redis = env.redis();
    const url = env.server().url;
    const lane = uniqueLane('chaos');
    const engine = env.engine({ client: env.connect({ autoLoad: true }).client, intervals: FAST, completionListener: true, libraryCheckMs: 200 });
    await engine.start();
    const workers = [await startWorker(url, lane, 'chaos-a'), await startWorker(url, lane, 'chaos-b')];
    const executions: ExecutionId[] = [];
    const submit = async (count: number) => {
      for (let i = 0; i < count; i++) {
        const executionId = newExecutionId(executions.length % ENGINE_TEST_PARTITIONS.numFlowPartitions);
        await createExecution(env.client(), { executionId, laneId: lane, namespace: 'chaos', executionKind: 'chaos' }).catch(() => undefined);
        executions.push(executionId);
      }
    };
    try {
      const started = Date.now();
      const step = CHAOS_MS / 5;
      let round = 0;
      while (Date.now() - started < CHAOS_MS) {
        await submit(20);
        await sleep(step / 2); // runs are in progress when the fault hits
        const fault = round % 5;
        if (fault === 0) {
          // A worker dies mid-run; a new one takes its place.
          const victim = workers.shift()!;
          victim.killedAt = Date.now();
          victim.child.kill('SIGKILL');
          workers.push(victim, await startWorker(url, lane, `chaos-${round}-new`));
        } else if (fault === 1) {
          await redis.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
          await redis.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
        } else if (fault === 2) {
          await redis.call('FUNCTION', 'FLUSH');
        } else if (fault === 3) {
          await redis.call('DEBUG', 'SLEEP', '0.4');
        }
        round++;
        await sleep(step / 2);
      }
      // Executions whose create met a fault may not exist; only the created ones count.
      const created = (await Promise.all(executions.map(async (e) => ((await redis.exists(new ExecKeys(e).core())) === 1 ? e : undefined)))).filter((e): e is ExecutionId => e !== undefined);
      expect(created.length).toBeGreaterThan(executions.length * 0.8);
      const open = await waitAllTerminal(created, 30_000);
      expect(open).toEqual([]);

      for (const executionId of created) {
        const record = await core(redis, executionId);
        expect(record.terminal_outcome).toBe('success');
        // Exactly one attempt ended in success.
        const attempts = Number(record.total_attempt_count);
        let successes = 0;
        for (let i = 0; i < attempts; i++) if ((await redis.hget(new ExecKeys(executionId).attemptHash(i), 'attempt_state')) === 'ended_success') successes++;
        expect(successes).toBe(1);
        expect(await checkExecutionInvariants(redis, executionId)).toEqual([]);
        // No two runs overlap: a killed worker's open run ends when it was killed.
        const killed = new Map(workers.filter((w) => w.killedAt !== undefined).map((w) => [w.id, w.killedAt!]));
        const runs = runsOf(await redis.lrange(`chaos:runs:${executionId}`, 0, -1)).map((r) => ({ ...r, end: r.end ?? killed.get(r.worker) ?? Number.MAX_SAFE_INTEGER }));
        runs.sort((a, b) => a.start - b.start);
        for (let i = 1; i < runs.length; i++) expect(runs[i]!.start, `runs of ${executionId} overlap: ${JSON.stringify(runs)}`).toBeGreaterThanOrEqual(runs[i - 1]!.end);
      }
      const listener = engine.stats().completionListener!;
      expect(listener.reconnects).toBeGreaterThanOrEqual(1);
    } finally {
      await Promise.all(workers.map(stopWorker));
      await engine.stop();
    }
  }, CHAOS_MS + 90_000);

  it('after a server restart without persistence, boots again and keeps the workers going', async () => {
    const lane = uniqueLane('restart');
    const engine = env.engine({ client: env.connect({ autoLoad: true }).client, intervals: FAST, completionListener: true });
    await engine.start();
    const worker = await startWorker(env.server().url, lane, 'restart-a');
    try {
      await env.server().restart();
      // Everything is gone; the listener's reconnect runs boot again.
      const redis = env.redis();
      const deadline = Date.now() + 15_000;
      // Boot writes the partition config first, then the waitpoint secrets: wait for both.
      const booted = async () =>
        (await redis.exists(GlobalKeys.configPartitions()).catch(() => 0)) === 1 &&
        Boolean(await redis.hget(PartitionKeys.forPartition(5).waitpointHmacSecrets(), 'current_kid').catch(() => null));
      while (!(await booted()) && Date.now() < deadline) await sleep(100);
      expect(await redis.hgetall(GlobalKeys.configPartitions())).toMatchObject({ num_flow_partitions: '8' });
      expect(await redis.hget(PartitionKeys.forPartition(5).waitpointHmacSecrets(), 'current_kid')).toBeTruthy();
      const executions: ExecutionId[] = [];
      for (let i = 0; i < 10; i++) {
        const executionId = newExecutionId(i % 8);
        await createExecution(env.client(), { executionId, laneId: lane, namespace: 'chaos', executionKind: 'chaos' });
        executions.push(executionId);
      }
      expect(await waitAllTerminal(executions, 20_000)).toEqual([]);
      for (const executionId of executions) expect((await core(redis, executionId)).terminal_outcome).toBe('success');
    } finally {
      await stopWorker(worker);
      await engine.stop();
    }
  }, 60_000);
});
