// index_reconciler (engine.md §2.3): walks the executions of the partition and checks each
// sits in the index its state calls for; mismatches are logged and counted as findings,
// never repaired (as the reference); a mismatch is read twice before it is reported, so an
// execution moving between the two reads is not one. It also adds each execution's lane to the partition's
// lane registry, so lanes of executions created before the registry existed get covered.
//
// Unlike the reference, which reads the whole set every cycle (a cost per cycle that grows
// with the data: ~9 s of server CPU per cycle at 1M executions), a cycle reads at most
// `maxPerPartition` members per partition and the next cycle goes on from the SSCAN cursor
// where it stopped: the cost per cycle is bounded, and a full pass takes as many cycles as
// the partition needs (SSCAN still returns every member present for the whole pass).
import { ExecKeys, PartitionKeys } from '../../generated/keys.js';
import { sendCommand } from '../../runtime/classify.js';
import { parseExecutionId, type ExecutionId, type LaneId } from '../../runtime/ids.js';
import { replyText } from '../../runtime/reply.js';
import type { Scanner } from '../runner.js';
import { hmget, sscanPage, type IndexScanOptions } from '../scan.js';

const RUNNABLE_INDEX: Readonly<Record<string, string>> = {
  eligible_now: 'eligible',
  not_eligible_until_time: 'delayed',
  blocked_by_dependencies: 'blocked:dependencies',
  blocked_by_budget: 'blocked:budget',
  blocked_by_quota: 'blocked:quota',
  blocked_by_route: 'blocked:route',
  blocked_by_operator: 'blocked:operator',
};

/** The lane index an execution in this state belongs to, or undefined when none is checked. */
export function expectedIndex(phase: string, eligibility: string | undefined, ownership: string | undefined): string | undefined {
  if (phase === 'active') return ownership === 'leased' ? 'active' : undefined;
  if (phase === 'runnable') return RUNNABLE_INDEX[eligibility ?? ''];
  if (phase === 'suspended') return 'suspended';
  if (phase === 'terminal') return 'terminal';
  return undefined;
}

type IndexCheck =
  | { readonly state: 'no_core' }
  | { readonly state: 'unchecked' | 'indexed'; readonly laneId: LaneId }
  | { readonly state: 'missing'; readonly laneId: LaneId; readonly key: string; readonly phase: string; readonly eligibility: string | undefined };

export function indexReconcilerScanner(options: IndexScanOptions): Scanner {
  /** Where each partition's pass stopped (absent: the next cycle starts a new pass). */
  const cursors = new Map<number, string>();
  return {
    name: 'index_reconciler',
    family: 'flow',
    async scanPartition(partition, ctx) {
      const keys = PartitionKeys.forPartition(partition);
      /** Reads the execution's state, then whether it sits in the index that state calls for. */
      const check = async (executionId: ExecutionId): Promise<IndexCheck> => {
        const [phase, eligibility, ownership, lane] = await hmget(ctx, new ExecKeys(executionId).core(), ['lifecycle_phase', 'eligibility_state', 'ownership_state', 'lane_id']);
        if (phase === undefined) return { state: 'no_core' };
        const laneId = (lane || 'default') as LaneId;
        const expected = expectedIndex(phase, eligibility, ownership);
        if (!expected) return { state: 'unchecked', laneId };
        const key = `${keys.laneEligible(laneId).slice(0, -'eligible'.length)}${expected}`;
        const indexed = replyText(await sendCommand(ctx.client.transport, 'ZSCORE', [key, executionId])) !== undefined;
        return indexed ? { state: 'indexed', laneId } : { state: 'missing', laneId, key, phase, eligibility };
      };
      const lanes = new Set<string>();
      let cursor = cursors.get(partition) ?? '0';
      let seen = 0;
      do {
        const page = await sscanPage(ctx, keys.allExecutions(), cursor, options.batchSize);
        if (!page) {
          cursor = '0';
          break;
        }
        cursor = page.cursor;
        seen += page.members.length;
        await Promise.all(
          page.members.map(async (member) => {
            try {
              const executionId = parseExecutionId(member);
              const first = await check(executionId);
              if (first.state === 'no_core') {
                ctx.log.warn('index reconciler: execution in all_executions has no core', { execution: member });
                ctx.processed();
                return;
              }
              lanes.add(first.laneId);
              if (first.state !== 'missing') return;
              // The state and the index are two reads: an execution that moved between them
              // (claimed, completed…) looks missing from the index it just left. Read both
              // again; only the same state still missing from its index is a finding.
              const second = await check(executionId);
              if (second.state !== 'missing' || second.key !== first.key) return;
              ctx.log.warn('index reconciler: execution missing from its index', { execution: member, phase: second.phase, eligibility: second.eligibility, key: second.key });
              ctx.processed();
            } catch (error) {
              ctx.failed(error);
            }
          }),
        );
      } while (cursor !== '0' && seen < options.maxPerPartition && !ctx.stopping());
      if (cursor === '0') cursors.delete(partition);
      else cursors.set(partition, cursor);
      if (lanes.size > 0) await sendCommand(ctx.client.transport, 'SADD', [keys.lanes(), ...lanes]);
    },
  };
}
