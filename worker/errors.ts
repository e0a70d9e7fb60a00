// Errors of the worker layer. A handler throws NonRetryableError to fail its execution for
// good; the others tell a handler (through its AbortSignal's reason, or a refused operation)
// why it must stop.
import { FlowFabricError } from '../runtime/errors.js';

/** Thrown by a handler: fail the execution terminally, whatever its retry policy says. */
export class NonRetryableError extends Error {
  override readonly name = 'NonRetryableError';
  constructor(message: string, readonly category = 'non_retryable', options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The task's lease is gone (stale, expired, revoked, or the execution moved on): its work no longer counts. */
export class LeaseLostError extends FlowFabricError {
  override readonly name = 'LeaseLostError';
  readonly errorClass = 'terminal' as const;
  constructor(
    readonly executionId: string,
    /** The engine's code that said so (`stale_lease`, `lease_expired`, …), or `local_expiry`. */
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(`lease on ${executionId} lost (${code}): the handler's work no longer counts`, options);
  }
}

/** The attempt ran longer than the worker's attemptTimeoutMs. */
export class AttemptTimeoutError extends FlowFabricError {
  override readonly name = 'AttemptTimeoutError';
  readonly errorClass = 'retryable' as const;
  constructor(readonly executionId: string, readonly timeoutMs: number) {
    super(`attempt on ${executionId} exceeded ${timeoutMs} ms`);
  }
}

/** The worker is shutting down and gave the execution back before the handler finished. */
export class WorkerClosingError extends FlowFabricError {
  override readonly name = 'WorkerClosingError';
  readonly errorClass = 'retryable' as const;
  constructor(readonly executionId: string) {
    super(`worker closing: ${executionId} was given back before its handler finished`);
  }
}

/** An operation on a task that already finished (completed, failed, suspended, given back…). */
export class TaskFinishedError extends FlowFabricError {
  override readonly name = 'TaskFinishedError';
  readonly errorClass = 'terminal' as const;
  constructor(readonly executionId: string, readonly how: string, attempted: string) {
    super(`cannot ${attempted} ${executionId}: the task already ${how}`);
  }
}

/** Another live worker already uses this worker instance id (its alive key exists). */
export class DuplicateWorkerError extends FlowFabricError {
  override readonly name = 'DuplicateWorkerError';
  readonly errorClass = 'terminal' as const;
  constructor(readonly workerInstanceId: string) {
    super(`duplicate worker_instance_id ${workerInstanceId}: another live worker holds ff:worker:${workerInstanceId}:alive; use another id or wait for it to lapse`);
  }
}
