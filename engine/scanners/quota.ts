// quota_reconciler (engine.md §2.12), made atomic: ff_reconcile_quota trims the window,
// drops admissions whose guard lapsed (a crashed holder) and sets the concurrency counter
// to the admissions still held, in one call, so it can neither lose a concurrent
// admission (letting the cap be exceeded) nor bring back a released one. Policies whose
// definition is gone leave the index.
import { reconcileQuota } from '../../generated/engine.js';
import { QuotaPartitionKeys } from '../../generated/keys.js';
import { sendCommand } from '../../runtime/classify.js';
import { parseQuotaPolicyId } from '../../runtime/ids.js';
import type { Scanner } from '../runner.js';
import { smembers } from '../scan.js';

export function quotaReconcilerScanner(): Scanner {
  return {
    name: 'quota_reconciler',
    family: 'quota',
    async scanPartition(partition, ctx) {
      const index = QuotaPartitionKeys.forPartition(partition).quotaPolicies();
      for (const id of await smembers(ctx, index)) {
        if (ctx.stopping()) return;
        if (ctx.tracker.shouldSkip(id)) {
          ctx.skipped();
          continue;
        }
        try {
          const result = await reconcileQuota(ctx.client, { quotaPolicyId: parseQuotaPolicyId(id), nowMs: ctx.now() });
          ctx.tracker.success(id);
          if (result.status === 'not_found') {
            await sendCommand(ctx.client.transport, 'SREM', [index, id]);
            ctx.processed();
          } else if (result.held !== result.previous || result.lapsed > 0) {
            ctx.log.debug('quota counter repaired', { quota: id, held: result.held, was: result.previous, lapsed: result.lapsed });
            ctx.processed();
          }
        } catch (error) {
          ctx.failed(error, id);
        }
      }
    },
  };
}
