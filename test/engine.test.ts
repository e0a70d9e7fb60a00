// The engine's scanners against a private server: each changes what it must, leaves what
// it must leave, and pages past members it cannot process. Most tests run one cycle with
// runOnce; the first runs the loops for real and waits at most a few intervals.
import { describe, expect, it } from 'vitest';
import { createBudget, reportUsageAndCheck } from '../generated/budget.js';
import { BudgetKeys, FlowKeys, GlobalKeys, PartitionKeys } from '../generated/keys.js';
import { createPendingWaitpoint } from '../generated/suspension.js';
import { PartitionMismatchError } from '../engine/index.js';
import { issueNextGrant } from '../operations/scheduler.js';
import { FlowFabricClient } from '../runtime/client.js';
import type { Transport } from '../runtime/transport.js';
import { newBudgetId, newWaitpointId, type ExecutionId, type LaneId } from '../runtime/ids.js';
import { createTestQuota } from './support/budget.js';
import { ENGINE_TEST_PARTITIONS, useEngineServer } from './support/engine-server.js';
import { core, sleep, suspendClaimed, waitFor } from './support/exec-ops.js';
import { newExecutionId, uniqueLane } from './support/ids.js';
import { claim, createClaimed, createWaiting } from './support/lifecycle.js';
import { addMember, complete, newTestFlow } from './support/flow.js';

const env = useEngineServer();

const state = async (executionId: ExecutionId) => core(env.redis(), executionId);
const eid = (partition: number) => newExecutionId(partition % ENGINE_TEST_PARTITIONS.numFlowPartitions);

function worker(laneId: LaneId, capabilities: string[] = []) {
  return { laneId, workerId: 'w', workerInstanceId: `wi-${laneId}`, capabilities, startPartition: 0 };
}

describe('boot', () => {
  it('loads the library, records the partition counts and installs a key ring on every partition', async () => {
    const { client, redis } = env.connect();
    await redis.call('FUNCTION', 'FLUSH');
    const engine = env.engine({ client, scanners: [] });
    await engine.start();
    expect(await redis.call('FCALL', 'ff_version', 0)).toBeTruthy();
    expect(await redis.hgetall(GlobalKeys.configPartitions())).toEqual({ num_flow_partitions: '8', num_budget_partitions: '4', num_quota_partitions: '4' });
    for (let p = 0; p < 8; p++) expect(await redis.hget(PartitionKeys.forPartition(p).waitpointHmacSecrets(), 'current_kid')).toBe('k1');
    await engine.stop();
  });

  it('refuses to start with partition counts other than the recorded ones', async () => {
    const { redis } = env.connect();
    const other = FlowFabricClient.fromIoredis(redis, { partitions: { ...ENGINE_TEST_PARTITIONS, numFlowPartitions: 16 } });
    await expect(env.engine({ client: other, scanners: [] }).start()).rejects.toBeInstanceOf(PartitionMismatchError);
  });
});

