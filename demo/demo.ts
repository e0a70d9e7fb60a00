// `npm run demo`: one execution through create → grant → claim → renew → complete against
// REDIS_URL, or against a throwaway redis-server started for the demo. Prints each step and
// the execution's public state after it.
import { Redis } from 'ioredis';
import {
  ExecKeys,
  FlowFabricClient,
  claimExecution,
  completeExecution,
  createExecution,
  isScriptError,
  issueClaimGrant,
  newAttemptId,
  newLeaseId,
  parseLaneId,
  renewLease,
  soloExecutionId,
  type ExecutionId,
} from '../index.js';
import { startServer, type RunningServer } from '../tools/local-server.js';

async function main(): Promise<void> {
  let server: RunningServer | undefined;
  const url = process.env.REDIS_URL ?? (server = await startServer()).url;
  console.log(`server: ${url}${server ? ` (throwaway ${server.binary})` : ''}`);
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  const client = FlowFabricClient.fromIoredis(redis);
  try {
    const [library] = await client.ensureLibrary();
    console.log(`library: version ${library?.after} (${library?.loaded ? `loaded; was ${library.before ?? 'absent'}` : 'already loaded'})`);

    const laneId = parseLaneId('demo');
    const executionId = soloExecutionId(laneId, client.partitions);
    const state = async (id: ExecutionId) => (await redis.hget(new ExecKeys(id).core(), 'public_state')) ?? '(none)';
    const step = async (label: string, detail: unknown) => console.log(`${label.padEnd(9)} ${JSON.stringify(detail)}  → public_state=${await state(executionId)}`);

    await step('create', await createExecution(client, { executionId, laneId, namespace: 'demo', executionKind: 'greeting', inputPayload: 'hello' }));
    await step('grant', await issueClaimGrant(client, { executionId, laneId, workerId: 'demo-worker', workerInstanceId: 'demo-worker-1', grantTtlMs: 5000 }));
    const claim = await claimExecution(client, {
      executionId, laneId, workerId: 'demo-worker', workerInstanceId: 'demo-worker-1',
      leaseId: newLeaseId(), attemptId: newAttemptId(), leaseTtlMs: 30_000,
    });
    await step('claim', claim);
    const lease = { leaseId: claim.leaseId, leaseEpoch: claim.leaseEpoch, attemptId: claim.attemptId, attemptIndex: claim.attemptIndex };
    await step('renew', await renewLease(client, { executionId, ...lease, leaseTtlMs: 30_000 }));
    await step('complete', await completeExecution(client, { executionId, laneId, workerInstanceId: 'demo-worker-1', ...lease, resultPayload: 'hello, world' }));

    // A second complete with the same lease is refused with a typed error.
    try {
      await completeExecution(client, { executionId, laneId, workerInstanceId: 'demo-worker-1', ...lease });
    } catch (error) {
      if (isScriptError(error, 'execution_not_active')) console.log(`again    refused: ${error.code} (${error.errorClass}), outcome ${error.details[0]}`);
      else throw error;
    }
    console.log(`result:  ${await redis.get(new ExecKeys(executionId).result())}`);
  } finally {
    redis.disconnect();
    await server?.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
