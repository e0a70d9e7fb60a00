// Our side's steps through the generated wrappers, shared by the cases that need executions
// in a given state: pipelined creates, and grant + claim for one worker.
import { buildCreateExecution, claimExecution, completeExecution, parseCreateExecution, type ClaimExecutionResult } from '../generated/execution.js';
import { randomBytes, randomUUID } from 'node:crypto';
import { claimNextEligible, completeAndClaimNext, type ClaimNextEligibleResult, type CompleteAndClaimNextResult } from '../generated/fastpath.js';
import { PartitionKeys } from '../generated/keys.js';
import { claimResumedExecution, deliverSignal } from '../generated/signal.js';
import { rotateWaitpointHmacSecret, suspendExecution, type SuspendExecutionArgs } from '../generated/suspension.js';
import { issueClaimGrant } from '../generated/scheduling.js';
import { call, type Call, type FlowFabricClient } from '../runtime/client.js';
import { executionPartition, newAttemptId, newLeaseId, newSignalId, type ExecutionId, type LaneId } from '../runtime/ids.js';
import { hashTag, soloPartition } from '../runtime/partition.js';

/** Creates executions are sent per pipeline; BullMQ's addBulk gets the same chunk size. */
export const ENQUEUE_CHUNK = 1_000;

export interface Worker {
  readonly workerId: string;
  readonly workerInstanceId: string;
}

export function benchWorker(index: number): Worker {
  return { workerId: 'bench-worker', workerInstanceId: `bench-worker-${process.pid}-${index}` };
}

/** Creates every id in the lane, ENQUEUE_CHUNK calls per pipeline; throws on any failure. */
export function createMany(client: FlowFabricClient, ids: readonly ExecutionId[], laneId: LaneId): Promise<void> {
  return pipelined(client, ids.length, (i) =>
    call(buildCreateExecution({ executionId: ids[i]!, laneId, namespace: 'bench', executionKind: 'bench' }, client.partitions), parseCreateExecution),
  );
}

/** Sends make(0..count-1), ENQUEUE_CHUNK calls per pipeline; throws on any failure. */
export async function pipelined(client: FlowFabricClient, count: number, make: (index: number) => Call<unknown>): Promise<void> {
  await pipelinedValues(client, count, make);
}

/** pipelined(), keeping each call's parsed reply, in order. */
export async function pipelinedValues<T>(client: FlowFabricClient, count: number, make: (index: number) => Call<T>): Promise<T[]> {
  const values: T[] = [];
  for (let start = 0; start < count; start += ENQUEUE_CHUNK) {
    const calls = Array.from({ length: Math.min(ENQUEUE_CHUNK, count - start) }, (_, i) => make(start + i));
    for (const settled of await client.batch(calls)) {
      if (!settled.ok) throw settled.error;
      values.push(settled.value as T);
    }
  }
  return values;
}

export interface Lease {
  readonly leaseId: ClaimExecutionResult['leaseId'];
  readonly leaseEpoch: number;
  readonly attemptId: ClaimExecutionResult['attemptId'];
  readonly attemptIndex: number;
}

/** Issues a claim grant to the worker and claims with it: the execution is then active under a new lease. */
export async function grantAndClaim(client: FlowFabricClient, executionId: ExecutionId, laneId: LaneId, worker: Worker, leaseTtlMs = 60_000): Promise<Lease> {
  await issueClaimGrant(client, { executionId, laneId, ...worker, grantTtlMs: 10_000 });
  const claim = await claimExecution(client, { executionId, laneId, ...worker, leaseId: newLeaseId(), attemptId: newAttemptId(), leaseTtlMs });
  return { leaseId: claim.leaseId, leaseEpoch: claim.leaseEpoch, attemptId: claim.attemptId, attemptIndex: claim.attemptIndex };
}

