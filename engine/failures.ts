// Per-item failure backoff (engine.md §1.7): an item whose call failed three times in a
// row is skipped for ten cycles, then tried again; a success forgets it. Kept per scanner.
export const FAILURE_THRESHOLD = 3;
export const BACKOFF_CYCLES = 10;

interface Entry {
  failures: number;
  skipUntil: number;
}

export class FailureTracker {
  private cycle = 0;
  private readonly entries = new Map<string, Entry>();

  /** Called once per scanner cycle. */
  advance(): void {
    this.cycle++;
    // Bounded memory: every 50th cycle, entries outside a skip window are dropped.
    if (this.cycle % 50 === 0 && this.entries.size > 500) {
      for (const [item, entry] of this.entries) if (entry.skipUntil <= this.cycle) this.entries.delete(item);
    }
  }

  shouldSkip(item: string): boolean {
    const entry = this.entries.get(item);
    if (!entry || entry.skipUntil === 0) return false;
    if (this.cycle < entry.skipUntil) return true;
    // The window is over: one more try, counted from zero.
    entry.failures = 0;
    entry.skipUntil = 0;
    return false;
  }

  /** Records a failure; true when the item has just entered backoff. */
  failure(item: string): boolean {
    const entry = this.entries.get(item) ?? { failures: 0, skipUntil: 0 };
    entry.failures++;
    this.entries.set(item, entry);
    if (entry.failures >= FAILURE_THRESHOLD && entry.skipUntil === 0) {
      entry.skipUntil = this.cycle + BACKOFF_CYCLES;
      return true;
    }
    return false;
  }

  success(item: string): void {
    this.entries.delete(item);
  }

  get size(): number {
    return this.entries.size;
  }
}
