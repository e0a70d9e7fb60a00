// Client helpers for the flow functions: the pre-reads their KEYS need (the child's lane
// and attempt, an edge's upstream and its outcome, a skipped member's inbound edges, the
// flow's graph revision), and the engine's completion walk (resolve every outgoing edge of
// a finished upstream, cascading through skipped children). Everything else goes through
// the generated wrappers in generated/flow.ts.
import {
  applyDependencyToChild,
  promoteBlockedToEligible,
  replayExecution,
  resolveDependency,
  stageDependencyEdge,
  type ApplyDependencyToChildArgs,
  type ApplyDependencyToChildResult,
  type PromoteBlockedToEligibleResult,
  type ReplayExecutionResult,
  type ResolveDependencyArgs,
  type ResolveDependencyResult,
  type StageDependencyEdgeArgs,
  type StageDependencyEdgeResult,
} from '../generated/flow.js';
import { sendCommand } from '../runtime/classify.js';
import { ExecKeys, FlowKeys } from '../generated/keys.js';
import { textToInteger } from '../runtime/decode.js';
import { ReplyParseError, isScriptError } from '../runtime/errors.js';
import { DEFAULT_LANE_ID, executionTag, parseEdgeId, parseExecutionId, parseFlowId, parseLaneId, type EdgeId, type ExecutionId, type FlowId, type LaneId } from '../runtime/ids.js';
import { replyText } from '../runtime/reply.js';
import type { FunctionCaller, Transport } from '../runtime/transport.js';

/** A caller that can also read keys directly (FlowFabricClient is one). */
export interface FlowClient extends FunctionCaller {
  readonly transport: Pick<Transport, 'command'>;
}

/** ff_apply_dependency_to_child's one reply field, read: the new count, or already applied. */
export type ApplyOutcome = { readonly applied: true; readonly unsatisfiedCount: number } | { readonly applied: false };

/** Splits apply's `outcome` (decimal count or `already_applied`; one status on the wire). */
export function applyOutcome(result: ApplyDependencyToChildResult): ApplyOutcome {
  if (result.outcome === 'already_applied') return { applied: false };
  return { applied: true, unsatisfiedCount: textToInteger('ff_apply_dependency_to_child', 'outcome', result.outcome) };
}

async function hget(client: FlowClient, key: string, field: string): Promise<string | undefined> {
  const value = replyText(await sendCommand(client.transport, 'HGET', [key, field]));
  return value === '' ? undefined : value;
}

async function hmget(client: FlowClient, key: string, fields: readonly string[]): Promise<(string | undefined)[]> {
  const reply = await sendCommand(client.transport, 'HMGET', [key, ...fields]);
  if (!Array.isArray(reply)) throw new ReplyParseError('HMGET', key, 'expected an array');
  return fields.map((_, i) => {
    const value = replyText(reply[i]);
    return value === '' ? undefined : value;
  });
}

async function smembers(client: FlowClient, key: string): Promise<string[]> {
  const reply = await sendCommand(client.transport, 'SMEMBERS', [key]);
  if (!Array.isArray(reply)) throw new ReplyParseError('SMEMBERS', key, 'expected an array');
  return reply.map((value) => replyText(value) ?? '').sort();
}

/** The flow's graph_revision (0 when the flow or the field is missing). */
export async function readGraphRevision(client: FlowClient, flowId: FlowId): Promise<number> {
  const text = await hget(client, FlowKeys.for(flowId, client.partitions).core(), 'graph_revision');
  return text === undefined ? 0 : textToInteger('HGET', 'graph_revision', text);
}

/** An execution's lane (the engine's fallback `default` when unset). */
export async function readLane(client: FlowClient, executionId: ExecutionId): Promise<LaneId> {
  const lane = await hget(client, new ExecKeys(executionId).core(), 'lane_id');
  return lane === undefined ? DEFAULT_LANE_ID : parseLaneId(lane);
}

export type StageEdgeArgs = Omit<StageDependencyEdgeArgs, 'expectedGraphRevision'> & {
  /** Known revision to try first; read from the flow when absent. */
  readonly expectedGraphRevision?: number;
  /** Tries in all, re-reading the revision after each stale_graph_revision (default 3). */
  readonly attempts?: number;
};

