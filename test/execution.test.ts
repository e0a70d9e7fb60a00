import { describe, expect, inject, it } from 'vitest';
import {
  buildCancelExecution, buildCreateExecution, buildDelayExecution, buildExpireExecution, buildFailExecution, buildMoveToWaitingChildren,
  buildReclaimExecution, createExecution, delayExecution, failExecution, moveToWaitingChildren, reclaimExecution,
} from '../generated/execution.js';
import { ExecKeys, PartitionKeys } from '../generated/keys.js';
import type { RetryPolicyJson } from '../generated/shapes.js';
import { revokeLease } from '../generated/lease.js';
import { issueReclaimGrant } from '../generated/scheduling.js';
import { appendFrame } from '../generated/stream.js';
import { ArgumentError, ScriptError, isScriptError } from '../runtime/errors.js';
import { newAttemptId, newLeaseId } from '../runtime/ids.js';
import { DEFAULT_PARTITION_CONFIG } from '../runtime/partition.js';
import { readExecutionContext } from '../operations/preread.js';
import { useServer } from './support/client.js';
import { cancel, core, expire, historyEvents, holderArgs, lapseLease, laneScore, listenCompletions, reclaim, suspendClaimed, waitUntilServerTime } from './support/exec-ops.js';
import { addMember, newTestFlow } from './support/flow.js';
import { newExecutionId, uniqueLane } from './support/ids.js';
import { claim, createClaimed, createWaiting } from './support/lifecycle.js';
import { fcallPatched, keyStates } from './support/raw.js';

describe('ff_create_execution', () => {
  const { client, redis } = useServer();

  it('creates an eligible execution with its full initial state', async () => {
    const executionId = newExecutionId();
    const laneId = uniqueLane();
    const result = await createExecution(client, { executionId, namespace: 'ns', laneId, executionKind: 'demo', priority: 5, inputPayload: 'in', tagsJson: { team: 'a' } });
    expect(result).toEqual({ status: 'OK', executionId, publicState: 'waiting' });
    const exec = new ExecKeys(executionId);
    const index = new PartitionKeys(exec.tag);
    const core = await redis.hgetall(exec.core());
    expect(core).toMatchObject({
      execution_id: executionId, lane_id: laneId, lifecycle_phase: 'runnable', ownership_state: 'unowned',
      eligibility_state: 'eligible_now', blocking_reason: 'waiting_for_worker', terminal_outcome: 'none',
      attempt_state: 'pending_first_attempt', public_state: 'waiting', priority: '5', total_attempt_count: '0', current_lease_epoch: '0',
    });
    const score = Number(await redis.zscore(index.laneEligible(laneId), executionId));
    expect(score).toBe(-5 * 1e12 + Number(core.created_at));
    expect(await redis.get(exec.payload())).toBe('in');
    expect(await redis.hgetall(exec.tags())).toEqual({ team: 'a' });
    expect(await redis.sismember(index.allExecutions(), executionId)).toBe(1);
    // The record's layout (HGETALL order): the state vector, then the fields the hot paths
    // touch, the ones written once at create last.
    expect(Object.keys(core)).toEqual([
      'blocking_detail', 'last_mutation_at', 'lifecycle_phase', 'ownership_state', 'eligibility_state', 'blocking_reason', 'terminal_outcome',
      'attempt_state', 'public_state', 'last_transition_at', 'current_attempt_index', 'total_attempt_count', 'current_attempt_id', 'current_lease_id',
      'current_lease_epoch', 'current_worker_id', 'current_worker_instance_id', 'lease_expires_at', 'lease_acquired_at', 'lease_last_renewed_at',
      'lease_renewal_deadline', 'current_lane', 'lane_id', 'started_at', 'pending_retry_reason', 'pending_replay_reason', 'pending_replay_requested_by',
      'pending_previous_attempt_index', 'completed_at', 'lease_expired_at', 'lease_revoked_at', 'lease_revoke_reason', 'flow_id', 'delay_until',
      'retry_count', 'replay_count', 'lease_reclaim_count', 'current_suspension_id', 'current_waitpoint_id', 'progress_pct', 'progress_message',
      'progress_updated_at', 'priority', 'created_at', 'execution_id', 'namespace', 'execution_kind', 'partition_id', 'creator_identity',
    ]);
  });

  it('answers DUPLICATE for the same id and for the same idempotency key', async () => {
    const laneId = uniqueLane();
    const first = newExecutionId(3);
    const args = { namespace: 'ns', laneId, executionKind: 'k', idempotencyKey: `idem-${first.slice(-12)}` };
    await createExecution(client, { ...args, executionId: first });
    await expect(createExecution(client, { ...args, executionId: first })).resolves.toEqual({ status: 'DUPLICATE', executionId: first });
    const second = newExecutionId(3);
    await expect(createExecution(client, { ...args, executionId: second })).resolves.toEqual({ status: 'DUPLICATE', executionId: first });
  });

  it('delays an execution with a future delay_until', async () => {
    const executionId = newExecutionId();
    const laneId = uniqueLane();
    const delayUntil = Date.now() + 60_000;
    await expect(createExecution(client, { executionId, namespace: 'ns', laneId, executionKind: 'k', delayUntil })).resolves.toMatchObject({ publicState: 'delayed' });
    const index = new PartitionKeys(new ExecKeys(executionId).tag);
    expect(Number(await redis.zscore(index.laneDelayed(laneId), executionId))).toBe(delayUntil);
  });

  it('puts a past delay_until into the eligible index (deviation from quirk Q3)', async () => {
    const executionId = newExecutionId();
    const laneId = uniqueLane();
    await expect(createExecution(client, { executionId, namespace: 'ns', laneId, executionKind: 'k', delayUntil: 1000 })).resolves.toMatchObject({ publicState: 'waiting' });
    const index = new PartitionKeys(new ExecKeys(executionId).tag);
    expect(await redis.zscore(index.laneDelayed(laneId), executionId)).toBeNull();
    expect(await redis.zscore(index.laneEligible(laneId), executionId)).not.toBeNull();
  });

  it.each([
    [{ routing_requirements: null }, 'invalid_policy_json', 'routing_requirements:not_object'],
    [{ routing_requirements: { required_capabilities: 'gpu' } }, 'invalid_capabilities', 'required:not_array'],
    [{ routing_requirements: { required_capabilities: ['a,b'] } }, 'invalid_capabilities', 'required:comma_in_token'],
    [{ routing_requirements: { required_capabilities: [''] } }, 'invalid_capabilities', 'required:empty_token'],
    [{ routing_requirements: { required_capabilities: ['a b'] } }, 'invalid_capabilities', 'required:control_or_whitespace'],
    [{ routing_requirements: { required_capabilities: [1] } }, 'invalid_capabilities', 'required:non_string_token'],
  ])('refuses policy %j with %s, writing nothing', async (policyJson, code, detail) => {
    const executionId = newExecutionId();
    const error = await createExecution(client, { executionId, namespace: 'ns', laneId: uniqueLane(), executionKind: 'k', policyJson }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ScriptError);
    expect(error).toMatchObject({ code, detail });
    expect(await redis.exists(new ExecKeys(executionId).core())).toBe(0);
  });

  it('stores sorted required capabilities', async () => {
    const executionId = newExecutionId();
    await createExecution(client, { executionId, namespace: 'ns', laneId: uniqueLane(), executionKind: 'k', policyJson: { routing_requirements: { required_capabilities: ['gpu', 'cuda'] } } });
    expect(await redis.hget(new ExecKeys(executionId).core(), 'required_capabilities')).toBe('cuda,gpu');
  });

  it('refuses bad arguments before the round trip', () => {
    expect(() => buildCreateExecution({ executionId: 'nope' as never, namespace: 'ns', laneId: uniqueLane(), executionKind: 'k' }, DEFAULT_PARTITION_CONFIG)).toThrow(ArgumentError);
    expect(() => buildCreateExecution({ executionId: newExecutionId(), namespace: 'n{s}', laneId: uniqueLane(), executionKind: 'k' }, DEFAULT_PARTITION_CONFIG)).toThrow(/namespace/);
    expect(() => buildCreateExecution({ executionId: newExecutionId(), namespace: 'ns', laneId: uniqueLane(), executionKind: 'k', priority: 1.5 }, DEFAULT_PARTITION_CONFIG)).toThrow(/priority/);
  });

  it('answers malformed ARGV sent directly with invalid_input and writes nothing', async () => {
    const executionId = newExecutionId();
    const request = buildCreateExecution({ executionId, namespace: 'ns', laneId: uniqueLane(), executionKind: 'k' }, DEFAULT_PARTITION_CONFIG);
    for (const [slot, value] of [[4, 'x'], [8, 'soon'], [11, 'later'], [10, '{bad']] as const) {
      const argv = [...request.argv];
      argv[slot] = value;
      const reply = await redis.call('FCALL', request.fn, request.keys.length, ...request.keys, ...argv);
      expect(reply).toEqual([0, 'invalid_input', expect.any(String)]);
    }
    expect(await redis.exists(new ExecKeys(executionId).core())).toBe(0);
  });

  it('refuses a partition_id outside 0..65535 and takes priority 0 for an empty one (recorded deviations)', async () => {
    const executionId = newExecutionId();
    const request = buildCreateExecution({ executionId, namespace: 'ns', laneId: uniqueLane(), executionKind: 'k' }, DEFAULT_PARTITION_CONFIG);
    for (const value of ['65536', '-1', 'p1']) {
      await expect(fcallPatched(redis, request, { 12: value })).resolves.toEqual([0, 'invalid_input', expect.stringContaining('partition_id')]);
    }
    expect(await redis.exists(new ExecKeys(executionId).core())).toBe(0);
    await expect(fcallPatched(redis, request, { 4: '' })).resolves.toEqual([1, 'OK', executionId, expect.any(String)]);
    expect(await redis.hget(new ExecKeys(executionId).core(), 'priority')).toBe('0');
  });
});

