// Runs one scanner forever: a cycle visits every partition of the scanner's family (a few
// at a time), then sleeps for what is left of the interval. Nothing a scanner throws stops
// the loop: errors are counted, logged (the first of each cycle at warn, the rest at debug)
// and the next cycle comes after the interval, so a server outage never makes it spin.
import type { FlowFabricClient } from '../runtime/client.js';
import { serverTimeMs } from '../operations/server-clock.js';
import { FailureTracker } from './failures.js';
import type { Logger } from './log.js';

export type PartitionFamily = 'flow' | 'budget' | 'quota';

/** What a scanner reports; read with Engine.stats(). */
export interface ScannerStats {
  readonly name: string;
  /** Cycles completed. */
  cycles: number;
  /** Items whose state the scanner changed (promoted, marked, expired, purged, unblocked…). */
  processed: number;
  /** Failed calls and reads (transport errors, unexpected replies). */
  errors: number;
  /** Items not called this cycle because they are in failure backoff. */
  skipped: number;
  /**
   * Age in ms of the oldest due member seen in the last full cycle (0 when none was
   * overdue). For the blocked-set scanners (unblock, dependency_reconciler) it is the age of
   * the oldest blocked member, so a stuck set shows.
   */
  lagMs: number;
  /** Duration of the last cycle, ms. */
  lastCycleMs: number;
  /** Local time the last cycle ended, epoch ms (0 before the first). */
  lastCycleAt: number;
}

/** Given to a scanner for one cycle. */
export interface ScanContext {
  readonly client: FlowFabricClient;
  readonly log: Logger;
  readonly tracker: FailureTracker;
  /** Server time, read once per cycle and advanced by the local monotonic clock. */
  now(): number;
  stopping(): boolean;
  processed(count?: number): void;
  skipped(count?: number): void;
  /** Counts an error; `item` enters failure backoff after three in a row. */
  failed(error: unknown, item?: string): void;
  /** Reports how long a due member has waited; the cycle keeps the largest. */
  lag(ms: number): void;
}

export interface Scanner {
  readonly name: string;
  readonly family: PartitionFamily;
  /** Once per cycle before the partitions (refresh caches). */
  beginCycle?(ctx: ScanContext): Promise<void>;
  scanPartition(partition: number, ctx: ScanContext): Promise<void>;
}

export interface RunnerOptions {
  readonly intervalMs: number;
  readonly partitionCount: number;
  /** Partitions scanned at the same time (default 4). */
  readonly concurrency?: number;
}

/** The reference's floor (engine.md §1.5). */
export const MIN_INTERVAL_MS = 100;

export class ScannerRunner {
  readonly stats: ScannerStats;
  private readonly tracker = new FailureTracker();
  private stopped = false;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private cycleErrors = 0;
  private cycleStartProcessed = 0;

  constructor(
    readonly scanner: Scanner,
    private readonly options: RunnerOptions,
    private readonly client: FlowFabricClient,
    private readonly log: Logger,
  ) {
    this.stats = { name: scanner.name, cycles: 0, processed: 0, errors: 0, skipped: 0, lagMs: 0, lastCycleMs: 0, lastCycleAt: 0 };
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Starts the next cycle now instead of at the end of the sleep. */
  kick(): void {
    this.wake?.();
  }

  /** Stops after the partition in progress; resolves when the loop has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
  }

  /** One full cycle, awaited (tests and `Engine.runOnce`). */
  async cycle(): Promise<void> {
    const started = performance.now();
    this.tracker.advance();
    this.cycleErrors = 0;
    this.cycleStartProcessed = this.stats.processed;
    let cycleLag = 0;
    let base: number;
    try {
      base = await serverTimeMs(this.client);
    } catch (error) {
      this.count(error);
      return this.endCycle(started, 0);
    }
    const ctx: ScanContext = {
      client: this.client,
      log: this.log,
      tracker: this.tracker,
      now: () => base + Math.floor(performance.now() - started),
      stopping: () => this.stopped,
      processed: (count = 1) => void (this.stats.processed += count),
      skipped: (count = 1) => void (this.stats.skipped += count),
      failed: (error, item) => {
        this.count(error, item);
        if (item !== undefined && this.tracker.failure(item)) this.log.error(`${this.scanner.name}: ${item} failed 3 times in a row; skipped for 10 cycles`);
      },
      lag: (ms) => void (cycleLag = Math.max(cycleLag, ms)),
    };
    try {
      await this.scanner.beginCycle?.(ctx);
    } catch (error) {
      this.count(error);
    }
    let next = 0;
    const worker = async () => {
      while (!this.stopped && next < this.options.partitionCount) {
        const partition = next++;
        try {
          await this.scanner.scanPartition(partition, ctx);
        } catch (error) {
          this.count(error, `partition ${partition}`);
        }
      }
    };
    const lanes = Math.max(1, Math.min(this.options.concurrency ?? 4, this.options.partitionCount));
    await Promise.all(Array.from({ length: lanes }, worker));
    this.endCycle(started, cycleLag);
  }

  private endCycle(started: number, lag: number): void {
    this.stats.cycles++;
    this.stats.lagMs = lag;
    this.stats.lastCycleMs = Math.round(performance.now() - started);
    this.stats.lastCycleAt = Date.now();
    if (this.cycleErrors > 1) this.log.warn(`${this.scanner.name}: ${this.cycleErrors} errors this cycle`);
    const processed = this.stats.processed - this.cycleStartProcessed;
    if (processed > 0) this.log.info(`${this.scanner.name}: ${processed} processed in ${this.stats.lastCycleMs} ms`, lag > 0 ? { lagMs: lag } : undefined);
  }

  private count(error: unknown, where?: string): void {
    this.stats.errors++;
    this.cycleErrors++;
    const message = error instanceof Error ? error.message : String(error);
    const line = `${this.scanner.name}: ${where ? `${where}: ` : ''}${message}`;
    if (this.cycleErrors === 1) this.log.warn(line);
    else this.log.debug(line);
  }

  private async run(): Promise<void> {
    const interval = Math.max(MIN_INTERVAL_MS, this.options.intervalMs);
    while (!this.stopped) {
      const started = performance.now();
      try {
        await this.cycle();
      } catch (error) {
        // cycle() catches everything it awaits; this is a last net against a defect.
        this.count(error);
      }
      if (this.stopped) break;
      const wait = Math.max(0, interval - (performance.now() - started));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }
}
