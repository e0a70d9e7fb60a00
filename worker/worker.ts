// The Worker: claims executions of its lanes, runs a handler on each with the lease renewed
// in the background, and finishes the execution from what the handler did: a return
// completes it, a throw fails it (the stored retry policy decides whether it is retried;
// NonRetryableError fails it for good), an explicit operation (suspend, delay, wait for
// children, cancel…) ends it that way. Events and counters say what happened.
//
//   const worker = new Worker({ client, lanes: ['email'], concurrency: 8, handler: async (task) => send(task.input) });
//   await worker.start();
//   …
//   await worker.close({ timeoutMs: 10_000 });
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { FlowFabricClient } from '../runtime/client.js';
import { encodeCapabilities } from '../runtime/encode.js';
import { ArgumentError, TransportError } from '../runtime/errors.js';
import { assertKeySafe, executionPartition, parseLaneId, type ExecutionId, type LaneId, type WaitpointId } from '../runtime/ids.js';
import { delayExecution } from '../generated/execution.js';
import { resolveOutgoing } from '../operations/flows.js';
import { issueGrants } from '../operations/scheduler.js';
import { ensureWaitpointSecrets } from '../operations/waitpoints.js';
import { Claimer, grantsOneByOne, type AttemptKind, type ClaimedLease, type ClaimPath, type IssueNextGrant } from './claim.js';
import { readExecutionInput, readResumeSignals, type ExecutionInput, type ResumeSignal } from './context.js';
import { AttemptTimeoutError, LeaseLostError, NonRetryableError } from './errors.js';
import { LanePartitions } from './lane-partitions.js';
import { RenewalClock } from './lease.js';
import { Presence } from './presence.js';
import { Task, type TaskEnding, type TaskHost } from './task.js';
import { defaultWakeSource, type WakeListener, type WakeSource } from './wake.js';

export type Handler<Input> = (task: Task<Input>) => unknown;

/** What a handler did: returned a value or threw. */
type Outcome = { readonly value: unknown } | { readonly error: unknown };

const NO_SIGNALS: readonly ResumeSignal[] = Object.freeze([]);

/** One slot's run: its task once the context is read, and the slot's release (once). */
interface RunEntry<Input> {
  task?: Task<Input>;
  release(): void;
}

