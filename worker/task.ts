// The claimed task a handler works on: what it is (id, kind, input, tags, attempt, the
// signals that resumed it), an AbortSignal that fires when its work stops counting (lease
// lost, attempt timeout, worker shutdown), and the operations of a lease holder. Each
// operation sends the current lease (id, epoch, attempt), so the engine refuses it once the
// lease is gone; the task also refuses locally once it knows.
//
// Ending operations (complete, fail, cancel, delay, suspend, waitForChildren) end the task:
// the lease is released by the engine, renewal stops and the worker's slot is freed when
// the handler returns. Only one of them can succeed; after it, everything else is refused.
import type { FlowFabricClient } from '../runtime/client.js';
import { ArgumentError, ScriptError } from '../runtime/errors.js';
import { executionPartition, newAttemptId, newLeaseId, newSuspensionId, newWaitpointId, type BudgetId, type ExecutionId, type FlowId, type LaneId, type WaitpointId } from '../runtime/ids.js';
import { sendCommand } from '../runtime/classify.js';
import { reportUsage } from '../operations/admission.js';
import { promoteBlocked } from '../operations/flows.js';
import { ExecKeys } from '../generated/keys.js';
import { readExecutionContext } from '../operations/preread.js';
import { explainWaitpointError } from '../operations/waitpoints.js';
import type { ReportUsageAndCheckResult } from '../generated/budget.js';
import { cancelExecution, completeExecution, delayExecution, failExecution, moveToWaitingChildren } from '../generated/execution.js';
import { completeAndClaimNext } from '../generated/fastpath.js';
import { updateProgress } from '../generated/scheduling.js';
import { appendFrame, type AppendFrameResult } from '../generated/stream.js';
import { suspendExecution } from '../generated/suspension.js';
import type { RetryPolicyJson } from '../generated/shapes.js';
import type { AttemptKind, ClaimedLease } from './claim.js';
import { inputFromClaimReply, type ExecutionInput, type ResumeSignal } from './context.js';
import { LeaseLostError, TaskFinishedError, WorkerClosingError } from './errors.js';
import { LEASE_LOST_CODES, LeaseKeeper, type RenewalClock } from './lease.js';

/** How a task ended. */
export type TaskEnding =
  | { readonly how: 'completed' }
  | { readonly how: 'failed'; readonly terminal: boolean; readonly reason: string; readonly retryAt?: number }
  | { readonly how: 'cancelled'; readonly reason: string }
  | { readonly how: 'delayed'; readonly until: number }
  | { readonly how: 'waiting_children' }
  | { readonly how: 'suspended'; readonly waitpointId: WaitpointId }
  | { readonly how: 'lease_lost'; readonly code: string }
  | { readonly how: 'given_back' };

/** What suspending waits for, and what happens if nothing arrives in time. */
export interface SuspendOptions {
  /** Signal names to wait for; none (or empty) = the first signal of any name. */
  readonly signals?: readonly string[];
  /** `any` (default): one of the names resumes; `all`: every name must arrive. */
  readonly match?: 'any' | 'all';
  /** Give up waiting after this long; without it the suspension never times out. */
  readonly timeoutMs?: number;
  /** What the engine's suspension-timeout scanner does at the timeout; default `fail`. */
  readonly onTimeout?: 'fail' | 'cancel' | 'expire' | 'auto_resume' | 'escalate';
  /** Why (mapped to the blocking reason): waiting_for_signal (default), waiting_for_approval, waiting_for_callback, … */
  readonly reason?: string;
}

export interface Suspension {
  readonly waitpointId: WaitpointId;
  /** The HMAC token a sender must present (signalExecution reads it from the waitpoint itself). */
  readonly token: string;
}

export interface FailOptions {
  /** False: fail terminally whatever the retry policy says. Default true (the stored policy decides). */
  readonly retryable?: boolean;
  /** Stored as failure_category. */
  readonly category?: string;
}

/** What a task needs from the worker that runs it. */
export interface TaskHost {
  readonly client: FlowFabricClient;
  readonly workerInstanceId: string;
  readonly leaseTtlMs: number;
  /** Registered with the engine's attempt-timeout index at claim, when set. */
  readonly attemptTimeoutMs?: number;
  /** The worker's one renewal timer, shared by its tasks. */
  readonly renewals: RenewalClock;
  readonly output: 'json' | 'raw';
  onRenewed(task: Task): void;
  onRenewFailed(task: Task, error: unknown): void;
  onLeaseLost(task: Task, code: string): void;
}

