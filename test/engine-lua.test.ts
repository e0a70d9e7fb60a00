// The engine's Lua extensions (spec/engine.yaml, and the create/expire changes): lane
// registry and admission fields written at create, suspension-timeout completions,
// the atomic retention purge, the due-only budget reset and the atomic quota repair.
import { describe, expect, it } from 'vitest';
import { createBudget } from '../generated/budget.js';
import { purgeExecution, reconcileQuota, resetBudgetIfDue } from '../generated/engine.js';
import { ExecKeys, PartitionKeys } from '../generated/keys.js';
import { checkAdmissionAndRecord } from '../generated/quota.js';
import { replay } from '../operations/flows.js';
import { expireSuspensionOf } from '../operations/waitpoints.js';
import { executionPartition, newBudgetId, newQuotaPolicyId } from '../runtime/ids.js';
import { budgetKeys, createTestQuota } from './support/budget.js';
import { useServer } from './support/client.js';
import { core, listenCompletions, sleep, suspendClaimed } from './support/exec-ops.js';
import { addMember, complete, newTestFlow } from './support/flow.js';
import { newExecutionId, uniqueLane } from './support/ids.js';
import { claim, createClaimed, createWaiting } from './support/lifecycle.js';
import { inject } from 'vitest';

const { redis, client } = useServer();

describe('ff_create_execution extensions', () => {
  it('registers the lane on the partition and stores budgets and the quota policy', async () => {
    const laneId = uniqueLane('reg');
    const budgetIds = [newBudgetId(), newBudgetId()];
    const quotaPolicyId = newQuotaPolicyId();
    const { executionId } = await createWaiting(client, { laneId, executionId: newExecutionId(21), budgetIds, quotaPolicyId });
    expect(await redis.sismember(PartitionKeys.forPartition(21).lanes(), laneId)).toBe(1);
    const record = await core(redis, executionId);
    expect(record.budget_ids).toBe([...budgetIds].sort().join(','));
    expect(record.quota_policy_id).toBe(quotaPolicyId);
  });

  it('writes neither admission field when none is given', async () => {
    const { executionId } = await createWaiting(client);
    const record = await core(redis, executionId);
    expect(record.budget_ids).toBeUndefined();
    expect(record.quota_policy_id).toBeUndefined();
  });
});

describe('ff_expire_suspension completions', () => {
  it('publishes a flow member whose suspension timed out into a terminal outcome', async () => {
    const listener = await listenCompletions(inject('redisUrl'));
    try {
      const flow = await newTestFlow(client);
      const member = await addMember(client, flow);
      const claimed = await claim(client, member);
      await suspendClaimed(client, claimed, 1);
      await sleep(5);
      const result = await expireSuspensionOf(client, member.executionId);
      expect(result.status).not.toBe('not_yet_due');
      await listener.waitFor(1, [member.executionId]);
      expect(listener.of([member.executionId])[0]).toMatchObject({ flow_id: flow.flowId });
    } finally {
      listener.close();
    }
  });
});

describe('ff_purge_execution', () => {
  it('deletes a terminal execution past its retention with everything it owns', async () => {
    const claimed = await createClaimed(client, { inputPayload: 'in', tagsJson: { a: 'b' } });
    await complete(client, claimed, 'out');
    const keys = new ExecKeys(claimed.executionId);
    expect(await purgeExecution(client, { executionId: claimed.executionId, laneId: claimed.laneId, retentionMs: 3_600_000 })).toMatchObject({ status: 'not_due' });
    expect(await redis.exists(keys.core())).toBe(1);
    const purged = await purgeExecution(client, { executionId: claimed.executionId, laneId: claimed.laneId, retentionMs: 0 });
    expect(purged.status).toBe('purged');
    const tag = keys.tag;
    const left = await redis.keys(`*${claimed.executionId}*`);
    expect(left).toEqual([]);
    expect(await redis.zscore(new PartitionKeys(tag).laneTerminal(claimed.laneId), claimed.executionId)).toBeNull();
    expect(await redis.sismember(new PartitionKeys(tag).allExecutions(), claimed.executionId)).toBe(0);
  });

  it('leaves an execution replayed meanwhile untouched', async () => {
    const claimed = await createClaimed(client);
    await complete(client, claimed);
    await replay(client, claimed.executionId);
    const result = await purgeExecution(client, { executionId: claimed.executionId, laneId: claimed.laneId, retentionMs: 0 });
    expect(result.status).toBe('not_terminal_cleaned');
    expect((await core(redis, claimed.executionId)).lifecycle_phase).toBe('runnable');
    expect(executionPartition(claimed.executionId)).toBeGreaterThanOrEqual(0);
  });
});

describe('ff_reset_budget_if_due', () => {
  it('resets a due budget once, however many scanners call', async () => {
    const budgetId = newBudgetId();
    await createBudget(client, {
      budgetId, scopeType: 'execution', scopeId: 's', enforcementMode: 'strict', onHardLimit: 'fail', onSoftLimit: 'warn',
      dimensions: [{ dimension: 'tokens', hardLimit: 10, softLimit: 0 }], resetIntervalMs: 60_000,
    });
    const b = budgetKeys(client, budgetId);
    const scheduled = Number(await redis.zscore(b.partition.budgetResets(), budgetId));
    expect(await resetBudgetIfDue(client, { budgetId, nowMs: scheduled - 1 })).toMatchObject({ status: 'not_due' });
    const results = await Promise.all([1, 2, 3].map(() => resetBudgetIfDue(client, { budgetId, nowMs: scheduled })));
    expect(results.filter((r) => r.status === 'reset')).toHaveLength(1);
    expect(await redis.hget(b.keys.definition(), 'reset_count')).toBe('1');
  });
});

describe('ff_reconcile_quota', () => {
  it('sets the counter to the admissions still held and drops lapsed ones', async () => {
    const quota = await createTestQuota(client, { maxConcurrent: 5, windowSeconds: 60 });
    const executions = [newExecutionId(), newExecutionId(), newExecutionId()];
    for (const executionId of executions) {
      await checkAdmissionAndRecord(client, { quotaPolicyId: quota.quotaPolicyId, executionId, windowSeconds: 60, rateLimit: 0, concurrencyCap: 5 });
    }
    // A crashed holder: its guard lapsed but the counter and the set still count it.
    await redis.del(quota.keys.admitted(executions[0]!));
    const result = await reconcileQuota(client, { quotaPolicyId: quota.quotaPolicyId });
    expect(result).toMatchObject({ status: 'reconciled', held: 2, previous: 3, lapsed: 1 });
    expect(await redis.get(quota.keys.concurrency())).toBe('2');
    expect(await redis.sismember(quota.keys.admittedSet(), executions[0]!)).toBe(0);
  });

  it('answers not_found for a missing policy', async () => {
    expect(await reconcileQuota(client, { quotaPolicyId: newQuotaPolicyId() })).toMatchObject({ status: 'not_found' });
  });
});