/** An active execution with one frame appended, so its stream meta exists. */
async function claimedWithStream(client: Parameters<typeof createClaimed>[0], overrides: Parameters<typeof createClaimed>[1] = {}, options: Parameters<typeof createClaimed>[2] = {}) {
  const c = await createClaimed(client, overrides, options);
  await appendFrame(client, { executionId: c.executionId, attemptIndex: c.lease.attemptIndex, leaseId: c.lease.leaseId, leaseEpoch: c.lease.leaseEpoch, attemptId: c.lease.attemptId, frameType: 'log', payload: 'x' });
  return c;
}

describe('ff_cancel_execution', () => {
  const { client, redis } = useServer();

  it('cancels a waiting execution and moves it from eligible to terminal', async () => {
    const c = await createWaiting(client);
    await expect(cancel(client, c.executionId, { reason: 'no longer needed' })).resolves.toEqual({ status: 'cancelled', cancelledFrom: 'runnable' });
    const stored = await core(redis, c.executionId);
    expect(stored).toMatchObject({
      lifecycle_phase: 'terminal', ownership_state: 'unowned', eligibility_state: 'not_applicable', blocking_reason: 'none', blocking_detail: '',
      terminal_outcome: 'cancelled', attempt_state: 'pending_first_attempt', public_state: 'cancelled',
      cancellation_reason: 'no longer needed', cancelled_by: 'operator_override', current_waitpoint_id: '', current_suspension_id: '',
    });
    expect(stored.completed_at).toBe(stored.last_transition_at);
    expect(await laneScore(redis, c.executionId, c.laneId, 'eligible')).toBeNull();
    expect(await laneScore(redis, c.executionId, c.laneId, 'terminal')).toBe(Number(stored.completed_at));
  });

  it('cancels a delayed execution out of the delayed index', async () => {
    const c = await createWaiting(client, { delayUntil: Date.now() + 60_000 });
    await expect(cancel(client, c.executionId)).resolves.toEqual({ status: 'cancelled', cancelledFrom: 'runnable' });
    expect(await laneScore(redis, c.executionId, c.laneId, 'delayed')).toBeNull();
    expect(await laneScore(redis, c.executionId, c.laneId, 'terminal')).not.toBeNull();
  });

  it('lets the lease holder cancel: ends the attempt, closes its stream and releases the lease', async () => {
    const c = await claimedWithStream(client);
    const exec = new ExecKeys(c.executionId);
    const index = new PartitionKeys(exec.tag);
    const result = await cancel(client, c.executionId, { source: 'lease_holder', reason: 'user', leaseId: c.lease.leaseId, leaseEpoch: c.lease.leaseEpoch });
    expect(result).toEqual({ status: 'cancelled', cancelledFrom: 'active' });
    expect(await core(redis, c.executionId)).toMatchObject({
      lifecycle_phase: 'terminal', terminal_outcome: 'cancelled', attempt_state: 'attempt_terminal', cancelled_by: 'lease_holder',
      current_lease_id: '', current_worker_instance_id: '', lease_expires_at: '', current_attempt_id: c.lease.attemptId, current_lease_epoch: '1',
    });
    expect(await redis.hgetall(exec.attemptHash(0))).toMatchObject({ attempt_state: 'ended_cancelled', failure_reason: 'cancelled: user' });
    expect(await redis.hget(exec.streamMeta(0), 'closed_reason')).toBe('attempt_cancelled');
    expect(await redis.exists(exec.leaseCurrent())).toBe(0);
    expect(await redis.zscore(index.leaseExpiry(), c.executionId)).toBeNull();
    expect(await redis.sismember(index.workerLeases(c.workerInstanceId), c.executionId)).toBe(0);
    expect(await laneScore(redis, c.executionId, c.laneId, 'active')).toBeNull();
    expect((await historyEvents(redis, c.executionId)).at(-1)).toMatchObject({ event: 'released', reason: 'cancelled', lease_id: c.lease.leaseId, lease_epoch: '1', attempt_index: '0' });
  });

  it('lets an operator override cancel an active execution without its lease', async () => {
    const c = await createClaimed(client);
    await expect(cancel(client, c.executionId, { reason: 'ops' })).resolves.toEqual({ status: 'cancelled', cancelledFrom: 'active' });
    expect(await core(redis, c.executionId)).toMatchObject({ terminal_outcome: 'cancelled', cancelled_by: 'operator_override' });
  });

  it('stores the execution id as cancelled_by when the source is empty', async () => {
    const c = await createWaiting(client);
    await cancel(client, c.executionId, { source: '' });
    expect((await core(redis, c.executionId)).cancelled_by).toBe(c.executionId);
  });

  it('refuses a non-override cancel with a stale lease or epoch, and of a revoked lease', async () => {
    const c = await createClaimed(client);
    const holder = { source: 'lease_holder', leaseId: c.lease.leaseId, leaseEpoch: c.lease.leaseEpoch };
    await expect(cancel(client, c.executionId, { ...holder, leaseId: newLeaseId() })).rejects.toMatchObject({ code: 'stale_lease' });
    await expect(cancel(client, c.executionId, { ...holder, leaseEpoch: 2 })).rejects.toMatchObject({ code: 'stale_lease' });
    await revokeLease(client, { executionId: c.executionId, workerInstanceId: c.workerInstanceId });
    await expect(cancel(client, c.executionId, holder)).rejects.toMatchObject({ code: 'lease_revoked' });
    expect((await core(redis, c.executionId)).lifecycle_phase).toBe('active');
    await expect(cancel(client, c.executionId)).resolves.toMatchObject({ cancelledFrom: 'active' });
  });

  it('answers execution_not_found and, for a terminal execution, execution_not_active with outcome and epoch', async () => {
    await expect(cancel(client, newExecutionId())).rejects.toMatchObject({ code: 'execution_not_found' });
    const c = await createClaimed(client);
    await cancel(client, c.executionId);
    const again = await cancel(client, c.executionId).catch((e: unknown) => e);
    expect(isScriptError(again, 'execution_not_active') && again.details).toEqual(['cancelled', '1']);
  });

  it('ends the current attempt even when the pre-read index is stale, and sweeps the real holder set', async () => {
    const c = await createClaimed(client, {}, { workerInstanceId: 'holder-1' });
    const exec = new ExecKeys(c.executionId);
    const before = await readExecutionContext(client.transport, c.executionId);
    expect(before).toMatchObject({ exists: true, laneId: c.laneId, currentAttemptIndex: 0, hasAttempt: true, totalAttemptCount: 1, currentWorkerInstanceId: 'holder-1', currentLeaseEpoch: 1, currentLeaseId: c.lease.leaseId, currentAttemptId: c.lease.attemptId });
    // A caller with a wrong pre-read: attempt 5 and no worker instance.
    await expect(client.call(buildCancelExecution({ executionId: c.executionId, laneId: c.laneId, currentAttemptIndex: 5, currentWorkerInstanceId: '' }, client.partitions), (r) => r)).resolves.toEqual([1, 'OK', 'cancelled', 'active']);
    expect(await redis.hget(exec.attemptHash(0), 'attempt_state')).toBe('ended_cancelled');
    expect(await redis.exists(exec.attemptHash(5))).toBe(0);
    expect(await redis.sismember(new PartitionKeys(exec.tag).workerLeases('holder-1'), c.executionId)).toBe(0);
  });

  it('ends an attempt paused by a worker delay (deviation from Q8)', async () => {
    const c = await claimedWithStream(client);
    await delayExecution(client, { ...holderArgs(c), delayUntil: Date.now() + 60_000 });
    await cancel(client, c.executionId);
    const exec = new ExecKeys(c.executionId);
    expect(await redis.hget(exec.attemptHash(0), 'attempt_state')).toBe('ended_cancelled');
    expect(await redis.hget(exec.streamMeta(0), 'closed_reason')).toBe('attempt_cancelled');
    expect((await core(redis, c.executionId)).attempt_state).toBe('attempt_terminal');
    expect(await laneScore(redis, c.executionId, c.laneId, 'delayed')).toBeNull();
  });

  it('publishes a flow member cancel, except for a flow_cascade', async () => {
    const listener = await listenCompletions(inject('redisUrl'));
    try {
      const flow = await newTestFlow(client);
      const quiet = await addMember(client, flow);
      const loud = await addMember(client, flow);
      await cancel(client, quiet.executionId, { source: 'flow_cascade' });
      await cancel(client, loud.executionId);
      await listener.waitFor(1, [quiet.executionId, loud.executionId]);
      expect(listener.of([quiet.executionId, loud.executionId])).toEqual([{ execution_id: loud.executionId, flow_id: flow.flowId, outcome: 'cancelled' }]);
    } finally {
      listener.close();
    }
  });

  it('answers invalid_input, writing nothing, for a mismatched execution id or lane', async () => {
    const c = await createWaiting(client);
    const request = buildCancelExecution({ executionId: c.executionId, laneId: c.laneId, currentAttemptIndex: 0, currentWorkerInstanceId: '' }, client.partitions);
    const before = await keyStates(redis, request.keys);
    await expect(fcallPatched(redis, request, { 0: newExecutionId() })).resolves.toEqual([0, 'invalid_input', expect.any(String)]);
    await expect(fcallPatched(redis, request, { 0: '' })).resolves.toEqual([0, 'invalid_input', expect.any(String)]);
    const otherLane = buildCancelExecution({ executionId: c.executionId, laneId: uniqueLane(), currentAttemptIndex: 0, currentWorkerInstanceId: '' }, client.partitions);
    await expect(client.call(otherLane, (r) => r)).resolves.toEqual([0, 'invalid_input', expect.stringContaining(c.laneId)]);
    expect(await keyStates(redis, request.keys)).toEqual(before);
  });
});