/** A handler's result in the wire form of the worker's `output` mode. */
export function encodeResult(output: 'json' | 'raw', value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (output === 'json') return JSON.stringify(value);
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  throw new ArgumentError('complete', 'result', `with output 'raw' a result must be a string or a Uint8Array, got ${typeof value}`);
}

export class Task<Input = unknown> {
  readonly executionId: ExecutionId;
  readonly laneId: LaneId;
  readonly kind: string;
  readonly tags: Readonly<Record<string, string>>;
  /** The attempt's index (0 for the first); a resumed attempt keeps its index. */
  readonly attemptIndex: number;
  /** fresh, retry, reclaim (the previous holder lost its lease), resumed (after a suspension, delay or children), replay. */
  readonly attemptKind: AttemptKind;
  /** The input, decoded as the worker's `input` option says. */
  readonly input: Input;
  /** The raw payload text. */
  readonly payload: string | undefined;
  /** The signals that resumed this attempt (empty unless it resumed from a suspension). */
  readonly signals: readonly ResumeSignal[];
  readonly flowId: FlowId | undefined;
  /** When the claim was made (epoch ms). */
  readonly startedAt = Date.now();

  /** Made when the handler first asks for `signal` (most never do: it is per-job work on the hot path). */
  private abort: AbortController | undefined;
  private readonly keeper: LeaseKeeper;
  private readonly retryPolicy: RetryPolicyJson | undefined;
  private pending: Promise<unknown> | undefined;
  /** Set when the worker stopped the handler (timeout, shutdown): the handler's own operations are refused with it. */
  private stopReason: Error | undefined;
  private endingState: TaskEnding | undefined;
  private lostCode: string | undefined;
  /** A renewal refused while an ending operation was in flight: that operation decides. */
  private lostWhileEnding: string | undefined;

  constructor(
    private readonly host: TaskHost,
    readonly lease: ClaimedLease,
    context: ExecutionInput,
    input: Input,
    signals: readonly ResumeSignal[],
  ) {
    this.executionId = lease.executionId;
    this.laneId = lease.laneId;
    this.attemptIndex = lease.attemptIndex;
    this.attemptKind = lease.attemptKind;
    this.kind = context.kind;
    this.tags = context.tags;
    this.payload = context.payload;
    this.flowId = context.flowId;
    this.retryPolicy = context.retryPolicy;
    this.input = input;
    this.signals = signals;
    this.keeper = new LeaseKeeper(host.client, lease, host.leaseTtlMs, host.renewals, {
      renewed: () => host.onRenewed(this),
      failed: (error) => host.onRenewFailed(this, error),
      lost: (code) => this.loseLease(code),
    });
  }

  /** Fires when the handler's work stops counting; `signal.reason` says why (LeaseLostError, AttemptTimeoutError, WorkerClosingError). */
  get signal(): AbortSignal {
    if (!this.abort) {
      this.abort = new AbortController();
      if (this.stopReason) this.abort.abort(this.stopReason); // Stopped before anyone listened: already aborted.
    }
    return this.abort.signal;
  }

  /** How the task ended, once it has. */
  get ending(): TaskEnding | undefined {
    return this.endingState;
  }

  /** Starts lease renewal; called by the worker right after the claim. */
  startRenewal(): void {
    this.keeper.start();
  }

  // -------------------------------------------------------------------------------
  // Ending operations

  /** Completes the execution with the result (encoded as the worker's `output` option says). */
  async complete(result?: unknown): Promise<void> {
    const resultPayload = encodeResult(this.host.output, result);
    await this.end('complete', async () => {
      await completeExecution(this.host.client, { ...this.holder(), ...(resultPayload !== undefined ? { resultPayload } : {}) });
      return { how: 'completed' };
    });
  }

