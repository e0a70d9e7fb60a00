// The scheduler's claim-grant cycle for several slots at once (operations/scheduler.ts
// issueGrants) against a real server: distinct heads for each grant, paging past held heads,
// every admission check kept when candidates are checked side by side (the quota cap holds),
// and the claim sent right behind a grant (one that finds no grant of its worker id writes
// nothing). Each test uses its own lane and partition numbers chosen per test.
import { describe, expect, it } from 'vitest';
import { reportUsageAndCheck } from '../generated/budget.js';
import { claimExecution } from '../generated/execution.js';
import { ExecKeys, QuotaKeys } from '../generated/keys.js';
import { issueClaimGrant } from '../generated/scheduling.js';
import { issueGrants, type Grant, type GrantsRequest } from '../operations/scheduler.js';
import { isScriptError } from '../runtime/errors.js';
import { newAttemptId, newLeaseId, type ExecutionId, type LaneId } from '../runtime/ids.js';
import { core, laneScore } from './support/exec-ops.js';
import { createTestBudget, createTestQuota } from './support/budget.js';
import { useServer } from './support/client.js';
import { newExecutionId, uniqueLane } from './support/ids.js';
import { createWaiting } from './support/lifecycle.js';

const { redis, client } = useServer();

function request(laneId: LaneId, max: number, extra: Partial<GrantsRequest> = {}): GrantsRequest {
  return { laneId, workerId: 'w', workerInstanceId: `wi-${laneId}`, capabilities: [], max, ...extra };
}

/**
 * A claim hook as a worker passes it: ff_claim_execution for the request's worker, right
 * behind the grant. The cycle does not wait for the claims of grants it issued (the caller
 * does): each is kept in `claims`.
 */
function claimer(laneId: LaneId, workerId: string, workerInstanceId: string, outcomes: Map<ExecutionId, string>, claims: Promise<boolean>[]): NonNullable<GrantsRequest['claim']> {
  return (grant) => {
    const claiming = claimOne(grant.executionId);
    claims.push(claiming);
    return claiming;
  };
  async function claimOne(executionId: ExecutionId): Promise<boolean> {
    try {
      await claimExecution(client, { executionId, laneId, workerId, workerInstanceId, leaseId: newLeaseId(), attemptId: newAttemptId(), leaseTtlMs: 30_000 });
      outcomes.set(executionId, 'claimed');
      return true;
    } catch (error) {
      if (!isScriptError(error)) throw error;
      outcomes.set(executionId, error.code);
      return false;
    }
  }
}

async function createMany(laneId: LaneId, partition: number, count: number): Promise<ExecutionId[]> {
  const ids: ExecutionId[] = [];
  for (let i = 0; i < count; i++) ids.push((await createWaiting(client, { laneId, executionId: newExecutionId(partition), priority: 100 - i })).executionId);
  return ids;
}

