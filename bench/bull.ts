// BullMQ's side, shared by the cases that compare with it: connection options from a URL,
// its version, and "add N jobs, run them to completion with one Worker".
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Queue, Worker as BullWorker, type ConnectionOptions } from 'bullmq';
import { ENQUEUE_CHUNK } from './engine.js';

export function bullConnection(url: string): ConnectionOptions {
  const parsed = new URL(url);
  const db = Number(parsed.pathname.slice(1) || '0');
  return {
    host: parsed.hostname,
    port: Number(parsed.port || 6379),
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    db,
    maxRetriesPerRequest: null,
  };
}

export function bullmqVersion(): string {
  const require = createRequire(import.meta.url);
  const pkg = JSON.parse(readFileSync(require.resolve('bullmq/package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

/** Adds `n` empty jobs with addBulk (ENQUEUE_CHUNK per call). */
export async function addJobs(queue: Queue, n: number): Promise<void> {
  for (let start = 0; start < n; start += ENQUEUE_CHUNK) {
    await queue.addBulk(Array.from({ length: Math.min(ENQUEUE_CHUNK, n - start) }, () => ({ name: 'bench', data: {} })));
  }
}

/** Resolves once `worker` has completed `n` jobs (started by the caller); rejects on a failed job or worker error. */
export function completions(worker: BullWorker, n: number): Promise<void> {
  let completed = 0;
  return new Promise<void>((resolve, reject) => {
    worker.on('completed', () => {
      if (++completed === n) resolve();
    });
    worker.on('failed', (_job, error) => reject(error));
    worker.on('error', reject);
  });
}

/** Adds n jobs to a new queue and runs them through a Worker (concurrency, no-op processor, defaults otherwise). */
export async function runBullJobs(url: string, name: string, n: number, concurrency: number): Promise<void> {
  const connection = bullConnection(url);
  const queue = new Queue(name, { connection });
  const worker = new BullWorker(name, async () => undefined, { connection, concurrency, autorun: false });
  try {
    await queue.waitUntilReady();
    await worker.waitUntilReady();
    await addJobs(queue, n);
    const done = completions(worker, n);
    void worker.run();
    await done;
  } finally {
    await worker.close();
    await queue.close();
  }
}
