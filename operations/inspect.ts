// A read of everything the engine holds about one execution, for operators and programs:
// what getExecution reads (public state, state vector, outcome), then attempts with their outcomes, the current lease, the suspension and its
// waitpoints, the signals it received, the last output frames and its place in a flow.
// Read-only and bounded: every key read is the execution's own (one partition, so one
// cluster slot) or its flow's, which lives on the same partition; lists are capped.
import { ExecKeys, FlowKeys, PartitionKeys } from '../generated/keys.js';
import { sendCommand } from '../runtime/classify.js';
import type { FlowFabricClient } from '../runtime/client.js';
import { parseExecutionId, type EdgeId, type ExecutionId, type FlowId, type SignalId, type WaitpointId } from '../runtime/ids.js';
import { hashReply, replyText } from '../runtime/reply.js';
import type { Transport } from '../runtime/transport.js';
import { getExecution, type ExecutionView } from './executions.js';

export interface AttemptDetails {
  readonly index: number;
  readonly attemptId?: string;
  /** initial, retry, reclaim, replay. */
  readonly type?: string;
  /** The attempt's own lifecycle: started, suspended, ended_success, ended_failure, ended_cancelled, interrupted_reclaimed. */
  readonly state?: string;
  readonly workerId?: string;
  readonly workerInstanceId?: string;
  readonly leaseEpoch?: number;
  readonly createdAt?: number;
  readonly startedAt?: number;
  readonly endedAt?: number;
  readonly suspendedAt?: number;
  readonly failureReason?: string;
  readonly failureCategory?: string;
  /** Why this attempt exists: the retry, reclaim or replay reason. */
  readonly reason?: string;
}

export interface LeaseDetails {
  readonly leaseId: string;
  readonly leaseEpoch?: number;
  readonly attemptId?: string;
  readonly workerId?: string;
  readonly workerInstanceId?: string;
  readonly acquiredAt?: number;
  readonly expiresAt?: number;
  readonly lastRenewedAt?: number;
  readonly renewalDeadline?: number;
}

export interface SuspensionDetails {
  readonly suspensionId: string;
  /** True while the episode is open (no `closed_at`). */
  readonly open: boolean;
  readonly attemptIndex?: number;
  readonly waitpointId?: string;
  readonly waitpointKey?: string;
  readonly reasonCode?: string;
  readonly requestedBy?: string;
  readonly createdAt?: number;
  readonly timeoutAt?: number;
  readonly timeoutBehavior?: string;
  /** The resume condition JSON as stored. */
  readonly resumeCondition?: string;
  readonly satisfiedAt?: number;
  readonly closedAt?: number;
  readonly closeReason?: string;
}

export interface MatcherDetails {
  /** The signal name it waits for; empty for a wildcard. */
  readonly name: string;
  readonly satisfied: boolean;
  readonly signalId?: string;
}

/** A waitpoint of the execution. Its token is a credential and is never read here. */
export interface WaitpointDetails {
  readonly waitpointId: WaitpointId;
  readonly waitpointKey?: string;
  /** pending, active, closed. */
  readonly state?: string;
  readonly createdAt?: number;
  readonly activatedAt?: number;
  readonly expiresAt?: number;
  readonly satisfiedAt?: number;
  readonly closedAt?: number;
  readonly closeReason?: string;
  readonly signalCount: number;
  readonly matchedSignalCount: number;
  /** The resume condition's progress: match mode, how many matchers are satisfied, each matcher. */
  readonly condition?: { readonly matchMode: string; readonly minimumSignalCount: number; readonly satisfiedCount: number; readonly matchers: readonly MatcherDetails[] };
}

export interface SignalDetails {
  readonly signalId: SignalId;
  readonly name?: string;
  readonly category?: string;
  readonly sourceType?: string;
  readonly sourceIdentity?: string;
  readonly waitpointId?: string;
  readonly acceptedAt?: number;
  /** appended_to_waitpoint, resume_condition_satisfied, no_op, buffered_for_pending_waitpoint. */
  readonly effect?: string;
}

export interface FrameDetails {
  /** The stream entry id. */
  readonly id: string;
  readonly frameType?: string;
  readonly ts?: number;
  readonly payload: string;
  readonly encoding?: string;
  readonly source?: string;
  readonly correlationId?: string;
}

