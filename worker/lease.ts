// Background renewal of the leases a worker holds (engine.md §4.10), with what the reference
// lacks: a renewal that finds the lease gone tells the task at once (its AbortSignal fires),
// and a lease whose renewals keep failing for other reasons (the connection) is given up
// locally once its expiry has passed, since the engine will refuse everything after that.
import type { FlowFabricClient } from '../runtime/client.js';
import { ScriptError } from '../runtime/errors.js';
import { renewLease } from '../generated/lease.js';
import type { ClaimedLease } from './claim.js';

/** Codes after which renewing can never succeed again. */
export const LEASE_LOST_CODES: ReadonlySet<string> = new Set(['stale_lease', 'lease_expired', 'lease_revoked', 'execution_not_active', 'execution_not_found']);

export interface LeaseKeeperEvents {
  readonly renewed: () => void;
  /** The lease is gone; `code` is the engine's code, or `local_expiry`. */
  readonly lost: (code: string, cause?: unknown) => void;
  /** A renewal failed in a way that may pass (it will be tried again). */
  readonly failed: (error: unknown) => void;
}

/**
 * One timer for every lease a worker holds, instead of a timer per task: on the fast path a
 * task lasts well under a millisecond, and a timer made and cleared per job costs more client
 * CPU than the rest of the job's bookkeeping. Each lease is renewed once its period has passed,
 * looked at every tenth of the period (so at most that late: a lease renewed every TTL/3 keeps
 * more than half its TTL in hand). The timer stops at the first tick that finds no lease.
 */
export class RenewalClock {
  readonly everyMs: number;
  private readonly resolutionMs: number;
  private readonly keepers = new Set<LeaseKeeper>();
  private timer: NodeJS.Timeout | undefined;

  constructor(everyMs: number) {
    this.everyMs = everyMs;
    this.resolutionMs = Math.max(1, Math.floor(everyMs / 10));
  }

  add(keeper: LeaseKeeper): void {
    this.keepers.add(keeper);
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.resolutionMs);
    this.timer.unref?.();
  }

  delete(keeper: LeaseKeeper): void {
    this.keepers.delete(keeper);
  }

  /** Stops the timer (the worker closed); leases still held are no longer renewed. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    if (this.keepers.size === 0) return this.stop();
    const now = Date.now();
    for (const keeper of this.keepers) if (now >= keeper.dueAt) void keeper.renew(now);
  }
}

export class LeaseKeeper {
  /** When the next renewal is due (epoch ms). */
  dueAt = 0;
  private inFlight = false;
  private stopped = false;
  /** Local estimate of the lease expiry: the claim's, then now + TTL after each renewal. */
  private expiresAt: number;

  constructor(
    private readonly client: FlowFabricClient,
    private readonly lease: ClaimedLease,
    private readonly ttlMs: number,
    private readonly clock: RenewalClock,
    private readonly events: LeaseKeeperEvents,
  ) {
    this.expiresAt = Date.now() + ttlMs;
  }

  start(): void {
    this.dueAt = Date.now() + this.clock.everyMs;
    this.clock.add(this);
  }

  stop(): void {
    this.stopped = true;
    this.clock.delete(this);
  }

  /** Renews the lease now (the clock calls it once due). */
  async renew(sentAt = Date.now()): Promise<void> {
    if (this.inFlight || this.stopped) return; // A slow renewal is not bunched with the next one.
    this.inFlight = true;
    this.dueAt = sentAt + this.clock.everyMs;
    try {
      await renewLease(this.client, {
        executionId: this.lease.executionId,
        attemptIndex: this.lease.attemptIndex,
        attemptId: this.lease.attemptId,
        leaseId: this.lease.leaseId,
        leaseEpoch: this.lease.leaseEpoch,
        leaseTtlMs: this.ttlMs,
        leaseHistoryGraceMs: 5000,
      });
      this.expiresAt = sentAt + this.ttlMs;
      if (!this.stopped) this.events.renewed();
    } catch (error) {
      if (this.stopped) return;
      if (error instanceof ScriptError && LEASE_LOST_CODES.has(error.code)) {
        this.stop();
        this.events.lost(error.code, error);
      } else if (Date.now() >= this.expiresAt) {
        this.stop();
        this.events.lost('local_expiry', error);
      } else {
        this.events.failed(error);
      }
    } finally {
      this.inFlight = false;
    }
  }
}
