// Shortcuts for flow tests: a flow with members minted on its partition, edges staged and
// applied, and members finished through the generated wrappers.
import { completeExecution, type CreateExecutionArgs } from '../../generated/execution.js';
import { addExecutionToFlow, createFlow } from '../../generated/flow.js';
import type { FlowFabricClient } from '../../runtime/client.js';
import { applyDependency, stageEdge } from '../../operations/flows.js';
import { newEdgeId, newFlowId, type EdgeId, type ExecutionId, type FlowId, type LaneId } from '../../runtime/ids.js';
import { executionIdForFlow, flowPartition } from '../../runtime/partition.js';
import type { Claimed, Created } from './lifecycle.js';
import { createWaiting } from './lifecycle.js';
import { uniqueLane } from './ids.js';

export interface TestFlow {
  readonly flowId: FlowId;
  /** One lane per flow, shared by its members. */
  readonly laneId: LaneId;
}

export async function newTestFlow(client: FlowFabricClient, flowId: FlowId = newFlowId()): Promise<TestFlow> {
  await createFlow(client, { flowId, flowKind: 'test', namespace: 'test' });
  return { flowId, laneId: uniqueLane('flow') };
}

/** A second flow id on the same partition as `flowId` (for cross-flow membership tests). */
export function flowIdOnSamePartition(client: FlowFabricClient, flowId: FlowId): FlowId {
  const target = flowPartition(flowId, client.partitions);
  for (;;) {
    const candidate = newFlowId();
    if (candidate !== flowId && flowPartition(candidate, client.partitions) === target) return candidate;
  }
}

/** Creates an execution on the flow's partition and adds it to the flow. */
export async function addMember(client: FlowFabricClient, flow: TestFlow, overrides: Partial<CreateExecutionArgs> = {}): Promise<Created> {
  const created = await createWaiting(client, { executionId: executionIdForFlow(flow.flowId, client.partitions), laneId: flow.laneId, ...overrides });
  await addExecutionToFlow(client, { flowId: flow.flowId, executionId: created.executionId });
  return created;
}

/** Stages upstream → downstream at the flow's current revision and applies it to the child. */
export async function link(client: FlowFabricClient, flow: TestFlow, upstream: ExecutionId, downstream: ExecutionId, dataPassingRef?: string): Promise<EdgeId> {
  const edgeId = newEdgeId();
  const staged = await stageEdge(client, { flowId: flow.flowId, edgeId, upstreamExecutionId: upstream, downstreamExecutionId: downstream, ...(dataPassingRef ? { dataPassingRef } : {}) });
  await applyDependency(client, {
    flowId: flow.flowId, edgeId, downstreamExecutionId: downstream, upstreamExecutionId: upstream,
    graphRevision: staged.newGraphRevision, ...(dataPassingRef ? { dataPassingRef } : {}),
  });
  return edgeId;
}

/** The lease holder completes its claimed execution. */
export async function complete(client: FlowFabricClient, claimed: Claimed, resultPayload?: string): Promise<void> {
  await completeExecution(client, {
    executionId: claimed.executionId, laneId: claimed.laneId, workerInstanceId: claimed.workerInstanceId,
    ...claimed.lease, ...(resultPayload !== undefined ? { resultPayload } : {}),
  });
}
