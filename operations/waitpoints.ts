// Waitpoint helpers around the generated suspension and signal wrappers:
// - the exec_core pre-read some of those calls need for their KEYS (lane, current waitpoint,
//   current attempt), with wrappers that do it for the caller;
// - the waitpoint HMAC key ring: bootstrap of one partition (model.md §8.1) and a rotation
//   fanned out to every flow partition (each partition keeps its own copy, so every token
//   operation stays on one slot).
// The pre-read is not atomic with the call that follows; the functions re-check the keys
// they were given against the execution and answer invalid_input on a stale read.
import { randomBytes } from 'node:crypto';
import { sendCommand } from '../runtime/classify.js';
import { PartitionKeys } from '../generated/keys.js';
import {
  claimResumedExecution,
  deliverSignal,
  type ClaimResumedExecutionArgs,
  type ClaimResumedExecutionResult,
  type DeliverSignalArgs,
  type DeliverSignalResult,
} from '../generated/signal.js';
import {
  expireSuspension,
  resumeExecution,
  rotateWaitpointHmacSecret,
  type ExpireSuspensionResult,
  type ResumeExecutionArgs,
  type ResumeExecutionResult,
  type RotateWaitpointHmacSecretResult,
} from '../generated/suspension.js';
import type { FlowFabricClient } from '../runtime/client.js';
import { ArgumentError, FlowFabricError, ScriptError } from '../runtime/errors.js';
import { newWaitpointId, type ExecutionId } from '../runtime/ids.js';
import { readExecutionContext, type ExecutionContext } from './preread.js';
import { replyText } from '../runtime/reply.js';

/** The kid the engine installs first (ff-server bootstrap). */
export const DEFAULT_WAITPOINT_KID = 'k1';
/** The engine's default rotation grace (FF_WAITPOINT_HMAC_GRACE_MS): one day. */
export const DEFAULT_WAITPOINT_GRACE_MS = 86_400_000;

// ---------------------------------------------------------------------------------
// Pre-read and the calls that need it

/** exec_core lane, current waitpoint and current attempt: what the KEYS below depend on. */
export function readSuspensionContext(client: FlowFabricClient, executionId: ExecutionId): Promise<ExecutionContext> {
  return readExecutionContext(client.transport, executionId);
}

/** {@link deliverSignal} with the execution's lane read from exec_core first. */
export async function deliverSignalTo(client: FlowFabricClient, args: Omit<DeliverSignalArgs, 'laneId'>): Promise<DeliverSignalResult> {
  const context = await readSuspensionContext(client, args.executionId);
  return deliverSignal(client, { ...args, laneId: context.laneId });
}

/**
 * {@link resumeExecution} (forced resume) with the lane and current waitpoint read from
 * exec_core first. An execution without a current waitpoint is not suspended; the call
 * then names a random waitpoint, which the engine never touches, and answers
 * execution_not_suspended.
 */
export async function resumeSuspendedExecution(
  client: FlowFabricClient,
  args: Omit<ResumeExecutionArgs, 'laneId' | 'waitpointId'>,
): Promise<ResumeExecutionResult> {
  const context = await readSuspensionContext(client, args.executionId);
  return resumeExecution(client, { ...args, laneId: context.laneId, waitpointId: context.currentWaitpointId ?? newWaitpointId() });
}

/** {@link expireSuspension} as the suspension-timeout scanner calls it: pre-read, then call. */
export async function expireSuspensionOf(client: FlowFabricClient, executionId: ExecutionId): Promise<ExpireSuspensionResult> {
  const context = await readSuspensionContext(client, executionId);
  return expireSuspension(client, {
    executionId,
    laneId: context.laneId,
    attemptIndex: context.currentAttemptIndex,
    ...(context.currentWaitpointId !== undefined ? { waitpointId: context.currentWaitpointId } : {}),
  });
}

/** {@link claimResumedExecution} with the paused attempt's index read from exec_core first. */
export async function claimResumed(
  client: FlowFabricClient,
  args: Omit<ClaimResumedExecutionArgs, 'currentAttemptIndex'>,
): Promise<ClaimResumedExecutionResult> {
  const context = await readSuspensionContext(client, args.executionId);
  return claimResumedExecution(client, { ...args, currentAttemptIndex: context.currentAttemptIndex });
}

// ---------------------------------------------------------------------------------
// HMAC key ring

const HEX = /^(?:[0-9a-fA-F]{2})+$/;

function checkKid(fn: string, kid: string): void {
  if (typeof kid !== 'string' || kid.length === 0 || kid.includes(':')) {
    throw new ArgumentError(fn, 'kid', 'must be non-empty and must not contain ":"');
  }
}

function checkSecret(fn: string, secretHex: string): void {
  // The message never repeats the secret.
  if (typeof secretHex !== 'string' || !HEX.test(secretHex)) {
    throw new ArgumentError(fn, 'secretHex', 'must be non-empty, even-length hex');
  }
}

