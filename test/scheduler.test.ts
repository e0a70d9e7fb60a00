// The scheduler's claim-grant cycle (operations/scheduler.ts) against a real server: claim
// order across priorities and partitions, no head-of-line blocking, capability, budget and
// quota admission. Each test uses its own lane, so the shared server's other data is unseen.
import { describe, expect, it } from 'vitest';
import { reportUsageAndCheck } from '../generated/budget.js';
import { QuotaKeys } from '../generated/keys.js';
import { issueNextGrant } from '../operations/scheduler.js';
import { core, laneScore } from './support/exec-ops.js';
import { createTestBudget, createTestQuota } from './support/budget.js';
import { useServer } from './support/client.js';
import { newExecutionId, uniqueLane } from './support/ids.js';
import { createWaiting } from './support/lifecycle.js';

const { redis, client } = useServer();

function worker(laneId: ReturnType<typeof uniqueLane>, extra: Partial<Parameters<typeof issueNextGrant>[1]> = {}) {
  return { laneId, workerId: 'w', workerInstanceId: `wi-${laneId}`, capabilities: [] as string[], ...extra };
}

describe('issueNextGrant', () => {
  it('grants by priority within a partition and steps past heads that hold live grants', async () => {
    const laneId = uniqueLane('sched');
    const low = await createWaiting(client, { laneId, executionId: newExecutionId(7), priority: 0 });
    const high = await createWaiting(client, { laneId, executionId: newExecutionId(7), priority: 9 });
    const mid = await createWaiting(client, { laneId, executionId: newExecutionId(7), priority: 5 });
    const order = [];
    for (let i = 0; i < 3; i++) order.push((await issueNextGrant(client, worker(laneId, { startPartition: 7 })))?.executionId);
    // Each grant leaves its execution in the eligible index; the next call pages past it.
    expect(order).toEqual([high.executionId, mid.executionId, low.executionId]);
    expect(await issueNextGrant(client, worker(laneId, { startPartition: 7 }))).toBeUndefined();
  });

  it('pages past more live grants than one page holds, up to maxCandidatesPerPartition', async () => {
    const laneId = uniqueLane('sched');
    const created = [];
    for (let i = 0; i < 11; i++) created.push((await createWaiting(client, { laneId, executionId: newExecutionId(8), priority: 100 - i })).executionId);
    const granted = [];
    for (let i = 0; i < 11; i++) granted.push((await issueNextGrant(client, worker(laneId, { startPartition: 8 })))?.executionId);
    expect(granted).toEqual(created);
    expect(await issueNextGrant(client, worker(laneId, { startPartition: 8 }))).toBeUndefined();
    // With a smaller window the members behind it wait for the next call (bounded work per partition).
    const other = uniqueLane('sched');
    for (let i = 0; i < 3; i++) await createWaiting(client, { laneId: other, executionId: newExecutionId(8), priority: 9 - i });
    await issueNextGrant(client, worker(other, { startPartition: 8 }));
    await issueNextGrant(client, worker(other, { startPartition: 8 }));
    expect(await issueNextGrant(client, worker(other, { startPartition: 8, maxCandidatesPerPartition: 2 }))).toBeUndefined();
    expect(await issueNextGrant(client, worker(other, { startPartition: 8, maxCandidatesPerPartition: 3 }))).toBeDefined();
  });

  it('visits partitions from startPartition, wrapping', async () => {
    const laneId = uniqueLane('sched');
    const early = await createWaiting(client, { laneId, executionId: newExecutionId(3) });
    const later = await createWaiting(client, { laneId, executionId: newExecutionId(200) });
    const first = await issueNextGrant(client, worker(laneId, { startPartition: 100 }));
    expect(first).toMatchObject({ executionId: later.executionId, partition: 200, laneId });
    const second = await issueNextGrant(client, worker(laneId, { startPartition: 100 }));
    expect(second?.executionId).toBe(early.executionId);
  });

  it('visits only the given partitions, in order from startPartition, and refuses one out of range', async () => {
    const laneId = uniqueLane('sched');
    const on3 = await createWaiting(client, { laneId, executionId: newExecutionId(3) });
    const on200 = await createWaiting(client, { laneId, executionId: newExecutionId(200) });
    expect(await issueNextGrant(client, worker(laneId, { partitions: [4, 5, 199] }))).toBeUndefined();
    expect(await issueNextGrant(client, worker(laneId, { partitions: [3, 200], startPartition: 200 }))).toMatchObject({ executionId: on200.executionId, partition: 200 });
    expect(await issueNextGrant(client, worker(laneId, { partitions: [3, 200], startPartition: 200 }))).toMatchObject({ executionId: on3.executionId, partition: 3 });
    await expect(issueNextGrant(client, worker(laneId, { partitions: [256] }))).rejects.toThrow(/partitions/);
  });

  it('blocks a candidate the worker cannot run to the route set and grants the one behind it', async () => {
    const laneId = uniqueLane('sched');
    const gpu = await createWaiting(client, { laneId, executionId: newExecutionId(9), priority: 9, policyJson: { routing_requirements: { required_capabilities: ['gpu'] } } });
    const plain = await createWaiting(client, { laneId, executionId: newExecutionId(9), priority: 1 });
    const skipped: string[] = [];
    const grant = await issueNextGrant(client, worker(laneId, { startPartition: 9, capabilities: ['cpu'], onSkip: (e) => skipped.push(`${e.action}:${e.reason}`) }));
    expect(grant?.executionId).toBe(plain.executionId);
    expect(skipped).toEqual(['blocked:waiting_for_capable_worker']);
    expect(await laneScore(redis, gpu.executionId, laneId, 'eligible')).toBeNull();
    expect(await redis.zscore(`ff:idx:{fp:9}:lane:${laneId}:blocked:route`, gpu.executionId)).not.toBeNull();
    expect((await core(redis, gpu.executionId)).blocking_reason).toBe('waiting_for_capable_worker');
  });

  it('blocks a candidate whose budget is hard-breached, and grants it once usage is back under the limit', async () => {
    const laneId = uniqueLane('sched');
    const budget = await createTestBudget(client, { dimensions: [{ dimension: 'tokens', hardLimit: 10, softLimit: 0 }] });
    const e = await createWaiting(client, { laneId, executionId: newExecutionId(11) });
    await redis.hset(`ff:exec:{fp:11}:${e.executionId}:core`, 'budget_ids', budget.budgetId);
    await reportUsageAndCheck(client, { budgetId: budget.budgetId, usage: [{ dimension: 'tokens', delta: 10 }] });
    expect(await issueNextGrant(client, worker(laneId, { startPartition: 11 }))).toBeUndefined();
    expect((await core(redis, e.executionId)).blocking_reason).toBe('waiting_for_budget');
    expect(await redis.zscore(`ff:idx:{fp:11}:lane:${laneId}:blocked:budget`, e.executionId)).not.toBeNull();
  });

  it('admits under a quota concurrency cap and blocks the next candidate for quota', async () => {
    const laneId = uniqueLane('sched');
    const quota = await createTestQuota(client, { maxConcurrent: 1 });
    const a = await createWaiting(client, { laneId, executionId: newExecutionId(12), priority: 5 });
    const b = await createWaiting(client, { laneId, executionId: newExecutionId(12), priority: 1 });
    for (const e of [a, b]) await redis.hset(`ff:exec:{fp:12}:${e.executionId}:core`, 'quota_policy_id', quota.quotaPolicyId);
    const first = await issueNextGrant(client, worker(laneId, { startPartition: 12 }));
    expect(first?.executionId).toBe(a.executionId);
    expect(await issueNextGrant(client, worker(laneId, { startPartition: 12 }))).toBeUndefined();
    expect((await core(redis, b.executionId)).blocking_reason).toBe('waiting_for_quota');
    expect(await redis.get(new QuotaKeys(quota.keys.tag, quota.quotaPolicyId).concurrency())).toBe('1');
  });

  it('refuses invalid arguments before sending anything', async () => {
    await expect(issueNextGrant(client, worker(uniqueLane('sched'), { capabilities: ['a,b'] }))).rejects.toThrow(/comma/);
    await expect(issueNextGrant(client, worker(uniqueLane('sched'), { workerId: '' }))).rejects.toThrow(/workerId/);
    await expect(issueNextGrant(client, worker(uniqueLane('sched'), { workerInstanceId: 'a{b}' }))).rejects.toThrow(/workerInstanceId/);
    await expect(issueNextGrant(client, worker(uniqueLane('sched'), { grantTtlMs: 0 }))).rejects.toThrow(/grantTtlMs/);
  });
});
