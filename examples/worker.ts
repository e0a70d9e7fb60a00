// The README's worker example, compiled and run by test/worker-example.test.ts. The lines
// between the markers are the README's code block (after its import line).
import { Redis } from 'ioredis';
import { FlowFabricClient, NonRetryableError, Worker, submitExecution, waitForOutcome, type ExecutionView } from '../index.js';

export async function main(url: string): Promise<ExecutionView> {
  // --- README ---
  const redis = new Redis(url, { autoResendUnfulfilledCommands: false });
  const client = FlowFabricClient.fromIoredis(redis, { autoLoad: true });
  await client.ensureLibrary();

  // A pool of 8 handlers on the `emails` lane; the lease is renewed in the background.
  const worker = new Worker<{ to: string }>({
    client,
    lanes: ['emails'],
    concurrency: 8,
    handler: async (task) => {
      if (!task.input.to.includes('@')) throw new NonRetryableError('no address'); // fails for good
      await task.progress(50, 'rendering');
      return { sent: task.input.to, attempt: task.attemptIndex }; // completes; any other throw is retried per policy
    },
  });
  worker.on('failed', (event) => console.log('failed for good:', event.executionId, event.reason));
  await worker.start();

  const { executionId } = await submitExecution(client, {
    lane: 'emails',
    kind: 'send',
    input: { to: 'a@example.com' },
    retry: { maxRetries: 3, backoff: { type: 'exponential', initialDelayMs: 1000, maxDelayMs: 60_000 } },
  });
  const outcome = await waitForOutcome(client, executionId, { timeoutMs: 10_000 });
  console.log(outcome.publicState, outcome.resultJson); // completed { sent: 'a@example.com', attempt: 0 }

  await worker.close({ timeoutMs: 10_000 }); // finish or give back running tasks, withdraw the worker
  redis.disconnect();
  // --- end README ---
  return outcome;
}