describe('running loops', () => {
  it('promotes, marks and expires within their intervals, and reports per-scanner numbers', async () => {
    const client = env.client();
    const laneId = uniqueLane('loop');
    const delayed = await createWaiting(client, { laneId, executionId: eid(1), delayUntil: Date.now() + 150 });
    const leased = await createClaimed(client, { laneId, executionId: eid(2) }, { leaseTtlMs: 100 });
    const deadline = await createWaiting(client, { laneId, executionId: eid(3), executionDeadlineAt: Date.now() + 150 });
    const finished = await createClaimed(client, { laneId, executionId: eid(4) });
    await complete(client, finished);
    const engine = env.engine({
      scanners: ['delayed_promoter', 'lease_expiry', 'execution_deadline', 'suspension_timeout', 'retention_trimmer'],
      intervals: { delayed_promoter: 100, lease_expiry: 100, execution_deadline: 100, suspension_timeout: 100, retention_trimmer: 100 },
      retention: { lanes: { [laneId]: 200 } },
    });
    await engine.start();
    const suspended = await createClaimed(client, { laneId, executionId: eid(5) });
    await suspendClaimed(client, suspended, 150);
    await waitFor(async () => (await state(delayed.executionId)).eligibility_state === 'eligible_now', 1500, 'promotion');
    await waitFor(async () => (await state(leased.executionId)).ownership_state === 'lease_expired_reclaimable', 1500, 'lease expiry');
    await waitFor(async () => (await state(deadline.executionId)).terminal_outcome === 'expired', 1500, 'deadline');
    await waitFor(async () => (await state(suspended.executionId)).lifecycle_phase === 'terminal', 1500, 'suspension timeout');
    await waitFor(async () => (await env.redis().exists(`ff:exec:{fp:4}:${finished.executionId}:core`)) === 0, 1500, 'retention');
    const stats = Object.fromEntries(engine.stats().scanners.map((s) => [s.name, s]));
    expect(stats.delayed_promoter!.processed).toBeGreaterThanOrEqual(1);
    expect(stats.lease_expiry!.processed).toBeGreaterThanOrEqual(1);
    expect(stats.execution_deadline!.processed).toBeGreaterThanOrEqual(1);
    expect(stats.lease_expiry!.cycles).toBeGreaterThan(1);
    await engine.stop();
  });
});

describe('lease_expiry', () => {
  it('marks expired leases, leaves live ones, and members it cannot process do not hide later ones', async () => {
    const client = env.client();
    const redis = env.redis();
    const laneId = uniqueLane('lease');
    const p = 4;
    const index = PartitionKeys.forPartition(p).leaseExpiry();
    // Three members that fail on every call, with the lowest scores: with pages of 2 they
    // would fill the reference's single batch forever.
    await redis.zadd(index, 1, 'junk-1', 2, 'junk-2', 3, 'junk-3');
    const first = await createClaimed(client, { laneId, executionId: eid(p) }, { leaseTtlMs: 30 });
    const live = await createClaimed(client, { laneId, executionId: eid(p) }, { leaseTtlMs: 60_000 });
    await sleep(60);
    const engine = env.engine({ boot: false, scanners: ['lease_expiry'], batchSizes: { lease_expiry: 2 } });
    const stats = await engine.runOnce('lease_expiry');
    expect((await state(first.executionId)).ownership_state).toBe('lease_expired_reclaimable');
    expect((await state(live.executionId)).ownership_state).toBe('leased');
    expect(stats.errors).toBeGreaterThanOrEqual(3);
    // Marked members stay for the reclaim; the next one behind them is still found.
    const second = await createClaimed(client, { laneId, executionId: eid(p) }, { leaseTtlMs: 30 });
    await sleep(60);
    await engine.runOnce('lease_expiry');
    expect((await state(second.executionId)).ownership_state).toBe('lease_expired_reclaimable');
    expect(await redis.zscore(index, first.executionId)).not.toBeNull();
    // After three failures in a row the junk is in backoff: skipped, not called.
    await engine.runOnce('lease_expiry');
    const errors = engine.stats().scanners[0]!.errors;
    await engine.runOnce('lease_expiry');
    expect(engine.stats().scanners[0]!.skipped).toBe(3);
    expect(engine.stats().scanners[0]!.errors).toBe(errors);
    await redis.zrem(index, 'junk-1', 'junk-2', 'junk-3');
  });
});