function checkGrace(fn: string, graceMs: number): void {
  if (!Number.isSafeInteger(graceMs) || graceMs < 0) {
    throw new ArgumentError(fn, 'graceMs', `must be an integer in 0..2^53-1, got ${String(graceMs)}`);
  }
}

/** What {@link installWaitpointSecret} did on one partition. */
export type SecretInstall =
  /** The partition had no key ring: `current_kid` and its secret were written. */
  | 'installed'
  /** The current kid's secret was missing (a torn write) and was written. */
  | 'repaired'
  /** A key ring was already there; it was kept, even with another secret. */
  | 'present';

export interface InstallSecretOptions {
  /** Hex secret (non-empty, even length), the engine's FF_WAITPOINT_HMAC_SECRET. */
  readonly secretHex: string;
  /** Kid to install; default `k1`. */
  readonly kid?: string;
}

/**
 * Bootstraps one partition's key ring as ff-server does at start (model.md §8.1): with no
 * current kid, installs `kid` and the secret in one atomic write (the rotation function's
 * bootstrap branch); with a current kid whose secret is missing, writes the secret; a
 * different stored secret is kept. Safe to run concurrently and repeatedly.
 */
export async function installWaitpointSecret(client: FlowFabricClient, partition: number, options: InstallSecretOptions): Promise<SecretInstall> {
  const fn = 'installWaitpointSecret';
  const kid = options.kid ?? DEFAULT_WAITPOINT_KID;
  checkKid(fn, kid);
  checkSecret(fn, options.secretHex);
  const key = PartitionKeys.forPartition(partition).waitpointHmacSecrets();
  const current = replyText(await sendCommand(client.transport, 'HGET', [key, 'current_kid']));
  if (current !== undefined && current !== '' && current !== kid) {
    const written = await sendCommand(client.transport, 'HSETNX', [key, `secret:${current}`, options.secretHex]);
    return Number(written) === 1 ? 'repaired' : 'present';
  }
  const hadSecret = current === kid && replyText(await sendCommand(client.transport, 'HGET', [key, `secret:${kid}`]));
  try {
    const result = await rotateWaitpointHmacSecret(client, { partition, newKid: kid, newSecretHex: options.secretHex, graceMs: 0 });
    if (result.status === 'rotated') return 'installed';
    return hadSecret ? 'present' : 'repaired';
  } catch (error) {
    // The same kid with another secret: keep what is stored, as the engine does.
    if (error instanceof ScriptError && error.code === 'rotation_conflict') return 'present';
    throw error;
  }
}

/** {@link installWaitpointSecret} on every flow partition of the client's configuration. */
export async function installWaitpointSecretEverywhere(client: FlowFabricClient, options: InstallSecretOptions): Promise<SecretInstall[]> {
  return mapPartitions(client.partitions.numFlowPartitions, (partition) => installWaitpointSecret(client, partition, options));
}

export interface RotateEverywhereOptions {
  /** The new kid: non-empty, without `:`. */
  readonly kid: string;
  /** The new secret, as non-empty even-length hex. */
  readonly secretHex: string;
  /** How long tokens of the outgoing kid stay valid; default one day. */
  readonly graceMs?: number;
  /** Partitions rotated at the same time; default 32. */
  readonly concurrency?: number;
}

/** One partition's outcome of a fanned-out rotation. */
export type PartitionRotation =
  | { readonly partition: number; readonly ok: true; readonly result: RotateWaitpointHmacSecretResult }
  | { readonly partition: number; readonly ok: false; readonly error: unknown };

export interface RotationReport {
  readonly newKid: string;
  /** Partitions where the kid was installed now. */
  readonly rotated: readonly number[];
  /** Partitions that already had this kid and secret (a re-run). */
  readonly noop: readonly number[];
  /** Partitions that failed (rotation_conflict, transport errors…); re-run to finish. */
  readonly failed: readonly number[];
  /** Every partition's outcome, in partition order. */
  readonly results: readonly PartitionRotation[];
}

/**
 * Rotates the waitpoint signing key on every flow partition (0 .. numFlowPartitions-1),
 * as the engine's admin endpoint does. Each partition is rotated on its own: a failure on
 * one does not stop the others. Re-running with the same kid and secret completes a
 * partial rotation (the done partitions answer noop). The secret is validated before
 * anything is sent and never appears in the report.
 */