  /**
   * Fails this attempt. With retries left in the execution's stored retry policy, a retry is
   * scheduled after its backoff; otherwise (or with `retryable: false`) it fails for good.
   */
  fail(reason: string | Error, options: FailOptions = {}): Promise<TaskEnding & { how: 'failed' }> {
    const text = typeof reason === 'string' ? reason : reason.message || reason.name;
    const retryable = options.retryable ?? true;
    return this.end('fail', async () => {
      const result = await failExecution(this.host.client, {
        ...this.holder(),
        failureReason: text,
        ...(options.category !== undefined ? { failureCategory: options.category } : {}),
        ...(retryable && this.retryPolicy !== undefined ? { retryPolicyJson: this.retryPolicy } : {}),
      });
      return result.status === 'retry_scheduled'
        ? { how: 'failed', terminal: false, reason: text, retryAt: result.delayUntil }
        : { how: 'failed', terminal: true, reason: text };
    }) as Promise<TaskEnding & { how: 'failed' }>;
  }

  /** Cancels the execution (terminal `cancelled`). */
  async cancel(reason = 'cancelled by handler'): Promise<void> {
    await this.end('cancel', async () => {
      const context = await readExecutionContext(this.host.client.transport, this.executionId);
      await cancelExecution(this.host.client, {
        executionId: this.executionId,
        laneId: this.laneId,
        currentAttemptIndex: this.attemptIndex,
        currentWorkerInstanceId: this.host.workerInstanceId,
        ...(context.currentWaitpointId !== undefined ? { currentWaitpointId: context.currentWaitpointId } : {}),
        reason,
        source: 'lease_holder',
        leaseId: this.lease.leaseId,
        leaseEpoch: this.lease.leaseEpoch,
      });
      return { how: 'cancelled', reason };
    });
  }

  /** Gives the execution back until later: the handler runs again (a resumed attempt) once it is due. */
  async delay(delay: { readonly ms: number } | { readonly until: number }): Promise<void> {
    const until = 'until' in delay ? delay.until : Date.now() + delay.ms;
    await this.end('delay', async () => {
      await delayExecution(this.host.client, { ...this.holder(), delayUntil: until });
      return { how: 'delayed', until };
    });
  }

  /**
   * Parks the execution until its children (flow dependencies on it) are resolved; the
   * handler then runs again (a resumed attempt). Children that all finished before the call
   * would leave it parked with nothing left to wait for, so it is then made eligible at once.
   */
  async waitForChildren(): Promise<void> {
    await this.end('wait for children of', async () => {
      await moveToWaitingChildren(this.host.client, this.holder());
      return { how: 'waiting_children' };
    });
    const unresolved = await sendCommand(this.host.client.transport, 'SCARD', [new ExecKeys(this.executionId).depsUnresolved()]);
    if (Number(unresolved) === 0) await promoteBlocked(this.host.client, this.executionId).catch(() => undefined);
  }

  /**
   * Suspends the execution until signals arrive. The worker frees the slot when the handler
   * returns; once the signals resume it, the handler runs again with them in `task.signals`.
   */
  async suspend(options: SuspendOptions = {}): Promise<Suspension> {
    const names = [...(options.signals ?? [])];
    const waitpointId = newWaitpointId();
    let token = '';
    await this.end('suspend', async () => {
      try {
        const result = await suspendExecution(this.host.client, {
          ...this.holder(),
          suspensionId: newSuspensionId(),
          waitpointId,
          waitpointKey: `wpk:${waitpointId}`,
          reasonCode: options.reason ?? 'waiting_for_signal',
          requestedBy: 'worker',
          ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
          timeoutBehavior: options.onTimeout ?? 'fail',
          // The reference SDK's condition and policy objects (engine.md §4.8).
          resumeConditionJson: {
            condition_type: 'signal_set',
            required_signal_names: names,
            signal_match_mode: options.match ?? 'any',
            minimum_signal_count: 1,
            timeout_behavior: options.onTimeout ?? 'fail',
            allow_operator_override: true,
          },
          resumePolicyJson: { resume_target: 'runnable', close_waitpoint_on_resume: true, consume_matched_signals: true, retain_signal_buffer_until_closed: true },
        });
        token = result.waitpointToken;
      } catch (error) {
        return explainWaitpointError(error, executionPartition(this.executionId));
      }
      return { how: 'suspended', waitpointId };
    });
    return { waitpointId, token };
  }

  // -------------------------------------------------------------------------------
  // Operations that keep the task running

  /** Appends a frame to this attempt's output stream. */
  appendFrame(frameType: string, payload: string | unknown, options: { readonly correlationId?: string } = {}): Promise<AppendFrameResult> {
    return this.keep('append a frame to', () =>
      appendFrame(this.host.client, {
        executionId: this.executionId,
        attemptIndex: this.attemptIndex,
        leaseId: this.lease.leaseId,
        leaseEpoch: this.lease.leaseEpoch,
        attemptId: this.lease.attemptId,
        frameType,
        payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
        ...(options.correlationId !== undefined ? { correlationId: options.correlationId } : {}),
      }),
    );
  }

