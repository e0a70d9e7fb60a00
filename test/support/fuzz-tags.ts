// The hash tag a fuzzed call's KEYS are built on, from the function's spec `tag:` and the
// ids of the fuzz test's world (shared by the ARGV and the keyspace fuzz tests).
import type { FunctionSpec } from '../../generator/model.js';
import { executionTag, type BudgetId, type ExecutionId, type FlowId, type QuotaPolicyId } from '../../runtime/ids.js';
import { budgetTag, DEFAULT_PARTITION_CONFIG, flowTag, hashTag, quotaTag } from '../../runtime/partition.js';

export interface TagIds {
  readonly executionId: ExecutionId;
  readonly flowId: FlowId;
  readonly budgetId: BudgetId;
  readonly quotaPolicyId: QuotaPolicyId;
}

export function tagOf(fn: FunctionSpec, ids: TagIds): string {
  const tag = fn.tag;
  switch (tag.from) {
    case 'budget': return budgetTag(ids.budgetId, DEFAULT_PARTITION_CONFIG);
    case 'quota': return quotaTag(ids.quotaPolicyId, DEFAULT_PARTITION_CONFIG);
    case 'flow': return flowTag(ids.flowId, DEFAULT_PARTITION_CONFIG);
    case 'partition': return tag.family === 'fp' ? executionTag(ids.executionId) : hashTag(tag.family, 0);
    default: return executionTag(ids.executionId);
  }
}