describe('delayed_promoter', () => {
  it('promotes due delayed executions of every registered lane and leaves those not yet due', async () => {
    const client = env.client();
    const [laneA, laneB] = [uniqueLane('delay'), uniqueLane('delay')];
    const due = await createWaiting(client, { laneId: laneA, executionId: eid(5), delayUntil: Date.now() + 30 });
    const dueOtherLane = await createWaiting(client, { laneId: laneB, executionId: eid(5), delayUntil: Date.now() + 30 });
    const later = await createWaiting(client, { laneId: laneA, executionId: eid(5), delayUntil: Date.now() + 60_000 });
    await sleep(60);
    const engine = env.engine({ boot: false, scanners: ['delayed_promoter'] });
    await engine.runOnce('delayed_promoter');
    expect((await state(due.executionId)).eligibility_state).toBe('eligible_now');
    expect((await state(dueOtherLane.executionId)).eligibility_state).toBe('eligible_now');
    expect((await state(later.executionId)).eligibility_state).toBe('not_eligible_until_time');
  });

  it('covers only the listed lanes when given an explicit list', async () => {
    const client = env.client();
    const [listed, unlisted] = [uniqueLane('delay'), uniqueLane('delay')];
    const a = await createWaiting(client, { laneId: listed, executionId: eid(6), delayUntil: Date.now() + 20 });
    const b = await createWaiting(client, { laneId: unlisted, executionId: eid(6), delayUntil: Date.now() + 20 });
    await sleep(40);
    const engine = env.engine({ boot: false, scanners: ['delayed_promoter'], lanes: [listed] });
    await engine.runOnce('delayed_promoter');
    expect((await state(a.executionId)).eligibility_state).toBe('eligible_now');
    expect((await state(b.executionId)).eligibility_state).toBe('not_eligible_until_time');
  });
});

describe('timeouts', () => {
  it('attempt_timeout and execution_deadline expire due executions and leave the others', async () => {
    const client = env.client();
    const redis = env.redis();
    const laneId = uniqueLane('timeout');
    const claimed = await createClaimed(client, { laneId, executionId: eid(7) });
    await redis.zadd(PartitionKeys.forPartition(7).attemptTimeout(), Date.now() - 10, claimed.executionId);
    const notDue = await createClaimed(client, { laneId, executionId: eid(7) });
    await redis.zadd(PartitionKeys.forPartition(7).attemptTimeout(), Date.now() + 60_000, notDue.executionId);
    const deadline = await createWaiting(client, { laneId, executionId: eid(7), executionDeadlineAt: Date.now() + 10 });
    await sleep(30);
    const engine = env.engine({ boot: false, scanners: ['attempt_timeout', 'execution_deadline'] });
    await engine.runOnce('attempt_timeout');
    await engine.runOnce('execution_deadline');
    expect(await state(claimed.executionId)).toMatchObject({ terminal_outcome: 'expired', failure_reason: 'attempt_timeout' });
    expect(await state(deadline.executionId)).toMatchObject({ terminal_outcome: 'expired', failure_reason: 'execution_deadline' });
    expect((await state(notDue.executionId)).lifecycle_phase).toBe('active');
  });

  it('suspension_timeout applies the timeout behaviour of a due suspension', async () => {
    const client = env.client();
    const engine = env.engine({ scanners: ['suspension_timeout'] });
    await engine.start(); // boot installs the key rings suspensions need
    const claimed = await createClaimed(client, { executionId: eid(1) });
    await suspendClaimed(client, claimed, 1);
    const waiting = await createClaimed(client, { executionId: eid(1) });
    await suspendClaimed(client, waiting, 60_000);
    await sleep(20);
    await engine.runOnce('suspension_timeout');
    expect((await state(claimed.executionId)).lifecycle_phase).toBe('terminal');
    expect((await state(waiting.executionId)).lifecycle_phase).toBe('suspended');
    await engine.stop();
  });

  it('pending_wp_expiry closes never-committed waitpoints and drops entries whose waitpoint is gone', async () => {
    const client = env.client();
    const redis = env.redis();
    const engine = env.engine({ scanners: ['pending_wp_expiry'], completionListener: false });
    await engine.start();
    const claimed = await createClaimed(client, { executionId: eid(2) });
    const waitpointId = newWaitpointId();
    await createPendingWaitpoint(client, { executionId: claimed.executionId, attemptIndex: claimed.lease.attemptIndex, waitpointId, waitpointKey: `wpk:${waitpointId}`, expiresInMs: 1 });
    const index = PartitionKeys.forPartition(2).pendingWaitpointExpiry();
    const ghost = newWaitpointId();
    await redis.zadd(index, 1, ghost);
    await sleep(10);
    await engine.runOnce('pending_wp_expiry');
    expect(await redis.hget(PartitionKeys.forPartition(2).waitpoint(waitpointId), 'close_reason')).toBe('never_committed');
    expect(await redis.zscore(index, ghost)).toBeNull();
    await engine.stop();
  });
});

