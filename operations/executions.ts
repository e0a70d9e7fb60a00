// The producer's side of executions: submit one with typed options, read its state and
// result, wait for its outcome, signal it, cancel it. Everything here is a create or a read
// plus, where the engine needs KEYS that depend on state, the pre-read that builds them.
import { setTimeout as sleep } from 'node:timers/promises';
import { sendCommand } from '../runtime/classify.js';
import type { FlowFabricClient } from '../runtime/client.js';
import { ArgumentError, FlowFabricError, ReplyParseError } from '../runtime/errors.js';
import {
  parseExecutionId,
  parseFlowId,
  parseLaneId,
  parseWaitpointId,
  newSignalId,
  newEdgeId,
  newFlowId,
  type EdgeId,
  executionPartition,
  type BudgetId,
  type ExecutionId,
  type FlowId,
  type LaneId,
  type QuotaPolicyId,
  type SignalId,
} from '../runtime/ids.js';
import { executionIdForFlow, soloExecutionId, type SoloPartitioner } from '../runtime/partition.js';
import { hashReply, replyText } from '../runtime/reply.js';
import { createExecution, cancelExecution, type CancelExecutionResult } from '../generated/execution.js';
import { addExecutionToFlow, createFlow } from '../generated/flow.js';
import { ExecKeys, PartitionKeys } from '../generated/keys.js';
import { deliverSignal, type DeliverSignalResult } from '../generated/signal.js';
import { applyDependency, stageEdge } from './flows.js';
import { readExecutionContext } from './preread.js';
import { explainWaitpointError } from './waitpoints.js';

// ---------------------------------------------------------------------------------
// Policies as TypeScript objects (model.md §4.12), turned into the engine's JSON

/** How long to wait before a retry: a fixed delay, or one that grows per retry. */
export type Backoff =
  | { readonly type: 'fixed'; readonly delayMs: number }
  | { readonly type: 'exponential'; readonly initialDelayMs: number; readonly maxDelayMs: number; readonly multiplier?: number };

/** What a failed attempt may do next. The worker applies it; the handler never resends it. */
export interface RetryPolicy {
  /** Retries after the first attempt (0 = fail on the first error). */
  readonly maxRetries: number;
  /** Default: exponential from 1 s, doubling, at most 60 s (the engine's default). */
  readonly backoff?: Backoff;
}

/** The engine's `retry_policy` JSON for a {@link RetryPolicy}. */
export function retryPolicyJson(policy: RetryPolicy): Record<string, unknown> {
  const fn = 'submitExecution';
  if (!Number.isSafeInteger(policy.maxRetries) || policy.maxRetries < 0) {
    throw new ArgumentError(fn, 'retry.maxRetries', `must be a non-negative integer, got ${String(policy.maxRetries)}`);
  }
  const backoff = policy.backoff ?? { type: 'exponential', initialDelayMs: 1000, maxDelayMs: 60_000, multiplier: 2 };
  const wire =
    backoff.type === 'fixed'
      ? { type: 'fixed', delay_ms: nonNegative(fn, 'retry.backoff.delayMs', backoff.delayMs) }
      : {
          type: 'exponential',
          initial_delay_ms: nonNegative(fn, 'retry.backoff.initialDelayMs', backoff.initialDelayMs),
          max_delay_ms: nonNegative(fn, 'retry.backoff.maxDelayMs', backoff.maxDelayMs),
          multiplier: backoff.multiplier ?? 2,
          jitter: false,
        };
  return { max_retries: policy.maxRetries, backoff: wire };
}

function nonNegative(fn: string, name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) throw new ArgumentError(fn, name, `must be a non-negative integer, got ${String(value)}`);
  return value;
}

// ---------------------------------------------------------------------------------
// Submit

