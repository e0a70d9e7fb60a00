// Two engine processes on one server (engine.md §2.15): no budget reset twice, no quota
// admitted over its cap, no execution deleted while live, every item handled. Short by
// default; FF_ENGINE_SOAK_MS=<ms> (or `npm run test:soak`) runs it longer.
import { describe, expect, it } from 'vitest';
import { createBudget } from '../generated/budget.js';
import { claimExecution, completeExecution } from '../generated/execution.js';
import { releaseAdmission } from '../generated/quota.js';
import type { Engine, RetentionOptions } from '../engine/index.js';
import { replay } from '../operations/flows.js';
import { issueNextGrant } from '../operations/scheduler.js';
import { newAttemptId, newBudgetId, newLeaseId, type ExecutionId } from '../runtime/ids.js';
import { createTestQuota } from './support/budget.js';
import { useEngineServer } from './support/engine-server.js';
import { core, sleep } from './support/exec-ops.js';
import { newExecutionId, uniqueLane } from './support/ids.js';
import { checkExecutionInvariants } from './support/invariants.js';
import { createClaimed, createWaiting } from './support/lifecycle.js';
import { complete } from './support/flow.js';

const DURATION_MS = Number(process.env.FF_ENGINE_SOAK_MS ?? 2_500);
const env = useEngineServer();

const FAST = {
  lease_expiry: 50, delayed_promoter: 50, budget_reset: 50, quota_reconciler: 50, unblock: 50, retention_trimmer: 50,
  attempt_timeout: 100, suspension_timeout: 100, execution_deadline: 100, pending_wp_expiry: 100,
  dependency_reconciler: 200, budget_reconciler: 200, index_reconciler: 500, flow_projector: 500,
};

async function twoEngines(retention: RetentionOptions): Promise<Engine[]> {
  const engines = [0, 1].map(() => env.engine({ intervals: FAST, completionListener: true, retention }));
  await Promise.all(engines.map((e) => e.start()));
  return engines;
}