describe('retention_trimmer', () => {
  it('purges terminal executions past their lane retention and keeps the rest', async () => {
    const client = env.client();
    const redis = env.redis();
    const [shortLane, longLane] = [uniqueLane('ret'), uniqueLane('ret')];
    const old = await createClaimed(client, { laneId: shortLane, executionId: eid(3) });
    await complete(client, old);
    const kept = await createClaimed(client, { laneId: longLane, executionId: eid(3) });
    await complete(client, kept);
    const live = await createClaimed(client, { laneId: shortLane, executionId: eid(3) });
    await sleep(5);
    const engine = env.engine({ boot: false, scanners: ['retention_trimmer'], retention: { defaultMs: 3_600_000, lanes: { [shortLane]: 0 } } });
    const stats = await engine.runOnce('retention_trimmer');
    expect(await redis.exists(`ff:exec:{fp:3}:${old.executionId}:core`)).toBe(0);
    expect(await redis.exists(`ff:exec:{fp:3}:${kept.executionId}:core`)).toBe(1);
    expect((await state(live.executionId)).lifecycle_phase).toBe('active');
    expect(stats.processed).toBeGreaterThanOrEqual(1);
  });
});

describe('unblock and admission', () => {
  it('capability mismatch blocks to the route set, and a capable worker appearing unblocks it', async () => {
    const client = env.client();
    const redis = env.redis();
    const laneId = uniqueLane('route');
    const gpu = await createWaiting(client, { laneId, executionId: eid(4), policyJson: { routing_requirements: { required_capabilities: ['gpu'] } } });
    expect(await issueNextGrant(client, worker(laneId, ['cpu']))).toBeUndefined();
    expect((await state(gpu.executionId)).blocking_reason).toBe('waiting_for_capable_worker');
    const engine = env.engine({ boot: false, scanners: ['unblock'] });
    await engine.runOnce('unblock');
    expect((await state(gpu.executionId)).eligibility_state).toBe('blocked_by_route');
    // A dead worker's advertisement does not count.
    await redis.set(GlobalKeys.workerCaps('dead-gpu'), 'gpu');
    await redis.sadd(GlobalKeys.workersIndex(), 'dead-gpu');
    await engine.runOnce('unblock');
    expect((await state(gpu.executionId)).eligibility_state).toBe('blocked_by_route');
    await redis.set(GlobalKeys.workerAlive('live-gpu'), '1', 'PX', 60_000);
    await redis.set(GlobalKeys.workerCaps('live-gpu'), 'gpu,cpu');
    await redis.sadd(GlobalKeys.workersIndex(), 'live-gpu');
    await engine.runOnce('unblock');
    expect((await state(gpu.executionId)).eligibility_state).toBe('eligible_now');
    expect((await issueNextGrant(client, worker(laneId, ['gpu'])))?.executionId).toBe(gpu.executionId);
    await redis.del(GlobalKeys.workerAlive('live-gpu'));
    await redis.srem(GlobalKeys.workersIndex(), 'dead-gpu', 'live-gpu');
  });

  it('a hard-breached budget attached at create blocks claims, and a reset unblocks them', async () => {
    const client = env.client();
    const redis = env.redis();
    const laneId = uniqueLane('budget');
    const budgetId = newBudgetId();
    await createBudget(client, {
      budgetId, scopeType: 'lane', scopeId: laneId, enforcementMode: 'strict', onHardLimit: 'fail', onSoftLimit: 'warn',
      dimensions: [{ dimension: 'tokens', hardLimit: 5, softLimit: 0 }], resetIntervalMs: 3_600_000,
    });
    await reportUsageAndCheck(client, { budgetId, usage: [{ dimension: 'tokens', delta: 5 }] });
    const e = await createWaiting(client, { laneId, executionId: eid(5), budgetIds: [budgetId] });
    expect(await issueNextGrant(client, worker(laneId))).toBeUndefined();
    expect((await state(e.executionId)).eligibility_state).toBe('blocked_by_budget');
    const engine = env.engine({ boot: false, scanners: ['budget_reset', 'unblock'] });
    await engine.runOnce('unblock');
    expect((await state(e.executionId)).eligibility_state).toBe('blocked_by_budget');
    // Make the periodic reset due now.
    const resets = `ff:idx:{b:${(await redis.keys(`ff:budget:*:${budgetId}`))[0]!.match(/\{b:(\d+)\}/)![1]}}:budget_resets`;
    await redis.zadd(resets, Date.now() - 1, budgetId);
    await engine.runOnce('budget_reset');
    await engine.runOnce('unblock');
    expect((await state(e.executionId)).eligibility_state).toBe('eligible_now');
    expect((await issueNextGrant(client, worker(laneId)))?.executionId).toBe(e.executionId);
  });

  it('repairs a quota counter after a crashed holder, so the blocked execution is admitted again', async () => {
    const client = env.client();
    const redis = env.redis();
    const laneId = uniqueLane('quota');
    const quota = await createTestQuota(client, { maxConcurrent: 1, windowSeconds: 60 });
    const first = await createWaiting(client, { laneId, executionId: eid(6), priority: 5, quotaPolicyId: quota.quotaPolicyId });
    const second = await createWaiting(client, { laneId, executionId: eid(6), priority: 1, quotaPolicyId: quota.quotaPolicyId });
    const grant = await issueNextGrant(client, worker(laneId));
    expect(grant?.executionId).toBe(first.executionId);
    expect(await issueNextGrant(client, worker(laneId))).toBeUndefined();
    expect((await state(second.executionId)).eligibility_state).toBe('blocked_by_quota');
    // The holder crashed: its guard lapsed while the counter still says 1.
    await redis.del(quota.keys.admitted(first.executionId));
    const engine = env.engine({ boot: false, scanners: ['quota_reconciler', 'unblock'] });
    await engine.runOnce('unblock');
    expect((await state(second.executionId)).eligibility_state).toBe('blocked_by_quota');
    await engine.runOnce('quota_reconciler');
    expect(await redis.get(quota.keys.concurrency())).toBe('0');
    await engine.runOnce('unblock');
    expect((await state(second.executionId)).eligibility_state).toBe('eligible_now');
  });

  it('pages past blocked members that stay blocked', async () => {
    const client = env.client();
    const laneId = uniqueLane('hol');
    const stuck = [];
    for (let i = 0; i < 3; i++) {
      stuck.push(await createWaiting(client, { laneId, executionId: eid(7), priority: 9, policyJson: { routing_requirements: { required_capabilities: ['never'] } } }));
    }
    const runnable = await createWaiting(client, { laneId, executionId: eid(7), priority: 1, policyJson: { routing_requirements: { required_capabilities: ['cpu'] } } });
    expect(await issueNextGrant(client, worker(laneId, ['none']))).toBeUndefined();
    const redis = env.redis();
    await redis.set(GlobalKeys.workerAlive('hol-cpu'), '1', 'PX', 60_000);
    await redis.set(GlobalKeys.workerCaps('hol-cpu'), 'cpu');
    await redis.sadd(GlobalKeys.workersIndex(), 'hol-cpu');
    const engine = env.engine({ boot: false, scanners: ['unblock'], batchSizes: { unblock: 2 } });
    await engine.runOnce('unblock');
    expect((await state(runnable.executionId)).eligibility_state).toBe('eligible_now');
    for (const s of stuck) expect((await state(s.executionId)).eligibility_state).toBe('blocked_by_route');
    await redis.srem(GlobalKeys.workersIndex(), 'hol-cpu');
  });
});

