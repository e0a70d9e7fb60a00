// This project's Worker as case 12 drives it: throughput on the fast path and on the
// admission-checked path, latency at a fixed creation rate, and idle workers. Kept apart
// from the case so the case builds while worker/ is being written.
import type { Context } from './context.js';
import type { Dedicated } from './servers.js';

/** One drain of N queued jobs: wall time, server CPU (s) and this process's CPU (s). */
export interface Drain {
  readonly ms: number;
  readonly serverCpu: number;
  readonly clientCpu: number;
  /** Server CPU (s) of queueing the N jobs beforehand (creates / addBulk). */
  readonly enqueueCpu: number;
}

export interface DrainSide {
  readonly label: string;
  drain(ctx: Context, n: number): Promise<Drain>;
  /** Creation-to-completion latencies (ms) of n jobs created at ratePerSecond while the workers run. */
  latency?(ctx: Context, n: number, ratePerSecond: number): Promise<number[]>;
  /** Why this side cannot be measured yet. */
  readonly missing?: string;
}

/** Why the project's Worker cannot be measured, or undefined once it can. */
export const OURS_MISSING: string | undefined = 'worker/ has no Worker class yet';

/** The project's Worker sides (fast path, admission path); none until worker/ has a Worker. */
export function oursSides(_ctx: Context, _concurrency: number): DrainSide[] {
  return [];
}

/** Starts `count` idle Workers on the server and returns a stopper; undefined until worker/ has a Worker. */
export async function oursIdle(_s: Dedicated, _count: number, _concurrency: number): Promise<(() => Promise<void>) | undefined> {
  return undefined;
}
