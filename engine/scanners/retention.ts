// retention_trimmer (engine.md §6), made safe: each terminal execution older than its
// lane's retention is purged by ff_purge_execution, which re-checks inside the call that it
// is still terminal and due (a replayed execution is never deleted) and deletes all of its
// keys at once. Retention is per lane (default 24 h, the reference's fixed value); an
// execution policy's stream_policy.retention_ttl_ms still overrides it upward.
import { purgeExecution } from '../../generated/engine.js';
import { parseExecutionId, type LaneId } from '../../runtime/ids.js';
import { laneScanner, type LaneSource } from '../lanes.js';
import type { Scanner } from '../runner.js';
import { drainIndex, type IndexScanOptions } from '../scan.js';

export const DEFAULT_RETENTION_MS = 86_400_000;

export interface RetentionOptions {
  /** Kept this long after completion unless the lane has its own period (default 24 h). */
  readonly defaultMs?: number;
  /** Per-lane periods, ms. */
  readonly lanes?: Readonly<Record<string, number>>;
}

export function retentionFor(options: RetentionOptions | undefined, laneId: LaneId): number {
  return options?.lanes?.[laneId] ?? options?.defaultMs ?? DEFAULT_RETENTION_MS;
}

export function retentionScanner(options: IndexScanOptions, lanes: LaneSource, retention: RetentionOptions | undefined): Scanner {
  return laneScanner('retention_trimmer', lanes, async (laneId, keys, ctx) => {
    const now = ctx.now();
    const retentionMs = retentionFor(retention, laneId);
    const cutoff = now - retentionMs;
    await drainIndex(ctx, {
      key: keys.laneTerminal(laneId),
      max: cutoff,
      ...options,
      lagBase: cutoff,
      async handle(member) {
        const result = await purgeExecution(ctx.client, { executionId: parseExecutionId(member), laneId, retentionMs, nowMs: now });
        if (result.status === 'not_due') return 'stays';
        if (result.status === 'purged') ctx.log.debug('execution purged', { execution: member, keys: result.keysDeleted });
        return 'done';
      },
    });
  });
}