export interface SubmitOptions {
  /** The lane the execution waits in (workers name the lanes they take work from). */
  readonly lane: string;
  /** Caller-defined kind; handed to the worker's handler as `task.kind`. */
  readonly kind: string;
  /** JSON input (serialised with JSON.stringify). Give this or `payload`, not both. */
  readonly input?: unknown;
  /** Raw input, stored as it is (a Uint8Array is stored as its UTF-8 text). */
  readonly payload?: string | Uint8Array;
  /** Tenant or workspace; default `default`. Scopes the idempotency key. */
  readonly namespace?: string;
  /** Higher runs first; 0..9000. Default 0. */
  readonly priority?: number;
  /** Not eligible before this many ms from now. */
  readonly delayMs?: number;
  /** What a failed attempt may do next; default no retry. */
  readonly retry?: RetryPolicy;
  /** Expire the execution (terminal `expired`) if not finished this many ms from now; needs the engine's deadline scanner. */
  readonly deadlineMs?: number;
  /** A resubmission with the same key (per namespace) while its window lasts returns the first id. */
  readonly idempotencyKey?: string;
  /** How long the idempotency key holds; default one day. */
  readonly dedupTtlMs?: number;
  /** User labels, handed to the handler as `task.tags`. */
  readonly tags?: Readonly<Record<string, string>>;
  /** Only workers advertising all of these may claim it. */
  readonly requiredCapabilities?: readonly string[];
  /** Budgets the execution's usage counts against (ExecutionPolicy.budget_ids). */
  readonly budgetIds?: readonly BudgetId[];
  /** Quota policy the execution is admitted under (stored on exec_core for the scheduler's admission). */
  readonly quotaPolicyId?: QuotaPolicyId;
  /** How often a lost lease may be reclaimed before the execution fails; default 100. */
  readonly maxReclaimCount?: number;
  /** Make it a member of this flow: the id is minted on the flow's partition and the membership recorded. */
  readonly flowId?: FlowId;
  /** Use this id instead of minting one (it must be on the flow's partition for a flow member). */
  readonly executionId?: ExecutionId;
  /** How a flow-less id picks its partition; default the lane's own partition (the reference's rule). */
  readonly partitioner?: SoloPartitioner;
  /** Stored as creator_identity. */
  readonly creator?: string;
}

export interface Submitted {
  readonly executionId: ExecutionId;
  /** True when the idempotency key (or the id) was seen before: nothing new was created. */
  readonly duplicate: boolean;
  readonly publicState: 'waiting' | 'delayed' | undefined;
}

/** The ExecutionPolicy JSON for the options that live in it. */
function policyOf(options: SubmitOptions): Record<string, unknown> | undefined {
  const policy: Record<string, unknown> = {};
  if (options.retry) policy.retry_policy = retryPolicyJson(options.retry);
  if (options.requiredCapabilities && options.requiredCapabilities.length > 0) {
    policy.routing_requirements = { required_capabilities: [...new Set(options.requiredCapabilities)].sort() };
  }
  if (options.budgetIds && options.budgetIds.length > 0) policy.budget_ids = [...options.budgetIds];
  if (options.maxReclaimCount !== undefined) policy.max_reclaim_count = nonNegative('submitExecution', 'maxReclaimCount', options.maxReclaimCount);
  return Object.keys(policy).length > 0 ? policy : undefined;
}

function payloadOf(options: SubmitOptions): string | undefined {
  if (options.input !== undefined && options.payload !== undefined) {
    throw new ArgumentError('submitExecution', 'input', 'give input (JSON) or payload (raw), not both');
  }
  if (options.payload !== undefined) return typeof options.payload === 'string' ? options.payload : Buffer.from(options.payload).toString('utf8');
  return options.input === undefined ? undefined : JSON.stringify(options.input);
}

/**
 * Creates an execution from typed options: the policy (retry, capabilities, budgets,
 * reclaim limit) becomes the engine's ExecutionPolicy JSON, the input its payload, and a
 * flow member joins its flow. Returns the id (the first one's on a duplicate).
 */
