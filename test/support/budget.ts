// Shortcuts for budget and quota tests: fresh budgets and policies through the wrappers,
// and the key builders for reading their state back.
import { createBudget, type CreateBudgetArgs } from '../../generated/budget.js';
import { BudgetKeys, BudgetPartitionKeys, QuotaKeys, QuotaPartitionKeys } from '../../generated/keys.js';
import { createQuotaPolicy, type CreateQuotaPolicyArgs } from '../../generated/quota.js';
import type { FlowFabricClient } from '../../runtime/client.js';
import { newBudgetId, newQuotaPolicyId, type BudgetId, type QuotaPolicyId } from '../../runtime/ids.js';

export interface TestBudget {
  readonly budgetId: BudgetId;
  readonly keys: BudgetKeys;
  readonly partition: BudgetPartitionKeys;
}

export function budgetKeys(client: FlowFabricClient, budgetId: BudgetId): TestBudget {
  const keys = BudgetKeys.for(budgetId, client.partitions);
  return { budgetId, keys, partition: new BudgetPartitionKeys(keys.tag) };
}

/** A new budget with one `tokens` dimension (hard 100, soft 80) unless overridden. */
export async function createTestBudget(client: FlowFabricClient, overrides: Partial<CreateBudgetArgs> = {}): Promise<TestBudget> {
  const budgetId = overrides.budgetId ?? newBudgetId();
  await createBudget(client, {
    budgetId,
    scopeType: 'execution',
    scopeId: 'scope-1',
    enforcementMode: 'strict',
    onHardLimit: 'fail',
    onSoftLimit: 'warn',
    dimensions: [{ dimension: 'tokens', hardLimit: 100, softLimit: 80 }],
    ...overrides,
  });
  return budgetKeys(client, budgetId);
}

export interface TestQuota {
  readonly quotaPolicyId: QuotaPolicyId;
  readonly keys: QuotaKeys;
  readonly partition: QuotaPartitionKeys;
}

export function quotaKeys(client: FlowFabricClient, quotaPolicyId: QuotaPolicyId): TestQuota {
  const keys = QuotaKeys.for(quotaPolicyId, client.partitions);
  return { quotaPolicyId, keys, partition: new QuotaPartitionKeys(keys.tag) };
}

/** A new quota policy (60 s window, no limits) unless overridden. */
export async function createTestQuota(client: FlowFabricClient, overrides: Partial<CreateQuotaPolicyArgs> = {}): Promise<TestQuota> {
  const quotaPolicyId = overrides.quotaPolicyId ?? newQuotaPolicyId();
  await createQuotaPolicy(client, { quotaPolicyId, windowSeconds: 60, maxRequestsPerWindow: 0, maxConcurrent: 0, ...overrides });
  return quotaKeys(client, quotaPolicyId);
}
