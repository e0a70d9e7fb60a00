// budget_reset (engine.md §2.8) with ff_reset_budget_if_due, which resets only a budget
// whose schedule entry is due, so two engine processes never reset it twice; and
// budget_reconciler (§2.9), which keeps the usage hash's breached_at marker in step with
// the hard limits of budgets that are never reset periodically.
import { resetBudgetIfDue } from '../../generated/engine.js';
import { BudgetKeys, BudgetPartitionKeys } from '../../generated/keys.js';
import { hashReply } from '../../runtime/reply.js';
import { sendCommand } from '../../runtime/classify.js';
import { parseBudgetId, type BudgetId } from '../../runtime/ids.js';
import type { Scanner } from '../runner.js';
import { drainIndex, sscanAll, type IndexScanOptions } from '../scan.js';

export function budgetResetScanner(options: IndexScanOptions): Scanner {
  return {
    name: 'budget_reset',
    family: 'budget',
    async scanPartition(partition, ctx) {
      const now = ctx.now();
      await drainIndex(ctx, {
        key: BudgetPartitionKeys.forPartition(partition).budgetResets(),
        max: now,
        ...options,
        lagBase: now,
        async handle(member) {
          const result = await resetBudgetIfDue(ctx.client, { budgetId: parseBudgetId(member), nowMs: now });
          if (result.status === 'not_due') return 'stays';
          ctx.log.debug('budget reset', { budget: member, next: result.nextResetAt });
          return 'done';
        },
      });
    },
  };
}

export function budgetReconcilerScanner(): Scanner {
  return {
    name: 'budget_reconciler',
    family: 'budget',
    async scanPartition(partition, ctx) {
      const partitionKeys = BudgetPartitionKeys.forPartition(partition);
      for await (const ids of sscanAll(ctx, partitionKeys.budgetPolicies())) {
        for (const id of ids) {
          try {
            await reconcileBudget(ctx, partitionKeys, id);
          } catch (error) {
            ctx.failed(error);
          }
        }
      }
    },
  };
}

async function reconcileBudget(ctx: Parameters<Scanner['scanPartition']>[1], partitionKeys: BudgetPartitionKeys, id: string): Promise<void> {
  const keys = new BudgetKeys(partitionKeys.tag, id as BudgetId);
  const definition = hashReply(await sendCommand(ctx.client.transport, 'HGETALL', [keys.definition()]));
  if (Object.keys(definition).length === 0) {
    // Read without error and empty: the budget is gone. (A failed read throws above and prunes nothing.)
    await sendCommand(ctx.client.transport, 'SREM', [partitionKeys.budgetPolicies(), id]);
    ctx.processed();
    return;
  }
  const interval = definition.reset_interval_ms;
  if (interval !== undefined && interval !== '' && interval !== '0') return;
  const limits = hashReply(await sendCommand(ctx.client.transport, 'HGETALL', [keys.limits()]));
  const usage = hashReply(await sendCommand(ctx.client.transport, 'HGETALL', [keys.usage()]));
  let breached = false;
  for (const [field, value] of Object.entries(limits)) {
    if (!field.startsWith('hard:') || !/^[0-9]+$/.test(value) || Number(value) <= 0) continue;
    const used = Number(usage[field.slice('hard:'.length)] ?? '0');
    if (Number.isFinite(used) && used > Number(value)) breached = true;
  }
  const marked = usage.breached_at !== undefined;
  if (breached && !marked) {
    await sendCommand(ctx.client.transport, 'HSET', [keys.usage(), 'breached_at', ctx.now()]);
    ctx.processed();
  } else if (!breached && marked) {
    await sendCommand(ctx.client.transport, 'HDEL', [keys.usage(), 'breached_at']);
    ctx.processed();
  }
}
