// The demo's doomed worker: its own process, one Worker on the given lane whose handler
// reports the claim and then hangs, until the demo SIGKILLs the process mid-task.
import { Redis } from 'ioredis';
import { FlowFabricClient, Worker, type Task } from '../index.js';

const [url, lane] = process.argv.slice(2);
const redis = new Redis(url!, { maxRetriesPerRequest: 1 });
const worker = new Worker({
  client: FlowFabricClient.fromIoredis(redis),
  lanes: lane!,
  workerId: 'demo-worker',
  workerInstanceId: `doomed-${process.pid}`,
  leaseTtlMs: 1500,
  idleBackoff: { minMs: 20, maxMs: 100 },
  installWaitpointSecrets: false,
  handler: (task: Task) => {
    process.stdout.write(`${JSON.stringify({ claimed: task.executionId, attempt: task.attemptIndex })}\n`);
    return new Promise(() => undefined);
  },
});
await worker.start();
process.stdout.write(`${JSON.stringify({ ready: worker.workerInstanceId })}\n`);
