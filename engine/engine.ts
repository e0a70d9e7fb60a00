// The background engine: boot, the fourteen scanners of engine.md §2 (one loop each, over
// every partition of their family), and the completion listener. Every per-item action is
// one atomic library call that re-checks the state, so several engine processes can run
// side by side on one deployment (see docs/engine.md for the per-scanner argument).
import type { FlowFabricClient } from '../runtime/client.js';
import type { LaneId } from '../runtime/ids.js';
import { IoredisTransport } from '../runtime/ioredis.js';
import { boot, type BootOptions } from './boot.js';
import { CompletionListener, type ListenerStats, type Subscriber } from './completions.js';
import { lanesOf } from './lanes.js';
import { createLogger, type LogLevel, type LogSink, type Logger } from './log.js';
import { ScannerRunner, type Scanner, type ScannerStats } from './runner.js';
import { budgetReconcilerScanner, budgetResetScanner } from './scanners/budget.js';
import { delayedPromoterScanner } from './scanners/delayed.js';
import { dependencyReconcilerScanner } from './scanners/dependencies.js';
import { flowProjectorScanner } from './scanners/flow-projector.js';
import { indexReconcilerScanner } from './scanners/index-reconciler.js';
import { leaseExpiryScanner } from './scanners/leases.js';
import { quotaReconcilerScanner } from './scanners/quota.js';
import { retentionScanner, type RetentionOptions } from './scanners/retention.js';
import { attemptTimeoutScanner, executionDeadlineScanner, pendingWaitpointExpiryScanner, suspensionTimeoutScanner } from './scanners/timeouts.js';
import { unblockScanner } from './scanners/unblock.js';
import type { IndexScanOptions } from './scan.js';

/** The scanners, in the reference's start order (engine.md §1.5). */
export const SCANNER_NAMES = [
  'lease_expiry',
  'delayed_promoter',
  'index_reconciler',
  'attempt_timeout',
  'suspension_timeout',
  'pending_wp_expiry',
  'retention_trimmer',
  'budget_reset',
  'budget_reconciler',
  'unblock',
  'dependency_reconciler',
  'quota_reconciler',
  'flow_projector',
  'execution_deadline',
] as const;
export type ScannerName = (typeof SCANNER_NAMES)[number];

/** The reference's intervals (engine.md §1.3), ms. */
export const DEFAULT_INTERVALS_MS: Readonly<Record<ScannerName, number>> = {
  lease_expiry: 1_500,
  delayed_promoter: 750,
  index_reconciler: 45_000,
  attempt_timeout: 2_000,
  suspension_timeout: 2_000,
  pending_wp_expiry: 5_000,
  retention_trimmer: 60_000,
  budget_reset: 15_000,
  budget_reconciler: 30_000,
  unblock: 5_000,
  dependency_reconciler: 15_000,
  quota_reconciler: 30_000,
  flow_projector: 15_000,
  execution_deadline: 5_000,
};

/** The reference's batch sizes (engine.md §2.0): members read per page. */
export const DEFAULT_BATCH_SIZES: Readonly<Partial<Record<ScannerName, number>>> = {
  lease_expiry: 50,
  delayed_promoter: 50,
  attempt_timeout: 50,
  suspension_timeout: 50,
  pending_wp_expiry: 100,
  retention_trimmer: 20,
  budget_reset: 20,
  unblock: 100,
  dependency_reconciler: 50,
  execution_deadline: 50,
};

/**
 * Pages one scanner reads per partition and cycle, where not 20. The index reconciler only
 * reports, and reads every execution: two pages per partition and cycle bound its cost per
 * cycle (≤ 51,200 executions over 256 partitions, ≈ 1% of a server core at the 45 s interval)
 * while a full pass of 1M executions takes ~21 cycles (about 16 min) instead of 9 s of server CPU each.
 */
const PAGES_PER_CYCLE: Readonly<Partial<Record<ScannerName, number>>> = { index_reconciler: 2 };

/** How much of its index one scanner reads per page and per partition and cycle, with these options. */
export function scanLimits(name: ScannerName, options: Pick<EngineOptions, 'batchSizes' | 'maxPerPartition'> = {}): IndexScanOptions {
  const batchSize = Math.max(1, options.batchSizes?.[name] ?? DEFAULT_BATCH_SIZES[name] ?? 100);
  return { batchSize, maxPerPartition: options.maxPerPartition ?? batchSize * (PAGES_PER_CYCLE[name] ?? 20) };
}

