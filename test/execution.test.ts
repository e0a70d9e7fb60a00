import { describe, expect, it } from 'vitest';
import { createExecution, buildCreateExecution } from '../generated/execution.js';
import { ExecKeys, PartitionKeys } from '../generated/keys.js';
import { ArgumentError, ScriptError } from '../runtime/errors.js';
import { DEFAULT_PARTITION_CONFIG } from '../runtime/partition.js';
import { useServer } from './support/client.js';
import { newExecutionId, uniqueLane } from './support/ids.js';

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
});