/** Arguments of suspendExecution as the suspension contract names them (camelCased), for one lease. */
export function suspendArgs(
  executionId: ExecutionId,
  laneId: LaneId,
  worker: Worker,
  lease: Lease,
  ids: { readonly suspensionId: string; readonly waitpointId: string },
): Record<string, unknown> {
  return {
    executionId,
    laneId,
    workerInstanceId: worker.workerInstanceId,
    ...lease,
    ...ids,
    waitpointKey: `wpk:${ids.waitpointId}`,
    reasonCode: 'waiting_for_signal',
    requestedBy: 'worker',
    // One wildcard-free matcher: the first signal named "go" resumes the execution.
    resumeConditionJson: { condition_type: 'signal_set', required_signal_names: ['go'], signal_match_mode: 'any', minimum_signal_count: 1 },
    resumePolicyJson: { resume_target: 'runnable' },
    timeoutBehavior: 'fail',
  };
}

/**
 * One worker of the fast path on the solo lane's partition: claim the lane's head, then
 * complete-and-claim-next until the lane is empty, asking each call for the claimed
 * execution's input when `withInput` (as the Worker does). Returns how many it completed.
 */
export async function fastWorker(client: FlowFabricClient, laneId: LaneId, worker: Worker, options: { readonly withInput?: boolean } = {}): Promise<number> {
  const leaseTtlMs = 60_000;
  const partition = soloPartition(laneId, client.partitions);
  const withInput = options.withInput ?? false;
  let done = 0;
  let claim: ClaimNextEligibleResult | CompleteAndClaimNextResult = await claimNextEligible(client, { ...worker, laneId, partition, leaseId: newLeaseId(), attemptId: newAttemptId(), leaseTtlMs, withInput });
  while (claim.status === 'claimed' || claim.status === 'claimed_next') {
    done += 1;
    const executionId: ExecutionId = claim.status === 'claimed' ? claim.executionId : claim.nextExecutionId;
    claim = await completeAndClaimNext(client, {
      executionId, laneId, ...worker, leaseId: claim.leaseId, leaseEpoch: claim.leaseEpoch, attemptId: claim.attemptId,
      attemptIndex: claim.attemptIndex, nextLeaseId: newLeaseId(), nextAttemptId: newAttemptId(), leaseTtlMs, withInput,
    });
  }
  return done;
}

/** Gives every partition the executions use a waitpoint signing key, unless it already has one. */
export async function ensureSecrets(client: FlowFabricClient, ids: readonly ExecutionId[]): Promise<void> {
  for (const partition of new Set(ids.map(executionPartition))) {
    const ring = new PartitionKeys(hashTag('fp', partition)).waitpointHmacSecrets();
    if (await client.transport.command('HGET', [ring, 'current_kid'])) continue;
    await rotateWaitpointHmacSecret(client, { partition, newKid: 'bench', newSecretHex: randomBytes(32).toString('hex'), graceMs: 0 });
  }
}

/** An execution held by a worker under a lease. */
export interface Held {
  readonly executionId: ExecutionId;
  readonly worker: Worker;
  readonly lease: Lease;
}

/**
 * One suspension cycle of a held execution, five calls: suspend on a signal waitpoint,
 * deliver the signal (it resumes), grant, claim the resumed attempt, complete.
 */
export async function suspendResumeComplete(client: FlowFabricClient, laneId: LaneId, held: Held): Promise<void> {
  const { executionId, worker, lease } = held;
  const args = suspendArgs(executionId, laneId, worker, lease, { suspensionId: randomUUID(), waitpointId: randomUUID() }) as unknown as SuspendExecutionArgs;
  const suspended = await suspendExecution(client, args);
  await deliverSignal(client, {
    executionId, laneId, signalId: newSignalId(), waitpointId: suspended.waitpointId, waitpointToken: suspended.waitpointToken,
    signalName: 'go', signalCategory: 'bench', sourceType: 'bench', sourceIdentity: 'bench', targetScope: 'waitpoint',
  });
  await issueClaimGrant(client, { executionId, laneId, ...worker, grantTtlMs: 10_000 });
  const leaseId = newLeaseId();
  const resumed = await claimResumedExecution(client, { executionId, laneId, ...worker, leaseId, leaseTtlMs: 60_000, currentAttemptIndex: lease.attemptIndex });
  // The resumed claim keeps the attempt and bumps the epoch of the new lease.
  await completeExecution(client, { executionId, laneId, workerInstanceId: worker.workerInstanceId, ...lease, leaseId, leaseEpoch: Number(resumed.leaseEpoch) });
}