describe('ff_delay_execution', () => {
  const { client, redis } = useServer();

  it('releases the lease, pauses the attempt and files the execution as delayed', async () => {
    const c = await createClaimed(client, {}, { workerInstanceId: 'w-delay' });
    const delayUntil = Date.now() + 60_000;
    await expect(delayExecution(client, { ...holderArgs(c), delayUntil })).resolves.toEqual({ status: 'OK', delayUntil });
    const exec = new ExecKeys(c.executionId);
    const index = new PartitionKeys(exec.tag);
    expect(await core(redis, c.executionId)).toMatchObject({
      lifecycle_phase: 'runnable', ownership_state: 'unowned', eligibility_state: 'not_eligible_until_time', blocking_reason: 'waiting_for_delay',
      blocking_detail: `delayed until ${delayUntil}`, terminal_outcome: 'none', attempt_state: 'attempt_interrupted', public_state: 'delayed',
      delay_until: String(delayUntil), current_lease_id: '', current_worker_id: '', current_worker_instance_id: '', lease_expires_at: '',
      current_attempt_index: '0', current_attempt_id: c.lease.attemptId, current_lease_epoch: '1',
    });
    expect(await redis.hgetall(exec.attemptHash(0))).toMatchObject({ attempt_state: 'suspended', suspension_id: 'worker_delay' });
    expect(await laneScore(redis, c.executionId, c.laneId, 'delayed')).toBe(delayUntil);
    expect(await laneScore(redis, c.executionId, c.laneId, 'active')).toBeNull();
    expect(await redis.zscore(index.leaseExpiry(), c.executionId)).toBeNull();
    expect(await redis.sismember(index.workerLeases('w-delay'), c.executionId)).toBe(0);
    expect(await redis.exists(exec.leaseCurrent())).toBe(0);
    expect((await historyEvents(redis, c.executionId)).at(-1)).toMatchObject({ event: 'released', reason: 'worker_delay', attempt_id: c.lease.attemptId, attempt_index: '0' });
  });

  it('answers the lease errors', async () => {
    await expect(delayExecution(client, { executionId: newExecutionId(), laneId: uniqueLane(), workerInstanceId: 'w', attemptIndex: 0, leaseId: newLeaseId(), leaseEpoch: 1, attemptId: newAttemptId(), delayUntil: 1 })).rejects.toMatchObject({ code: 'execution_not_found' });
    const c = await createClaimed(client);
    await expect(delayExecution(client, { ...holderArgs(c), leaseEpoch: 7, delayUntil: 1 })).rejects.toMatchObject({ code: 'stale_lease' });
    await expect(delayExecution(client, { ...holderArgs(c), attemptId: newAttemptId(), delayUntil: 1 })).rejects.toMatchObject({ code: 'stale_lease' });
    await delayExecution(client, { ...holderArgs(c), delayUntil: 1 });
    const again = await delayExecution(client, { ...holderArgs(c), delayUntil: 1 }).catch((e: unknown) => e);
    expect(isScriptError(again, 'execution_not_active') && again.details).toEqual(['none', '1']);
    const revoked = await createClaimed(client);
    await revokeLease(client, { executionId: revoked.executionId, workerInstanceId: revoked.workerInstanceId });
    await expect(delayExecution(client, { ...holderArgs(revoked), delayUntil: 1 })).rejects.toMatchObject({ code: 'lease_revoked' });
  });

  it('answers lease_expired for a lapsed lease and marks it expired', async () => {
    const c = await createClaimed(client, {}, { leaseTtlMs: 50 });
    await waitUntilServerTime(redis, c.claim.leaseExpiresAt);
    await expect(delayExecution(client, { ...holderArgs(c), delayUntil: 1 })).rejects.toMatchObject({ code: 'lease_expired' });
    expect(await core(redis, c.executionId)).toMatchObject({ lifecycle_phase: 'active', ownership_state: 'lease_expired_reclaimable', attempt_state: 'attempt_interrupted' });
  });

  it('refuses a non-integer delay_until before writing (deviation)', async () => {
    const c = await createClaimed(client);
    const request = buildDelayExecution({ ...holderArgs(c), delayUntil: 1 }, client.partitions);
    const before = await keyStates(redis, request.keys);
    for (const value of ['soon', '', '1.5']) {
      await expect(fcallPatched(redis, request, { 4: value })).resolves.toEqual([0, 'invalid_input', expect.stringContaining('delay_until')]);
    }
    await expect(fcallPatched(redis, request, { 0: newExecutionId() })).resolves.toEqual([0, 'invalid_input', 'execution_id does not match the core key']);
    expect(await keyStates(redis, request.keys)).toEqual(before);
  });
});