export async function submitExecution(client: FlowFabricClient, options: SubmitOptions): Promise<Submitted> {
  const laneId = parseLaneId(options.lane);
  const flowId = options.flowId === undefined ? undefined : parseFlowId(options.flowId);
  const executionId =
    options.executionId !== undefined
      ? parseExecutionId(options.executionId)
      : flowId !== undefined
        ? executionIdForFlow(flowId, client.partitions)
        : soloExecutionId(laneId, client.partitions, undefined, options.partitioner);
  const now = Date.now();
  const policy = policyOf(options);
  const payload = payloadOf(options);
  const created = await createExecution(client, {
    executionId,
    laneId,
    namespace: options.namespace ?? 'default',
    executionKind: options.kind,
    ...(options.priority !== undefined ? { priority: options.priority } : {}),
    ...(options.creator !== undefined ? { creatorIdentity: options.creator } : {}),
    ...(policy !== undefined ? { policyJson: policy } : {}),
    ...(payload !== undefined ? { inputPayload: payload } : {}),
    ...(options.delayMs !== undefined && options.delayMs > 0 ? { delayUntil: now + nonNegative('submitExecution', 'delayMs', options.delayMs) } : {}),
    ...(options.idempotencyKey !== undefined ? { idempotencyKey: options.idempotencyKey } : {}),
    ...(options.dedupTtlMs !== undefined ? { dedupTtlMs: options.dedupTtlMs } : {}),
    ...(options.tags !== undefined ? { tagsJson: options.tags } : {}),
    // Stored on exec_core for the scheduler's budget and quota admission (create extension).
    ...(options.budgetIds && options.budgetIds.length > 0 ? { budgetIds: options.budgetIds } : {}),
    ...(options.quotaPolicyId !== undefined ? { quotaPolicyId: options.quotaPolicyId } : {}),
    ...(options.deadlineMs !== undefined ? { executionDeadlineAt: now + nonNegative('submitExecution', 'deadlineMs', options.deadlineMs) } : {}),
  });
  if (created.status === 'DUPLICATE') return { executionId: created.executionId, duplicate: true, publicState: undefined };
  if (flowId !== undefined) await addExecutionToFlow(client, { flowId, executionId });
  return { executionId: created.executionId, duplicate: false, publicState: created.publicState };
}

// ---------------------------------------------------------------------------------
// Read

export type PublicState = 'waiting' | 'delayed' | 'rate_limited' | 'waiting_children' | 'active' | 'suspended' | 'completed' | 'failed' | 'cancelled' | 'expired' | 'skipped';

const TERMINAL_STATES: ReadonlySet<string> = new Set(['completed', 'failed', 'cancelled', 'expired', 'skipped']);

/** True for the public states an execution never leaves (short of a replay). */
export function isTerminalState(state: string | undefined): boolean {
  return state !== undefined && TERMINAL_STATES.has(state);
}

/** An execution as a reader sees it: public state, the state vector, attempts, outcome. */
export interface ExecutionView {
  readonly executionId: ExecutionId;
  readonly namespace: string;
  readonly laneId: LaneId;
  readonly kind: string;
  readonly priority: number;
  readonly publicState: PublicState;
  /** The seven stored dimensions of the state vector (model.md §4.1). */
  readonly state: {
    readonly lifecyclePhase: string;
    readonly ownershipState: string;
    readonly eligibilityState: string;
    readonly blockingReason: string;
    readonly blockingDetail: string;
    readonly terminalOutcome: string;
    readonly attemptState: string;
  };
  /** Index of the current (or last) attempt; absent before the first claim. */
  readonly attemptIndex?: number;
  /** Attempts made so far. */
  readonly attempts: number;
  readonly retryCount: number;
  readonly reclaimCount: number;
  readonly replayCount: number;
  /** The result text of a completed execution (as the handler's worker stored it). */
  readonly result?: string;
  /** `result` parsed as JSON, when it is JSON. */
  readonly resultJson?: unknown;
  /** Why it failed (or expired), when it did. */
  readonly failureReason?: string;
  readonly cancellationReason?: string;
  readonly progress?: { readonly pct?: number; readonly message?: string };
  readonly flowId?: FlowId;
  readonly requiredCapabilities?: readonly string[];
  /** The worker instance holding (or that last held) the lease. */
  readonly workerInstanceId?: string;
  readonly leaseExpiresAt?: number;
  readonly delayUntil?: number;
  readonly tags: Readonly<Record<string, string>>;
  readonly createdAt: number;
  readonly startedAt?: number;
  readonly completedAt?: number;
  readonly lastTransitionAt?: number;
}

/** Re-exported where users met it first; the reading lives with the other reply helpers. */
export { hashReply };

const set = (text: string | undefined): string | undefined => (text === undefined || text === '' ? undefined : text);
const num = (text: string | undefined): number | undefined => {
  const value = set(text);
  return value === undefined || !/^-?[0-9]+$/.test(value) ? undefined : Number(value);
};