export interface WorkerOptions<Input = unknown> {
  readonly client: FlowFabricClient;
  /** The lanes to take work from; claims rotate over them so one busy lane does not starve another. */
  readonly lanes: string | readonly string[];
  readonly handler: Handler<Input>;
  /** The logical worker (grants name it); default `ff-worker`. */
  readonly workerId?: string;
  /** This process's instance (alive key, lease sets); default `<host>-<pid>-<random>`. */
  readonly workerInstanceId?: string;
  /** What this worker can run; executions requiring others are left to capable workers. */
  readonly capabilities?: readonly string[];
  /** Handlers running at once; default 1. */
  readonly concurrency?: number;
  /** Lease length; default 30 000 ms. */
  readonly leaseTtlMs?: number;
  /** Renewal period; default a third of the lease. */
  readonly renewEveryMs?: number;
  /**
   * Abort a handler running longer than this and fail the attempt (its retry policy applies).
   * The claim also registers the attempt with the engine's attempt-timeout index, 1 s later
   * than this, so a worker that dies or hangs has its attempt expired by the engine
   * (terminally, as the engine's scanner does) while a live worker's own timeout comes first.
   */
  readonly attemptTimeoutMs?: number;
  /**
   * `admission` (default): the scheduler's admission-checked grant cycle (capabilities,
   * budgets, quotas). `fast`: one call per claim and complete-and-claim-next, for lanes
   * that need no budget or quota admission. `direct`: grant + claim per candidate, with the
   * capability check only (the reference's direct claim).
   */
  readonly claimPath?: ClaimPath;
  /**
   * An idle worker waits `minMs`, doubling up to `maxMs`, between empty rounds; default 50 ms
   * and 1 000 ms, or 5 000 ms while wake-ups are on (the poll is then only the fallback).
   */
  readonly idleBackoff?: { readonly minMs?: number; readonly maxMs?: number };
  /**
   * Every this many ms (default 1 000), the worker looks for executions of its lanes whose
   * lease was lost, expired or revoked (to reclaim them) and, with `selfService`, does the engine's share for its
   * own lanes: marks due leases expired, promotes due delayed executions (retry backoff,
   * delays) and releases route-blocked work it can run. `false` turns the sweep off (no reclaims).
   * A worker that has held no task for 5 intervals sweeps every 4th interval only.
   */
  readonly housekeepingIntervalMs?: number | false;
  /** Do the engine's share for this worker's lanes (default true), so work moves on with no engine running; harmless next to one. */
  readonly selfService?: boolean;
  /** How `task.input` is decoded from the payload: `json` (default), `text` or `bytes` (a Buffer). */
  readonly input?: 'json' | 'text' | 'bytes';
  /** How a result is stored: `json` (default, JSON.stringify) or `raw` (a string or Uint8Array as it is). */
  readonly output?: 'json' | 'raw';
  /**
   * Partitions to look in. Default: where the lanes have unfinished work, found at start,
   * then named by wake-ups and claims, re-checked slowly (worker/lane-partitions.ts); without
   * wake-ups claims look in every partition.
   */
  readonly partitions?: readonly number[];
  /** Install waitpoint HMAC secrets on partitions that have none at start (default true). */
  readonly installWaitpointSecrets?: boolean;
  /** How close() gives back executions whose handlers did not finish: `delay` (default; resumed next) or `fail` (retryable). */
  readonly giveBack?: 'delay' | 'fail';
  /** After a flow member finishes, resolve its outgoing edges, as the engine's completion listener does (default true). */
  readonly resolveDependencies?: boolean;
  /** Heads read per partition and lane, so heads other workers hold are stepped over; default 8. */
  readonly candidatesPerPartition?: number;
  /**
   * A one-grant admission cycle to use instead of the scheduler's (run once per free slot,
   * one after the other); default the scheduler's issueGrants, one cycle for all free slots.
   */
  readonly issueNextGrant?: IssueNextGrant;
  /**
   * Where wake-ups come from when work becomes eligible (worker/wake.ts): default a
   * subscriber connection duplicated from the client's ioredis connection (none for other
   * transports); `false` polls only. The back-off poll stays on either way.
   */
  readonly wakeUp?: WakeSource | false;
}

export type WorkerEvent =
  | { readonly type: 'claimed'; readonly executionId: ExecutionId; readonly laneId: LaneId; readonly attemptIndex: number; readonly attemptKind: AttemptKind }
  | { readonly type: 'completed'; readonly executionId: ExecutionId; readonly durationMs: number }
  | { readonly type: 'failed'; readonly executionId: ExecutionId; readonly reason: string }
  | { readonly type: 'retrying'; readonly executionId: ExecutionId; readonly reason: string; readonly retryAt: number }
  | { readonly type: 'suspended'; readonly executionId: ExecutionId; readonly waitpointId: WaitpointId }
  | { readonly type: 'released'; readonly executionId: ExecutionId; readonly how: 'delayed' | 'waiting_children' | 'cancelled' | 'given_back' }
  | { readonly type: 'leaseLost'; readonly executionId: ExecutionId; readonly code: string }
  | { readonly type: 'error'; readonly error: unknown; readonly executionId?: ExecutionId }
  | { readonly type: 'closed' };

type EventMap = { [K in WorkerEvent['type']]: [Extract<WorkerEvent, { type: K }>] } & { event: [WorkerEvent] };

export interface WorkerCounters {
  /** Tasks held now (claimed, not yet finished). */
  inFlight: number;
  claimed: number;
  /** Of the claims: reclaims of executions whose lease another worker lost. */
  reclaimed: number;
  completed: number;
  /** Terminal failures. */
  failed: number;
  /** Failures that scheduled a retry. */
  retried: number;
  suspended: number;
  /** Delayed, waiting for children, cancelled or given back at shutdown. */
  released: number;
  leaseLost: number;
  renewals: number;
  renewalFailures: number;
  /** Claim rounds that found nothing. */
  claimMisses: number;
  errors: number;
}

