// End-to-end admission scenarios across partition families, through operations/admission.ts.
import { describe, expect, it } from 'vitest';
import { resetBudget, unblockExecution } from '../generated/budget.js';
import { ExecKeys, PartitionKeys } from '../generated/keys.js';
import { releaseAdmission } from '../generated/quota.js';
import { admitOrBlock, blockedSetFor, readQuotaLimits, reportUsageAndBlockOnBreach, type AdmitOrBlockArgs } from '../operations/admission.js';
import { newQuotaPolicyId, type ExecutionId, type LaneId } from '../runtime/ids.js';
import { createTestBudget, createTestQuota, type TestQuota } from './support/budget.js';
import { useServer } from './support/client.js';
import { claim, createClaimed, createWaiting } from './support/lifecycle.js';
import { sleep } from './support/raw.js';

describe('budget admission', () => {
  const { client, redis } = useServer();

  const core = (executionId: ExecutionId) => redis.hgetall(new ExecKeys(executionId).core());
  const eligibleScore = (executionId: ExecutionId, laneId: LaneId) => redis.zscore(new PartitionKeys(new ExecKeys(executionId).tag).laneEligible(laneId), executionId);

  it('a hard limit blocks the execution; a reset and an unblock let it be claimed', async () => {
    const budget = await createTestBudget(client, { dimensions: [{ dimension: 'tokens', hardLimit: 100, softLimit: 0 }] });
    const created = await createWaiting(client);
    const first = await reportUsageAndBlockOnBreach(client, { budgetId: budget.budgetId, usage: [{ dimension: 'tokens', delta: 90 }], executionId: created.executionId });
    expect(first).toEqual({ status: 'within_budget', report: { status: 'OK' } });

    const breach = await reportUsageAndBlockOnBreach(client, { budgetId: budget.budgetId, usage: [{ dimension: 'tokens', delta: 20 }], executionId: created.executionId });
    expect(breach).toEqual({ status: 'blocked', report: { status: 'HARD_BREACH', dimension: 'tokens', currentUsage: 90, hardLimit: 100 } });
    expect(await core(created.executionId)).toMatchObject({ eligibility_state: 'blocked_by_budget', blocking_reason: 'waiting_for_budget', public_state: 'rate_limited' });
    expect(await eligibleScore(created.executionId, created.laneId)).toBeNull();

    await resetBudget(client, { budgetId: budget.budgetId });
    expect(await redis.hget(budget.keys.usage(), 'tokens')).toBe('0');
    await unblockExecution(client, { ...created, blockedSet: blockedSetFor('waiting_for_budget'), expectedBlockingReason: 'waiting_for_budget' });
    expect(await core(created.executionId)).toMatchObject({ eligibility_state: 'eligible_now', public_state: 'waiting' });
    expect(await eligibleScore(created.executionId, created.laneId)).not.toBeNull();
    const claimed = await claim(client, created);
    expect(claimed.claim.status).toBe('OK');
  });

  it('a soft limit only warns: usage applied, the execution stays eligible', async () => {
    const budget = await createTestBudget(client);
    const created = await createWaiting(client);
    const outcome = await reportUsageAndBlockOnBreach(client, { budgetId: budget.budgetId, usage: [{ dimension: 'tokens', delta: 90 }], executionId: created.executionId, laneId: created.laneId });
    expect(outcome).toEqual({ status: 'within_budget', report: { status: 'SOFT_BREACH', dimension: 'tokens', currentUsage: 90, softLimit: 80 } });
    expect((await core(created.executionId)).eligibility_state).toBe('eligible_now');
    expect(await redis.hget(budget.keys.usage(), 'tokens')).toBe('90');
  });

  it('a replayed usage report is counted once', async () => {
    const budget = await createTestBudget(client);
    const created = await createWaiting(client);
    const args = { budgetId: budget.budgetId, usage: [{ dimension: 'tokens', delta: 60 }], executionId: created.executionId, dedupId: `attempt-0-seq-1-${budget.budgetId}` };
    expect(await reportUsageAndBlockOnBreach(client, args)).toMatchObject({ status: 'within_budget', report: { status: 'OK' } });
    // Counted twice this would be 120, above the hard limit.
    expect(await reportUsageAndBlockOnBreach(client, args)).toMatchObject({ status: 'within_budget', report: { status: 'ALREADY_APPLIED' } });
    expect(await redis.hget(budget.keys.usage(), 'tokens')).toBe('60');
    expect((await core(created.executionId)).eligibility_state).toBe('eligible_now');
  });

  it('reports block_failed when the second call cannot block (an active execution), leaving it unchanged', async () => {
    const budget = await createTestBudget(client);
    const claimed = await createClaimed(client);
    const before = await core(claimed.executionId);
    const outcome = await reportUsageAndBlockOnBreach(client, { budgetId: budget.budgetId, usage: [{ dimension: 'tokens', delta: 500 }], executionId: claimed.executionId });
    expect(outcome.status).toBe('block_failed');
    expect(outcome).toMatchObject({ report: { status: 'HARD_BREACH' }, error: { code: 'execution_not_eligible' } });
    expect(await core(claimed.executionId)).toEqual(before);
    expect(await redis.hget(budget.keys.definition(), 'breach_count')).toBe('1');
  });
});