/** Reads an execution: one HGETALL of its core, its tags and (when completed) its result. Undefined when it does not exist. */
export async function getExecution(client: FlowFabricClient, executionId: ExecutionId): Promise<ExecutionView | undefined> {
  const keys = new ExecKeys(parseExecutionId(executionId));
  const [coreReply, tagsReply, resultReply] = await Promise.all([
    sendCommand(client.transport, 'HGETALL', [keys.core()]),
    sendCommand(client.transport, 'HGETALL', [keys.tags()]),
    sendCommand(client.transport, 'GET', [keys.result()]),
  ]);
  const core = hashReply(coreReply);
  if (core.lifecycle_phase === undefined) return undefined;
  const publicState = core.public_state as PublicState | undefined;
  if (publicState === undefined) throw new ReplyParseError('getExecution', 'public_state', 'missing from exec_core');
  const result = publicState === 'completed' && resultReply !== null && resultReply !== undefined ? replyText(resultReply) : undefined;
  const view: { -readonly [K in keyof ExecutionView]: ExecutionView[K] } = {
    executionId,
    namespace: core.namespace ?? '',
    laneId: (set(core.lane_id) ?? 'default') as LaneId,
    kind: core.execution_kind ?? '',
    priority: num(core.priority) ?? 0,
    publicState,
    state: {
      lifecyclePhase: core.lifecycle_phase,
      ownershipState: core.ownership_state ?? '',
      eligibilityState: core.eligibility_state ?? '',
      blockingReason: core.blocking_reason ?? '',
      blockingDetail: core.blocking_detail ?? '',
      terminalOutcome: core.terminal_outcome ?? '',
      attemptState: core.attempt_state ?? '',
    },
    attempts: num(core.total_attempt_count) ?? 0,
    retryCount: num(core.retry_count) ?? 0,
    reclaimCount: num(core.lease_reclaim_count) ?? 0,
    replayCount: num(core.replay_count) ?? 0,
    tags: hashReply(tagsReply),
    createdAt: num(core.created_at) ?? 0,
  };
  const optional = {
    attemptIndex: num(core.current_attempt_index),
    result,
    failureReason: set(core.failure_reason),
    cancellationReason: set(core.cancellation_reason),
    flowId: set(core.flow_id) as FlowId | undefined,
    requiredCapabilities: set(core.required_capabilities)?.split(','),
    workerInstanceId: set(core.current_worker_instance_id),
    leaseExpiresAt: num(core.lease_expires_at),
    delayUntil: num(core.delay_until),
    startedAt: num(core.started_at),
    completedAt: num(core.completed_at),
    lastTransitionAt: num(core.last_transition_at),
  };
  for (const [key, value] of Object.entries(optional)) if (value !== undefined) (view as Record<string, unknown>)[key] = value;
  if (result !== undefined) {
    try {
      view.resultJson = JSON.parse(result) as unknown;
    } catch {
      // Not JSON: `result` holds the text.
    }
  }
  const pct = num(core.progress_pct);
  const message = set(core.progress_message);
  if (pct !== undefined || message !== undefined) view.progress = { ...(pct !== undefined ? { pct } : {}), ...(message !== undefined ? { message } : {}) };
  return view;
}

/** {@link waitForOutcome} gave up before the execution reached a terminal state. */
export class OutcomeTimeoutError extends FlowFabricError {
  override readonly name = 'OutcomeTimeoutError';
  readonly errorClass = 'retryable' as const;
  constructor(
    readonly executionId: ExecutionId,
    readonly timeoutMs: number,
    /** The last state read. */
    readonly last: ExecutionView | undefined,
  ) {
    super(`execution ${executionId} did not finish within ${timeoutMs} ms (last public_state: ${last?.publicState ?? 'not found'})`);
  }
}

export interface WaitOptions {
  /** Give up after this long (OutcomeTimeoutError); default 30 s. */
  readonly timeoutMs?: number;
  /** First poll interval; doubles up to `maxPollMs`. Default 20 ms. */
  readonly pollMs?: number;
  /** Default 500 ms. */
  readonly maxPollMs?: number;
  readonly signal?: AbortSignal;
}

/**
 * Waits until the execution is terminal (completed, failed, cancelled, expired, skipped) and
 * returns its view. Polls with a growing interval: one HGETALL per poll.
 */
export async function waitForOutcome(client: FlowFabricClient, executionId: ExecutionId, options: WaitOptions = {}): Promise<ExecutionView> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  let interval = options.pollMs ?? 20;
  let last: ExecutionView | undefined;
  for (;;) {
    last = await getExecution(client, executionId);
    if (last && isTerminalState(last.publicState)) return last;
    const left = deadline - Date.now();
    if (left <= 0) throw new OutcomeTimeoutError(executionId, timeoutMs, last);
    await sleep(Math.min(interval, left), undefined, options.signal ? { signal: options.signal } : {});
    interval = Math.min(interval * 2, options.maxPollMs ?? 500);
  }
}

// ---------------------------------------------------------------------------------
// Signal and cancel from outside