describe('engine-only faults', () => {
  it('counts errors without crashing while the library is gone, and recovers once it is back', async () => {
    const { client, redis } = env.connect();
    const laneId = uniqueLane('fault');
    const delayed = await createWaiting(client, { laneId, executionId: eid(0), delayUntil: Date.now() + 10 });
    await sleep(20);
    const engine = env.engine({ client, boot: false, scanners: ['delayed_promoter'] });
    await redis.call('FUNCTION', 'FLUSH');
    const failed = await engine.runOnce('delayed_promoter');
    expect(failed.errors).toBeGreaterThan(0);
    await client.ensureLibrary();
    await engine.runOnce('delayed_promoter');
    expect((await state(delayed.executionId)).eligibility_state).toBe('eligible_now');
  });

  it('an autoLoad client reloads the library by itself', async () => {
    const { client, redis } = env.connect({ autoLoad: true });
    const laneId = uniqueLane('fault');
    const delayed = await createWaiting(env.client(), { laneId, executionId: eid(1), delayUntil: Date.now() + 10 });
    await sleep(20);
    await redis.call('FUNCTION', 'FLUSH');
    const engine = env.engine({ client, boot: false, scanners: ['delayed_promoter'] });
    await engine.runOnce('delayed_promoter');
    expect((await state(delayed.executionId)).eligibility_state).toBe('eligible_now');
  });

  it('an idle engine notices a FUNCTION FLUSH and loads the library again', async () => {
    const { redis } = env.connect();
    const engine = env.engine({ scanners: ['delayed_promoter'], libraryCheckMs: 100 });
    await engine.start();
    await redis.call('FUNCTION', 'FLUSH');
    // The library answers as soon as FUNCTION LOAD ran, a moment before the watchdog counts
    // the reload: wait for both.
    await waitFor(async () => engine.stats().library.reloads >= 1, 2000, 'library reload counted');
    expect(await redis.call('FCALL', 'ff_version', 0)).toBeDefined();
    await engine.stop();
  });

  it('keeps running through CLIENT KILL and DEBUG SLEEP', async () => {
    const { client, redis } = env.connect();
    const laneId = uniqueLane('fault');
    const engine = env.engine({ client, boot: false, scanners: ['delayed_promoter', 'lease_expiry'], intervals: { delayed_promoter: 100, lease_expiry: 100 } });
    await engine.start();
    const admin = env.connect().redis;
    const id = await redis.call('CLIENT', 'ID');
    await admin.call('CLIENT', 'KILL', 'ID', String(id));
    await admin.call('DEBUG', 'SLEEP', '0.3');
    const delayed = await createWaiting(env.client(), { laneId, executionId: eid(2), delayUntil: Date.now() + 50 });
    await waitFor(async () => (await state(delayed.executionId)).eligibility_state === 'eligible_now', 3000, 'promotion after faults');
    await engine.stop();
  });
});

