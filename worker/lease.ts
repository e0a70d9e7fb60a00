// Background renewal of one task's lease (engine.md §4.10), with what the reference lacks: a
// renewal that finds the lease gone tells the task at once (its AbortSignal fires), and a
// lease whose renewals keep failing for other reasons (the connection) is given up locally
// once its expiry has passed, since the engine will refuse everything after that anyway.
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

export class LeaseKeeper {
  private timer: NodeJS.Timeout | undefined;
  private inFlight = false;
  private stopped = false;
  /** Local estimate of the lease expiry: the claim's, then now + TTL after each renewal. */
  private expiresAt: number;

  constructor(
    private readonly client: FlowFabricClient,
    private readonly lease: ClaimedLease,
    private readonly ttlMs: number,
    private readonly everyMs: number,
    private readonly events: LeaseKeeperEvents,
  ) {
    this.expiresAt = Date.now() + ttlMs;
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.everyMs);
    this.timer.unref?.();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async tick(): Promise<void> {
    if (this.inFlight || this.stopped) return; // A slow renewal is not bunched with the next one.
    this.inFlight = true;
    const sentAt = Date.now();
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
