// The one measurement rule every case follows: run warm-up rounds (discarded), then at least
// five timed rounds, and report the median rate. Rounds are sequential so they never compete.

/** What one round did: how many operations, in how many milliseconds. */
export interface Sample {
  readonly ops: number;
  readonly ms: number;
}

/** Rates of the timed rounds, in operations per second. */
export interface Rates {
  readonly median: number;
  readonly rounds: readonly number[];
}

export interface Plan {
  readonly warmups: number;
  readonly rounds: number;
}

export const DEFAULT_PLAN: Plan = { warmups: 1, rounds: 5 };

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Runs `round` plan.warmups times (results discarded), then plan.rounds times; returns those results. */
export async function rounds<T>(plan: Plan, round: (warmup: boolean) => Promise<T> | T): Promise<T[]> {
  for (let i = 0; i < plan.warmups; i++) await round(true);
  const results: T[] = [];
  for (let i = 0; i < plan.rounds; i++) results.push(await round(false));
  return results;
}

/** rounds() for a single rate: the median operations per second over the timed rounds. */
export async function measure(plan: Plan, round: (warmup: boolean) => Promise<Sample> | Sample): Promise<Rates> {
  const rates = (await rounds(plan, round)).map(({ ops, ms }) => (ops * 1000) / ms);
  return { median: median(rates), rounds: rates };
}

/**
 * Two rates measured side by side. Each round runs `blocks` short blocks of a and of b,
 * interleaved and alternating which goes first (ab, ba, ab…), and adds up each side's
 * time: drift and background load on a shared machine then hit both alike, within the
 * round and not only across rounds. `ratio` is the median of the per-round ratios a/b.
 */
export async function measurePair(
  plan: Plan,
  a: () => Promise<Sample>,
  b: () => Promise<Sample>,
  blocks = 10,
): Promise<{ a: Rates; b: Rates; ratio: number }> {
  const rate = ({ ops, ms }: Sample) => (ops * 1000) / ms;
  const results = await rounds(plan, async () => {
    const sum = { a: { ops: 0, ms: 0 }, b: { ops: 0, ms: 0 } };
    for (let block = 0; block < blocks; block++) {
      const order = block % 2 === 0 ? (['a', 'b'] as const) : (['b', 'a'] as const);
      for (const side of order) {
        const sample = await (side === 'a' ? a() : b());
        sum[side].ops += sample.ops;
        sum[side].ms += sample.ms;
      }
    }
    return [rate(sum.a), rate(sum.b)] as const;
  });
  const ra = results.map(([x]) => x);
  const rb = results.map(([, y]) => y);
  return { a: { median: median(ra), rounds: ra }, b: { median: median(rb), rounds: rb }, ratio: median(results.map(([x, y]) => x / y)) };
}

/** Times one async block in milliseconds. */
export async function timed(block: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await block();
  return performance.now() - started;
}

/** Runs op(0..total-1) with `concurrency` calls in flight at any time (each lane awaits its own call). */
export async function inFlight(total: number, concurrency: number, op: (index: number, lane: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const lane = async (id: number): Promise<void> => {
    while (next < total) await op(next++, id);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, (_, id) => lane(id)));
}

/** Calls add(k) every 10 ms so that `n` items are added at `ratePerSecond`. */
export async function openLoop(n: number, ratePerSecond: number, add: (count: number) => Promise<unknown>): Promise<void> {
  const started = performance.now();
  let added = 0;
  while (added < n) {
    const due = Math.min(n, Math.floor(((performance.now() - started) * ratePerSecond) / 1000) + 1);
    if (due > added) {
      const count = due - added;
      added = due;
      await add(count);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