describe('two engines on one server', () => {
  it('reset each due budget once, keep quota under its cap, never purge a live execution, and handle every item', async () => {
    const client = env.client();
    const redis = env.redis();
    const lane = uniqueLane('multi');

    // Budgets reset every 300 ms: at most one reset per period, whoever scans.
    const budgets = [newBudgetId(), newBudgetId(), newBudgetId()];
    for (const budgetId of budgets) {
      await createBudget(client, {
        budgetId, scopeType: 'lane', scopeId: lane, enforcementMode: 'strict', onHardLimit: 'fail', onSoftLimit: 'warn',
        dimensions: [{ dimension: 'tokens', hardLimit: 100, softLimit: 0 }], resetIntervalMs: 300,
      });
    }

    // Quota with a cap of 2 and a 1 s window, on 16 executions claimed by 3 workers.
    const quota = await createTestQuota(client, { maxConcurrent: 2, windowSeconds: 1 });
    const quotaLane = uniqueLane('quota');
    const quotaExecutions: ExecutionId[] = [];
    for (let i = 0; i < 16; i++) quotaExecutions.push((await createWaiting(client, { laneId: quotaLane, executionId: newExecutionId(i % 8), quotaPolicyId: quota.quotaPolicyId })).executionId);

    // Executions finish during the run on a lane with zero retention; another loop replays
    // finished ones while both trimmers purge them.
    const retentionLane = uniqueLane('ret');
    const finished: ExecutionId[] = [];

    // Items that must each be handled: delayed executions and expiring leases.
    const delayed: ExecutionId[] = [];
    for (let i = 0; i < 20; i++) delayed.push((await createWaiting(client, { laneId: lane, executionId: newExecutionId(i % 8), delayUntil: Date.now() + 200 + i * 20 })).executionId);
    const leased: ExecutionId[] = [];
    for (let i = 0; i < 10; i++) leased.push((await createClaimed(client, { laneId: lane, executionId: newExecutionId(i % 8) }, { leaseTtlMs: 150 })).executionId);

    const started = Date.now();
    // Zero retention only for the retention lane; the others keep the default day.
    const engines = await twoEngines({ lanes: { [retentionLane]: 0 } });

    let holding = 0;
    let maxHolding = 0;
    let maxCounter = 0;
    let running = true;
    const workers = [0, 1, 2].map(async (n) => {
      const wiid = `multi-w${n}`;
      while (running) {
        const grant = await issueNextGrant(client, { laneId: quotaLane, workerId: 'w', workerInstanceId: wiid, capabilities: [], startPartition: n });
        if (!grant) {
          await sleep(20);
          continue;
        }
        const claimed = await claimExecution(client, { executionId: grant.executionId, laneId: quotaLane, workerId: 'w', workerInstanceId: wiid, leaseId: newLeaseId(), attemptId: newAttemptId(), leaseTtlMs: 10_000 });
        holding++;
        maxHolding = Math.max(maxHolding, holding);
        await sleep(30);
        holding--;
        await completeExecution(client, { executionId: grant.executionId, laneId: quotaLane, workerInstanceId: wiid, leaseId: claimed.leaseId, leaseEpoch: claimed.leaseEpoch, attemptId: claimed.attemptId, attemptIndex: claimed.attemptIndex });
        await releaseAdmission(client, { quotaPolicyId: quota.quotaPolicyId, executionId: grant.executionId });
      }
    });
    const sampler = (async () => {
      while (running) {
        maxCounter = Math.max(maxCounter, Number((await redis.get(quota.keys.concurrency())) ?? 0));
        await sleep(5);
      }
    })();
    const finisher = (async () => {
      for (let i = 0; running; i++) {
        const claimed = await createClaimed(client, { laneId: retentionLane, executionId: newExecutionId(i % 8) });
        await complete(client, claimed);
        finished.push(claimed.executionId);
        await sleep(2);
      }
    })();
    const replayed = new Set<ExecutionId>();
    let purgedFirst = 0;
    const replayer = (async () => {
      while (running) {
        const executionId = finished[Math.floor(Math.random() * finished.length)];
        if (executionId && !replayed.has(executionId)) {
          try {
            await replay(client, executionId);
            replayed.add(executionId);
          } catch {
            purgedFirst++; // purged before the replay: the other allowed outcome
          }
        }
        await sleep(1);
      }
    })();

    while (Date.now() - started < DURATION_MS) await sleep(50);
    running = false;
    await Promise.all([...workers, sampler, finisher, replayer]);
    await Promise.all(engines.map((e) => e.stop()));
    const elapsed = Date.now() - started;

    // Budgets: at most one reset per 300 ms period, plus the one due at start.
    for (const budgetId of budgets) {
      const definition = (await redis.keys(`ff:budget:*:${budgetId}`))[0]!;
      const resets = Number(await redis.hget(definition, 'reset_count'));
      expect(resets).toBeGreaterThan(0);
      expect(resets).toBeLessThanOrEqual(Math.ceil(elapsed / 300) + 1);
    }
    // Quota: never more than the cap held or counted.
    expect(maxHolding).toBeLessThanOrEqual(2);
    expect(maxCounter).toBeLessThanOrEqual(2);
    // Retention: every replayed execution is still there and live; the others were purged.
    expect(replayed.size + purgedFirst).toBeGreaterThan(0);
    for (const executionId of replayed) expect((await core(redis, executionId)).lifecycle_phase).toBe('runnable');
    const purged = (await Promise.all(finished.map((e) => redis.exists(`ff:exec:${e.slice(0, e.indexOf('}') + 1)}:${e}:core`)))).filter((n) => n === 0).length;
    expect(purged).toBeGreaterThan(0);
    // Every item handled: delayed promoted, expired leases marked.
    for (const executionId of delayed) expect((await core(redis, executionId)).eligibility_state).toBe('eligible_now');
    for (const executionId of leased) expect((await core(redis, executionId)).ownership_state).toBe('lease_expired_reclaimable');
    for (const executionId of [...delayed, ...leased, ...replayed, ...quotaExecutions]) {
      const record = await core(redis, executionId);
      if (record.lifecycle_phase) expect(await checkExecutionInvariants(redis, executionId)).toEqual([]);
    }
    const errors = engines.flatMap((e) => e.stats().scanners.filter((s) => s.errors > 0).map((s) => `${s.name}: ${s.errors}`));
    expect(errors).toEqual([]);
  }, DURATION_MS + 30_000);
});