export interface EngineOptions {
  readonly client: FlowFabricClient;
  /** Lanes the lane-scoped scanners visit; default every lane in each partition's lane registry. */
  readonly lanes?: readonly LaneId[];
  /** Per-scanner intervals, ms (floor 100 ms). */
  readonly intervals?: Partial<Record<ScannerName, number>>;
  /** Per-scanner page sizes. */
  readonly batchSizes?: Partial<Record<ScannerName, number>>;
  /** Members one scanner looks at per partition and cycle (default 20 pages; the index reconciler 2, going on from where it stopped next cycle). */
  readonly maxPerPartition?: number;
  /** Partitions one scanner works on at the same time (default 4). */
  readonly concurrency?: number;
  /** Retention of terminal executions, per lane (default 24 h). */
  readonly retention?: RetentionOptions;
  /** Run only these scanners (default all). */
  readonly scanners?: readonly ScannerName[];
  /**
   * The completion listener (default on). It needs its own connection: by default a
   * duplicate of the client's ioredis connection; pass a factory for anything else, or false.
   */
  readonly completionListener?: boolean | { readonly subscriber: () => Subscriber };
  /** Boot steps (default all); false skips boot entirely. */
  readonly boot?: BootOptions | false;
  /**
   * How often to check that the library is still loaded on every primary, ms (default
   * 5 000; false: never). Scanners with nothing to do send no FCALL, so without this a
   * FUNCTION FLUSH or a restart would go unnoticed until work arrives, and producers
   * without autoLoad would fail meanwhile. A reload also re-runs the other boot steps.
   */
  readonly libraryCheckMs?: number | false;
  readonly logLevel?: LogLevel;
  readonly logSink?: LogSink;
}

export interface EngineStats {
  readonly scanners: readonly ScannerStats[];
  /** The library watchdog: checks made, and reloads after the library went missing. */
  readonly library: { readonly checks: number; readonly reloads: number };
  readonly completionListener?: ListenerStats;
}

/** Stop waits this long for the loops to finish their partition (engine.md §1.9). */
const STOP_LIMIT_MS = 15_000;

export class Engine {
  readonly log: Logger;
  private readonly runners = new Map<ScannerName, ScannerRunner>();
  private listener: CompletionListener | undefined;
  private state: 'new' | 'running' | 'stopped' = 'new';
  private rebooting: Promise<void> | undefined;
  private libraryTimer: NodeJS.Timeout | undefined;
  private checking = false;
  private readonly library = { checks: 0, reloads: 0 };

  constructor(private readonly options: EngineOptions) {
    this.log = createLogger(options.logLevel ?? 'info', options.logSink);
    const lanes = lanesOf(options.lanes);
    const scan = (name: ScannerName) => scanLimits(name, options);
    const build: Record<ScannerName, () => Scanner> = {
      lease_expiry: () => leaseExpiryScanner(scan('lease_expiry')),
      delayed_promoter: () => delayedPromoterScanner(scan('delayed_promoter'), lanes),
      index_reconciler: () => indexReconcilerScanner(scan('index_reconciler')),
      attempt_timeout: () => attemptTimeoutScanner(scan('attempt_timeout')),
      suspension_timeout: () => suspensionTimeoutScanner(scan('suspension_timeout')),
      pending_wp_expiry: () => pendingWaitpointExpiryScanner(scan('pending_wp_expiry')),
      retention_trimmer: () => retentionScanner(scan('retention_trimmer'), lanes, options.retention),
      budget_reset: () => budgetResetScanner(scan('budget_reset')),
      budget_reconciler: () => budgetReconcilerScanner(),
      unblock: () => unblockScanner(scan('unblock'), lanes),
      dependency_reconciler: () => dependencyReconcilerScanner(scan('dependency_reconciler'), lanes),
      quota_reconciler: () => quotaReconcilerScanner(),
      flow_projector: () => flowProjectorScanner(),
      execution_deadline: () => executionDeadlineScanner(scan('execution_deadline')),
    };
    const counts = options.client.partitions;
    for (const name of options.scanners ?? SCANNER_NAMES) {
      const scanner = build[name]();
      const partitionCount = scanner.family === 'flow' ? counts.numFlowPartitions : scanner.family === 'budget' ? counts.numBudgetPartitions : counts.numQuotaPartitions;
      const intervalMs = options.intervals?.[name] ?? DEFAULT_INTERVALS_MS[name];
      this.runners.set(name, new ScannerRunner(scanner, { intervalMs, partitionCount, concurrency: options.concurrency ?? 4 }, options.client, this.log));
    }
  }