const LOST_CLAIM_GRACE_RETRIES = 3;
/** The idle back-off ceiling when wake-ups are on (without: 1 s). */
const WAKE_BACKOFF_MAX_MS = 5000;
/** A worker idle for this many sweep intervals sweeps only every QUIET_SWEEP_STRIDE-th tick. */
const QUIET_AFTER_SWEEPS = 5;
const QUIET_SWEEP_STRIDE = 4;
/** The longest a sweep turn (worker/sweep-turn.ts) lasts. */
const MAX_SWEEP_TURN_MS = 1000;
/** How much later than the worker's own attempt timeout the engine's applies (a live worker's comes first). */
const ENGINE_TIMEOUT_GRACE_MS = 1000;

export class Worker<Input = unknown> extends EventEmitter<EventMap> {
  readonly workerId: string;
  readonly workerInstanceId: string;
  readonly lanes: readonly LaneId[];
  readonly capabilities: readonly string[];
  readonly concurrency: number;
  readonly leaseTtlMs: number;
  readonly claimPath: ClaimPath;

  private readonly client: FlowFabricClient;
  private readonly handler: Handler<Input>;
  private readonly options: WorkerOptions<Input>;
  private readonly claimer: Claimer;
  private readonly partitions: LanePartitions;
  private readonly presence: Presence;
  private readonly host: TaskHost;
  private readonly stats: WorkerCounters = {
    inFlight: 0, claimed: 0, reclaimed: 0, completed: 0, failed: 0, retried: 0, suspended: 0, released: 0,
    leaseLost: 0, renewals: 0, renewalFailures: 0, claimMisses: 0, errors: 0,
  };
  /** Every task run in progress, with its Task once the context is read. */
  private readonly runs = new Map<Promise<void>, RunEntry<Input>>();
  /**
   * Tasks recorded since close() began, when a task can be recorded twice (given back by the
   * shutdown while its own run still finishes). Before that each task is recorded once, by its
   * run: no per-job entry (a weak set of every task costs the GC on the hot path).
   */
  private readonly recorded = new WeakSet<Task<Input>>();
  private starting: Promise<void> | undefined;
  private loopDone: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private closed = false;
  private wake: (() => void) | undefined;
  private housekeeping: NodeJS.Timeout | undefined;
  private presenceTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private refreshing: Promise<void> | undefined;
  /** True once this worker holds its alive key (close() then removes its records). */
  private announced = false;
  private wakeListener: WakeListener | undefined;
  /** When a task last started or ended: a worker idle for a while sweeps less often (one that never held a task, from the start). */
  private lastBusyAt = 0;
  private quietTicks = 0;
  /** A wake-up came while a round was running: the loop goes on at once instead of sleeping. */
  private woken = false;
  /** The loop sleeps until a slot frees up (all are taken); otherwise a freed slot does not wake it. */
  private waitingForSlot = false;
  /** Work started on the side (dependency resolution): awaited by close(). */
  private readonly background = new Set<Promise<unknown>>();