describe('issueGrants', () => {
  it('grants up to max distinct heads, by priority within a partition, interleaved over the partitions, telling each to onGrant', async () => {
    const laneId = uniqueLane('grants');
    const on20 = await createMany(laneId, 20, 3);
    const on21 = await createMany(laneId, 21, 3);
    const told: ExecutionId[] = [];
    const grants = await issueGrants(client, request(laneId, 4, { partitions: [20, 21], startPartition: 20, onGrant: (g) => told.push(g.executionId) }));
    expect(grants.map((g) => g.executionId).sort()).toEqual([on20[0], on20[1], on21[0], on21[1]].sort());
    expect(told.sort()).toEqual(grants.map((g) => g.executionId).sort());
    expect(grants.every((g) => g.laneId === laneId && (g.partition === 20 || g.partition === 21))).toBe(true);
    for (const g of grants) expect(await redis.hget(new ExecKeys(g.executionId).claimGrant(), 'worker_instance_id')).toBe(`wi-${laneId}`);
    // The rest, then nothing: granted heads stay in the index and are stepped over.
    const rest = await issueGrants(client, request(laneId, 16, { partitions: [20, 21] }));
    expect(rest.map((g) => g.executionId).sort()).toEqual([on20[2], on21[2]].sort());
    expect(await issueGrants(client, request(laneId, 16, { partitions: [20, 21] }))).toEqual([]);
  });

  it('pages past more heads held by other grants than one page holds', async () => {
    const laneId = uniqueLane('grants');
    const ids = await createMany(laneId, 22, 11);
    for (const executionId of ids.slice(0, 9)) await issueClaimGrant(client, { executionId, laneId, workerId: 'other', workerInstanceId: 'other-1', grantTtlMs: 5000 });
    const skipped: string[] = [];
    const grants = await issueGrants(client, request(laneId, 3, { partitions: [22], onSkip: (e) => skipped.push(e.reason) }));
    expect(grants.map((g) => g.executionId)).toEqual(ids.slice(9));
    expect(skipped).toEqual(Array(9).fill('grant_already_exists'));
    // maxCandidatesPerPartition bounds the work per partition and call.
    const other = uniqueLane('grants');
    const few = await createMany(other, 22, 3);
    for (const executionId of few.slice(0, 2)) await issueClaimGrant(client, { executionId, laneId: other, workerId: 'other', workerInstanceId: 'other-1', grantTtlMs: 5000 });
    expect(await issueGrants(client, request(other, 2, { partitions: [22], maxCandidatesPerPartition: 2 }))).toEqual([]);
    expect((await issueGrants(client, request(other, 2, { partitions: [22], maxCandidatesPerPartition: 3 }))).map((g) => g.executionId)).toEqual([few[2]]);
  });

  it('keeps every admission check with candidates checked side by side: capability, budget, and the quota cap', async () => {
    const laneId = uniqueLane('grants');
    const quota = await createTestQuota(client, { maxConcurrent: 2 });
    const capped = await createMany(laneId, 23, 5);
    for (const id of capped) await redis.hset(new ExecKeys(id).core(), 'quota_policy_id', quota.quotaPolicyId);
    const gpu = await createWaiting(client, { laneId, executionId: newExecutionId(23), priority: 1, policyJson: { routing_requirements: { required_capabilities: ['gpu'] } } });
    const budget = await createTestBudget(client, { dimensions: [{ dimension: 'tokens', hardLimit: 10, softLimit: 0 }] });
    const broke = await createWaiting(client, { laneId, executionId: newExecutionId(23), priority: 0 });
    await redis.hset(new ExecKeys(broke.executionId).core(), 'budget_ids', budget.budgetId);
    await reportUsageAndCheck(client, { budgetId: budget.budgetId, usage: [{ dimension: 'tokens', delta: 10 }] });
    const grants = await issueGrants(client, request(laneId, 16, { partitions: [23], capabilities: ['cpu'] }));
    expect(grants).toHaveLength(2);
    expect(grants.every((g) => capped.includes(g.executionId))).toBe(true);
    expect(await redis.get(new QuotaKeys(quota.keys.tag, quota.quotaPolicyId).concurrency())).toBe('2');
    const reasons = await Promise.all([...capped.filter((id) => !grants.some((g) => g.executionId === id)), gpu.executionId, broke.executionId].map(async (id) => (await core(redis, id)).blocking_reason));
    expect(reasons).toEqual(['waiting_for_quota', 'waiting_for_quota', 'waiting_for_quota', 'waiting_for_capable_worker', 'waiting_for_budget']);
    expect(await laneScore(redis, gpu.executionId, laneId, 'eligible')).toBeNull();
  });

  it('sends the claim right behind each grant; behind a refused grant it is refused and writes nothing', async () => {
    const laneId = uniqueLane('grants');
    const [held, free] = await createMany(laneId, 24, 2);
    await issueClaimGrant(client, { executionId: held!, laneId, workerId: 'other', workerInstanceId: 'other-1', grantTtlMs: 5000 });
    const before = { core: await redis.hgetall(new ExecKeys(held!).core()), grant: await redis.hgetall(new ExecKeys(held!).claimGrant()) };
    const outcomes = new Map<ExecutionId, string>();
    const claims: Promise<boolean>[] = [];
    const granted: Grant[] = [];
    const grants = await issueGrants(client, request(laneId, 2, { partitions: [24], onGrant: (g) => granted.push(g), claim: claimer(laneId, 'w', `wi-${laneId}`, outcomes, claims) }));
    expect(await Promise.all(claims)).toHaveLength(2);
    expect(grants.map((g) => g.executionId)).toEqual([free]);
    expect(granted.map((g) => g.executionId)).toEqual([free]);
    expect(outcomes.get(free!)).toBe('claimed');
    expect((await core(redis, free!)).lifecycle_phase).toBe('active');
    expect(outcomes.get(held!)).toBe('invalid_claim_grant');
    expect({ core: await redis.hgetall(new ExecKeys(held!).core()), grant: await redis.hgetall(new ExecKeys(held!).claimGrant()) }).toEqual(before);
    expect(await laneScore(redis, held!, laneId, 'eligible')).not.toBeNull();
  });

  it('counts a refused grant as granted when the claim behind it took a grant its worker id already held', async () => {
    const laneId = uniqueLane('grants');
    const [e] = await createMany(laneId, 25, 1);
    // Another instance of the same logical worker holds the grant (engine.md §4.5: a grant is the worker id's).
    await issueClaimGrant(client, { executionId: e!, laneId, workerId: 'w', workerInstanceId: 'w-other', grantTtlMs: 5000 });
    const outcomes = new Map<ExecutionId, string>();
    const claims: Promise<boolean>[] = [];
    const skipped: string[] = [];
    const grants = await issueGrants(client, request(laneId, 1, { partitions: [25], claim: claimer(laneId, 'w', `wi-${laneId}`, outcomes, claims), onSkip: (s) => skipped.push(s.reason) }));
    expect(await Promise.all(claims)).toEqual([true]);
    expect(grants.map((g) => g.executionId)).toEqual([e]);
    expect(skipped).toEqual([]);
    expect(outcomes.get(e!)).toBe('claimed');
    expect((await core(redis, e!)).current_worker_instance_id).toBe(`wi-${laneId}`);
  });

  it('refuses a max that is not a positive integer before sending anything', async () => {
    await expect(issueGrants(client, request(uniqueLane('grants'), 0))).rejects.toThrow(/max/);
    await expect(issueGrants(client, request(uniqueLane('grants'), 1.5))).rejects.toThrow(/max/);
    await expect(issueGrants(client, request(uniqueLane('grants'), 1, { workerId: '' }))).rejects.toThrow(/workerId/);
  });
});
