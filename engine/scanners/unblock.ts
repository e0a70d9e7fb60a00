// unblock (engine.md §2.10): lifts executions blocked for budget, quota or a capable worker
// once the condition is gone, with ff_unblock_execution (which re-checks the reason). The
// blocked sets are paged, so executions that stay blocked do not hide later ones. The
// capability union counts only workers whose alive key exists (engine.md §4.2): a dead
// worker's advertisement does not unblock work nobody can run.
import { unblockExecution } from '../../generated/budget.js';
import { ExecKeys, QuotaKeys } from '../../generated/keys.js';
import { readQuotaLimits, type QuotaLimits } from '../../operations/admission.js';
import { findBudgetBreach } from '../../operations/scheduler.js';
import { capabilitiesSatisfied, liveCapabilities, splitCsv } from '../../operations/workers.js';
import { sendCommand } from '../../runtime/classify.js';
import { ScriptError } from '../../runtime/errors.js';
import { isCanonicalUuid, parseExecutionId, type LaneId, type QuotaPolicyId } from '../../runtime/ids.js';
import { replyText } from '../../runtime/reply.js';
import { laneScanner, type LaneSource } from '../lanes.js';
import type { Scanner, ScanContext } from '../runner.js';
import { drainIndex, hmget, type IndexScanOptions } from '../scan.js';

const SETS = [
  { set: 'budget', reason: 'waiting_for_budget' },
  { set: 'quota', reason: 'waiting_for_quota' },
  { set: 'route', reason: 'waiting_for_capable_worker' },
] as const;

export function unblockScanner(options: IndexScanOptions, lanes: LaneSource): Scanner {
  let capabilities: Set<string> | undefined;
  let budgets = new Map<string, boolean>();
  let quotas = new Map<string, QuotaLimits | undefined>();

  const budgetClear = async (ctx: ScanContext, budgetIds: string | undefined): Promise<boolean> => {
    for (const id of splitCsv(budgetIds)) {
      if (!budgets.has(id)) budgets.set(id, (await findBudgetBreach(ctx.client, id)) !== undefined);
      if (budgets.get(id)) return false;
    }
    return true;
  };

  const quotaClear = async (ctx: ScanContext, quotaId: string | undefined): Promise<boolean> => {
    if (!quotaId || !isCanonicalUuid(quotaId)) return true;
    const policy = quotaId as QuotaPolicyId;
    if (!quotas.has(quotaId)) quotas.set(quotaId, await readQuotaLimits(ctx.client, policy));
    const limits = quotas.get(quotaId);
    if (!limits) return true;
    const keys = QuotaKeys.for(policy, ctx.client.partitions);
    if (limits.rateLimit > 0) {
      // Counted, not trimmed: the trim is the admission's (and the reconciler's) job.
      const inWindow = Number(await sendCommand(ctx.client.transport, 'ZCOUNT', [keys.window('requests_per_window'), `(${ctx.now() - limits.windowSeconds * 1000}`, '+inf']));
      if (inWindow >= limits.rateLimit) return false;
    }
    if (limits.concurrencyCap > 0) {
      const held = Number(replyText(await sendCommand(ctx.client.transport, 'GET', [keys.concurrency()])) ?? '0');
      if (held >= limits.concurrencyCap) return false;
    }
    return true;
  };

  const routeClear = (required: string | undefined): boolean => capabilitiesSatisfied(required, capabilities ?? new Set());

  return {
    ...laneScanner('unblock', lanes, async (laneId, keys, ctx) => {
      for (const { set, reason } of SETS) {
        await drainIndex(ctx, {
          key: keys.laneBlocked(laneId, set),
          max: '+inf',
          ...options,
          // A member's score is when it was blocked: a stuck set shows as a growing lag.
          lagBase: ctx.now(),
          handle: (member) => tryUnblock(ctx, laneId, set, reason, member),
        });
      }
    }),
    async beginCycle(ctx) {
      budgets = new Map();
      quotas = new Map();
      capabilities = undefined;
      capabilities = await liveCapabilities(ctx.client);
    },
  };

  async function tryUnblock(ctx: ScanContext, laneId: LaneId, set: (typeof SETS)[number]['set'], reason: (typeof SETS)[number]['reason'], member: string): Promise<'done' | 'stays'> {
    const executionId = parseExecutionId(member);
    const [blockingReason, budgetIds, quotaId, required] = await hmget(ctx, new ExecKeys(executionId).core(), ['blocking_reason', 'budget_ids', 'quota_policy_id', 'required_capabilities']);
    // Another reason (paused by a flow cancel, a stale member): not ours to lift.
    if (blockingReason !== reason) return 'stays';
    const clear =
      set === 'budget' ? await budgetClear(ctx, budgetIds) : set === 'quota' ? await quotaClear(ctx, quotaId) : capabilities !== undefined && routeClear(required);
    if (!clear) return 'stays';
    try {
      await unblockExecution(ctx.client, { laneId, blockedSet: set, executionId, nowMs: ctx.now(), expectedBlockingReason: reason });
    } catch (error) {
      // Claimed, cancelled or unblocked by another engine meanwhile.
      if (error instanceof ScriptError && error.code === 'execution_not_eligible') return 'stays';
      throw error;
    }
    ctx.log.debug('execution unblocked', { execution: member, reason });
    return 'done';
  }
}