export interface SignalOptions {
  /** Matched against the names the handler suspended for. */
  readonly name: string;
  /** JSON payload (serialised), handed to the resumed handler in `task.signals`. */
  readonly data?: unknown;
  /** approval, callback, tool_result, custom…; stored only. Default `custom`. */
  readonly category?: string;
  /** Who sends it; stored only. Default `producer`. */
  readonly source?: string;
  /** A repeat with the same key is answered DUPLICATE. */
  readonly idempotencyKey?: string;
}

/**
 * Delivers a signal to the waitpoint a suspended execution is waiting on. Reads the
 * execution's lane and current waitpoint, and the waitpoint's token from its record (what
 * ff-server's pending-waitpoints endpoint hands out), then calls ff_deliver_signal.
 */
export async function signalExecution(client: FlowFabricClient, executionId: ExecutionId, options: SignalOptions): Promise<DeliverSignalResult & { readonly signalId?: SignalId }> {
  const context = await readExecutionContext(client.transport, parseExecutionId(executionId));
  if (!context.exists) throw new ArgumentError('signalExecution', 'executionId', `execution ${executionId} does not exist`);
  const waitpointId = context.currentWaitpointId;
  if (waitpointId === undefined) throw new ArgumentError('signalExecution', 'executionId', `execution ${executionId} has no open waitpoint (is it suspended?)`);
  const partitionKeys = new PartitionKeys(new ExecKeys(executionId).tag);
  const token = replyText(await sendCommand(client.transport, 'HGET', [partitionKeys.waitpoint(parseWaitpointId(waitpointId)), 'waitpoint_token']));
  if (token === undefined || token === '') throw new ArgumentError('signalExecution', 'executionId', `waitpoint ${waitpointId} has no token`);
  try {
    return await deliverSignal(client, {
      executionId,
      laneId: context.laneId,
      signalId: newSignalId(),
      waitpointId,
      waitpointToken: token,
      signalName: options.name,
      signalCategory: options.category ?? 'custom',
      sourceType: 'external_api',
      sourceIdentity: options.source ?? 'producer',
      ...(options.data !== undefined ? { payload: JSON.stringify(options.data) } : {}),
      ...(options.idempotencyKey !== undefined ? { idempotencyKey: options.idempotencyKey } : {}),
    });
  } catch (error) {
    return explainWaitpointError(error, executionPartition(executionId));
  }
}

/** Cancels an execution in any non-terminal state as an operator (pre-reading the keys the call needs). */
export async function cancelExecutionById(client: FlowFabricClient, executionId: ExecutionId, reason = 'cancelled'): Promise<CancelExecutionResult> {
  const context = await readExecutionContext(client.transport, parseExecutionId(executionId));
  return cancelExecution(client, {
    executionId,
    laneId: context.laneId,
    currentAttemptIndex: context.currentAttemptIndex,
    currentWorkerInstanceId: context.currentWorkerInstanceId,
    ...(context.currentWaitpointId !== undefined ? { currentWaitpointId: context.currentWaitpointId } : {}),
    reason,
    source: 'operator_override',
  });
}

// ---------------------------------------------------------------------------------
// Flows: two calls that make a small pipeline out of submitted executions

/** Creates an empty flow; submit its members with `flowId`, then link them with {@link addDependency}. */
export async function createFlowFor(client: FlowFabricClient, options: { readonly kind: string; readonly namespace?: string; readonly flowId?: FlowId }): Promise<FlowId> {
  const flowId = options.flowId ?? newFlowId();
  await createFlow(client, { flowId, flowKind: options.kind, namespace: options.namespace ?? 'default' });
  return flowId;
}

/**
 * Makes `downstream` wait for `upstream` (both members of `flowId`): stages the edge at the
 * flow's current revision and applies it to the child, which then stays blocked until the
 * upstream completes (a failed upstream skips it).
 */
export async function addDependency(client: FlowFabricClient, args: { readonly flowId: FlowId; readonly upstream: ExecutionId; readonly downstream: ExecutionId }): Promise<EdgeId> {
  const edgeId = newEdgeId();
  const staged = await stageEdge(client, { flowId: args.flowId, edgeId, upstreamExecutionId: args.upstream, downstreamExecutionId: args.downstream });
  await applyDependency(client, { flowId: args.flowId, edgeId, upstreamExecutionId: args.upstream, downstreamExecutionId: args.downstream, graphRevision: staged.newGraphRevision });
  return edgeId;
}