/** Stages an edge at the flow's current graph revision, re-reading it on stale_graph_revision. */
export async function stageEdge(client: FlowClient, args: StageEdgeArgs): Promise<StageDependencyEdgeResult> {
  const { attempts = 3, expectedGraphRevision, ...rest } = args;
  let revision = expectedGraphRevision ?? (await readGraphRevision(client, args.flowId));
  for (let attempt = 1; ; attempt++) {
    try {
      return await stageDependencyEdge(client, { ...rest, expectedGraphRevision: revision });
    } catch (error) {
      if (!isScriptError(error, 'stale_graph_revision') || attempt >= attempts) throw error;
      revision = await readGraphRevision(client, args.flowId);
    }
  }
}

/** Applies an edge to its child, pre-reading the child's lane. */
export async function applyDependency(client: FlowClient, args: Omit<ApplyDependencyToChildArgs, 'laneId'>): Promise<ApplyOutcome> {
  const laneId = await readLane(client, args.downstreamExecutionId);
  return applyOutcome(await applyDependencyToChild(client, { ...args, laneId }));
}

/** What resolving one edge did, or why it was not resolved. */
export interface EdgeResolution {
  readonly edgeId: EdgeId;
  readonly upstreamExecutionId: ExecutionId;
  readonly downstreamExecutionId: ExecutionId;
  /** Absent when the upstream is not terminal yet (nothing was sent). */
  readonly result?: ResolveDependencyResult;
}

/**
 * Resolves one staged edge from its upstream's current terminal outcome, as the engine's
 * completion listener does: reads the edge, the upstream's outcome and the child's lane
 * and current attempt, then calls ff_resolve_dependency.
 */
export async function resolveEdge(client: FlowClient, flowId: FlowId, edgeId: EdgeId): Promise<EdgeResolution> {
  const flowKeys = FlowKeys.for(flowId, client.partitions);
  const [upstreamText, downstreamText] = await hmget(client, flowKeys.edge(edgeId), ['upstream_execution_id', 'downstream_execution_id']);
  if (upstreamText === undefined || downstreamText === undefined) {
    throw new ReplyParseError('ff_resolve_dependency', 'edge', `edge ${edgeId} of flow ${flowId} is not staged`);
  }
  const upstreamExecutionId = parseExecutionId(upstreamText);
  const downstreamExecutionId = parseExecutionId(downstreamText);
  const [phase, outcome] = await hmget(client, new ExecKeys(upstreamExecutionId).core(), ['lifecycle_phase', 'terminal_outcome']);
  if (phase !== 'terminal' || outcome === undefined || outcome === 'none') {
    return { edgeId, upstreamExecutionId, downstreamExecutionId };
  }
  const [lane, attempt] = await hmget(client, new ExecKeys(downstreamExecutionId).core(), ['lane_id', 'current_attempt_index']);
  const args: ResolveDependencyArgs = {
    downstreamExecutionId,
    upstreamExecutionId,
    laneId: lane === undefined ? DEFAULT_LANE_ID : parseLaneId(lane),
    attemptIndex: attempt === undefined ? 0 : textToInteger('HMGET', 'current_attempt_index', attempt),
    edgeId,
    upstreamOutcome: outcome as ResolveDependencyArgs['upstreamOutcome'],
    nowMs: Date.now(),
  };
  return { edgeId, upstreamExecutionId, downstreamExecutionId, result: await resolveDependency(client, args) };
}

/**
 * Resolves every outgoing edge of a finished execution, and, for each child that this
 * skipped, its outgoing edges in turn (depth-first, at most `maxDepth` levels, as the
 * engine's cascade). Returns every resolution in the order made.
 */