  constructor(options: WorkerOptions<Input>) {
    super();
    this.options = options;
    this.client = options.client;
    this.handler = options.handler;
    const lanes = typeof options.lanes === 'string' ? [options.lanes] : [...options.lanes];
    if (lanes.length === 0) throw new ArgumentError('Worker', 'lanes', 'name at least one lane');
    this.lanes = [...new Set(lanes.map(parseLaneId))];
    this.workerId = options.workerId ?? 'ff-worker';
    this.workerInstanceId = assertKeySafe(options.workerInstanceId ?? `${hostname().replace(/[{}]/g, '')}-${process.pid}-${randomUUID().slice(0, 8)}`, 'workerInstanceId');
    const capabilitiesCsv = encodeCapabilities('Worker', 'capabilities', options.capabilities ?? []);
    this.capabilities = capabilitiesCsv === '' ? [] : capabilitiesCsv.split(',');
    this.concurrency = positive('concurrency', options.concurrency ?? 1);
    this.leaseTtlMs = positive('leaseTtlMs', options.leaseTtlMs ?? 30_000);
    const renewEveryMs = positive('renewEveryMs', options.renewEveryMs ?? Math.max(1, Math.floor(this.leaseTtlMs / 3)));
    this.claimPath = options.claimPath ?? 'admission';
    const engineAttemptTimeoutMs = options.attemptTimeoutMs === undefined ? undefined : positive('attemptTimeoutMs', options.attemptTimeoutMs) + ENGINE_TIMEOUT_GRACE_MS;
    // Start at a per-instance offset (the reference's FNV-1a of the instance id), so workers spread.
    this.partitions = new LanePartitions(this.client, {
      lanes: this.lanes,
      ...(options.partitions ? { explicit: options.partitions } : {}),
      workerInstanceId: this.workerInstanceId,
      onError: (error) => this.reportError(error),
    });
    this.claimer = new Claimer(this.client, {
      workerId: this.workerId,
      workerInstanceId: this.workerInstanceId,
      capabilities: this.capabilities,
      lanes: this.lanes,
      leaseTtlMs: this.leaseTtlMs,
      ...(engineAttemptTimeoutMs !== undefined ? { attemptTimeoutMs: engineAttemptTimeoutMs } : {}),
      path: this.claimPath,
      issueGrants: options.issueNextGrant ? grantsOneByOne(options.issueNextGrant) : issueGrants,
      // Each lease starts as soon as it is claimed, not when the whole round is done.
      onClaimed: (lease) => this.launch(lease),
      partitions: this.partitions,
      // Workers that find their lanes' partitions themselves (so they sweep alike) and do the
      // engine's share take turns at a lane's sweep; told partitions, each sweeps its own. A
      // turn lasts one interval, 1 s at most, so a worker with a long interval cannot hold
      // back the sweeps of one with a short one.
      ...(options.partitions === undefined && (options.selfService ?? true) && typeof options.housekeepingIntervalMs !== 'boolean'
        ? { sweepTurnMs: Math.min(options.housekeepingIntervalMs ?? MAX_SWEEP_TURN_MS, MAX_SWEEP_TURN_MS) }
        : {}),
      selfService: options.selfService ?? true,
      candidatesPerPartition: positive('candidatesPerPartition', options.candidatesPerPartition ?? 8),
      chunkSize: 32,
      // Long enough for the claim that follows at once; short, since a claim refused after the
      // grant (a race with a block) leaves the grant holding the head until it lapses.
      grantTtlMs: 2_000,
      onError: (error, executionId) => this.reportError(error, executionId),
      onReclaimLimit: (executionId) => {
        this.stats.failed += 1;
        this.publish({ type: 'failed', executionId, reason: 'max_reclaims_exceeded' });
      },
    });
    this.presence = new Presence(this.client, this.workerInstanceId, capabilitiesCsv, this.leaseTtlMs);
    this.host = {
      client: this.client,
      workerInstanceId: this.workerInstanceId,
      leaseTtlMs: this.leaseTtlMs,
      ...(engineAttemptTimeoutMs !== undefined ? { attemptTimeoutMs: engineAttemptTimeoutMs } : {}),
      renewals: new RenewalClock(renewEveryMs),
      output: options.output ?? 'json',
      onRenewed: () => void (this.stats.renewals += 1),
      onRenewFailed: (task, error) => {
        this.stats.renewalFailures += 1;
        this.reportError(error, task.executionId);
      },
      onLeaseLost: (task, code) => {
        this.stats.leaseLost += 1;
        this.publish({ type: 'leaseLost', executionId: task.executionId, code });
      },
    };
  }

  /** A snapshot of the counters. */
  get counters(): Readonly<WorkerCounters> {
    return { ...this.stats };
  }

  /**
   * Announces the worker (alive key, capabilities), installs waitpoint secrets where none
   * exist, and starts claiming in the background. Resolves once running.
   */
  start(): Promise<void> {
    if (this.closing) return Promise.reject(new ArgumentError('Worker.start', 'state', 'the worker was closed'));
    this.starting ??= this.begin();
    return this.starting;
  }

  private async begin(): Promise<void> {
    await this.presence.announce();
    this.announced = true;
    try {
      if (this.options.installWaitpointSecrets ?? true) await ensureWaitpointSecrets(this.client);
    } catch (error) {
      this.announced = false;
      await this.presence.withdraw().catch(() => undefined);
      throw error;
    }
    if (this.closing) return; // close() came during start: it withdraws the records once this returns.
    await this.listenForWakeUps();
    await this.findLanes();
    this.presenceTimer = setInterval(() => {
      if (this.refreshing || this.closing) return;
      this.refreshing = this.presence
        .refresh()
        .catch((error: unknown) => this.reportError(error))
        .finally(() => (this.refreshing = undefined));
    }, this.host.renewals.everyMs);
    this.presenceTimer.unref?.();
    const interval = this.options.housekeepingIntervalMs ?? 1000;
    if (interval !== false) {
      const every = positive('housekeepingIntervalMs', interval);
      this.housekeeping = setInterval(() => this.tick(every), every);
      this.housekeeping.unref?.();
    }
    this.loopDone = this.loop();
    if (interval !== false) void this.sweep();
  }

