// What a claimed execution's handler is given, read right after the claim (engine.md §4.7 and
// the resume_signals read of §4.8): payload, kind, tags, the stored retry policy (so a fail
// applies it without the user resending it), the flow it belongs to, and for a resumed
// attempt the signals that satisfied its waitpoint.
import { sendCommand } from '../runtime/classify.js';
import type { FlowFabricClient } from '../runtime/client.js';
import { parseSignalId, parseWaitpointId, type ExecutionId, type FlowId, type SignalId } from '../runtime/ids.js';
import { hashReply, replyText } from '../runtime/reply.js';
import { ExecKeys, PartitionKeys } from '../generated/keys.js';
import type { RetryPolicyJson } from '../generated/shapes.js';

export interface ExecutionInput {
  readonly payload: string | undefined;
  readonly kind: string;
  readonly tags: Readonly<Record<string, string>>;
  /** The stored policy's `retry_policy` member, sent with every fail; undefined = no retry. */
  readonly retryPolicy: RetryPolicyJson | undefined;
  readonly flowId: FlowId | undefined;
}

/** A signal that satisfied the waitpoint a resumed attempt was suspended on. */
export interface ResumeSignal {
  readonly signalId: SignalId;
  readonly name: string;
  readonly category: string;
  readonly sourceType: string;
  readonly sourceIdentity: string;
  readonly correlationId: string;
  readonly acceptedAt: number;
  /** The payload as sent (text). */
  readonly payload: string | undefined;
  /** The payload parsed as JSON, when it is JSON. */
  readonly data: unknown;
}

const text = (value: unknown): string | undefined => (value === null || value === undefined ? undefined : replyText(value));

export async function readExecutionInput(client: FlowFabricClient, executionId: ExecutionId): Promise<ExecutionInput> {
  const keys = new ExecKeys(executionId);
  const t = client.transport;
  const [payload, core, tags, policy] = await Promise.all([
    sendCommand(t, 'GET', [keys.payload()]),
    sendCommand(t, 'HMGET', [keys.core(), 'execution_kind', 'flow_id']),
    sendCommand(t, 'HGETALL', [keys.tags()]),
    sendCommand(t, 'GET', [keys.policy()]),
  ]);
  const [kind, flowId] = Array.isArray(core) ? core.map(text) : [];
  return { payload: text(payload), kind: kind ?? '', tags: hashReply(tags), retryPolicy: retryPolicyOf(text(policy)), flowId: flowId ? (flowId as FlowId) : undefined };
}

/** The input a fast-path claim answered with `withInput` (the same fields, read in the claiming call). */
export interface ClaimedInputReply {
  readonly executionKind?: string;
  readonly flowId?: string;
  readonly payload?: string;
  readonly policyJson?: string;
  readonly tagsJson?: string;
}

export function inputFromClaimReply(reply: ClaimedInputReply): ExecutionInput {
  let tags: Record<string, string> = {};
  if (reply.tagsJson) {
    try {
      const parsed = JSON.parse(reply.tagsJson) as unknown;
      if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) tags = parsed as Record<string, string>;
    } catch {
      tags = {}; // Written by the library from a hash: unreadable only if the server's cjson is.
    }
  }
  return { payload: reply.payload, kind: reply.executionKind ?? '', tags, retryPolicy: retryPolicyOf(reply.policyJson), flowId: reply.flowId ? (reply.flowId as FlowId) : undefined };
}

/** The stored policy's retry_policy member; only an object is one (anything else means no retry, as the reference sends ""). */
function retryPolicyOf(policyText: string | undefined): RetryPolicyJson | undefined {
  if (!policyText) return undefined;
  try {
    const stored = (JSON.parse(policyText) as { retry_policy?: unknown }).retry_policy;
    return typeof stored === 'object' && stored !== null && !Array.isArray(stored) ? (stored as RetryPolicyJson) : undefined;
  } catch {
    return undefined; // Unreadable policy: fail without retry.
  }
}

/** The signals that resumed attempt `attemptIndex` (empty when it was not resumed by signals). */
export async function readResumeSignals(client: FlowFabricClient, executionId: ExecutionId, attemptIndex: number): Promise<ResumeSignal[]> {
  const keys = new ExecKeys(executionId);
  const partition = new PartitionKeys(keys.tag);
  const t = client.transport;
  const suspension = hashReply(await sendCommand(t, 'HGETALL', [keys.suspensionCurrent()]));
  if (suspension.attempt_index !== String(attemptIndex) || suspension.close_reason !== 'resumed' || !suspension.waitpoint_id) return [];
  const waitpointId = parseWaitpointId(suspension.waitpoint_id);
  const condition = partition.waitpointCondition(waitpointId);
  const total = Number(text(await sendCommand(t, 'HGET', [condition, 'total_matchers'])) ?? 0) || 0;
  const matchers = await Promise.all(
    Array.from({ length: total }, (_, i) => sendCommand(t, 'HMGET', [condition, `matcher:${i}:satisfied`, `matcher:${i}:signal_id`])),
  );
  const signalIds = matchers.flatMap((reply) => {
    const [satisfied, id] = Array.isArray(reply) ? reply.map(text) : [];
    return satisfied === '1' && id ? [parseSignalId(id)] : [];
  });
  const signals = await Promise.all(
    signalIds.map(async (signalId): Promise<ResumeSignal | undefined> => {
      const [fields, payloadReply] = await Promise.all([
        sendCommand(t, 'HGETALL', [partition.signal(signalId)]),
        sendCommand(t, 'GET', [partition.signalPayload(signalId)]),
      ]);
      const signal = hashReply(fields);
      if (Object.keys(signal).length === 0) return undefined;
      const payload = text(payloadReply);
      let data: unknown;
      if (payload !== undefined && payload !== '') {
        try {
          data = JSON.parse(payload) as unknown;
        } catch {
          data = undefined;
        }
      }
      return {
        signalId,
        name: signal.signal_name ?? '',
        category: signal.signal_category ?? '',
        sourceType: signal.source_type ?? '',
        sourceIdentity: signal.source_identity ?? '',
        correlationId: signal.correlation_id ?? '',
        acceptedAt: Number(signal.accepted_at) || 0,
        payload,
        data,
      };
    }),
  );
  return signals.filter((s): s is ResumeSignal => s !== undefined);
}