export async function resolveOutgoing(client: FlowClient, flowId: FlowId, upstreamExecutionId: ExecutionId, maxDepth = 50): Promise<EdgeResolution[]> {
  const out: EdgeResolution[] = [];
  const walk = async (upstream: ExecutionId, depth: number): Promise<void> => {
    const edges = await smembers(client, FlowKeys.for(flowId, client.partitions).outgoing(upstream));
    for (const edge of edges) {
      const resolution = await resolveEdge(client, flowId, parseEdgeId(edge));
      out.push(resolution);
      const result = resolution.result;
      if (result?.status === 'impossible' && result.marker === 'child_skipped' && depth < maxDepth) {
        await walk(resolution.downstreamExecutionId, depth + 1);
      }
    }
  };
  await walk(upstreamExecutionId, 1);
  return out;
}

/** Promotes a blocked execution with no outstanding dependencies, pre-reading its lane. */
export async function promoteBlocked(client: FlowClient, executionId: ExecutionId): Promise<PromoteBlockedToEligibleResult> {
  return promoteBlockedToEligible(client, { executionId, laneId: await readLane(client, executionId), nowMs: Date.now() });
}

/**
 * Replays a terminal execution. For a skipped flow member it reads every inbound edge
 * of the execution (the flow's `in:` set) so the engine can reset the impossible ones.
 */
export async function replay(client: FlowClient, executionId: ExecutionId): Promise<ReplayExecutionResult> {
  const [lane, flowId, outcome] = await hmget(client, new ExecKeys(executionId).core(), ['lane_id', 'flow_id', 'terminal_outcome']);
  let edgeIds: EdgeId[] = [];
  if (outcome === 'skipped' && flowId !== undefined) {
    // Members live on their flow's partition, so the execution's own tag is the flow's.
    const inbound = new FlowKeys(executionTag(executionId), parseFlowId(flowId)).incoming(executionId);
    edgeIds = (await smembers(client, inbound)).map(parseEdgeId);
  }
  return replayExecution(client, {
    executionId,
    laneId: lane === undefined ? DEFAULT_LANE_ID : parseLaneId(lane),
    nowMs: Date.now(),
    edgeIds,
  });
}

/** A flow's state as the engine's projector derives it from its members' public states. */
export type DerivedFlowState = 'open' | 'running' | 'blocked' | 'completed' | 'failed';

const TERMINAL_STATES = new Set(['completed', 'failed', 'cancelled', 'expired', 'skipped']);
const FAILED_STATES = new Set(['failed', 'cancelled', 'expired']);
const BLOCKED_STATES = new Set(['suspended', 'delayed', 'rate_limited', 'waiting_children']);

/**
 * The projector's rule (flow.md §2.2): every member terminal → `failed` if any failed, was
 * cancelled or expired, else `completed` (skipped members count as neither); otherwise
 * `running` if any is active, `blocked` if any waits on something other than a worker,
 * else `open`. A flow without members is `open`. The flow core's own public_flow_state
 * only ever says `open` or `cancelled`.
 */
export function deriveFlowState(publicStates: readonly string[]): DerivedFlowState {
  if (publicStates.length === 0) return 'open';
  if (publicStates.every((s) => TERMINAL_STATES.has(s))) {
    return publicStates.some((s) => FAILED_STATES.has(s)) ? 'failed' : 'completed';
  }
  if (publicStates.includes('active')) return 'running';
  if (publicStates.some((s) => BLOCKED_STATES.has(s))) return 'blocked';
  return 'open';
}

/** A flow's stored state, its members' public states and the state derived from them. */
export interface FlowOutcome {
  /** The flow core's public_flow_state (`open` or `cancelled`), undefined when the flow is missing. */
  readonly publicFlowState?: string;
  readonly members: Readonly<Record<string, string>>;
  readonly derived: DerivedFlowState;
}

/** Reads every member's public_state (a full walk, not the projector's sample). */
export async function readFlowOutcome(client: FlowClient, flowId: FlowId): Promise<FlowOutcome> {
  const keys = FlowKeys.for(flowId, client.partitions);
  const publicFlowState = await hget(client, keys.core(), 'public_flow_state');
  const members: Record<string, string> = {};
  for (const member of await smembers(client, keys.members())) {
    members[member] = (await hget(client, new ExecKeys(parseExecutionId(member)).core(), 'public_state')) ?? '';
  }
  return { ...(publicFlowState !== undefined ? { publicFlowState } : {}), members, derived: deriveFlowState(Object.values(members)) };
}