  /** Boots (library, partition record, key rings), then starts every scanner and the listener. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`Engine.start: the engine is ${this.state}; create a new Engine to start again`);
    this.state = 'running';
    try {
      if (this.options.boot !== false) await boot(this.options.client, this.options.boot ?? {}, this.log);
      const listen = this.options.completionListener ?? true;
      if (listen !== false) {
        const connect = typeof listen === 'object' ? listen.subscriber : () => duplicateConnection(this.options.client);
        this.listener = new CompletionListener(this.options.client, connect, this.log, () => this.afterGap());
        await this.listener.start();
      }
    } catch (error) {
      this.state = 'stopped';
      await this.listener?.stop();
      throw error;
    }
    for (const runner of this.runners.values()) runner.start();
    const check = this.options.libraryCheckMs ?? 5_000;
    if (check !== false && this.options.boot !== false && this.options.boot?.loadLibrary !== false) {
      this.libraryTimer = setInterval(() => void this.checkLibrary(), Math.max(100, check));
      this.libraryTimer.unref?.();
    }
    this.log.info(`started: ${[...this.runners.keys()].join(', ')}${this.listener ? ', completion_listener' : ''}`, {
      partitions: `${this.options.client.partitions.numFlowPartitions}/${this.options.client.partitions.numBudgetPartitions}/${this.options.client.partitions.numQuotaPartitions}`,
      lanes: this.options.lanes ? this.options.lanes.join(',') : 'registry',
    });
  }

  /** Stops every loop after its current partition (at most 15 s), then the listener. */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    clearInterval(this.libraryTimer);
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), STOP_LIMIT_MS)));
    const done = Promise.all([...this.runners.values()].map((r) => r.stop()).concat(this.listener ? [this.listener.stop()] : []));
    const outcome = await Promise.race([done.then(() => 'stopped' as const), limit]);
    clearTimeout(timer);
    if (outcome === 'timeout') this.log.warn(`stop: some loops were still busy after ${STOP_LIMIT_MS} ms and were abandoned`);
    else this.log.info('stopped');
  }

  /** Per-scanner numbers: items processed, errors, backoff skips, lag, cycle time. */
  stats(): EngineStats {
    return {
      scanners: [...this.runners.values()].map((r) => ({ ...r.stats })),
      library: { ...this.library },
      ...(this.listener ? { completionListener: { ...this.listener.stats } } : {}),
    };
  }

  /** Runs one full cycle of a scanner now and waits for it (tests, operator tools). */
  async runOnce(name: ScannerName): Promise<ScannerStats> {
    const runner = this.runners.get(name);
    if (!runner) throw new Error(`scanner ${name} is not enabled`);
    await runner.cycle();
    return { ...runner.stats };
  }

  /**
   * After the listener lost its connection: completions published meanwhile are lost, so
   * the dependency reconciler runs now; and the server may have restarted without its data,
   * so boot runs again (each step is idempotent and keeps what is there).
   */
  private afterGap(): void {
    this.kick('dependency_reconciler');
    if (this.options.boot === false || this.rebooting || this.state !== 'running') return;
    this.rebooting = boot(this.options.client, this.options.boot ?? {}, this.log)
      .catch((error: unknown) => this.log.warn(`boot after reconnect failed: ${error instanceof Error ? error.message : String(error)}`))
      .finally(() => (this.rebooting = undefined));
  }

  /** The library watchdog: loads it where it went missing, then boots again (see libraryCheckMs). */
  private async checkLibrary(): Promise<void> {
    if (this.checking || this.state !== 'running') return;
    this.checking = true;
    try {
      const statuses = await this.options.client.ensureLibrary();
      if (statuses.some((s) => s.loaded)) {
        this.library.reloads++;
        this.log.warn(`library was missing or outdated on ${statuses.filter((s) => s.loaded).length} primary(ies); loaded it, booting again`);
        await boot(this.options.client, { ...(this.options.boot || {}), loadLibrary: false }, this.log);
      }
    } catch (error) {
      this.log.warn(`library check failed: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      this.library.checks++;
      this.checking = false;
    }
  }

  /** Starts a scanner's next cycle at once instead of after its interval. */
  kick(name: ScannerName): void {
    this.runners.get(name)?.kick();
  }
}

/** A new connection with the client's own options, for the subscriber. */
function duplicateConnection(client: FlowFabricClient): Subscriber {
  const transport = client.transport;
  if (!(transport instanceof IoredisTransport)) {
    throw new Error('the completion listener needs its own connection: pass completionListener: { subscriber: () => … } for a non-ioredis transport');
  }
  const connection = transport.client as unknown as { duplicate?: () => Subscriber };
  if (typeof connection.duplicate !== 'function') throw new Error('the client connection cannot be duplicated; pass completionListener: { subscriber }');
  return connection.duplicate();
}
