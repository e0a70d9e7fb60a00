// Where a Worker looks for its lanes' work (issue 16). Every flow partition can hold a lane's
// executions (a solo lane's one partition, a spread lane's few, flow members anywhere), but
// an idle worker that swept and probed all 256 cost the server ~40× an idle BullMQ worker.
// So the worker looks only where its lanes live: the partitions holding unfinished work of
// a lane when it starts (one EXISTS of the lane's live indexes per partition), then those
// named by wake-ups (the library publishes the partition whenever it makes work eligible)
// and by its own claims. A slow rolling re-check walks every partition (a slice a step, all
// of them every REDISCOVERY_CYCLE_MS, the lanes' own crc16 partitions every step): it finds
// what no wake-up names (a delayed create, a producer without this library, a message lost
// while the subscriber reconnected) and drops partitions whose work is all finished.
// Given `partitions` explicitly, the worker looks there and nowhere else, as before; without
// wake-ups its claims probe every partition (only the sweep is narrowed), since nothing else
// would tell it quickly where new work lands.
import type { FlowFabricClient } from '../runtime/client.js';
import type { LaneId } from '../runtime/ids.js';
import { fnv1aU64, soloPartition } from '../runtime/partition.js';
import { partitionsWithWork } from '../operations/lanes.js';

/** Every partition is re-checked within this long (a slice per step). */
export const REDISCOVERY_CYCLE_MS = 15 * 60_000;
/** The mean time between two steps of the re-check (each step ±25%, so workers drift apart). */
export const REDISCOVERY_STEP_MS = 30_000;

/** One partition the sweep reads, with the lanes it visits there. */
export interface SweepTarget {
  readonly partition: number;
  readonly lanes: readonly LaneId[];
}

export interface LanePartitionsOptions {
  readonly lanes: readonly LaneId[];
  /** The Worker's `partitions` option: looked in as given (rotated), nothing discovered. */
  readonly explicit?: readonly number[];
  /** Seeds the per-instance rotation (FNV-1a, as the reference), so workers spread. */
  readonly workerInstanceId: string;
  readonly onError: (error: unknown) => void;
}

export class LanePartitions {
  private readonly count: number;
  /** The first partition in this instance's order. */
  private readonly base: number;
  private readonly explicit: readonly number[] | undefined;
  /** Per lane, the partitions known to hold its work, each with the sequence number of when it was last seen there. */
  private readonly known = new Map<LaneId, Map<number, number>>();
  private readonly ordered = new Map<LaneId, readonly number[]>();
  private targets: readonly SweepTarget[] | undefined;
  private everywhere: readonly number[] | undefined;
  private seq = 0;
  /** Where the next re-check step starts, in this instance's order of all partitions. */
  private nextSlice = 0;
  private timer: NodeJS.Timeout | undefined;
  private stepping: Promise<void> | undefined;

  constructor(
    private readonly client: FlowFabricClient,
    private readonly options: LanePartitionsOptions,
  ) {
    this.count = client.partitions.numFlowPartitions;
    const seed = fnv1aU64(options.workerInstanceId);
    this.base = Number(seed % BigInt(Math.max(1, this.count)));
    if (options.explicit) {
      const list = options.explicit;
      const offset = Number(seed % BigInt(Math.max(1, list.length)));
      this.explicit = list.map((_, i) => list[(offset + i) % list.length]!);
    }
    for (const lane of options.lanes) this.known.set(lane, new Map());
  }

  /** True when the partitions were given: nothing is discovered. */
  get fixed(): boolean {
    return this.explicit !== undefined;
  }

  /** Where the claim probe looks for the lane's eligible work, in this instance's order. */
  of(laneId: LaneId): readonly number[] {
    if (this.explicit) return this.explicit;
    if (this.everywhere) return this.everywhere;
    let list = this.ordered.get(laneId);
    if (!list) {
      list = this.inOrder([...(this.known.get(laneId)?.keys() ?? [])]);
      this.ordered.set(laneId, list);
    }
    return list;
  }

