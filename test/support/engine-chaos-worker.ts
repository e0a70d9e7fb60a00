// A worker process for the engine chaos test: `node --import tsx engine-chaos-worker.ts
// <url> <lane> <workerInstanceId>`. Its handler records each run's start and end in
// `chaos:runs:<execution id>` (so the test can check no two runs overlapped), waits a
// little (cut short when its lease is lost) and completes. SIGTERM closes it cleanly.
import { Redis } from 'ioredis';
import { FlowFabricClient } from '../../runtime/client.js';
import { Worker } from '../../worker/index.js';
import { ENGINE_TEST_PARTITIONS } from './engine-partitions.js';

const [url, lane, workerInstanceId] = process.argv.slice(2) as [string, string, string];
const connection = new Redis(url, { maxRetriesPerRequest: 1 });
connection.on('error', () => undefined);
const recorder = new Redis(url, { maxRetriesPerRequest: 3 });
recorder.on('error', () => undefined);
const client = FlowFabricClient.fromIoredis(connection, { partitions: ENGINE_TEST_PARTITIONS, autoLoad: true });

const worker = new Worker({
  client,
  lanes: [lane],
  workerInstanceId,
  concurrency: 4,
  leaseTtlMs: 1500,
  idleBackoff: { minMs: 10, maxMs: 100 },
  async handler(task) {
    const key = `chaos:runs:${task.executionId}`;
    await recorder.rpush(key, `start|${workerInstanceId}|${task.attemptIndex}|${Date.now()}`);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 100 + Math.floor(Math.random() * 200));
      task.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    await recorder.rpush(key, `end|${workerInstanceId}|${task.attemptIndex}|${Date.now()}|${task.signal.aborted ? 'aborted' : 'ok'}`);
    if (task.signal.aborted) throw task.signal.reason;
    return 'ok';
  },
});
worker.on('error', () => undefined);

process.once('SIGTERM', () => {
  void worker.close({ timeoutMs: 2000 }).finally(() => {
    connection.disconnect();
    recorder.disconnect();
    process.exit(0);
  });
});
await worker.start();
process.stdout.write('ready\n');
