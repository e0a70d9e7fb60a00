// delayed_promoter (engine.md §2.2): moves due members of every lane's delayed index to
// eligible with ff_promote_delayed.
import { promoteDelayed } from '../../generated/scheduling.js';
import { parseExecutionId } from '../../runtime/ids.js';
import { laneScanner, type LaneSource } from '../lanes.js';
import type { Scanner } from '../runner.js';
import { drainIndex, type IndexScanOptions } from '../scan.js';

export function delayedPromoterScanner(options: IndexScanOptions, lanes: LaneSource): Scanner {
  return laneScanner('delayed_promoter', lanes, async (laneId, keys, ctx) => {
    const now = ctx.now();
    await drainIndex(ctx, {
      key: keys.laneDelayed(laneId),
      max: now,
      ...options,
      lagBase: now,
      async handle(member) {
        const result = await promoteDelayed(ctx.client, { laneId, executionId: parseExecutionId(member), nowMs: now });
        return result.status === 'not_yet_due' ? 'stays' : 'done';
      },
    });
  });
}