  /** What the sweep reads: every partition holding work of one of the lanes, with those lanes. */
  sweepTargets(): readonly SweepTarget[] {
    if (this.explicit) {
      this.targets ??= this.explicit.map((partition) => ({ partition, lanes: this.options.lanes }));
      return this.targets;
    }
    if (!this.targets) {
      const byPartition = new Map<number, LaneId[]>();
      for (const [lane, partitions] of this.known) {
        for (const partition of partitions.keys()) {
          const lanes = byPartition.get(partition);
          if (lanes) lanes.push(lane);
          else byPartition.set(partition, [lane]);
        }
      }
      this.targets = this.inOrder([...byPartition.keys()]).map((partition) => ({ partition, lanes: byPartition.get(partition)! }));
    }
    return this.targets;
  }

  /**
   * Work of the lane is (or was just) on the partition: a wake-up, a claim. False when the
   * worker does not look there (not one of its lanes, or outside the given partitions).
   */
  learn(laneId: LaneId, partition: number): boolean {
    const partitions = this.known.get(laneId);
    if (!partitions || !Number.isSafeInteger(partition) || partition < 0 || partition >= this.count) return false;
    if (this.explicit) return this.explicit.includes(partition);
    const fresh = !partitions.has(partition);
    partitions.set(partition, ++this.seq);
    if (fresh) this.changed(laneId);
    return true;
  }

  /** Claims look in every partition (no wake-ups to name where work lands); the sweep stays narrowed. */
  lookEverywhere(): void {
    if (!this.explicit) this.everywhere = this.inOrder(Array.from({ length: this.count }, (_, i) => i));
  }

  /** Checks every partition at once (at start). */
  async discover(): Promise<void> {
    if (this.explicit) return;
    await this.check(Array.from({ length: this.count }, (_, i) => i));
  }

  /** Starts the rolling re-check: a slice of the partitions per step, jittered. */
  startRediscovery(): void {
    if (this.explicit || this.timer) return;
    const schedule = () => {
      this.timer = setTimeout(() => {
        this.stepping = this.step()
          .catch((error: unknown) => this.options.onError(error))
          .finally(() => {
            this.stepping = undefined;
            if (this.timer) schedule();
          });
      }, REDISCOVERY_STEP_MS * (0.75 + Math.random() / 2));
      this.timer.unref?.();
    };
    schedule();
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.stepping;
  }

  /**
   * One re-check step: the next slice of all partitions, plus the lanes' own crc16 partitions
   * (where their solo work lands; a delayed create there publishes no wake-up) unless known.
   */
  async step(): Promise<void> {
    if (this.explicit) return;
    const size = Math.max(1, Math.ceil((this.count * REDISCOVERY_STEP_MS) / REDISCOVERY_CYCLE_MS));
    const slice = Array.from({ length: Math.min(size, this.count) }, (_, i) => (this.base + this.nextSlice + i) % this.count);
    this.nextSlice = (this.nextSlice + slice.length) % this.count;
    const homes = this.options.lanes
      .map((lane) => ({ lane, home: soloPartition(lane, this.client.partitions) }))
      .filter(({ lane, home }) => !this.known.get(lane)?.has(home))
      .map(({ home }) => home);
    await this.check([...new Set([...slice, ...homes])]);
  }

  /**
   * Reads which of the partitions hold work of each lane: adds those that do and drops those
   * that do not, unless seen there since the read was sent (a wake-up that raced it).
   */
  private async check(partitions: readonly number[]): Promise<void> {
    const sent = this.seq;
    const found = await partitionsWithWork(this.client, this.options.lanes, { partitions });
    for (const [lane, holding] of found) {
      const known = this.known.get(lane)!;
      const live = new Set(holding);
      let changed = false;
      for (const partition of partitions) {
        if (live.has(partition)) {
          if (!known.has(partition)) changed = true;
          known.set(partition, ++this.seq);
        } else if ((known.get(partition) ?? Infinity) <= sent) {
          known.delete(partition);
          changed = true;
        }
      }
      if (changed) this.changed(lane);
    }
  }

  private changed(laneId: LaneId): void {
    this.ordered.delete(laneId);
    this.targets = undefined;
  }

  /** Sorted from this instance's first partition on, wrapping. */
  private inOrder(partitions: number[]): number[] {
    const key = (p: number) => (p - this.base + this.count) % this.count;
    return partitions.sort((a, b) => key(a) - key(b));
  }
}