describe('read-mostly scanners', () => {
  it('index_reconciler re-registers lanes of older executions and reports executions missing from their index', async () => {
    const client = env.client();
    const redis = env.redis();
    const laneId = uniqueLane('idx');
    const e = await createWaiting(client, { laneId, executionId: eid(6) });
    const lanes = PartitionKeys.forPartition(6).lanes();
    await redis.srem(lanes, laneId); // as if created before the registry existed
    await redis.zrem(PartitionKeys.forPartition(6).laneEligible(laneId), e.executionId);
    const lines: string[] = [];
    const engine = env.engine({ boot: false, scanners: ['index_reconciler'], logSink: (_level, message) => lines.push(message) });
    const stats = await engine.runOnce('index_reconciler');
    expect(await redis.sismember(lanes, laneId)).toBe(1);
    expect(stats.processed).toBeGreaterThanOrEqual(1);
    expect(lines.some((l) => l.includes('missing from its index'))).toBe(true);
  });

  it('index_reconciler reports nothing for an execution that moves between its state read and its index read', async () => {
    const client = env.client();
    const claimed = await createClaimed(client, { laneId: uniqueLane('idxmove'), executionId: eid(5) });
    // The index read of this execution is answered only after the execution completed: the
    // first read sees it active, and it is gone from the active index by then.
    let moved = false;
    const inner = client.transport;
    const racing: Transport = {
      fcall: (request) => inner.fcall(request),
      fcallBatch: (requests) => inner.fcallBatch(requests),
      primaries: () => inner.primaries(),
      async command(name, args) {
        if (name === 'ZSCORE' && args[1] === claimed.executionId && !moved) {
          moved = true;
          await complete(client, claimed);
        }
        return inner.command(name, args);
      },
    };
    const lines: string[] = [];
    const engine = env.engine({ client: new FlowFabricClient(racing, { partitions: client.partitions }), boot: false, scanners: ['index_reconciler'], logSink: (_level, message, fields) => lines.push(`${message} ${JSON.stringify(fields ?? {})}`) });
    await engine.runOnce('index_reconciler');
    expect(moved).toBe(true);
    expect((await state(claimed.executionId)).lifecycle_phase).toBe('terminal');
    expect(lines.filter((l) => l.includes(claimed.executionId))).toEqual([]);
  });

  it('index_reconciler reads a bounded slice of a partition per cycle and goes on from where it stopped', async () => {
    const client = env.client();
    const redis = env.redis();
    const partition = 3;
    const laneId = uniqueLane('idxslice');
    const ids: ExecutionId[] = [];
    for (let i = 0; i < 300; i++) ids.push((await createWaiting(client, { laneId, executionId: eid(partition) })).executionId);
    const hidden = ids[137]!;
    await redis.zrem(PartitionKeys.forPartition(partition).laneEligible(laneId), hidden);
    // Count the executions of the partition each cycle reads (one HMGET of the core each).
    const read = new Set<string>();
    let readThisCycle = 0;
    const inner = client.transport;
    const counting: Transport = {
      fcall: (request) => inner.fcall(request),
      fcallBatch: (requests) => inner.fcallBatch(requests),
      primaries: () => inner.primaries(),
      command(name, args) {
        const key = String(args[0]);
        if (name === 'HMGET' && key.startsWith(`ff:exec:{fp:${partition}}:`)) {
          readThisCycle += 1;
          read.add(key);
        }
        return inner.command(name, args);
      },
    };
    const lines: string[] = [];
    const engine = env.engine({
      client: new FlowFabricClient(counting, { partitions: client.partitions }),
      boot: false,
      scanners: ['index_reconciler'],
      batchSizes: { index_reconciler: 25 },
      maxPerPartition: 50,
      logSink: (_level, message, fields) => lines.push(`${message} ${JSON.stringify(fields ?? {})}`),
    });
    const perCycle: number[] = [];
    for (let cycle = 0; cycle < 20 && read.size < (await redis.scard(PartitionKeys.forPartition(partition).allExecutions())); cycle++) {
      readThisCycle = 0;
      await engine.runOnce('index_reconciler');
      perCycle.push(readThisCycle);
    }
    // Every execution of the partition was read over several cycles, never much more than 50 in
    // one (SSCAN's COUNT is a hint: a page can run over), and the one missing from its index was
    // found. Reading everything in one cycle (the reference's way) fails both bounds.
    expect(read.size).toBeGreaterThanOrEqual(300);
    expect(perCycle.length).toBeGreaterThanOrEqual(3);
    expect(Math.max(...perCycle)).toBeLessThanOrEqual(120);
    expect(lines.filter((l) => l.includes('missing from its index') && l.includes(hidden))).toHaveLength(1);
  });

  it('flow_projector writes the summary of a flow from its members', async () => {
    const client = env.client();
    const redis = env.redis();
    const flow = await newTestFlow(client);
    const done = await addMember(client, flow);
    await addMember(client, flow);
    await complete(client, await claim(client, done));
    const engine = env.engine({ boot: false, scanners: ['flow_projector'] });
    await engine.runOnce('flow_projector');
    const summary = await redis.hgetall(FlowKeys.for(flow.flowId, client.partitions).summary());
    expect(summary).toMatchObject({ total_members: '2', sampled_members: '2', members_completed: '1', members_waiting: '1', public_flow_state: 'open' });
  });

  it('budget_reconciler marks a breached budget that is never reset, and clears the mark when usage drops', async () => {
    const client = env.client();
    const redis = env.redis();
    const budgetId = newBudgetId();
    await createBudget(client, {
      budgetId, scopeType: 'lane', scopeId: 'x', enforcementMode: 'strict', onHardLimit: 'fail', onSoftLimit: 'warn',
      dimensions: [{ dimension: 'tokens', hardLimit: 5, softLimit: 0 }],
    });
    const usage = BudgetKeys.for(budgetId, client.partitions).usage();
    await redis.hset(usage, 'tokens', '9');
    const engine = env.engine({ boot: false, scanners: ['budget_reconciler'] });
    await engine.runOnce('budget_reconciler');
    expect(await redis.hget(usage, 'breached_at')).toBeTruthy();
    await redis.hset(usage, 'tokens', '1');
    await engine.runOnce('budget_reconciler');
    expect(await redis.hget(usage, 'breached_at')).toBeNull();
  });
});

