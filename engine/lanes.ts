// Which lanes a lane-scoped scanner visits on a partition: an explicit list when the user
// gives one, otherwise every lane in the partition's registry `ff:idx:{fp:N}:lanes`
// (written by ff_create_execution; lanes of executions created before the registry are
// added by the index reconciler). No SCAN of the keyspace.
import { PartitionKeys } from '../generated/keys.js';
import { parseLaneId, type LaneId } from '../runtime/ids.js';
import type { ScanContext } from './runner.js';
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
