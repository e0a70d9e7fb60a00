// Which lanes a lane-scoped scanner visits on a partition: an explicit list when the user
// gives one, otherwise every lane in the partition's registry `ff:idx:{fp:N}:lanes`
// (written by ff_create_execution; lanes of executions created before the registry are
// added by the index reconciler). No SCAN of the keyspace.
import { PartitionKeys } from '../generated/keys.js';
import { parseLaneId, type LaneId } from '../runtime/ids.js';
import type { ScanContext, Scanner } from './runner.js';
import { smembers } from './scan.js';

export type LaneSource = (partition: number, ctx: ScanContext) => Promise<readonly LaneId[]>;

export function lanesOf(explicit: readonly LaneId[] | undefined): LaneSource {
  if (explicit) return async () => explicit;
  return async (partition, ctx) => {
    const lanes: LaneId[] = [];
    for (const text of await smembers(ctx, PartitionKeys.forPartition(partition).lanes())) {
      try {
        lanes.push(parseLaneId(text));
      } catch {
        ctx.log.debug(`lane registry of partition ${partition} holds an invalid lane id`, { lane: text });
      }
    }
    return lanes;
  };
}

/** A flow-family scanner whose work is per lane: `visit` runs for every lane of each partition. */
export function laneScanner(name: string, lanes: LaneSource, visit: (laneId: LaneId, keys: PartitionKeys, ctx: ScanContext) => Promise<void>): Scanner {
  return {
    name,
    family: 'flow',
    async scanPartition(partition, ctx) {
      const keys = PartitionKeys.forPartition(partition);
      for (const laneId of await lanes(partition, ctx)) await visit(laneId, keys, ctx);
    },
  };
}