/** The output stream of one attempt: its counters and its last frames, oldest first. */
export interface OutputDetails {
  readonly attemptIndex: number;
  readonly frameCount: number;
  readonly totalBytes: number;
  readonly closedAt?: number;
  readonly closedReason?: string;
  readonly frames: readonly FrameDetails[];
}

export interface EdgeDetails {
  readonly edgeId: EdgeId;
  /** The other end: the upstream of an incoming edge, the downstream of an outgoing one. */
  readonly executionId: string;
  readonly dependencyKind?: string;
  /** unsatisfied, satisfied, impossible (from the downstream's copy of the edge). */
  readonly state?: string;
}

export interface FlowMembership {
  readonly flowId: FlowId;
  readonly flowKind?: string;
  /** The flow record's state: open or cancelled. */
  readonly flowState?: string;
  readonly nodeCount?: number;
  readonly edgeCount?: number;
  readonly graphRevision?: number;
  readonly unsatisfiedRequired?: number;
  readonly impossibleRequired?: number;
  readonly incoming: readonly EdgeDetails[];
  readonly outgoing: readonly EdgeDetails[];
}

export interface ExecutionDetails {
  /** The execution as getExecution reads it: public state, the state vector, counters, outcome. */
  readonly execution: ExecutionView;
  /** The most recent attempts, oldest first. */
  readonly attempts: readonly AttemptDetails[];
  readonly totalAttempts: number;
  readonly lease?: LeaseDetails;
  readonly suspension?: SuspensionDetails;
  readonly waitpoints: readonly WaitpointDetails[];
  /** The most recent signals accepted for the execution, oldest first. */
  readonly signals: readonly SignalDetails[];
  readonly totalSignals: number;
  /** The current (or last) attempt's output. */
  readonly output?: OutputDetails;
  readonly flow?: FlowMembership;
}

export interface InspectOptions {
  /** Output frames to read from the end of the stream (default 10). */
  readonly frames?: number;
  /** Most recent signals to read (default 20). */
  readonly signals?: number;
  /** Most recent attempts to read (default 20). */
  readonly attempts?: number;
  /** Waitpoints and flow edges to read at most (default 50 each). */
  readonly limit?: number;
}

type Reader = Pick<Transport, 'command' | 'classify'>;
type Fields = Record<string, string>;

const texts = (reply: unknown): string[] => (Array.isArray(reply) ? reply.map((v) => replyText(v) ?? '') : []);
const set = (text: string | undefined): string | undefined => (text === undefined || text === '' ? undefined : text);
const num = (text: string | undefined): number | undefined => {
  const value = set(text);
  return value !== undefined && /^-?[0-9]+(\.[0-9]+)?$/.test(value) ? Number(value) : undefined;
};

/** Copies only the defined values, so that absent fields stay absent (and out of --json). */
function defined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

const hgetall = async (transport: Reader, key: string): Promise<Fields> => hashReply(await sendCommand(transport, 'HGETALL', [key]));

/**
 * Reads one execution in full, or undefined when it does not exist. Read-only: HGETALL,
 * ZRANGE, ZCARD, SMEMBERS and XREVRANGE on the execution's and its flow's keys.
 */
export async function inspectExecution(client: FlowFabricClient, executionId: ExecutionId, options: InspectOptions = {}): Promise<ExecutionDetails | undefined> {
  const transport = client.transport;
  const id = parseExecutionId(executionId);
  const execution = await getExecution(client, id);
  if (!execution) return undefined;
  const keys = new ExecKeys(id);
  const limit = options.limit ?? 50;
  const [attemptIds, totalAttempts, lease, suspension, waitpointIds, signalIds, totalSignals] = await Promise.all([
    sendCommand(transport, 'ZRANGE', [keys.attempts(), -(options.attempts ?? 20), -1]).then(texts),
    sendCommand(transport, 'ZCARD', [keys.attempts()]).then((n) => Number(n)),
    hgetall(transport, keys.leaseCurrent()),
    hgetall(transport, keys.suspensionCurrent()),
    sendCommand(transport, 'SMEMBERS', [keys.waitpoints()]).then(texts),
    sendCommand(transport, 'ZRANGE', [keys.execSignals(), -(options.signals ?? 20), -1]).then(texts),
    sendCommand(transport, 'ZCARD', [keys.execSignals()]).then((n) => Number(n)),
  ]);
  const partition = new PartitionKeys(keys.tag);
  const [attempts, waitpoints, signals, output, flow] = await Promise.all([
    Promise.all(attemptIds.map((index) => readAttempt(transport, keys, Number(index)))),
    Promise.all(waitpointIds.slice(0, limit).map((wp) => readWaitpoint(transport, partition, wp as WaitpointId))),
    Promise.all(signalIds.map((signalId) => readSignal(transport, partition, signalId as SignalId))),
    execution.attemptIndex === undefined ? undefined : readOutput(transport, keys, execution.attemptIndex, options.frames ?? 10),
    execution.flowId === undefined ? undefined : readFlow(transport, keys, execution.flowId, limit),
  ]);
  waitpoints.sort((a, b) => (a.createdAt ?? 0) - (b.createdAt ?? 0));
  return defined<ExecutionDetails>({
    execution,
    attempts,
    totalAttempts,
    lease: set(lease.lease_id) ? readLease(lease) : undefined,
    suspension: set(suspension.suspension_id) ? readSuspension(suspension) : undefined,
    waitpoints,
    signals,
    totalSignals,
    output,
    flow,
  });
}