export async function rotateWaitpointSecretEverywhere(client: FlowFabricClient, options: RotateEverywhereOptions): Promise<RotationReport> {
  const fn = 'rotateWaitpointSecretEverywhere';
  const graceMs = options.graceMs ?? DEFAULT_WAITPOINT_GRACE_MS;
  checkKid(fn, options.kid);
  checkSecret(fn, options.secretHex);
  checkGrace(fn, graceMs);
  const results = await mapPartitions(
    client.partitions.numFlowPartitions,
    async (partition): Promise<PartitionRotation> => {
      try {
        const result = await rotateWaitpointHmacSecret(client, { partition, newKid: options.kid, newSecretHex: options.secretHex, graceMs });
        return { partition, ok: true, result };
      } catch (error) {
        return { partition, ok: false, error };
      }
    },
    options.concurrency,
  );
  const pick = (test: (r: PartitionRotation) => boolean) => results.filter(test).map((r) => r.partition);
  return {
    newKid: options.kid,
    rotated: pick((r) => r.ok && r.result.status === 'rotated'),
    noop: pick((r) => r.ok && r.result.status === 'noop'),
    failed: pick((r) => !r.ok),
    results,
  };
}

/** Runs `work` for partitions 0..count-1, at most `concurrency` at a time; results in order. */
async function mapPartitions<T>(count: number, work: (partition: number) => Promise<T>, concurrency = 32): Promise<T[]> {
  const results: T[] = new Array<T>(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const partition = next++;
      results[partition] = await work(partition);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, count)) }, worker));
  return results;
}

// ---------------------------------------------------------------------------------
// First-use bootstrap and the error that says what to do

export interface EnsureSecretsOptions {
  /** Hex secret to install where a partition has none; default a fresh random 32-byte secret. */
  readonly secretHex?: string;
  /** Kid to install; default `k1`, as ff-server's boot. */
  readonly kid?: string;
  /** Partitions checked at the same time; default 32. */
  readonly concurrency?: number;
}

export interface EnsureSecretsReport {
  /** Partitions that had no key ring and got one now. */
  readonly installed: readonly number[];
  /** Partitions whose current kid had lost its secret, written now. */
  readonly repaired: readonly number[];
  /** How many partitions already had a usable key ring (left as they were). */
  readonly present: number;
}

/**
 * Gives every flow partition a waitpoint HMAC key ring where none exists, as ff-server's
 * boot does (engine.md §1.2 step 5), so the first suspension on a fresh server works. A
 * partition that has one is only read (two reads), never changed: a stored secret always
 * wins. Safe to run from many workers at once: the install itself is the rotation
 * function's atomic bootstrap, and a loser of the race keeps the winner's secret.
 */
export async function ensureWaitpointSecrets(client: FlowFabricClient, options: EnsureSecretsOptions = {}): Promise<EnsureSecretsReport> {
  const secretHex = options.secretHex ?? randomBytes(32).toString('hex');
  const kid = options.kid ?? DEFAULT_WAITPOINT_KID;
  checkKid('ensureWaitpointSecrets', kid);
  checkSecret('ensureWaitpointSecrets', secretHex);
  const outcomes = await mapPartitions(
    client.partitions.numFlowPartitions,
    async (partition): Promise<SecretInstall> => {
      const key = PartitionKeys.forPartition(partition).waitpointHmacSecrets();
      const current = replyText(await sendCommand(client.transport, 'HGET', [key, 'current_kid']));
      if (current !== undefined && current !== '') {
        if (Number(await sendCommand(client.transport, 'HEXISTS', [key, `secret:${current}`])) === 1) return 'present';
        return installWaitpointSecret(client, partition, { secretHex, kid: current });
      }
      return installWaitpointSecret(client, partition, { secretHex, kid });
    },
    options.concurrency,
  );
  const pick = (outcome: SecretInstall) => outcomes.flatMap((o, partition) => (o === outcome ? [partition] : []));
  return { installed: pick('installed'), repaired: pick('repaired'), present: pick('present').length };
}

/**
 * A waitpoint call found no HMAC key ring on the execution's partition
 * (`hmac_secret_not_initialized`). The original ScriptError is the cause.
 */
export class WaitpointSecretMissingError extends FlowFabricError {
  override readonly name = 'WaitpointSecretMissingError';
  readonly errorClass = 'cooperative' as const;
  constructor(
    readonly functionName: string,
    readonly partition: number,
    cause: ScriptError,
  ) {
    super(
      `${functionName}: partition ${partition} has no waitpoint HMAC secret (hmac_secret_not_initialized). ` +
        'Install one on every partition with ensureWaitpointSecrets(client) — a Worker does this at start unless ' +
        'installWaitpointSecrets is false, and so does the engine — or with installWaitpointSecretEverywhere(client, { secretHex }) ' +
        'to use the secret your ff-server has in FF_WAITPOINT_HMAC_SECRET.',
      { cause },
    );
  }
}

/** Rethrows `hmac_secret_not_initialized` as a {@link WaitpointSecretMissingError}; any other error as it is. */
export function explainWaitpointError(error: unknown, partition: number): never {
  if (error instanceof ScriptError && error.code === 'hmac_secret_not_initialized') {
    throw new WaitpointSecretMissingError(error.functionName, partition, error);
  }
  throw error;
}
