// Shortcuts through the generated wrappers to put an execution in a given state, so each
// module's tests start from real engine state rather than hand-written hashes.
import { claimExecution, createExecution, type ClaimExecutionResult, type CreateExecutionArgs } from '../../generated/execution.js';
import { issueClaimGrant } from '../../generated/scheduling.js';
import type { FlowFabricClient } from '../../runtime/client.js';
import { newAttemptId, newLeaseId, type ExecutionId, type LaneId } from '../../runtime/ids.js';
import { newExecutionId, uniqueLane } from './ids.js';

export interface Created {
  readonly executionId: ExecutionId;
  readonly laneId: LaneId;
}

export interface Claimed extends Created {
  readonly workerId: string;
  readonly workerInstanceId: string;
  readonly claim: Extract<ClaimExecutionResult, { status: 'OK' }>;
  /** The lease triple and attempt index every lease-holder call needs. */
  readonly lease: { leaseId: ClaimExecutionResult['leaseId']; leaseEpoch: number; attemptId: ClaimExecutionResult['attemptId']; attemptIndex: number };
}

export async function createWaiting(client: FlowFabricClient, overrides: Partial<CreateExecutionArgs> = {}): Promise<Created> {
  const executionId = overrides.executionId ?? newExecutionId();
  const laneId = overrides.laneId ?? uniqueLane();
  await createExecution(client, { executionId, laneId, namespace: 'test', executionKind: 'test', ...overrides });
  return { executionId, laneId };
}

/** Grants and claims an existing eligible execution for a worker. */
export async function claim(client: FlowFabricClient, created: Created, options: { workerId?: string; workerInstanceId?: string; leaseTtlMs?: number; attemptIndex?: number } = {}): Promise<Claimed> {
  const workerId = options.workerId ?? 'worker-a';
  const workerInstanceId = options.workerInstanceId ?? `${workerId}-1`;
  await issueClaimGrant(client, { executionId: created.executionId, laneId: created.laneId, workerId, workerInstanceId, grantTtlMs: 5000 });
  const result = await claimExecution(client, {
    executionId: created.executionId,
    laneId: created.laneId,
    workerId,
    workerInstanceId,
    leaseId: newLeaseId(),
    attemptId: newAttemptId(),
    leaseTtlMs: options.leaseTtlMs ?? 30_000,
    expectedAttemptIndex: options.attemptIndex ?? 0,
  });
  return {
    ...created,
    workerId,
    workerInstanceId,
    claim: result,
    lease: { leaseId: result.leaseId, leaseEpoch: result.leaseEpoch, attemptId: result.attemptId, attemptIndex: result.attemptIndex },
  };
}

/** Creates an execution and claims it: an active execution with a live lease. */
export async function createClaimed(client: FlowFabricClient, overrides: Partial<CreateExecutionArgs> = {}, options: Parameters<typeof claim>[2] = {}): Promise<Claimed> {
  return claim(client, await createWaiting(client, overrides), options);
}