describe('ff_move_to_waiting_children', () => {
  const { client, redis } = useServer();

  it('releases the lease and blocks the execution on its dependencies', async () => {
    const c = await createClaimed(client);
    await expect(moveToWaitingChildren(client, holderArgs(c))).resolves.toEqual({ status: 'OK' });
    const stored = await core(redis, c.executionId);
    expect(stored).toMatchObject({
      lifecycle_phase: 'runnable', ownership_state: 'unowned', eligibility_state: 'blocked_by_dependencies', blocking_reason: 'waiting_for_children',
      blocking_detail: 'waiting for child executions to complete', attempt_state: 'attempt_interrupted', public_state: 'waiting_children', current_lease_id: '',
    });
    expect(await laneScore(redis, c.executionId, c.laneId, 'blocked:dependencies')).toBe(Number(stored.created_at));
    expect(await laneScore(redis, c.executionId, c.laneId, 'active')).toBeNull();
    expect(await redis.hget(new ExecKeys(c.executionId).attemptHash(0), 'suspension_id')).toBe('waiting_children');
    expect((await historyEvents(redis, c.executionId)).at(-1)).toMatchObject({ event: 'released', reason: 'waiting_children' });
  });

  it('answers execution_not_found, stale_lease and execution_not_active', async () => {
    await expect(moveToWaitingChildren(client, { executionId: newExecutionId(), laneId: uniqueLane(), workerInstanceId: 'w', attemptIndex: 0, leaseId: newLeaseId(), leaseEpoch: 1, attemptId: newAttemptId() })).rejects.toMatchObject({ code: 'execution_not_found' });
    const c = await createClaimed(client);
    await expect(moveToWaitingChildren(client, { ...holderArgs(c), leaseId: newLeaseId() })).rejects.toMatchObject({ code: 'stale_lease' });
    await moveToWaitingChildren(client, holderArgs(c));
    await expect(moveToWaitingChildren(client, holderArgs(c))).rejects.toMatchObject({ code: 'execution_not_active' });
  });

  it('answers invalid_input, writing nothing, for an empty or mismatched execution id', async () => {
    const c = await createClaimed(client);
    const request = buildMoveToWaitingChildren(holderArgs(c), client.partitions);
    const before = await keyStates(redis, request.keys);
    await expect(fcallPatched(redis, request, { 0: '' })).resolves.toEqual([0, 'invalid_input', expect.any(String)]);
    await expect(fcallPatched(redis, request, { 0: newExecutionId() })).resolves.toEqual([0, 'invalid_input', 'execution_id does not match the core key']);
    expect(await keyStates(redis, request.keys)).toEqual(before);
  });
});