  /** Records progress (percent and/or a message) on the execution. */
  async progress(pct?: number, message?: string): Promise<void> {
    await this.keep('update progress of', () =>
      updateProgress(this.host.client, {
        executionId: this.executionId,
        leaseId: this.lease.leaseId,
        leaseEpoch: this.lease.leaseEpoch,
        ...(pct !== undefined ? { progressPct: Math.round(pct) } : {}),
        ...(message !== undefined ? { progressMessage: message } : {}),
      }),
    );
  }

  /** Reports usage against a budget; the reply says whether a soft or hard limit was crossed. */
  reportUsage(budgetId: BudgetId, usage: Readonly<Record<string, number>>, options: { readonly dedupId?: string } = {}): Promise<ReportUsageAndCheckResult> {
    return this.keep('report usage for', () =>
      reportUsage(this.host.client, {
        budgetId,
        usage: Object.entries(usage).map(([dimension, delta]) => ({ dimension, delta })),
        ...(options.dedupId !== undefined ? { dedupId: options.dedupId } : {}),
      }),
    );
  }

  // -------------------------------------------------------------------------------
  // Used by the worker

  /**
   * Fast path: completes and, in the same call, claims the next execution of the lane on
   * this partition. Returns the new lease, or undefined when nothing was claimed.
   */
  async completeAndClaimNext(result: unknown, workerId: string, capabilities: readonly string[]): Promise<ClaimedLease | undefined> {
    const resultPayload = encodeResult(this.host.output, result);
    let next: ClaimedLease | undefined;
    await this.end('complete', async () => {
      // Built field by field, once per job: spreading holder() in instead costs ~15 µs of client
      // CPU per job (bench/worker-breakdown.ts: 34–37 → 51–55 µs), more than the rest of the job.
      const host = this.host;
      const reply = await completeAndClaimNext(host.client, {
        executionId: this.executionId,
        laneId: this.laneId,
        workerInstanceId: host.workerInstanceId,
        leaseId: this.lease.leaseId,
        leaseEpoch: this.lease.leaseEpoch,
        attemptId: this.lease.attemptId,
        attemptIndex: this.attemptIndex,
        resultPayload,
        workerId,
        nextLeaseId: newLeaseId(),
        nextAttemptId: newAttemptId(),
        leaseTtlMs: host.leaseTtlMs,
        attemptTimeoutMs: host.attemptTimeoutMs,
        workerCapabilitiesCsv: capabilities.length > 0 ? capabilities : undefined,
        withInput: true, // The next execution's input comes in the same reply.
      });
      if (reply.status === 'claimed_next') {
        next = {
          executionId: reply.nextExecutionId,
          laneId: this.laneId,
          leaseId: reply.leaseId,
          leaseEpoch: reply.leaseEpoch,
          attemptId: reply.attemptId,
          attemptIndex: reply.attemptIndex,
          attemptKind: reply.attemptType === 'initial' ? 'fresh' : reply.attemptType === 'fallback' ? 'retry' : reply.attemptType,
          leaseExpiresAt: reply.leaseExpiresAt,
          input: inputFromClaimReply(reply),
        };
      }
      return { how: 'completed' };
    });
    return next;
  }

  /** Aborts the handler's signal with `reason` (attempt timeout, shutdown); from then on its own operations are refused. */
  interrupt(reason: Error): void {
    this.stopReason ??= reason;
    if (this.abort && !this.abort.signal.aborted) this.abort.abort(this.stopReason);
  }

  /** Attempt timeout: the handler is stopped and the attempt failed (the retry policy applies). */
  async timeOut(reason: Error): Promise<void> {
    this.interrupt(reason);
    if (this.pending) await this.pending.catch(() => undefined);
    if (this.endingState) return;
    await this.end(
      'fail',
      async () => {
        const text = reason.message;
        const result = await failExecution(this.host.client, { ...this.holder(), failureReason: text, failureCategory: 'attempt_timeout', ...(this.retryPolicy !== undefined ? { retryPolicyJson: this.retryPolicy } : {}) });
        return result.status === 'retry_scheduled' ? { how: 'failed', terminal: false, reason: text, retryAt: result.delayUntil } : { how: 'failed', terminal: true, reason: text };
      },
      true,
    );
  }