  /**
   * Finds where the lanes have work (after subscribing, so a wake-up during the read is not
   * lost) and starts the slow re-check; without wake-ups claims look everywhere. A failed
   * read is reported, and the worker looks everywhere rather than nowhere.
   */
  private async findLanes(): Promise<void> {
    if (this.partitions.fixed) return;
    try {
      await this.partitions.discover();
    } catch (error) {
      this.reportError(error);
      this.partitions.lookEverywhere();
    }
    if (!this.wakeListener) this.partitions.lookEverywhere();
    this.partitions.startRediscovery();
  }

  /** Subscribes to the lanes' wake-ups; a failure is reported and the worker polls only. */
  private async listenForWakeUps(): Promise<void> {
    const source = this.options.wakeUp === undefined ? defaultWakeSource(this.client) : this.options.wakeUp;
    if (!source) return;
    try {
      this.wakeListener = await source.listen(
        this.lanes,
        (laneId, partition) => {
          if (!this.claimer.hint(laneId, partition)) return;
          this.woken = true;
          this.poke();
        },
        (error) => this.reportError(error),
        () => void this.afterWakeGap(),
      );
    } catch (error) {
      this.reportError(error);
    }
  }

  /**
   * Wake-ups were lost while the subscription was down (a reconnect, a server restart): the
   * lanes' partitions are checked again at once, then the loop runs a round, instead of
   * leaving work no message announced to the slow re-check.
   */
  private async afterWakeGap(): Promise<void> {
    if (this.closing) return;
    if (!this.partitions.fixed) {
      try {
        await this.partitions.discover();
      } catch (error) {
        this.reportError(error);
        this.partitions.lookEverywhere();
      }
    }
    this.woken = true;
    this.poke();
  }

  /** start(), then resolves when the worker has been closed. */
  async run(): Promise<void> {
    await this.start();
    await new Promise<void>((resolve) => (this.closed ? resolve() : this.once('closed', () => resolve())));
  }

  /**
   * Graceful shutdown: stops claiming, lets running handlers finish for up to `timeoutMs`
   * (default 30 s), then aborts the rest (their signal fires with WorkerClosingError) and
   * gives their executions back at once (see `giveBack`), and withdraws the worker's records.
   */
  close(options: { readonly timeoutMs?: number } = {}): Promise<void> {
    this.closing ??= this.shutdown(options.timeoutMs ?? 30_000);
    return this.closing;
  }

  /** Everything that happens, in order, until the worker is closed. */
  async *events(): AsyncGenerator<WorkerEvent> {
    const queue: WorkerEvent[] = [];
    let notify: (() => void) | undefined;
    const listener = (event: WorkerEvent) => {
      queue.push(event);
      notify?.();
    };
    this.on('event', listener);
    try {
      for (;;) {
        while (queue.length > 0) {
          const event = queue.shift()!;
          yield event;
          if (event.type === 'closed') return;
        }
        if (this.closed) return;
        await new Promise<void>((resolve) => (notify = resolve));
        notify = undefined;
      }
    } finally {
      this.off('event', listener);
    }
  }

  // -------------------------------------------------------------------------------

  private async loop(): Promise<void> {
    const minMs = this.options.idleBackoff?.minMs ?? 50;
    // With wake-ups the poll is only the fallback: it can be slower.
    const maxMs = this.options.idleBackoff?.maxMs ?? (this.wakeListener ? WAKE_BACKOFF_MAX_MS : 1000);
    let backoff = minMs;
    while (!this.closing) {
      const free = this.concurrency - this.stats.inFlight;
      if (free <= 0) {
        this.waitingForSlot = true;
        await this.pause(); // Woken when a slot frees up or at close.
        this.waitingForSlot = false;
        continue;
      }
      let claimed: ClaimedLease[] = [];
      this.woken = false; // From here on a wake-up means work this round may have missed.
      try {
        claimed = await this.claimer.claim(free); // Each lease already launched (onClaimed).
      } catch (error) {
        this.reportError(error);
      }
      // Every slot filled (more may wait), or work came during the round: at once again.
      if (claimed.length >= free || this.woken) {
        backoff = minMs;
        continue;
      }
      // Fewer than asked: the round took what it saw. The next one waits for new work (a
      // wake-up, the sweep) or the back-off, not for a freed slot, which brings none.
      if (claimed.length > 0) backoff = minMs;
      else this.stats.claimMisses += 1;
      await this.pause(backoff);
      if (this.woken) backoff = minMs;
      else backoff = Math.min(backoff * 2, maxMs);
    }
  }