describe('observability', () => {
  it('reports the lag of the oldest overdue member, and every call reaches the client\'s onCall hook', async () => {
    const calls: string[] = [];
    const { client } = env.connect({ onCall: (event) => calls.push(event.fn) });
    const laneId = uniqueLane('lag');
    await createWaiting(env.client(), { laneId, executionId: eid(7), delayUntil: Date.now() + 10 });
    await sleep(250);
    const engine = env.engine({ client, boot: false, scanners: ['delayed_promoter'] });
    const stats = await engine.runOnce('delayed_promoter');
    expect(stats.lagMs).toBeGreaterThanOrEqual(200);
    expect(calls).toContain('ff_promote_delayed');
    expect((await engine.runOnce('delayed_promoter')).lagMs).toBe(0);
  });
});

describe('blocked-set lag', () => {
  it('unblock reports the age of the oldest blocked member', async () => {
    const client = env.client();
    const laneId = uniqueLane('blocklag');
    await createWaiting(client, { laneId, executionId: eid(6), policyJson: { routing_requirements: { required_capabilities: ['lag-never'] } } });
    expect(await issueNextGrant(client, worker(laneId, ['cpu']))).toBeUndefined();
    await sleep(250);
    const engine = env.engine({ boot: false, scanners: ['unblock'], lanes: [laneId] });
    expect((await engine.runOnce('unblock')).lagMs).toBeGreaterThanOrEqual(200);
  });
});

describe('claim order', () => {
  it('grants the highest priority first within a partition, partitions in rotation from the start', async () => {
    const client = env.client();
    const laneId = uniqueLane('order');
    const p3low = await createWaiting(client, { laneId, executionId: eid(3), priority: 1 });
    const p3high = await createWaiting(client, { laneId, executionId: eid(3), priority: 8 });
    const p5top = await createWaiting(client, { laneId, executionId: eid(5), priority: 9 });
    const order: (ExecutionId | undefined)[] = [];
    for (let i = 0; i < 3; i++) order.push((await issueNextGrant(client, { ...worker(laneId), startPartition: 2 }))?.executionId);
    expect(order).toEqual([p3high.executionId, p3low.executionId, p5top.executionId]);
  });

  it('a granted execution is claimed with the grant', async () => {
    const client = env.client();
    const laneId = uniqueLane('order');
    const created = await createWaiting(client, { laneId, executionId: eid(4) });
    const grant = await issueNextGrant(client, worker(laneId));
    expect(grant?.executionId).toBe(created.executionId);
    // The test helper issues its own grant: the scheduler's is still live, so it is refused.
    await expect(claim(client, created)).rejects.toThrow(/grant_already_exists/);
  });
});
