// A worker process for test/worker-process.test.ts, started with `node --import tsx`.
// argv[2] is a JSON ChildConfig. Modes:
// - soak: `workers` Workers on the lane; each attempt's start and end go to the Redis list
//   `log` (one JSON line each); a handler throws when `throws(executionId, attempt)` says so.
//   On SIGTERM the workers close and the process prints their summed counters as JSON.
// - hang: one Worker whose handler logs its lease and never finishes (the test SIGKILLs it).
// - signal: delivers one signal to `executionId` and exits.
import { Redis } from 'ioredis';
import { signalExecution } from '../../operations/executions.js';
import { FlowFabricClient } from '../../runtime/client.js';
import type { ExecutionId } from '../../runtime/ids.js';
import { Worker, type ClaimPath, type Task, type WorkerCounters } from '../../worker/index.js';
import { throws } from './worker-plan.js';

export interface ChildConfig {
  readonly url: string;
  readonly mode: 'soak' | 'hang' | 'signal';
  readonly lane?: string;
  readonly log?: string;
  readonly workers?: number;
  readonly concurrency?: number;
  readonly leaseTtlMs?: number;
  readonly attemptTimeoutMs?: number;
  readonly claimPath?: ClaimPath;
  readonly failRate?: number;
  readonly name?: string;
  readonly executionId?: string;
  readonly signalName?: string;
  readonly data?: unknown;
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '{}') as ChildConfig;
  const redis = new Redis(config.url, { maxRetriesPerRequest: 1 });
  const client = FlowFabricClient.fromIoredis(redis);
  if (config.mode === 'signal') {
    await signalExecution(client, config.executionId as ExecutionId, { name: config.signalName ?? 'go', data: config.data, source: `pid-${process.pid}` });
    redis.disconnect();
    return;
  }
  const log = config.log!;
  const record = (entry: Record<string, unknown>) => redis.rpush(log, JSON.stringify({ ...entry, pid: process.pid, at: Date.now() }));
  const count = config.mode === 'hang' ? 1 : (config.workers ?? 1);
  const workers = Array.from(
    { length: count },
    (_, i) =>
      new Worker({
        client,
        lanes: config.lane!,
        workerInstanceId: `${config.name ?? 'child'}-${process.pid}-${i}`,
        concurrency: config.concurrency ?? 1,
        leaseTtlMs: config.leaseTtlMs ?? 30_000,
        ...(config.attemptTimeoutMs !== undefined ? { attemptTimeoutMs: config.attemptTimeoutMs } : {}),
        claimPath: config.claimPath ?? 'admission',
        housekeepingIntervalMs: 100,
        idleBackoff: { minMs: 10, maxMs: 100 },
        installWaitpointSecrets: false,
        handler: async (task: Task) => {
          const attempt = { id: task.executionId, attempt: task.attemptIndex, kind: task.attemptKind, worker: i };
          if (config.mode === 'hang') {
            await record({ ev: 'start', ...attempt, lease: task.lease });
            await new Promise(() => undefined);
          }
          await record({ ev: 'start', ...attempt });
          await new Promise((resolve) => setTimeout(resolve, Math.random() * 4));
          const fail = throws(task.executionId, task.attemptIndex, config.failRate ?? 0);
          await record({ ev: 'end', ...attempt, fail });
          if (fail) throw new Error(`planned failure of attempt ${task.attemptIndex}`);
          return { by: process.pid };
        },
      }),
  );
  await Promise.all(workers.map((w) => w.start()));
  await record({ ev: 'ready' });
  process.once('SIGTERM', () => {
    void (async () => {
      await Promise.all(workers.map((w) => w.close({ timeoutMs: 5000 })));
      const total: Partial<Record<keyof WorkerCounters, number>> = {};
      for (const w of workers) for (const [k, v] of Object.entries(w.counters)) total[k as keyof WorkerCounters] = (total[k as keyof WorkerCounters] ?? 0) + v;
      process.stdout.write(`${JSON.stringify(total)}\n`);
      redis.disconnect();
    })();
  });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