  /** Sleeps until woken, or for `ms` when given. */
  private pause(ms?: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(done, ms);
      function done() {
        if (timer) clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        done();
      };
    });
  }

  private poke(): void {
    this.wake?.();
  }

  /** The housekeeping timer's tick: every tick while busy or lately busy, every few ticks once idle a while. */
  private tick(interval: number): void {
    const quiet = this.stats.inFlight === 0 && Date.now() - this.lastBusyAt > QUIET_AFTER_SWEEPS * interval;
    if (!quiet) this.quietTicks = 0;
    else if (this.quietTicks++ % QUIET_SWEEP_STRIDE !== 0) return;
    void this.sweep();
  }

  private sweep(): Promise<void> {
    if (this.sweeping || this.closing) return this.sweeping ?? Promise.resolve();
    this.sweeping = (async () => {
      try {
        const { promoted, expired, revoked, unblocked } = await this.claimer.sweep();
        if (promoted + expired + revoked + unblocked > 0) this.poke();
      } catch (error) {
        this.reportError(error);
      } finally {
        this.sweeping = undefined;
      }
    })();
    return this.sweeping;
  }

  /** Takes a slot and runs the task; the slot is given back when it settles. */
  private launch(lease: ClaimedLease): void {
    this.partitions.learn(lease.laneId, executionPartition(lease.executionId)); // Swept from now on.
    this.stats.inFlight += 1;
    this.lastBusyAt = Date.now();
    let released = false;
    const entry: RunEntry<Input> = {
      release: () => {
        if (released) return;
        released = true;
        this.runs.delete(run);
        this.stats.inFlight -= 1;
        this.lastBusyAt = Date.now();
        if (this.waitingForSlot) this.poke();
      },
    };
    const run: Promise<void> = this.runTask(lease, entry)
      .catch((error: unknown) => this.reportError(error, lease.executionId))
      .finally(() => entry.release());
    this.runs.set(run, entry);
  }

  private async runTask(first: ClaimedLease, entry: RunEntry<Input>): Promise<void> {
    let lease: ClaimedLease | undefined = first;
    // A fast-path completion may claim the next execution in the same call: it runs in the same slot.
    while (lease) {
      this.stats.claimed += 1;
      if (lease.attemptKind === 'reclaim') this.stats.reclaimed += 1;
      if (this.heard('claimed')) {
        this.publish({ type: 'claimed', executionId: lease.executionId, laneId: lease.laneId, attemptIndex: lease.attemptIndex, attemptKind: lease.attemptKind });
      }
      // A fast-path claim answered the input already: no read, and no wait for one.
      let context = lease.attemptKind === 'resumed' ? undefined : lease.input;
      let signals: readonly ResumeSignal[] = NO_SIGNALS;
      if (!context) {
        const read = await this.readContext(lease);
        if (!read) return;
        ({ context, signals } = read);
      }
      let input: unknown;
      let inputError: Error | undefined;
      try {
        input = this.decodeInput(context.payload);
      } catch (error) {
        inputError = new NonRetryableError(`input is not valid JSON: ${(error as Error).message}`, 'invalid_input');
      }
      const task = new Task<Input>(this.host, lease, context, input as Input, signals);
      task.startRenewal();
      entry.task = task;
      if (inputError) {
        await this.finish(task, { error: inputError });
        return;
      }
      lease = await this.execute(task);
    }
  }

  /** Reads what the handler is given; a lease held but unreadable is given back, never left to expire. */
  private async readContext(lease: ClaimedLease): Promise<{ context: ExecutionInput; signals: readonly ResumeSignal[] } | undefined> {
    let lastError: unknown;
    for (let attempt = 0; attempt < LOST_CLAIM_GRACE_RETRIES; attempt++) {
      try {
        const context = lease.input ?? (await readExecutionInput(this.client, lease.executionId));
        const signals = lease.attemptKind === 'resumed' ? await readResumeSignals(this.client, lease.executionId, lease.attemptIndex) : NO_SIGNALS;
        return { context, signals };
      } catch (error) {
        lastError = error;
        await new Promise((resolve) => setTimeout(resolve, 50 * (attempt + 1)));
      }
    }
    this.reportError(lastError, lease.executionId);
    await delayExecution(this.client, {
      executionId: lease.executionId, laneId: lease.laneId, workerInstanceId: this.workerInstanceId, leaseId: lease.leaseId,
      leaseEpoch: lease.leaseEpoch, attemptId: lease.attemptId, attemptIndex: lease.attemptIndex, delayUntil: Date.now(),
    }).catch((error: unknown) => this.reportError(error, lease.executionId));
    this.stats.released += 1;
    this.publish({ type: 'released', executionId: lease.executionId, how: 'given_back' });
    return undefined;
  }

  private decodeInput(payload: string | undefined): unknown {
    switch (this.options.input ?? 'json') {
      case 'json':
        return payload === undefined || payload === '' ? undefined : (JSON.parse(payload) as unknown);
      case 'text':
        return payload ?? '';
      case 'bytes':
        return Buffer.from(payload ?? '', 'utf8');
    }
  }

  /** Runs the handler and finishes the task from its outcome; returns a lease claimed by a fast-path completion. */
  private async execute(task: Task<Input>): Promise<ClaimedLease | undefined> {
    const timeoutMs = this.options.attemptTimeoutMs;
    const outcome = timeoutMs === undefined ? await this.runHandler(task) : await this.runHandlerWithin(task, timeoutMs);
    if ('error' in outcome && outcome.error instanceof AttemptTimeoutError && outcome.error.executionId === task.executionId) {
      await this.retryTransport(() => task.timeOut(outcome.error as AttemptTimeoutError)).catch((error: unknown) => {
        if (!(error instanceof LeaseLostError)) this.reportError(error, task.executionId);
      });
    }
    return this.finish(task, outcome);
  }

  /** The handler's return value or what it threw (synchronously or not). */
  private async runHandler(task: Task<Input>): Promise<Outcome> {
    try {
      return { value: await this.handler(task) };
    } catch (error) {
      return { error };
    }
  }

  /** runHandler, or an AttemptTimeoutError once `timeoutMs` has passed (the handler is interrupted). */
  private async runHandlerWithin(task: Task<Input>, timeoutMs: number): Promise<Outcome> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<Outcome>((resolve) => {
      timer = setTimeout(() => {
        const error = new AttemptTimeoutError(task.executionId, timeoutMs);
        task.interrupt(error); // From here on the handler's own operations are refused.
        resolve({ error });
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.runHandler(task), timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async finish(task: Task<Input>, outcome: Outcome): Promise<ClaimedLease | undefined> {
    let next: ClaimedLease | undefined;
    if (!task.ending) {
      try {
        if ('error' in outcome) {
          const error = outcome.error;
          if (!(error instanceof LeaseLostError)) {
            const terminal = error instanceof NonRetryableError;
            await this.retryTransport(() =>
              task.fail(error instanceof Error ? error : String(error), {
                retryable: !terminal,
                ...(terminal ? { category: error.category } : {}),
              }),
            );
          }
        } else if (this.claimPath === 'fast' && !this.closing) {
          next = await this.retryTransport(() => task.completeAndClaimNext(outcome.value, this.workerId, this.capabilities));
        } else {
          await this.retryTransport(() => task.complete(outcome.value));
        }
      } catch (error) {
        if (!(error instanceof LeaseLostError)) {
          this.reportError(error, task.executionId);
          task.abandon();
        }
      }
    }
    this.record(task);
    if (next && this.closing) {
      // Claimed by the completion while closing: give it back rather than start it.
      this.stats.claimed += 1;
      await delayExecution(this.client, {
        executionId: next.executionId, laneId: next.laneId, workerInstanceId: this.workerInstanceId, leaseId: next.leaseId,
        leaseEpoch: next.leaseEpoch, attemptId: next.attemptId, attemptIndex: next.attemptIndex, delayUntil: Date.now(),
      }).catch((error: unknown) => this.reportError(error, next!.executionId));
      this.stats.released += 1;
      return undefined;
    }
    return next;
  }

  /** Retries an operation whose request provably never reached the server. */
  private async retryTransport<T>(op: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await op();
      } catch (error) {
        if (!(error instanceof TransportError && error.notSent) || attempt >= 2) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100 * (attempt + 1)));
      }
    }
  }

  /** Counts how the task ended and tells listeners, once per task. */
  private record(task: Task<Input>, ending: TaskEnding | undefined = task.ending): void {
    if (!ending || this.recorded.has(task)) return;
    if (this.closing) this.recorded.add(task);
    const executionId = task.executionId;
    switch (ending.how) {
      case 'completed':
        this.stats.completed += 1;
        if (this.heard('completed')) this.publish({ type: 'completed', executionId, durationMs: Date.now() - task.startedAt });
        break;
      case 'failed':
        if (ending.terminal) {
          this.stats.failed += 1;
          this.publish({ type: 'failed', executionId, reason: ending.reason });
        } else {
          this.stats.retried += 1;
          this.publish({ type: 'retrying', executionId, reason: ending.reason, retryAt: ending.retryAt ?? Date.now() });
        }
        break;
      case 'suspended':
        this.stats.suspended += 1;
        this.publish({ type: 'suspended', executionId, waitpointId: ending.waitpointId });
        break;
      case 'delayed':
      case 'waiting_children':
      case 'cancelled':
      case 'given_back':
        this.stats.released += 1;
        this.publish({ type: 'released', executionId, how: ending.how });
        break;
      case 'lease_lost':
        break; // Counted and told when it was found.
    }
    const finishedFlowMember = task.flowId !== undefined && (ending.how === 'completed' || ending.how === 'cancelled' || (ending.how === 'failed' && ending.terminal));
    if (finishedFlowMember && (this.options.resolveDependencies ?? true)) {
      const resolving = resolveOutgoing(this.client, task.flowId!, executionId)
        .catch((error: unknown) => this.reportError(error, executionId))
        .finally(() => this.background.delete(resolving));
      this.background.add(resolving);
    }
  }

  private async shutdown(timeoutMs: number): Promise<void> {
    await this.starting?.catch(() => undefined);
    this.poke();
    if (this.housekeeping) clearInterval(this.housekeeping);
    await this.loopDone;
    const deadline = new Promise<void>((resolve) => setTimeout(resolve, timeoutMs).unref?.());
    await Promise.race([Promise.allSettled([...this.runs.keys()]), deadline]);
    await Promise.all(
      [...this.runs.values()].map(async (entry) => {
        const task = entry.task;
        if (!task || task.ending) return;
        this.record(task, await task.giveBack(this.options.giveBack ?? 'delay'));
        entry.release(); // The handler may still be running; its slot and execution are not ours any more.
      }),
    );
    if (this.presenceTimer) clearInterval(this.presenceTimer);
    this.host.renewals.stop();
    await this.partitions.stop();
    await this.wakeListener?.close().catch((error: unknown) => this.reportError(error));
    await this.sweeping;
    await this.refreshing; // A refresh in flight would put the records back after the withdrawal.
    await Promise.allSettled([...this.background]);
    if (this.announced) await this.presence.withdraw().catch((error: unknown) => this.reportError(error));
    this.closed = true;
    this.publish({ type: 'closed' });
  }

  private reportError(error: unknown, executionId?: ExecutionId): void {
    this.stats.errors += 1;
    this.publish(executionId === undefined ? { type: 'error', error } : { type: 'error', error, executionId });
  }

  /** Whether anyone listens for events of this type: a per-job event nobody hears is not built. */
  private heard(type: WorkerEvent['type']): boolean {
    return this.listenerCount('event') > 0 || this.listenerCount(type) > 0;
  }

  private publish(event: WorkerEvent): void {
    const emit = this.emit as (name: string, event: WorkerEvent) => boolean;
    emit.call(this, 'event', event);
    // An 'error' with no listener would throw from emit(): errors are reported, not raised.
    if (event.type !== 'error' || this.listenerCount('error') > 0) emit.call(this, event.type, event);
  }
}

function positive(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new ArgumentError('Worker', name, `must be a positive integer, got ${String(value)}`);
  return value;
}

