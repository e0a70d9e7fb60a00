// lease_expiry (engine.md §2.1): marks due leases expired with ff_mark_lease_expired_if_due.
// Marked members stay in the index until a worker reclaims them (ff_issue_reclaim_grant +
// ff_reclaim_execution, the worker's claim loop); they are remembered by score so later
// passes page past them without a call, and never hide leases that expire after them.
import { PartitionKeys } from '../../generated/keys.js';
import { markLeaseExpiredIfDue } from '../../generated/lease.js';
import { parseExecutionId } from '../../runtime/ids.js';
import type { Scanner } from '../runner.js';
import { drainIndex, type IndexScanOptions } from '../scan.js';

export type { IndexScanOptions } from '../scan.js';

export function leaseExpiryScanner(options: IndexScanOptions): Scanner {
  // eid → lease_expiry score at which it was found marked; a reclaim re-scores the member.
  const marked = new Map<string, number>();
  return {
    name: 'lease_expiry',
    family: 'flow',
    async beginCycle() {
      if (marked.size > 100_000) marked.clear();
    },
    async scanPartition(partition, ctx) {
      const now = ctx.now();
      await drainIndex(ctx, {
        key: PartitionKeys.forPartition(partition).leaseExpiry(),
        max: now,
        ...options,
        lagBase: now,
        async handle(member, score) {
          if (marked.get(member) === score) return 'known';
          const result = await markLeaseExpiredIfDue(ctx.client, { executionId: parseExecutionId(member) });
          if (result.status === 'marked_expired') {
            marked.set(member, score);
            ctx.log.debug('lease expired', { execution: member });
            return 'done';
          }
          if (result.reason === 'already_expired' || result.reason === 'already_revoked') {
            marked.set(member, score);
            return 'stays';
          }
          // not_yet_expired (renewed meanwhile) stays; the others removed a stale entry.
          return result.reason === 'not_yet_expired' ? 'stays' : 'done';
        },
      });
    },
  };
}
