// Our side's steps through the generated wrappers, shared by the cases that need executions
// in a given state: pipelined creates, and grant + claim for one worker.
import { buildCreateExecution, claimExecution, parseCreateExecution, type ClaimExecutionResult } from '../generated/execution.js';
import { claimNextEligible, completeAndClaimNext, type ClaimNextEligibleResult, type CompleteAndClaimNextResult } from '../generated/fastpath.js';
import { issueClaimGrant } from '../generated/scheduling.js';
import { call, type FlowFabricClient } from '../runtime/client.js';
import { newAttemptId, newLeaseId, type ExecutionId, type LaneId } from '../runtime/ids.js';
import { soloPartition } from '../runtime/partition.js';

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
export async function createMany(client: FlowFabricClient, ids: readonly ExecutionId[], laneId: LaneId): Promise<void> {
  for (let start = 0; start < ids.length; start += ENQUEUE_CHUNK) {
    const calls = ids
      .slice(start, start + ENQUEUE_CHUNK)
      .map((executionId) => call(buildCreateExecution({ executionId, laneId, namespace: 'bench', executionKind: 'bench' }, client.partitions), parseCreateExecution));
    const settled = await client.batch(calls);
    const failed = settled.find((s) => !s.ok);
    if (failed && !failed.ok) throw failed.error;
  }
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

/** One worker of the fast path on a solo lane: claim the lane's head, then complete-and-claim-next until the lane is empty. */
export async function fastWorker(client: FlowFabricClient, laneId: LaneId, worker: Worker): Promise<void> {
  const partition = soloPartition(laneId, client.partitions);
  const leaseTtlMs = 60_000;
  let claim: ClaimNextEligibleResult | CompleteAndClaimNextResult = await claimNextEligible(client, { ...worker, laneId, partition, leaseId: newLeaseId(), attemptId: newAttemptId(), leaseTtlMs });
  while (claim.status === 'claimed' || claim.status === 'claimed_next') {
    const executionId: ExecutionId = claim.status === 'claimed' ? claim.executionId : claim.nextExecutionId;
    claim = await completeAndClaimNext(client, {
      executionId, laneId, ...worker, leaseId: claim.leaseId, leaseEpoch: claim.leaseEpoch, attemptId: claim.attemptId,
      attemptIndex: claim.attemptIndex, nextLeaseId: newLeaseId(), nextAttemptId: newAttemptId(), leaseTtlMs,
    });
  }
}