describe('ff_fail_execution', () => {
  const { client, redis } = useServer();

  it('fails terminally without a retry policy: ends the attempt, closes the stream, indexes it terminal', async () => {
    const c = await claimedWithStream(client, {}, { workerInstanceId: 'w-fail' });
    await expect(failExecution(client, { ...holderArgs(c), failureReason: 'boom', failureCategory: 'crash' })).resolves.toEqual({ status: 'terminal_failed' });
    const exec = new ExecKeys(c.executionId);
    const index = new PartitionKeys(exec.tag);
    const stored = await core(redis, c.executionId);
    expect(stored).toMatchObject({
      lifecycle_phase: 'terminal', ownership_state: 'unowned', terminal_outcome: 'failed', attempt_state: 'attempt_terminal', public_state: 'failed',
      failure_reason: 'boom', current_lease_id: '', lease_expires_at: '', retry_count: '0',
    });
    expect(await redis.hgetall(exec.attemptHash(0))).toMatchObject({ attempt_state: 'ended_failure', failure_reason: 'boom', failure_category: 'crash' });
    expect(await redis.hget(exec.streamMeta(0), 'closed_reason')).toBe('attempt_failure');
    expect(await laneScore(redis, c.executionId, c.laneId, 'terminal')).toBe(Number(stored.completed_at));
    expect(await laneScore(redis, c.executionId, c.laneId, 'active')).toBeNull();
    expect(await redis.sismember(index.workerLeases('w-fail'), c.executionId)).toBe(0);
    expect((await historyEvents(redis, c.executionId)).at(-1)).toMatchObject({ event: 'released', reason: 'failed_terminal' });
  });

  it('schedules a retry with exponential backoff into the delayed index', async () => {
    const c = await createClaimed(client);
    const policy = { max_retries: 2, backoff: { type: 'exponential', initial_delay_ms: 5000, max_delay_ms: 60_000, multiplier: 3, jitter: false } };
    const result = await failExecution(client, { ...holderArgs(c), failureReason: 'flaky', retryPolicyJson: policy });
    if (result.status !== 'retry_scheduled') throw new Error('expected a retry');
    const stored = await core(redis, c.executionId);
    expect(result.delayUntil).toBe(Number(stored.last_transition_at) + 5000);
    expect(stored).toMatchObject({
      lifecycle_phase: 'runnable', ownership_state: 'unowned', eligibility_state: 'not_eligible_until_time', blocking_reason: 'waiting_for_retry_backoff',
      blocking_detail: `retry backoff until ${result.delayUntil} (attempt 0 failed: flaky)`, terminal_outcome: 'none', attempt_state: 'pending_retry_attempt',
      public_state: 'delayed', pending_retry_reason: 'flaky', pending_previous_attempt_index: '0', retry_count: '1', current_attempt_id: '',
      current_lease_id: '', delay_until: String(result.delayUntil), failure_reason: 'flaky', current_attempt_index: '0', current_lease_epoch: '1',
    });
    expect(await laneScore(redis, c.executionId, c.laneId, 'delayed')).toBe(result.delayUntil);
    expect(await laneScore(redis, c.executionId, c.laneId, 'terminal')).toBeNull();
    expect((await historyEvents(redis, c.executionId)).at(-1)).toMatchObject({ event: 'released', reason: 'failed_retry_scheduled' });
  });

  it.each([
    [{ max_retries: 1, backoff: { type: 'fixed', delay_ms: 750 } }, 750],
    [{ max_retries: 1 }, 1000],
    [{ max_retries: 1, backoff: { type: 'exponential', initial_delay_ms: 90_000, max_delay_ms: 2000, multiplier: 2 } }, 2000],
    [{ max_retries: 1, backoff: { type: 'exponential', initial_delay_ms: 1000.7 } }, 1000],
  ])('computes the backoff of %j as %d ms (whole ms)', async (policy, backoff) => {
    const c = await createClaimed(client);
    const result = await failExecution(client, { ...holderArgs(c), retryPolicyJson: policy });
    expect(result.status).toBe('retry_scheduled');
    const stored = await core(redis, c.executionId);
    expect(result.status === 'retry_scheduled' && result.delayUntil).toBe(Number(stored.last_transition_at) + backoff);
  });

  it.each([[undefined], [{ max_retries: 0 }], [{}]])('fails terminally for the policy %j', async (policy) => {
    const c = await createClaimed(client);
    await expect(failExecution(client, { ...holderArgs(c), ...(policy ? { retryPolicyJson: policy } : {}) })).resolves.toEqual({ status: 'terminal_failed' });
  });

  it('refuses a retry policy that is not an object: ArgumentError in the wrapper, invalid_input in the Lua, writing nothing', async () => {
    const c = await createClaimed(client);
    const asString = JSON.stringify({ max_retries: 3 }) as unknown as RetryPolicyJson;
    await expect((async () => failExecution(client, { ...holderArgs(c), retryPolicyJson: asString }))()).rejects.toThrow(ArgumentError);
    const request = buildFailExecution({ ...holderArgs(c), retryPolicyJson: { max_retries: 3 } }, client.partitions);
    const before = await core(redis, c.executionId);
    for (const text of ['"{\\"max_retries\\":3}"', 'null', '[1,2]', '{"max_retries":"3"}', '{"backoff":5}', '{"retryable_categories":[1]}']) {
      expect(await fcallPatched(redis, request, { 6: text }), text).toEqual([0, 'invalid_input', expect.stringContaining('retry_policy_json')]);
    }
    expect(await core(redis, c.executionId)).toEqual(before);
  });

  it('publishes a flow member failure on the terminal path only', async () => {
    const listener = await listenCompletions(inject('redisUrl'));
    try {
      const flow = await newTestFlow(client);
      const retried = await claim(client, await addMember(client, flow));
      const failed = await claim(client, await addMember(client, flow));
      await failExecution(client, { ...holderArgs(retried), retryPolicyJson: { max_retries: 1 } });
      await failExecution(client, { ...holderArgs(failed) });
      await listener.waitFor(1, [retried.executionId, failed.executionId]);
      expect(listener.of([retried.executionId, failed.executionId])).toEqual([{ execution_id: failed.executionId, flow_id: flow.flowId, outcome: 'failed' }]);
    } finally {
      listener.close();
    }
  });

  it('answers the lease errors', async () => {
    await expect(failExecution(client, { executionId: newExecutionId(), laneId: uniqueLane(), workerInstanceId: 'w', attemptIndex: 0, leaseId: newLeaseId(), leaseEpoch: 1, attemptId: newAttemptId() })).rejects.toMatchObject({ code: 'execution_not_found' });
    const c = await createClaimed(client);
    await expect(failExecution(client, { ...holderArgs(c), leaseId: newLeaseId() })).rejects.toMatchObject({ code: 'stale_lease' });
    await failExecution(client, holderArgs(c));
    const again = await failExecution(client, holderArgs(c)).catch((e: unknown) => e);
    expect(isScriptError(again, 'execution_not_active') && again.details).toEqual(['failed', '1']);
    const revoked = await createClaimed(client);
    await revokeLease(client, { executionId: revoked.executionId, workerInstanceId: revoked.workerInstanceId });
    await expect(failExecution(client, holderArgs(revoked))).rejects.toMatchObject({ code: 'lease_revoked' });
    const lapsed = await createClaimed(client, {}, { leaseTtlMs: 50 });
    await waitUntilServerTime(redis, lapsed.claim.leaseExpiresAt);
    await expect(failExecution(client, holderArgs(lapsed))).rejects.toMatchObject({ code: 'lease_expired' });
    expect((await core(redis, lapsed.executionId)).ownership_state).toBe('lease_expired_reclaimable');
  });

  it('refuses a malformed retry policy before writing (deviation)', async () => {
    const c = await createClaimed(client);
    const request = buildFailExecution(holderArgs(c), client.partitions);
    const before = await keyStates(redis, request.keys);
    for (const value of ['{bad', '{"max_retries":"3"}', '{"max_retries":1,"backoff":{"type":"fixed","delay_ms":"x"}}', '{"max_retries":1,"backoff":5}', '{"max_retries":1,"backoff":{"type":"exponential","multiplier":true}}']) {
      await expect(fcallPatched(redis, request, { 6: value })).resolves.toEqual([0, 'invalid_input', expect.stringContaining('retry_policy_json')]);
    }
    await expect(fcallPatched(redis, request, { 0: '' })).resolves.toEqual([0, 'invalid_input', expect.any(String)]);
    await expect(fcallPatched(redis, request, { 0: newExecutionId() })).resolves.toEqual([0, 'invalid_input', 'execution_id does not match the core key']);
    expect(await keyStates(redis, request.keys)).toEqual(before);
  });
});

