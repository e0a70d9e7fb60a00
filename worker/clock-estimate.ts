// The server's clock as a worker estimates it between reads (issue 16): one TIME, then the
// local monotonic clock advances it. Idle, a worker's probes and sweeps need the server time
// only as a bound (which scores to read, the admission window of a candidate it may find);
// every function they lead to re-checks against the server's own clock. So an idle worker
// reads TIME about once a minute rather than at each probe, and the estimate never depends
// on the client's wall clock: a client set hours off reads the same server time.
//
// The monotonic clock stops while the client machine sleeps (a suspended laptop or VM) and
// does not see the wall clock being stepped: when the local wall clock and the monotonic
// clock disagree by more than LOCAL_JUMP_MS since the last read, the estimate is read again.
import type { FlowFabricClient } from '../runtime/client.js';
import { serverTimeMs } from '../operations/server-clock.js';

/** How far the local wall and monotonic clocks may drift apart before a read is forced. */
export const LOCAL_JUMP_MS = 1000;

/** The local clocks the estimate advances by; injectable so tests can move time. */
export interface LocalClocks {
  /** Monotonic ms (performance.now()). */
  monotonic(): number;
  /** Wall-clock epoch ms (Date.now()): only compared with the monotonic clock, never used as the time. */
  wall(): number;
}

const SYSTEM_CLOCKS: LocalClocks = { monotonic: () => performance.now(), wall: () => Date.now() };

interface Reading {
  readonly server: number;
  readonly monotonic: number;
  readonly wall: number;
}

export class ServerClockEstimate {
  private reading: Reading | undefined;
  private pending: Promise<Reading> | undefined;

  constructor(
    private readonly client: Pick<FlowFabricClient, 'transport'>,
    private readonly local: LocalClocks = SYSTEM_CLOCKS,
  ) {}

  /**
   * The server time in epoch ms: the last TIME advanced by the monotonic clock, read again
   * when older than `maxAgeMs` or when the local clocks jumped apart. Concurrent callers that
   * need a read share one TIME.
   */
  async now(maxAgeMs: number): Promise<number> {
    const reading = this.fresh(maxAgeMs) ?? (await this.read());
    return reading.server + Math.floor(this.local.monotonic() - reading.monotonic);
  }

  private fresh(maxAgeMs: number): Reading | undefined {
    const reading = this.reading;
    if (!reading) return undefined;
    const elapsed = this.local.monotonic() - reading.monotonic;
    const wallElapsed = this.local.wall() - reading.wall;
    if (elapsed >= maxAgeMs || Math.abs(wallElapsed - elapsed) > LOCAL_JUMP_MS) return undefined;
    return reading;
  }

  private read(): Promise<Reading> {
    this.pending ??= (async () => {
      try {
        const server = await serverTimeMs(this.client);
        // Taken at the reply: the estimate runs at most a round trip behind, never ahead.
        this.reading = { server, monotonic: this.local.monotonic(), wall: this.local.wall() };
        return this.reading;
      } finally {
        this.pending = undefined;
      }
    })();
    return this.pending;
  }
}