async function readAttempt(transport: Reader, keys: ExecKeys, index: number): Promise<AttemptDetails> {
  const a = await hgetall(transport, keys.attemptHash(index));
  return defined<AttemptDetails>({
    index,
    attemptId: set(a.attempt_id),
    type: set(a.attempt_type),
    state: set(a.attempt_state),
    workerId: set(a.worker_id),
    workerInstanceId: set(a.worker_instance_id),
    leaseEpoch: num(a.lease_epoch),
    createdAt: num(a.created_at),
    startedAt: num(a.started_at),
    endedAt: num(a.ended_at),
    suspendedAt: num(a.suspended_at),
    failureReason: set(a.failure_reason),
    failureCategory: set(a.failure_category),
    reason: set(a.retry_reason) ?? set(a.reclaim_reason) ?? set(a.replay_reason),
  });
}

function readLease(l: Fields): LeaseDetails {
  return defined<LeaseDetails>({
    leaseId: l.lease_id ?? '',
    leaseEpoch: num(l.lease_epoch),
    attemptId: set(l.attempt_id),
    workerId: set(l.worker_id),
    workerInstanceId: set(l.worker_instance_id),
    acquiredAt: num(l.acquired_at),
    expiresAt: num(l.expires_at),
    lastRenewedAt: num(l.last_renewed_at),
    renewalDeadline: num(l.renewal_deadline),
  });
}

function readSuspension(s: Fields): SuspensionDetails {
  return defined<SuspensionDetails>({
    suspensionId: s.suspension_id ?? '',
    open: !set(s.closed_at),
    attemptIndex: num(s.attempt_index),
    waitpointId: set(s.waitpoint_id),
    waitpointKey: set(s.waitpoint_key),
    reasonCode: set(s.reason_code),
    requestedBy: set(s.requested_by),
    createdAt: num(s.created_at),
    timeoutAt: num(s.timeout_at),
    timeoutBehavior: set(s.timeout_behavior),
    resumeCondition: set(s.resume_condition_json),
    satisfiedAt: num(s.satisfied_at),
    closedAt: num(s.closed_at),
    closeReason: set(s.close_reason),
  });
}

async function readWaitpoint(transport: Reader, partition: PartitionKeys, waitpointId: WaitpointId): Promise<WaitpointDetails> {
  const [w, c] = await Promise.all([hgetall(transport, partition.waitpoint(waitpointId)), hgetall(transport, partition.waitpointCondition(waitpointId))]);
  const matchers: MatcherDetails[] = [];
  const total = num(c.total_matchers) ?? 0;
  for (let i = 0; i < Math.min(total, 100); i++) {
    matchers.push(defined<MatcherDetails>({ name: c[`matcher:${i}:name`] ?? '', satisfied: c[`matcher:${i}:satisfied`] === '1', signalId: set(c[`matcher:${i}:signal_id`]) }));
  }
  return defined<WaitpointDetails>({
    waitpointId,
    waitpointKey: set(w.waitpoint_key),
    state: set(w.state),
    createdAt: num(w.created_at),
    activatedAt: num(w.activated_at),
    expiresAt: num(w.expires_at),
    satisfiedAt: num(w.satisfied_at),
    closedAt: num(w.closed_at),
    closeReason: set(w.close_reason),
    signalCount: num(w.signal_count) ?? 0,
    matchedSignalCount: num(w.matched_signal_count) ?? 0,
    condition: c.total_matchers === undefined ? undefined : { matchMode: c.match_mode ?? 'any', minimumSignalCount: num(c.minimum_signal_count) ?? 1, satisfiedCount: num(c.satisfied_count) ?? 0, matchers },
  });
}