describe('ff_reclaim_execution', () => {
  const { client, redis } = useServer();

  it('takes over an expired lease with a new reclaim attempt and the next epoch', async () => {
    const c = await claimedWithStream(client, {}, { workerInstanceId: 'old-1', leaseTtlMs: 50 });
    await lapseLease(client, redis, c.executionId, c.claim.leaseExpiresAt);
    const exec = new ExecKeys(c.executionId);
    const index = new PartitionKeys(exec.tag);
    const r = await reclaim(client, c.executionId, c.laneId, 'new');
    expect(r.result).toMatchObject({ status: 'OK', leaseEpoch: 2, attemptIndex: 1, attemptType: 'reclaim' });
    const stored = await core(redis, c.executionId);
    expect(stored).toMatchObject({
      lifecycle_phase: 'active', ownership_state: 'leased', eligibility_state: 'not_applicable', blocking_reason: 'none', attempt_state: 'running_attempt',
      public_state: 'active', current_attempt_index: '1', total_attempt_count: '2', current_lease_epoch: '2', current_lease_id: r.lease.leaseId,
      current_attempt_id: r.lease.attemptId, current_worker_id: 'new', current_worker_instance_id: 'new-1', lease_reclaim_count: '1',
      lease_expired_at: '', lease_revoked_at: '', lease_expires_at: String(r.result.leaseExpiresAt),
    });
    expect(await redis.hgetall(exec.attemptHash(0))).toMatchObject({ attempt_state: 'interrupted_reclaimed', failure_reason: 'lease_lease_expired_reclaimable' });
    expect(await redis.hget(exec.streamMeta(0), 'closed_reason')).toBe('reclaimed');
    expect(await redis.hgetall(exec.attemptHash(1))).toMatchObject({
      attempt_type: 'reclaim', attempt_state: 'started', attempt_index: '1', lease_epoch: '2', worker_id: 'new', worker_instance_id: 'new-1',
      reclaim_reason: 'lease_lease_expired_reclaimable', previous_attempt_index: '0',
    });
    expect(await redis.hget(exec.attemptUsage(1), 'last_usage_report_seq')).toBe('0');
    expect(await redis.zrange(exec.attempts(), '0', '-1')).toEqual(['0', '1']);
    expect(await redis.hgetall(exec.leaseCurrent())).toMatchObject({ lease_id: r.lease.leaseId, lease_epoch: '2', worker_instance_id: 'new-1', expires_at: String(r.result.leaseExpiresAt) });
    expect(Number(await redis.zscore(index.leaseExpiry(), c.executionId))).toBe(r.result.leaseExpiresAt);
    expect(await laneScore(redis, c.executionId, c.laneId, 'active')).toBe(r.result.leaseExpiresAt);
    expect(await redis.sismember(index.workerLeases('new-1'), c.executionId)).toBe(1);
    expect(await redis.sismember(index.workerLeases('old-1'), c.executionId)).toBe(0);
    expect(await redis.exists(exec.claimGrant())).toBe(0);
    expect((await historyEvents(redis, c.executionId)).map((e) => e.event)).toEqual(['acquired', 'expired', 'reclaimed']);
    expect((await historyEvents(redis, c.executionId)).at(-1)).toMatchObject({ old_lease_epoch: '1', new_lease_id: r.lease.leaseId, new_lease_epoch: '2', new_attempt_index: '1', worker_id: 'new' });
  });

  it('ends the real old attempt even when the pre-read attempt index is stale', async () => {
    const c = await createClaimed(client);
    await revokeLease(client, { executionId: c.executionId, workerInstanceId: c.workerInstanceId });
    await issueReclaimGrant(client, { executionId: c.executionId, laneId: c.laneId, workerId: 'w', workerInstanceId: 'w-1', grantTtlMs: 5000 });
    const result = await reclaimExecution(client, { executionId: c.executionId, laneId: c.laneId, workerId: 'w', workerInstanceId: 'w-1', currentAttemptIndex: 4, newAttemptIndex: 7, leaseId: newLeaseId(), attemptId: newAttemptId(), leaseTtlMs: 1000 });
    expect(result).toMatchObject({ attemptIndex: 1, attemptType: 'reclaim' });
    const exec = new ExecKeys(c.executionId);
    expect(await redis.hget(exec.attemptHash(0), 'attempt_state')).toBe('interrupted_reclaimed');
    expect(await redis.exists(exec.attemptHash(4))).toBe(0);
    expect(await redis.exists(exec.attemptHash(7))).toBe(0);
  });

  it('takes over a revoked lease', async () => {
    const c = await createClaimed(client);
    await revokeLease(client, { executionId: c.executionId, workerInstanceId: c.workerInstanceId });
    const r = await reclaim(client, c.executionId, c.laneId);
    expect(r.result.attemptType).toBe('reclaim');
    expect(await redis.hget(new ExecKeys(c.executionId).attemptHash(1), 'reclaim_reason')).toBe('lease_lease_revoked');
  });

  it('answers execution_not_found, execution_not_reclaimable and invalid_claim_grant', async () => {
    const base = { laneId: uniqueLane(), workerId: 'w', workerInstanceId: 'w-1', currentAttemptIndex: 0, leaseId: newLeaseId(), attemptId: newAttemptId(), leaseTtlMs: 1000 };
    await expect(reclaimExecution(client, { ...base, executionId: newExecutionId() })).rejects.toMatchObject({ code: 'execution_not_found' });
    const waiting = await createWaiting(client);
    await expect(reclaimExecution(client, { ...base, executionId: waiting.executionId, laneId: waiting.laneId })).rejects.toMatchObject({ code: 'execution_not_reclaimable' });
    const leased = await createClaimed(client);
    await expect(reclaimExecution(client, { ...base, executionId: leased.executionId, laneId: leased.laneId })).rejects.toMatchObject({ code: 'execution_not_reclaimable' });
    await revokeLease(client, { executionId: leased.executionId, workerInstanceId: leased.workerInstanceId });
    await expect(reclaimExecution(client, { ...base, executionId: leased.executionId, laneId: leased.laneId })).rejects.toMatchObject({ code: 'invalid_claim_grant' });
    await issueReclaimGrant(client, { executionId: leased.executionId, laneId: leased.laneId, workerId: 'someone-else', workerInstanceId: 'x', grantTtlMs: 5000 });
    await expect(reclaimExecution(client, { ...base, executionId: leased.executionId, laneId: leased.laneId })).rejects.toMatchObject({ code: 'invalid_claim_grant' });
  });

  it('fails the execution once max_reclaim_count is reached, answering max_retries_exhausted (deviations from Q7)', async () => {
    const listener = await listenCompletions(inject('redisUrl'));
    try {
      const flow = await newTestFlow(client);
      const member = await addMember(client, flow, { policyJson: { max_reclaim_count: 0 } });
      const held = await claim(client, member, { workerInstanceId: 'holder-9' });
      await appendFrame(client, { executionId: held.executionId, attemptIndex: 0, leaseId: held.lease.leaseId, leaseEpoch: 1, attemptId: held.lease.attemptId, frameType: 'log' });
      await revokeLease(client, { executionId: held.executionId, workerInstanceId: held.workerInstanceId });
      await issueReclaimGrant(client, { executionId: held.executionId, laneId: held.laneId, workerId: 'w', workerInstanceId: 'w-1', grantTtlMs: 5000 });
      const error = await reclaimExecution(client, { executionId: held.executionId, laneId: held.laneId, workerId: 'w', workerInstanceId: 'w-1', currentAttemptIndex: 0, leaseId: newLeaseId(), attemptId: newAttemptId(), leaseTtlMs: 1000 }).catch((e: unknown) => e);
      expect(isScriptError(error, 'max_retries_exhausted')).toBe(true);
      const stored = await core(redis, held.executionId);
      expect(stored).toMatchObject({ lifecycle_phase: 'terminal', terminal_outcome: 'failed', public_state: 'failed', attempt_state: 'attempt_terminal', failure_reason: 'max_reclaims_exceeded', current_lease_id: '' });
      const exec = new ExecKeys(held.executionId);
      expect(await redis.hgetall(exec.attemptHash(0))).toMatchObject({ attempt_state: 'ended_failure', failure_reason: 'max_reclaims_exceeded' });
      expect(await redis.hget(exec.streamMeta(0), 'closed_reason')).toBe('attempt_failure');
      expect(await laneScore(redis, held.executionId, held.laneId, 'terminal')).toBe(Number(stored.completed_at));
      expect(await laneScore(redis, held.executionId, held.laneId, 'active')).toBeNull();
      expect(await redis.exists(exec.leaseCurrent())).toBe(0);
      await listener.waitFor(1, [held.executionId]);
      expect(listener.of([held.executionId])).toEqual([{ execution_id: held.executionId, flow_id: flow.flowId, outcome: 'failed' }]);
    } finally {
      listener.close();
    }
  });

  it('refuses a non-integer or non-positive lease_ttl_ms and a mismatched id before writing (deviation)', async () => {
    const c = await createClaimed(client);
    await revokeLease(client, { executionId: c.executionId, workerInstanceId: c.workerInstanceId });
    await issueReclaimGrant(client, { executionId: c.executionId, laneId: c.laneId, workerId: 'w', workerInstanceId: 'w-1', grantTtlMs: 5000 });
    const request = buildReclaimExecution({ executionId: c.executionId, laneId: c.laneId, workerId: 'w', workerInstanceId: 'w-1', currentAttemptIndex: 0, leaseId: newLeaseId(), attemptId: newAttemptId(), leaseTtlMs: 1000 }, client.partitions);
    const before = await keyStates(redis, request.keys);
    for (const [slot, value] of [[5, 'x'], [5, '-5'], [5, '0'], [5, '1.5'], [0, newExecutionId()], [1, '']] as const) {
      await expect(fcallPatched(redis, request, { [slot]: value })).resolves.toEqual([0, 'invalid_input', expect.any(String)]);
    }
    expect(await keyStates(redis, request.keys)).toEqual(before);
    expect(() => buildReclaimExecution({ executionId: c.executionId, laneId: c.laneId, workerId: 'w', workerInstanceId: 'w-1', currentAttemptIndex: 0, leaseId: newLeaseId(), attemptId: newAttemptId(), leaseTtlMs: 0 }, client.partitions)).toThrow(ArgumentError);
  });
});

