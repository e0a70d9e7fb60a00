// Pre-read of the exec_core fields that callers need to build some functions' KEYS
// (execution.md quirk Q4): cancel, expire and reclaim name the current attempt's keys, the
// lease holder's worker set, the current waitpoint and the lane's indexes, all of which
// depend on the execution's state. One HMGET, typed, with the reference's defaults.
import { sendCommand } from '../runtime/classify.js';
import { ExecKeys } from '../generated/keys.js';
import { ReplyParseError } from '../runtime/errors.js';
import { parseAttemptId, parseLaneId, parseLeaseId, parseSuspensionId, parseWaitpointId, type AttemptId, type ExecutionId, type LaneId, type LeaseId, type SuspensionId, type WaitpointId } from '../runtime/ids.js';
import { replyText } from '../runtime/reply.js';
import type { Transport } from '../runtime/transport.js';

/** The exec_core fields a caller reads before a call whose KEYS depend on them. */
export interface ExecutionContext {
  /** False when the execution has no core record (every other field is then a default). */
  readonly exists: boolean;
  /** `lane_id`; `default` when missing, as the engine assumes. */
  readonly laneId: LaneId;
  /** `current_attempt_index`; 0 when no attempt was made yet (see `hasAttempt`). */
  readonly currentAttemptIndex: number;
  /** True when `current_attempt_index` is set. */
  readonly hasAttempt: boolean;
  /** `total_attempt_count`: the index the next new attempt gets; 0 when missing. */
  readonly totalAttemptCount: number;
  /** `current_attempt_id`, when set. */
  readonly currentAttemptId?: AttemptId;
  /** `current_lease_id`, when a lease is held (or was held and not yet released). */
  readonly currentLeaseId?: LeaseId;
  /** `current_lease_epoch`: the last issued fencing epoch; 0 when missing. */
  readonly currentLeaseEpoch: number;
  /** `current_worker_instance_id`; `""` when none (the engine then names `…:worker::leases`). */
  readonly currentWorkerInstanceId: string;
  /** `current_waitpoint_id`, when the execution has an open waitpoint. */
  readonly currentWaitpointId?: WaitpointId;
  /** `current_suspension_id`, when the execution has an open suspension. */
  readonly currentSuspensionId?: SuspensionId;
}

const FIELDS = [
  'lane_id',
  'current_attempt_index',
  'total_attempt_count',
  'current_attempt_id',
  'current_lease_id',
  'current_lease_epoch',
  'current_worker_instance_id',
  'current_waitpoint_id',
  'current_suspension_id',
] as const;

const WHERE = 'readExecutionContext';

/**
 * Reads the fields above from the execution's core hash with one HMGET (routed by the
 * core key on a cluster). The read is not atomic with the call that follows: functions
 * that take these keys re-check the record inside the call.
 */
export async function readExecutionContext(transport: Transport, executionId: ExecutionId): Promise<ExecutionContext> {
  const reply = await sendCommand(transport, 'HMGET', [new ExecKeys(executionId).core(), ...FIELDS]);
  if (!Array.isArray(reply) || reply.length !== FIELDS.length) {
    throw new ReplyParseError(WHERE, 'HMGET', `expected ${FIELDS.length} values`);
  }
  const raw = {} as Record<(typeof FIELDS)[number], string | undefined>;
  FIELDS.forEach((field, i) => {
    const text = reply[i] === null || reply[i] === undefined ? undefined : replyText(reply[i]);
    raw[field] = text === '' ? undefined : text;
  });
  const exists = FIELDS.some((field) => raw[field] !== undefined);
  const context: {
    -readonly [K in keyof ExecutionContext]: ExecutionContext[K];
  } = {
    exists,
    laneId: raw.lane_id === undefined ? ('default' as LaneId) : parsed('lane_id', raw.lane_id, parseLaneId),
    currentAttemptIndex: raw.current_attempt_index === undefined ? 0 : integer('current_attempt_index', raw.current_attempt_index),
    hasAttempt: raw.current_attempt_index !== undefined,
    totalAttemptCount: raw.total_attempt_count === undefined ? 0 : integer('total_attempt_count', raw.total_attempt_count),
    currentLeaseEpoch: raw.current_lease_epoch === undefined ? 0 : integer('current_lease_epoch', raw.current_lease_epoch),
    currentWorkerInstanceId: raw.current_worker_instance_id ?? '',
  };
  if (raw.current_attempt_id !== undefined) context.currentAttemptId = parsed('current_attempt_id', raw.current_attempt_id, parseAttemptId);
  if (raw.current_lease_id !== undefined) context.currentLeaseId = parsed('current_lease_id', raw.current_lease_id, parseLeaseId);
  if (raw.current_waitpoint_id !== undefined) context.currentWaitpointId = parsed('current_waitpoint_id', raw.current_waitpoint_id, parseWaitpointId);
  if (raw.current_suspension_id !== undefined) context.currentSuspensionId = parsed('current_suspension_id', raw.current_suspension_id, parseSuspensionId);
  return context;
}

function integer(field: string, text: string): number {
  const value = Number(text);
  if (!/^(0|[1-9][0-9]*)$/.test(text) || !Number.isSafeInteger(value)) {
    throw new ReplyParseError(WHERE, field, `not a non-negative integer: ${JSON.stringify(text)}`);
  }
  return value;
}

function parsed<T>(field: string, text: string, parse: (text: string) => T): T {
  try {
    return parse(text);
  } catch (error) {
    throw new ReplyParseError(WHERE, field, error instanceof Error ? error.message : String(error));
  }
}