async function readSignal(transport: Reader, partition: PartitionKeys, signalId: SignalId): Promise<SignalDetails> {
  const s = await hgetall(transport, partition.signal(signalId));
  return defined<SignalDetails>({
    signalId,
    name: set(s.signal_name),
    category: set(s.signal_category),
    sourceType: set(s.source_type),
    sourceIdentity: set(s.source_identity),
    waitpointId: set(s.target_waitpoint_id),
    acceptedAt: num(s.accepted_at),
    effect: set(s.observed_effect),
  });
}

async function readOutput(transport: Reader, keys: ExecKeys, attemptIndex: number, count: number): Promise<OutputDetails | undefined> {
  const [meta, entries] = await Promise.all([
    hgetall(transport, keys.streamMeta(attemptIndex)),
    count > 0 ? sendCommand(transport, 'XREVRANGE', [keys.stream(attemptIndex), '+', '-', 'COUNT', count]) : Promise.resolve([]),
  ]);
  if (meta.stream_id === undefined) return undefined;
  const frames = (Array.isArray(entries) ? entries : []).map((entry): FrameDetails => {
    const [entryId, raw] = Array.isArray(entry) ? entry : [];
    const f = hashReply(raw);
    return defined<FrameDetails>({
      id: replyText(entryId) ?? '',
      frameType: set(f.frame_type),
      ts: num(f.ts),
      payload: f.payload ?? '',
      encoding: set(f.encoding),
      source: set(f.source),
      correlationId: set(f.correlation_id),
    });
  });
  return defined<OutputDetails>({
    attemptIndex,
    frameCount: num(meta.frame_count) ?? 0,
    totalBytes: num(meta.total_bytes) ?? 0,
    closedAt: num(meta.closed_at),
    closedReason: set(meta.closed_reason),
    frames: frames.reverse(),
  });
}

async function readFlow(transport: Reader, keys: ExecKeys, flowId: FlowId, limit: number): Promise<FlowMembership> {
  // Members live on their flow's partition: the flow's keys share the execution's tag.
  const flow = new FlowKeys(keys.tag, flowId);
  const [core, deps, incomingIds, outgoingIds] = await Promise.all([
    hgetall(transport, flow.core()),
    hgetall(transport, keys.depsMeta()),
    sendCommand(transport, 'SMEMBERS', [keys.depsAllEdges()]).then(texts),
    sendCommand(transport, 'SMEMBERS', [flow.outgoing(keys.executionId)]).then(texts),
  ]);
  const [incoming, outgoing] = await Promise.all([
    Promise.all(
      incomingIds.slice(0, limit).map(async (edgeId): Promise<EdgeDetails> => {
        const e = await hgetall(transport, keys.depEdge(edgeId as EdgeId));
        return defined<EdgeDetails>({ edgeId: edgeId as EdgeId, executionId: e.upstream_execution_id ?? '', dependencyKind: set(e.dependency_kind), state: set(e.state) });
      }),
    ),
    Promise.all(
      outgoingIds.slice(0, limit).map(async (edgeId): Promise<EdgeDetails> => {
        const e = await hgetall(transport, flow.edge(edgeId as EdgeId));
        const downstream = set(e.downstream_execution_id);
        // The edge's live state is kept in the downstream's copy of it.
        const copy = downstream ? await hgetall(transport, new ExecKeys(parseExecutionId(downstream)).depEdge(edgeId as EdgeId)) : {};
        return defined<EdgeDetails>({ edgeId: edgeId as EdgeId, executionId: downstream ?? '', dependencyKind: set(e.dependency_kind), state: set(copy.state) });
      }),
    ),
  ]);
  return defined<FlowMembership>({
    flowId,
    flowKind: set(core.flow_kind),
    flowState: set(core.public_flow_state),
    nodeCount: num(core.node_count),
    edgeCount: num(core.edge_count),
    graphRevision: num(core.graph_revision),
    unsatisfiedRequired: num(deps.unsatisfied_required_count),
    impossibleRequired: num(deps.impossible_required_count),
    incoming,
    outgoing,
  });
}