describe('ff_expire_execution', () => {
  const { client, redis } = useServer();

  it('expires an active execution: ends the attempt, closes the stream, releases the lease', async () => {
    const c = await claimedWithStream(client, {}, { workerInstanceId: 'w-exp' });
    await expect(expire(client, c.executionId, 'execution_deadline')).resolves.toEqual({ status: 'expired', expiredFrom: 'active' });
    const exec = new ExecKeys(c.executionId);
    const index = new PartitionKeys(exec.tag);
    const stored = await core(redis, c.executionId);
    expect(stored).toMatchObject({
      lifecycle_phase: 'terminal', ownership_state: 'unowned', eligibility_state: 'not_applicable', terminal_outcome: 'expired', attempt_state: 'attempt_terminal',
      public_state: 'expired', failure_reason: 'execution_deadline', current_lease_id: '', current_worker_instance_id: '', lease_expires_at: '',
    });
    expect(await redis.hgetall(exec.attemptHash(0))).toMatchObject({ attempt_state: 'ended_failure', failure_reason: 'execution_deadline' });
    expect(await redis.hget(exec.streamMeta(0), 'closed_reason')).toBe('expired');
    expect(await redis.exists(exec.leaseCurrent())).toBe(0);
    expect(await redis.zscore(index.leaseExpiry(), c.executionId)).toBeNull();
    expect(await redis.sismember(index.workerLeases('w-exp'), c.executionId)).toBe(0);
    expect(await laneScore(redis, c.executionId, c.laneId, 'active')).toBeNull();
    expect(await laneScore(redis, c.executionId, c.laneId, 'terminal')).toBe(Number(stored.completed_at));
    expect((await historyEvents(redis, c.executionId)).at(-1)).toMatchObject({ event: 'released', reason: 'expired:execution_deadline', lease_epoch: '1' });
  });

  it('expires a waiting execution out of the eligible index, keeping its attempt state', async () => {
    const c = await createWaiting(client, { executionDeadlineAt: Date.now() + 60_000 });
    await expect(expire(client, c.executionId)).resolves.toEqual({ status: 'expired', expiredFrom: 'runnable' });
    expect(await core(redis, c.executionId)).toMatchObject({ terminal_outcome: 'expired', attempt_state: 'pending_first_attempt', failure_reason: 'attempt_timeout' });
    expect(await laneScore(redis, c.executionId, c.laneId, 'eligible')).toBeNull();
    expect(await redis.zscore(new PartitionKeys(new ExecKeys(c.executionId).tag).executionDeadline(), c.executionId)).toBeNull();
  });

  it('expires a worker-delayed execution and ends its paused attempt (deviation)', async () => {
    const c = await claimedWithStream(client);
    await delayExecution(client, { ...holderArgs(c), delayUntil: Date.now() + 60_000 });
    await expire(client, c.executionId);
    const exec = new ExecKeys(c.executionId);
    expect(await laneScore(redis, c.executionId, c.laneId, 'delayed')).toBeNull();
    expect(await redis.hget(exec.attemptHash(0), 'attempt_state')).toBe('ended_failure');
    expect(await redis.hget(exec.streamMeta(0), 'closed_reason')).toBe('expired');
  });

  it('expires a suspended execution: closes the suspension and its stream, leaves the suspended indexes', async () => {
    const c = await claimedWithStream(client);
    await suspendClaimed(client, c, 60_000);
    const exec = new ExecKeys(c.executionId);
    const index = new PartitionKeys(exec.tag);
    expect(await laneScore(redis, c.executionId, c.laneId, 'suspended')).not.toBeNull();
    await expect(expire(client, c.executionId)).resolves.toEqual({ status: 'expired', expiredFrom: 'suspended' });
    expect(await core(redis, c.executionId)).toMatchObject({ terminal_outcome: 'expired', attempt_state: 'attempt_terminal', current_suspension_id: '', current_waitpoint_id: '' });
    expect(await redis.hget(exec.suspensionCurrent(), 'close_reason')).toBe('expired:attempt_timeout');
    expect(await redis.hget(exec.attemptHash(0), 'attempt_state')).toBe('ended_failure');
    expect(await redis.hget(exec.streamMeta(0), 'closed_reason')).toBe('expired');
    expect(await laneScore(redis, c.executionId, c.laneId, 'suspended')).toBeNull();
    expect(await redis.zscore(index.suspensionTimeout(), c.executionId)).toBeNull();
  });

  it('ends the current attempt even with a stale pre-read, sweeps the real holder set, and reads an empty reason as attempt_timeout', async () => {
    const c = await createClaimed(client, {}, { workerInstanceId: 'holder-e' });
    const exec = new ExecKeys(c.executionId);
    const stale = buildExpireExecution({ executionId: c.executionId, laneId: c.laneId, currentAttemptIndex: 9, currentWorkerInstanceId: '', expireReason: '' }, client.partitions);
    await expect(client.call(stale, (r) => r)).resolves.toEqual([1, 'OK', 'expired', 'active']);
    expect(await redis.hgetall(exec.attemptHash(0))).toMatchObject({ attempt_state: 'ended_failure', failure_reason: 'attempt_timeout' });
    expect(await redis.exists(exec.attemptHash(9))).toBe(0);
    expect(await redis.sismember(new PartitionKeys(exec.tag).workerLeases('holder-e'), c.executionId)).toBe(0);
    expect((await core(redis, c.executionId)).failure_reason).toBe('attempt_timeout');
  });

  it('only cleans the timeout indexes of a missing or terminal execution', async () => {
    const missing = newExecutionId();
    const index = new PartitionKeys(new ExecKeys(missing).tag);
    await redis.zadd(index.attemptTimeout(), '1', missing); // a stale scanner entry
    await expect(expire(client, missing)).resolves.toEqual({ status: 'not_found_cleaned' });
    expect(await redis.zscore(index.attemptTimeout(), missing)).toBeNull();
    const c = await createWaiting(client);
    await expire(client, c.executionId);
    const before = await core(redis, c.executionId);
    await expect(expire(client, c.executionId)).resolves.toEqual({ status: 'already_terminal' });
    expect(await core(redis, c.executionId)).toEqual(before);
  });

  it('publishes a flow member expiry (deviation from Q10)', async () => {
    const listener = await listenCompletions(inject('redisUrl'));
    try {
      const flow = await newTestFlow(client);
      const member = await addMember(client, flow);
      await expire(client, member.executionId);
      await listener.waitFor(1, [member.executionId]);
      expect(listener.of([member.executionId])).toEqual([{ execution_id: member.executionId, flow_id: flow.flowId, outcome: 'expired' }]);
    } finally {
      listener.close();
    }
  });

  it('answers invalid_input, writing nothing, for a mismatched execution id or lane', async () => {
    const c = await createWaiting(client);
    const request = buildExpireExecution({ executionId: c.executionId, laneId: c.laneId, currentAttemptIndex: 0, currentWorkerInstanceId: '' }, client.partitions);
    const before = await keyStates(redis, request.keys);
    await expect(fcallPatched(redis, request, { 0: newExecutionId() })).resolves.toEqual([0, 'invalid_input', expect.any(String)]);
    const otherLane = buildExpireExecution({ executionId: c.executionId, laneId: uniqueLane(), currentAttemptIndex: 0, currentWorkerInstanceId: '' }, client.partitions);
    await expect(client.call(otherLane, (r) => r)).resolves.toEqual([0, 'invalid_input', expect.any(String)]);
    expect(await keyStates(redis, request.keys)).toEqual(before);
  });
});