describe('quota admission', () => {
  const { client, redis } = useServer();

  const args = (q: TestQuota, executionId: ExecutionId, laneId: LaneId, limits: { windowSeconds: number; rateLimit: number; concurrencyCap: number }): AdmitOrBlockArgs => ({
    quotaPolicyId: q.quotaPolicyId, executionId, laneId, ...limits,
  });

  it('a window admits N, refuses N+1 with a retry hint, and admits again once the window has moved', async () => {
    const limits = { windowSeconds: 1, rateLimit: 3, concurrencyCap: 0 };
    const q = await createTestQuota(client, { windowSeconds: 1, maxRequestsPerWindow: 3 });
    for (let i = 0; i < 3; i++) {
      const created = await createWaiting(client);
      expect(await admitOrBlock(client, args(q, created.executionId, created.laneId, limits))).toEqual({ status: 'admitted', admission: { status: 'ADMITTED' } });
    }
    const late = await createWaiting(client);
    const denied = await admitOrBlock(client, args(q, late.executionId, late.laneId, limits));
    expect(denied.status).toBe('blocked');
    const hint = denied.admission.status === 'RATE_EXCEEDED' ? denied.admission.retryAfterMs : -1;
    expect(hint).toBeGreaterThanOrEqual(0);
    expect(hint).toBeLessThanOrEqual(1000);
    expect(await redis.hgetall(new ExecKeys(late.executionId).core())).toMatchObject({ eligibility_state: 'blocked_by_quota', public_state: 'rate_limited' });

    await sleep(hint + 20);
    await unblockExecution(client, { ...late, blockedSet: 'quota', expectedBlockingReason: 'waiting_for_quota' });
    expect(await admitOrBlock(client, args(q, late.executionId, late.laneId, limits))).toEqual({ status: 'admitted', admission: { status: 'ADMITTED' } });
  });

  it('a concurrency cap refuses beyond the cap until a slot is released; a double release frees one slot only', async () => {
    const limits = { windowSeconds: 60, rateLimit: 0, concurrencyCap: 2 };
    const q = await createTestQuota(client, { maxConcurrent: 2 });
    const a = await createWaiting(client);
    const b = await createWaiting(client);
    const c = await createWaiting(client);
    const d = await createWaiting(client);
    expect((await admitOrBlock(client, args(q, a.executionId, a.laneId, limits))).status).toBe('admitted');
    expect((await admitOrBlock(client, args(q, b.executionId, b.laneId, limits))).status).toBe('admitted');
    expect(await admitOrBlock(client, args(q, c.executionId, c.laneId, limits))).toEqual({ status: 'blocked', admission: { status: 'CONCURRENCY_EXCEEDED' } });

    await releaseAdmission(client, { quotaPolicyId: q.quotaPolicyId, executionId: a.executionId });
    await releaseAdmission(client, { quotaPolicyId: q.quotaPolicyId, executionId: a.executionId });
    expect(await redis.get(q.keys.concurrency())).toBe('1');

    await unblockExecution(client, { ...c, blockedSet: 'quota' });
    expect((await admitOrBlock(client, args(q, c.executionId, c.laneId, limits))).status).toBe('admitted');
    // The second release freed nothing: b and c hold both slots.
    expect(await admitOrBlock(client, args(q, d.executionId, d.laneId, limits))).toMatchObject({ status: 'blocked', admission: { status: 'CONCURRENCY_EXCEEDED' } });
  });

  it('reads a policy\'s limits with the scheduler\'s defaults', async () => {
    const q = await createTestQuota(client, { windowSeconds: 7, maxRequestsPerWindow: 4, maxConcurrent: 2 });
    expect(await readQuotaLimits(client, q.quotaPolicyId)).toEqual({ windowSeconds: 7, rateLimit: 4, concurrencyCap: 2, jitterMs: 0 });
    expect(await readQuotaLimits(client, newQuotaPolicyId())).toBeUndefined();
  });

  it('reads the lane from the core when not given', async () => {
    const q = await createTestQuota(client, { maxConcurrent: 1 });
    const limits = { windowSeconds: 60, rateLimit: 0, concurrencyCap: 1 };
    const first = await createWaiting(client);
    await admitOrBlock(client, args(q, first.executionId, first.laneId, limits));
    const second = await createWaiting(client);
    const outcome = await admitOrBlock(client, { quotaPolicyId: q.quotaPolicyId, executionId: second.executionId, ...limits });
    expect(outcome.status).toBe('blocked');
    expect(await redis.zscore(new PartitionKeys(new ExecKeys(second.executionId).tag).laneBlockedQuota(second.laneId), second.executionId)).not.toBeNull();
  });
});