  /**
   * Shutdown: the handler did not finish in time. Its signal fires, and the execution is
   * given back at once (delayed until now, so the next claim resumes it; or failed with a
   * retryable reason), never left to a lease expiry.
   */
  async giveBack(mode: 'delay' | 'fail'): Promise<TaskEnding> {
    this.interrupt(new WorkerClosingError(this.executionId));
    if (this.pending) await this.pending.catch(() => undefined);
    if (this.endingState) return this.endingState;
    await this.end(
      'give back',
      async () => {
        if (mode === 'delay') await delayExecution(this.host.client, { ...this.holder(), delayUntil: Date.now() });
        else await failExecution(this.host.client, { ...this.holder(), failureReason: 'worker_shutdown', ...(this.retryPolicy !== undefined ? { retryPolicyJson: this.retryPolicy } : {}) });
        return { how: 'given_back' };
      },
      true,
    ).catch(() => undefined);
    return this.endingState ?? { how: 'lease_lost', code: this.lostCode ?? 'unknown' };
  }

  /** Stops renewal without ending (the worker gave up on the task after an error). */
  abandon(): void {
    this.keeper.stop();
  }

  // -------------------------------------------------------------------------------

  private holder() {
    return {
      executionId: this.executionId,
      laneId: this.laneId,
      workerInstanceId: this.host.workerInstanceId,
      leaseId: this.lease.leaseId,
      leaseEpoch: this.lease.leaseEpoch,
      attemptId: this.lease.attemptId,
      attemptIndex: this.attemptIndex,
    };
  }

  private loseLease(code: string): void {
    if (this.endingState) return;
    // A renewal that reaches the server after the complete (or fail…) it raced with is
    // refused because the attempt already ended: not a loss. The ending's own reply says.
    if (this.pending) {
      this.lostWhileEnding ??= code;
      return;
    }
    this.lostCode = code;
    this.keeper.stop();
    this.endingState = { how: 'lease_lost', code };
    this.interrupt(new LeaseLostError(this.executionId, code));
    this.host.onLeaseLost(this, code);
  }

  private refuseIfDone(attempted: string, internal = false): void {
    if (this.lostCode !== undefined) throw new LeaseLostError(this.executionId, this.lostCode);
    if (this.stopReason && !internal) throw this.stopReason;
    if (this.endingState) throw new TaskFinishedError(this.executionId, this.endingState.how, attempted);
    if (this.pending) throw new TaskFinishedError(this.executionId, 'is ending', attempted);
  }

  /** Runs an ending operation once; a refusal that says the lease is gone marks it lost. */
  private async end(attempted: string, op: () => Promise<TaskEnding>, internal = false): Promise<TaskEnding> {
    this.refuseIfDone(attempted, internal);
    const run = op();
    this.pending = run;
    try {
      const ending = await run;
      this.endingState = ending;
      this.keeper.stop();
      return ending;
    } catch (error) {
      if (error instanceof ScriptError && LEASE_LOST_CODES.has(error.code)) {
        this.loseLease(error.code);
        throw new LeaseLostError(this.executionId, error.code, { cause: error });
      }
      // Nothing was written (refused arguments, a structured refusal, or a request that never
      // left): the task is still live and the handler may try something else. After a lost
      // reply the outcome is unknown; renewal then finds out.
      const lost = this.lostWhileEnding;
      if (lost !== undefined) {
        this.pending = undefined;
        this.loseLease(lost);
      }
      throw error;
    } finally {
      this.pending = undefined;
      this.lostWhileEnding = undefined;
    }
  }

  private async keep<T>(attempted: string, op: () => Promise<T>): Promise<T> {
    if (this.lostCode !== undefined) throw new LeaseLostError(this.executionId, this.lostCode);
    if (this.stopReason) throw this.stopReason;
    if (this.endingState) throw new TaskFinishedError(this.executionId, this.endingState.how, attempted);
    try {
      return await op();
    } catch (error) {
      if (error instanceof ScriptError && (LEASE_LOST_CODES.has(error.code) || error.code === 'stale_owner_cannot_append')) {
        this.loseLease(error.code);
        throw new LeaseLostError(this.executionId, error.code, { cause: error });
      }
      throw error;
    }
  }
}

