// ff_suspend_execution, ff_resume_execution, ff_create_pending_waitpoint,
// ff_expire_suspension, ff_close_waitpoint, ff_rotate_waitpoint_hmac_secret and
// ff_list_waitpoint_hmac_kids: happy paths with state read back, every error code, and the
// Lua's own defences against malformed ARGV and KEYS.
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ExecKeys, PartitionKeys } from '../generated/keys.js';
import { revokeLease } from '../generated/lease.js';
import { bufferSignalForPendingWaitpoint } from '../generated/signal.js';
import {
  buildCreatePendingWaitpoint,
  buildExpireSuspension,
  buildListWaitpointHmacKids,
  buildResumeExecution,
  buildRotateWaitpointHmacSecret,
  buildSuspendExecution,
  closeWaitpoint,
  createPendingWaitpoint,
  expireSuspension,
  listWaitpointHmacKids,
  resumeExecution,
  rotateWaitpointHmacSecret,
  suspendExecution,
} from '../generated/suspension.js';
import { ScriptError } from '../runtime/errors.js';
import { newAttemptId, newLeaseId, newSuspensionId, newWaitpointId, parseWaitpointId, type ExecutionId } from '../runtime/ids.js';
import { DEFAULT_PARTITION_CONFIG } from '../runtime/partition.js';
import { expireSuspensionOf, resumeSuspendedExecution } from '../operations/waitpoints.js';
import { useServer } from './support/client.js';
import { newExecutionId } from './support/ids.js';
import { createClaimed } from './support/lifecycle.js';
import { fcallPatched, keyStates } from './support/raw.js';
import {
  TEST_SECRET_HEX,
  bufferArgs,
  claimedWithKeyring,
  createPending,
  createSuspended,
  deliver,
  expectedToken,
  keysOf,
  privatePartition,
  sleep,
  suspendArgs,
  suspendClaimed,
} from './support/suspension.js';

const CONFIG = DEFAULT_PARTITION_CONFIG;

async function scriptError(promise: Promise<unknown>): Promise<ScriptError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof ScriptError)) throw new Error(`expected a ScriptError, got ${String(error)}`);
  return error;
}

describe('waitpoint tokens (model.md §8)', () => {
  const { client, redis } = useServer();

  // A key ring and a pending waitpoint whose binding fields are set to a worked example's.
  async function exampleWaitpoint(secretHex: string, waitpointId: string, waitpointKey: string, createdAt: string) {
    const partition = privatePartition();
    await redis.hset(PartitionKeys.forPartition(partition).waitpointHmacSecrets(), 'current_kid', 'k1', 'secret:k1', secretHex);
    const c = await createClaimed(client, { executionId: newExecutionId(partition) });
    const wp = parseWaitpointId(waitpointId);
    await createPendingWaitpoint(client, { executionId: c.executionId, attemptIndex: 0, waitpointId: wp, waitpointKey, expiresInMs: 60_000 });
    // The binding time is the server's clock at mint; pin it to the example's.
    await redis.hset(new PartitionKeys(new ExecKeys(c.executionId).tag).waitpoint(wp), 'created_at', createdAt);
    return { ...c, waitpointId: wp };
  }

  it('§8.5 example 1 (32-byte key): the engine accepts exactly the published token', async () => {
    const secret = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
    const id = '6ba7b810-9dad-11d1-80b4-00c04fd430c8';
    const token = 'k1:e147dac0dcd7b8468fc83a5c2b3275f537b11dee';
    expect(expectedToken('k1', secret, id, `wpk:${id}`, '1713100800150')).toBe(token);
    const wp = await exampleWaitpoint(secret, id, `wpk:${id}`, '1713100800150');
    await expect(bufferSignalForPendingWaitpoint(client, bufferArgs({ ...wp, token }, 'go'))).resolves.toMatchObject({ status: 'OK', effect: 'buffered_for_pending_waitpoint' });
    const oneOff = `${token.slice(0, -1)}f`;
    await expect(scriptError(bufferSignalForPendingWaitpoint(client, bufferArgs({ ...wp, token: oneOff }, 'go')))).resolves.toMatchObject({ code: 'invalid_token' });
    await expect(scriptError(bufferSignalForPendingWaitpoint(client, bufferArgs({ ...wp, token: token.toUpperCase().replace('K1', 'k1') }, 'go')))).resolves.toMatchObject({ code: 'invalid_token' });
  });

  it('§8.5 example 2 (100-byte key, longer than the block): the engine accepts exactly the published digest', async () => {
    const secret = Buffer.from(Array.from({ length: 100 }, (_, i) => i)).toString('hex');
    const id = '6ba7b810-9dad-11d1-80b4-00c04fd430c8';
    const token = 'k1:989bc2d4ae51d4ed26a50c67ade30e11ead46402';
    expect(expectedToken('k1', secret, id, `wpk:${id}`, '1713100800150')).toBe(token);
    const wp = await exampleWaitpoint(secret.toUpperCase(), id, `wpk:${id}`, '1713100800150');
    await expect(bufferSignalForPendingWaitpoint(client, bufferArgs({ ...wp, token }, 'go'))).resolves.toMatchObject({ status: 'OK' });
  });

  it('suspension.md §C.2 vector', async () => {
    const secret = '00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff';
    const id = '550e8400-e29b-41d4-a716-446655440000';
    const token = 'k1:57d6b16657a0fa4a9a57912ca3c2968a6f62006c';
    expect(expectedToken('k1', secret, id, `wpk:${id}`, '1713100800000')).toBe(token);
    const wp = await exampleWaitpoint(secret, id, `wpk:${id}`, '1713100800000');
    await expect(bufferSignalForPendingWaitpoint(client, bufferArgs({ ...wp, token }, 'go'))).resolves.toMatchObject({ status: 'OK' });
  });

  it('mints standard HMAC-SHA1 over the stored binding, with the current kid', async () => {
    const partition = privatePartition();
    const secret = createHmac('sha1', 'seed').update(String(partition)).digest('hex') + 'ab';
    await rotateWaitpointHmacSecret(client, { partition, newKid: 'mint-kid', newSecretHex: secret, graceMs: 0 });
    const s = await createSuspended(client, {}, partition);
    const wp = await redis.hgetall(keysOf(s.executionId).index.waitpoint(s.waitpointId));
    expect(s.token).toMatch(/^mint-kid:[0-9a-f]{40}$/);
    expect(s.token).toBe(expectedToken('mint-kid', secret, s.waitpointId, s.waitpointKey, wp.created_at!));
    expect(wp.waitpoint_token).toBe(s.token);
  });
});

describe('ff_suspend_execution', () => {
  const { client, redis } = useServer();

  it('creates an active waitpoint, suspends the execution and releases the lease', async () => {
    const c = await claimedWithKeyring(client, privatePartition());
    const { exec, index } = keysOf(c.executionId);
    const args = suspendArgs(c, { reasonCode: 'waiting_for_approval', timeoutMs: 60_000, timeoutBehavior: 'cancel', continuationMetadataPointer: 'ptr-1' });
    const before = Date.now();
    const result = await suspendExecution(client, args);
    expect(result).toEqual({ status: 'OK', suspensionId: args.suspensionId, waitpointId: args.waitpointId, waitpointKey: args.waitpointKey, waitpointToken: expect.stringMatching(/^k1:[0-9a-f]{40}$/) });
    const secret = await redis.hget(index.waitpointHmacSecrets(), 'secret:k1');
    const wp = await redis.hgetall(index.waitpoint(args.waitpointId));
    expect(result.waitpointToken).toBe(expectedToken('k1', secret!, args.waitpointId, args.waitpointKey, wp.created_at!));

    const core = await redis.hgetall(exec.core());
    expect(core).toMatchObject({
      lifecycle_phase: 'suspended', ownership_state: 'unowned', eligibility_state: 'not_applicable',
      blocking_reason: 'waiting_for_approval', blocking_detail: `suspended: waitpoint ${args.waitpointId} awaiting waiting_for_approval`,
      terminal_outcome: 'none', attempt_state: 'attempt_interrupted', public_state: 'suspended',
      current_lease_id: '', current_worker_id: '', current_worker_instance_id: '', lease_expires_at: '',
      current_suspension_id: args.suspensionId, current_waitpoint_id: args.waitpointId,
      current_lease_epoch: '1', current_attempt_index: '0', current_attempt_id: c.lease.attemptId,
    });
    expect(await redis.hgetall(exec.attemptHash(0))).toMatchObject({ attempt_state: 'suspended', suspension_id: args.suspensionId, suspended_at: core.last_transition_at });
    expect(await redis.exists(exec.leaseCurrent())).toBe(0);
    expect(await redis.zscore(index.leaseExpiry(), c.executionId)).toBeNull();
    expect(await redis.sismember(index.workerLeases(c.workerInstanceId), c.executionId)).toBe(0);
    expect(await redis.zscore(index.laneActive(c.laneId), c.executionId)).toBeNull();
    const history = await redis.xrange(exec.leaseHistory(), '-', '+');
    expect(history.at(-1)![1]).toEqual(['event', 'released', 'lease_id', c.lease.leaseId, 'lease_epoch', '1', 'attempt_index', '0', 'attempt_id', c.lease.attemptId, 'reason', 'suspend', 'ts', core.last_transition_at]);

    const timeoutAt = Number(await redis.hget(exec.suspensionCurrent(), 'timeout_at'));
    expect(timeoutAt).toBeGreaterThanOrEqual(before + 60_000);
    expect(await redis.hgetall(exec.suspensionCurrent())).toEqual({
      suspension_id: args.suspensionId, execution_id: c.executionId, attempt_index: '0', waitpoint_id: args.waitpointId,
      waitpoint_key: args.waitpointKey, reason_code: 'waiting_for_approval', requested_by: 'worker', created_at: core.last_transition_at,
      timeout_at: String(timeoutAt), timeout_behavior: 'cancel', resume_condition_json: JSON.stringify(args.resumeConditionJson),
      resume_policy_json: JSON.stringify(args.resumePolicyJson), continuation_metadata_pointer: 'ptr-1',
      buffered_signal_summary_json: '{"total_count":0,"matched_count":0,"signal_names":[]}',
      last_signal_at: '', satisfied_at: '', closed_at: '', close_reason: '',
    });
    expect(wp).toEqual({
      waitpoint_id: args.waitpointId, execution_id: c.executionId, attempt_index: '0', suspension_id: args.suspensionId,
      waitpoint_key: args.waitpointKey, waitpoint_token: result.waitpointToken, state: 'active', created_at: core.last_transition_at,
      activated_at: core.last_transition_at, expires_at: String(timeoutAt), signal_count: '0', matched_signal_count: '0', last_signal_at: '',
    });
    expect(await redis.hgetall(index.waitpointCondition(args.waitpointId))).toEqual({
      condition_type: 'signal_set', match_mode: 'any', minimum_signal_count: '1', total_matchers: '1', satisfied_count: '0',
      closed: '0', updated_at: core.last_transition_at, 'matcher:0:name': 'go', 'matcher:0:satisfied': '0', 'matcher:0:signal_id': '',
    });
    expect(Number(await redis.zscore(index.laneSuspended(c.laneId), c.executionId))).toBe(timeoutAt);
    expect(Number(await redis.zscore(index.suspensionTimeout(), c.executionId))).toBe(timeoutAt);
    expect(await redis.sismember(exec.waitpoints(), args.waitpointId)).toBe(1);
  });

  it('without a timeout: suspended score 9999999999999, no timeout entry; an empty name list is one wildcard matcher', async () => {
    const s = await createSuspended(client, { resumeConditionJson: { required_signal_names: [] } });
    const { exec, index } = keysOf(s.executionId);
    expect(await redis.zscore(index.laneSuspended(s.laneId), s.executionId)).toBe('9999999999999');
    expect(await redis.zscore(index.suspensionTimeout(), s.executionId)).toBeNull();
    expect(await redis.hget(exec.suspensionCurrent(), 'timeout_at')).toBe('');
    expect(await redis.hget(exec.suspensionCurrent(), 'timeout_behavior')).toBe('fail');
    expect(await redis.hgetall(index.waitpointCondition(s.waitpointId))).toMatchObject({ total_matchers: '1', 'matcher:0:name': '', match_mode: 'any', condition_type: 'signal_set' });
  });

  it.each([
    ['waiting_for_signal', 'waiting_for_signal'],
    ['waiting_for_callback', 'waiting_for_callback'],
    ['waiting_for_tool_result', 'waiting_for_tool_result'],
    ['waiting_for_operator_review', 'paused_by_operator'],
    ['paused_by_policy', 'paused_by_policy'],
    ['paused_by_budget', 'waiting_for_budget'],
    ['step_boundary', 'waiting_for_signal'],
    ['manual_pause', 'paused_by_operator'],
    ['something_else', 'waiting_for_signal'],
  ])('maps reason_code %s to blocking_reason %s', async (reasonCode, blocking) => {
    const s = await createSuspended(client, { reasonCode });
    expect(await redis.hget(keysOf(s.executionId).exec.core(), 'blocking_reason')).toBe(blocking);
    expect(await redis.hget(keysOf(s.executionId).exec.suspensionCurrent(), 'reason_code')).toBe(reasonCode);
  });

  it('activates a pending waitpoint, keeping its token and key', async () => {
    const c = await claimedWithKeyring(client);
    const p = await createPending(client, c);
    const { index } = keysOf(c.executionId);
    const args = suspendArgs(c, { waitpointId: p.waitpointId, waitpointKey: 'ignored-on-activation', usePendingWaitpoint: true, timeoutMs: 30_000 });
    const result = await suspendExecution(client, args);
    expect(result).toEqual({ status: 'OK', suspensionId: args.suspensionId, waitpointId: p.waitpointId, waitpointKey: p.waitpointKey, waitpointToken: p.token });
    const wp = await redis.hgetall(index.waitpoint(p.waitpointId));
    expect(wp).toMatchObject({ state: 'active', suspension_id: args.suspensionId, waitpoint_token: p.token, waitpoint_key: p.waitpointKey });
    expect(wp.expires_at).toBe(await redis.hget(keysOf(c.executionId).exec.suspensionCurrent(), 'timeout_at'));
    expect(wp.activated_at).not.toBe('');
    expect(await redis.zscore(index.pendingWaitpointExpiry(), p.waitpointId)).toBeNull();
    expect(await redis.hget(index.waitpointCondition(p.waitpointId), 'closed')).toBe('0');
    expect(await redis.hget(keysOf(c.executionId).exec.core(), 'lifecycle_phase')).toBe('suspended');
  });

  it('answers execution_not_found, and execution_not_active (with outcome and epoch) when already suspended', async () => {
    const c = await claimedWithKeyring(client);
    await expect(scriptError(suspendExecution(client, suspendArgs({ ...c, executionId: newExecutionId() })))).resolves.toMatchObject({ code: 'execution_not_found' });
    const args = suspendArgs(c);
    await suspendExecution(client, args);
    const again = await scriptError(suspendExecution(client, { ...args, suspensionId: newSuspensionId(), waitpointId: newWaitpointId() }));
    expect(again).toMatchObject({ code: 'execution_not_active', details: ['none', '1'] });
  });

  it('fences the lease: lease_revoked, stale_lease (id, epoch, attempt), invalid_lease_for_suspend', async () => {
    const c = await claimedWithKeyring(client);
    for (const patch of [{ leaseId: newLeaseId() }, { leaseEpoch: 2 }, { attemptId: newAttemptId() }]) {
      await expect(scriptError(suspendExecution(client, suspendArgs(c, patch)))).resolves.toMatchObject({ code: 'stale_lease' });
    }
    await expect(scriptError(suspendExecution(client, suspendArgs(c, { attemptIndex: 1 })))).resolves.toMatchObject({ code: 'invalid_lease_for_suspend' });
    await revokeLease(client, { executionId: c.executionId, workerInstanceId: c.workerInstanceId });
    await expect(scriptError(suspendExecution(client, suspendArgs(c)))).resolves.toMatchObject({ code: 'lease_revoked' });
    expect(await redis.hget(keysOf(c.executionId).exec.core(), 'lifecycle_phase')).toBe('active');
  });

  it('answers lease_expired and marks the lease expired', async () => {
    const c = await claimedWithKeyring(client, undefined, 30);
    await sleep(60);
    await expect(scriptError(suspendExecution(client, suspendArgs(c)))).resolves.toMatchObject({ code: 'lease_expired' });
    expect(await redis.hgetall(keysOf(c.executionId).exec.core())).toMatchObject({ lifecycle_phase: 'active', ownership_state: 'lease_expired_reclaimable', attempt_state: 'attempt_interrupted' });
  });

  it('answers already_suspended when an open suspension record exists', async () => {
    const c = await claimedWithKeyring(client);
    await redis.hset(keysOf(c.executionId).exec.suspensionCurrent(), 'suspension_id', newSuspensionId(), 'closed_at', '');
    await expect(scriptError(suspendExecution(client, suspendArgs(c)))).resolves.toMatchObject({ code: 'already_suspended' });
  });

  it('checks the pending waitpoint on activation', async () => {
    const partition = privatePartition();
    const c = await claimedWithKeyring(client, partition);
    const other = await claimedWithKeyring(client, partition);
    const activate = (waitpointId: ReturnType<typeof newWaitpointId>) => suspendExecution(client, suspendArgs(c, { waitpointId, usePendingWaitpoint: true }));
    await expect(scriptError(activate(newWaitpointId()))).resolves.toMatchObject({ code: 'waitpoint_not_found' });
    const foreign = await createPending(client, other);
    await expect(scriptError(activate(foreign.waitpointId))).resolves.toMatchObject({ code: 'invalid_waitpoint_for_execution' });
    const own = await createPending(client, c);
    const wpKey = keysOf(c.executionId).index.waitpoint(own.waitpointId);
    await redis.hset(wpKey, 'attempt_index', '7');
    await expect(scriptError(activate(own.waitpointId))).resolves.toMatchObject({ code: 'invalid_waitpoint_for_execution' });
    await redis.hset(wpKey, 'attempt_index', '0', 'waitpoint_token', '');
    await expect(scriptError(activate(own.waitpointId))).resolves.toMatchObject({ code: 'waitpoint_not_token_bound' });
    await redis.hset(wpKey, 'state', 'closed');
    await expect(scriptError(activate(own.waitpointId))).resolves.toMatchObject({ code: 'waitpoint_not_pending' });
    const short = await createPending(client, c, 20);
    await sleep(50);
    await expect(scriptError(activate(short.waitpointId))).resolves.toMatchObject({ code: 'pending_waitpoint_expired' });
    expect(await redis.hget(keysOf(c.executionId).exec.core(), 'lifecycle_phase')).toBe('active');
  });

  it('refuses to mint without a usable key ring', async () => {
    const bare = await createClaimed(client, { executionId: newExecutionId(privatePartition()) });
    await expect(scriptError(suspendExecution(client, suspendArgs(bare)))).resolves.toMatchObject({ code: 'hmac_secret_not_initialized' });
    const ring = keysOf(bare.executionId).index.waitpointHmacSecrets();
    await redis.hset(ring, 'current_kid', 'k1');
    await expect(scriptError(suspendExecution(client, suspendArgs(bare)))).resolves.toMatchObject({ code: 'hmac_secret_not_initialized' });
    await redis.hset(ring, 'secret:k1', 'not-hex!');
    const error = await scriptError(suspendExecution(client, suspendArgs(bare)));
    expect(error).toMatchObject({ code: 'invalid_secret', details: [] });
    await redis.hset(ring, 'secret:k1', TEST_SECRET_HEX);
    const request = buildSuspendExecution(suspendArgs(bare), CONFIG);
    const keys = [...request.keys];
    keys[16] = '';
    await expect(fcallPatched(redis, request, {}, keys)).resolves.toEqual([0, 'invalid_keys_missing_hmac']);
    expect(await redis.hget(keysOf(bare.executionId).exec.core(), 'lifecycle_phase')).toBe('active');
  });

  it('answers malformed ARGV and mismatched KEYS with invalid_input and writes nothing', async () => {
    const c = await claimedWithKeyring(client, privatePartition());
    const request = buildSuspendExecution(suspendArgs(c, { timeoutMs: 10_000 }), CONFIG);
    const before = await keyStates(redis, request.keys);
    const patches: Record<number, string>[] = [
      { 0: '' }, { 1: 'x' }, { 4: '' }, { 5: '' }, { 6: '' }, { 10: 'soon' },
      { 11: '{bad' }, { 11: '42' }, { 11: '{"required_signal_names":null}' }, { 11: '{"required_signal_names":"go"}' },
      { 11: '{"required_signal_names":[1]}' }, { 11: '{"required_signal_names":{"a":"b"}}' }, { 11: '{"minimum_signal_count":"many"}' },
      { 11: '{"minimum_signal_count":null}' }, { 11: '{"signal_match_mode":3}' }, { 11: '{"condition_type":[]}' },
      { 15: 'explode' }, { 15: '' }, { 16: '-1' }, { 16: 'x' },
    ];
    for (const patch of patches) {
      await expect(fcallPatched(redis, request, patch), JSON.stringify(patch)).resolves.toEqual([0, 'invalid_input', expect.any(String)]);
    }
    // KEYS that do not belong to the arguments or the execution.
    const wrongLane = buildSuspendExecution(suspendArgs(c, { laneId: 'elsewhere' as never }), CONFIG);
    await expect(fcallPatched(redis, wrongLane)).resolves.toEqual([0, 'invalid_input', expect.stringContaining('lane')]);
    const wrongWorker = buildSuspendExecution(suspendArgs(c, { workerInstanceId: 'someone-else' }), CONFIG);
    await expect(fcallPatched(redis, wrongWorker)).resolves.toEqual([0, 'invalid_input', expect.any(String)]);
    const keys = [...request.keys];
    keys[14] = new PartitionKeys(new ExecKeys(c.executionId).tag).waitpointCondition(newWaitpointId());
    await expect(fcallPatched(redis, request, {}, keys)).resolves.toEqual([0, 'invalid_input', expect.stringContaining('KEYS[15]')]);
    expect(await keyStates(redis, request.keys)).toEqual(before);
  });

  it('archives a closed previous suspension only when the new one succeeds', async () => {
    const s = await createSuspended(client);
    const { exec } = keysOf(s.executionId);
    await resumeSuspendedExecution(client, { executionId: s.executionId });
    const { claimResumed } = await import('../operations/waitpoints.js');
    const { issueClaimGrant } = await import('../generated/scheduling.js');
    await issueClaimGrant(client, { executionId: s.executionId, laneId: s.laneId, workerId: s.workerId, workerInstanceId: s.workerInstanceId, grantTtlMs: 5000 });
    const claimed = await claimResumed(client, { executionId: s.executionId, laneId: s.laneId, workerId: s.workerId, workerInstanceId: s.workerInstanceId, leaseId: newLeaseId(), leaseTtlMs: 30_000 });
    const lease = { leaseId: claimed.leaseId, leaseEpoch: claimed.leaseEpoch, attemptId: claimed.attemptId, attemptIndex: claimed.attemptIndex };
    const closed = await redis.hgetall(exec.suspensionCurrent());
    expect(closed.close_reason).toBe('resumed');
    // A failing suspend leaves the closed record in place (the reference deleted it first).
    await expect(scriptError(suspendExecution(client, suspendArgs({ ...s, lease }, { usePendingWaitpoint: true })))).resolves.toMatchObject({ code: 'waitpoint_not_found' });
    expect(await redis.hgetall(exec.suspensionCurrent())).toEqual(closed);
    const next = await suspendClaimed(client, { ...s, lease });
    expect(await redis.hget(exec.suspensionCurrent(), 'suspension_id')).toBe(next.suspensionId);
    expect((await redis.smembers(exec.waitpoints())).sort()).toEqual([s.waitpointId, next.waitpointId].sort());
  });
});

describe('ff_resume_execution', () => {
  const { client, redis } = useServer();

  it('resumes a suspended execution to eligible and closes waitpoint, condition and suspension', async () => {
    const s = await createSuspended(client, { timeoutMs: 60_000 });
    const { exec, index } = keysOf(s.executionId);
    await expect(resumeExecution(client, { executionId: s.executionId, laneId: s.laneId, waitpointId: s.waitpointId, triggerType: 'operator' })).resolves.toEqual({ status: 'OK', publicState: 'waiting' });
    const core = await redis.hgetall(exec.core());
    expect(core).toMatchObject({
      lifecycle_phase: 'runnable', ownership_state: 'unowned', eligibility_state: 'eligible_now', blocking_reason: 'waiting_for_worker',
      blocking_detail: '', terminal_outcome: 'none', attempt_state: 'attempt_interrupted', public_state: 'waiting',
      current_suspension_id: '', current_waitpoint_id: '',
    });
    expect(Number(await redis.zscore(index.laneEligible(s.laneId), s.executionId))).toBe(Number(core.created_at));
    expect(await redis.zscore(index.laneSuspended(s.laneId), s.executionId)).toBeNull();
    expect(await redis.zscore(index.suspensionTimeout(), s.executionId)).toBeNull();
    const now = core.last_transition_at;
    expect(await redis.hgetall(index.waitpoint(s.waitpointId))).toMatchObject({ state: 'closed', satisfied_at: now, closed_at: now, close_reason: 'resumed' });
    expect(await redis.hgetall(index.waitpointCondition(s.waitpointId))).toMatchObject({ closed: '1', closed_at: now, closed_reason: 'resumed' });
    expect(await redis.hgetall(exec.suspensionCurrent())).toMatchObject({ satisfied_at: now, closed_at: now, close_reason: 'resumed' });
    expect(await redis.hget(exec.attemptHash(0), 'attempt_state')).toBe('suspended');
    // A late signal on the closed waitpoint is refused.
    await expect(scriptError(deliver(client, s, 'go'))).resolves.toMatchObject({ code: 'target_not_signalable' });
    await expect(scriptError(resumeExecution(client, { executionId: s.executionId, laneId: s.laneId, waitpointId: s.waitpointId }))).resolves.toMatchObject({ code: 'execution_not_suspended' });
  });

  it('resumes with a delay into the delayed index, writing delay_until', async () => {
    const s = await createSuspended(client);
    const { exec, index } = keysOf(s.executionId);
    await expect(resumeSuspendedExecution(client, { executionId: s.executionId, resumeDelayMs: 5000 })).resolves.toEqual({ status: 'OK', publicState: 'delayed' });
    const core = await redis.hgetall(exec.core());
    const due = Number(core.last_transition_at) + 5000;
    expect(core).toMatchObject({ eligibility_state: 'not_eligible_until_time', blocking_reason: 'waiting_for_resume_delay', blocking_detail: 'resume delay 5000ms', public_state: 'delayed', delay_until: String(due) });
    expect(Number(await redis.zscore(index.laneDelayed(s.laneId), s.executionId))).toBe(due);
    expect(await redis.zscore(index.laneEligible(s.laneId), s.executionId)).toBeNull();
  });

  it('takes an empty resume_delay_ms as 0 (the reference raised a runtime error)', async () => {
    const s = await createSuspended(client);
    const request = buildResumeExecution({ executionId: s.executionId, laneId: s.laneId, waitpointId: s.waitpointId }, CONFIG);
    await expect(fcallPatched(redis, request, { 2: '' })).resolves.toEqual([1, 'OK', 'waiting']);
  });

  it('answers execution_not_found and execution_not_suspended', async () => {
    await expect(scriptError(resumeExecution(client, { executionId: newExecutionId(), laneId: 'l' as never, waitpointId: newWaitpointId() }))).resolves.toMatchObject({ code: 'execution_not_found' });
    const c = await claimedWithKeyring(client);
    await expect(scriptError(resumeSuspendedExecution(client, { executionId: c.executionId }))).resolves.toMatchObject({ code: 'execution_not_suspended' });
  });

  it('answers invalid_input for a stale waitpoint, a wrong lane or a malformed delay, writing nothing', async () => {
    const s = await createSuspended(client, {}, privatePartition());
    const request = buildResumeExecution({ executionId: s.executionId, laneId: s.laneId, waitpointId: s.waitpointId }, CONFIG);
    const before = await keyStates(redis, request.keys);
    for (const patch of [{ 2: 'x' }, { 2: '-5' }, { 0: '' }]) {
      await expect(fcallPatched(redis, request, patch)).resolves.toEqual([0, 'invalid_input', expect.any(String)]);
    }
    const stale = buildResumeExecution({ executionId: s.executionId, laneId: s.laneId, waitpointId: newWaitpointId() }, CONFIG);
    await expect(fcallPatched(redis, stale)).resolves.toEqual([0, 'invalid_input', expect.stringContaining('KEYS[3]')]);
    const lane = buildResumeExecution({ executionId: s.executionId, laneId: 'other-lane' as never, waitpointId: s.waitpointId }, CONFIG);
    await expect(fcallPatched(redis, lane)).resolves.toEqual([0, 'invalid_input', expect.stringContaining('lane')]);
    expect(await keyStates(redis, request.keys)).toEqual(before);
  });
});

describe('ff_create_pending_waitpoint', () => {
  const { client, redis } = useServer();

  it('creates a pending waitpoint with its token and expiry entry', async () => {
    const c = await claimedWithKeyring(client, privatePartition());
    const { index } = keysOf(c.executionId);
    const waitpointId = newWaitpointId();
    const before = Date.now();
    const result = await createPendingWaitpoint(client, { executionId: c.executionId, attemptIndex: 0, waitpointId, waitpointKey: 'wpk:x', expiresInMs: 30_000 });
    expect(result).toEqual({ status: 'OK', waitpointId, waitpointKey: 'wpk:x', waitpointToken: expect.stringMatching(/^k1:[0-9a-f]{40}$/) });
    const wp = await redis.hgetall(index.waitpoint(waitpointId));
    const expiresAt = Number(wp.expires_at);
    expect(expiresAt).toBeGreaterThanOrEqual(before + 30_000);
    expect(wp).toEqual({
      waitpoint_id: waitpointId, execution_id: c.executionId, attempt_index: '0', suspension_id: '', waitpoint_key: 'wpk:x',
      waitpoint_token: result.waitpointToken, state: 'pending', created_at: wp.created_at, activated_at: '', satisfied_at: '',
      closed_at: '', expires_at: String(expiresAt), close_reason: '', signal_count: '0', matched_signal_count: '0', last_signal_at: '',
    });
    const secret = await redis.hget(index.waitpointHmacSecrets(), 'secret:k1');
    expect(result.waitpointToken).toBe(expectedToken('k1', secret!, waitpointId, 'wpk:x', wp.created_at!));
    expect(Number(await redis.zscore(index.pendingWaitpointExpiry(), waitpointId))).toBe(expiresAt);
    expect(await redis.exists(index.waitpointCondition(waitpointId))).toBe(0);
    expect(await redis.sismember(keysOf(c.executionId).exec.waitpoints(), waitpointId)).toBe(0);
    await expect(scriptError(createPendingWaitpoint(client, { executionId: c.executionId, attemptIndex: 0, waitpointId, waitpointKey: 'wpk:x', expiresInMs: 30_000 }))).resolves.toMatchObject({ code: 'waitpoint_already_exists' });
    // A closed waitpoint id may be reused.
    await closeWaitpoint(client, { executionId: c.executionId, waitpointId });
    await expect(createPendingWaitpoint(client, { executionId: c.executionId, attemptIndex: 0, waitpointId, waitpointKey: 'wpk:y', expiresInMs: 30_000 })).resolves.toMatchObject({ status: 'OK', waitpointKey: 'wpk:y' });
  });

  it('answers execution_not_found, execution_not_active, no_active_lease and stale_lease', async () => {
    const pending = (executionId: ExecutionId, attemptIndex = 0) => createPendingWaitpoint(client, { executionId, attemptIndex, waitpointId: newWaitpointId(), waitpointKey: 'k', expiresInMs: 1000 });
    await expect(scriptError(pending(newExecutionId()))).resolves.toMatchObject({ code: 'execution_not_found' });
    const s = await createSuspended(client);
    await expect(scriptError(pending(s.executionId))).resolves.toMatchObject({ code: 'execution_not_active', details: ['none', '1'] });
    const c = await claimedWithKeyring(client);
    await expect(scriptError(pending(c.executionId, 3))).resolves.toMatchObject({ code: 'stale_lease' });
    await revokeLease(client, { executionId: c.executionId, workerInstanceId: c.workerInstanceId });
    await expect(scriptError(pending(c.executionId))).resolves.toMatchObject({ code: 'no_active_lease' });
  });

  it('answers the mint errors and invalid_input, writing nothing', async () => {
    const c = await createClaimed(client, { executionId: newExecutionId(privatePartition()) });
    const request = buildCreatePendingWaitpoint({ executionId: c.executionId, attemptIndex: 0, waitpointId: newWaitpointId(), waitpointKey: 'k', expiresInMs: 1000 }, CONFIG);
    const before = await keyStates(redis, request.keys);
    await expect(fcallPatched(redis, request)).resolves.toEqual([0, 'hmac_secret_not_initialized']);
    await expect(fcallPatched(redis, request, {}, request.keys.slice(0, 3))).resolves.toEqual([0, 'invalid_keys_missing_hmac']);
    for (const patch of [{ 4: '' }, { 4: 'later' }, { 1: '' }, { 2: '' }]) {
      await expect(fcallPatched(redis, request, patch)).resolves.toEqual([0, 'invalid_input', expect.any(String)]);
    }
    expect(await keyStates(redis, request.keys)).toEqual(before);
    await redis.hset(request.keys[3]!, 'current_kid', 'k1', 'secret:k1', 'abc');
    await expect(fcallPatched(redis, request)).resolves.toEqual([0, 'invalid_secret']);
  });
});

describe('ff_expire_suspension', () => {
  const { client, redis } = useServer();

  it.each([
    ['fail', 'failed', 'timed_out_fail', 'ended_failure'],
    ['cancel', 'cancelled', 'timed_out_cancel', 'ended_cancelled'],
    ['expire', 'expired', 'timed_out_expire', 'ended_failure'],
  ] as const)('applies %s: terminal %s, close reason %s, attempt %s', async (behavior, outcome, reason, attemptEnd) => {
    const s = await createSuspended(client, { timeoutMs: 20, timeoutBehavior: behavior });
    const { exec, index } = keysOf(s.executionId);
    await redis.hset(exec.streamMeta(0), 'closed_at', '', 'closed_reason', '');
    await sleep(40);
    await expect(expireSuspensionOf(client, s.executionId)).resolves.toEqual({ status: behavior, publicState: outcome });
    const core = await redis.hgetall(exec.core());
    const now = core.last_transition_at;
    expect(core).toMatchObject({
      lifecycle_phase: 'terminal', ownership_state: 'unowned', eligibility_state: 'not_applicable', blocking_reason: 'none', blocking_detail: '',
      terminal_outcome: outcome, attempt_state: 'attempt_terminal', public_state: outcome, failure_reason: `suspension_timeout:${behavior}`,
      completed_at: now, current_suspension_id: '', current_waitpoint_id: '',
    });
    expect(await redis.hgetall(exec.attemptHash(0))).toMatchObject({ attempt_state: attemptEnd, ended_at: now, failure_reason: `suspension_timeout:${behavior}`, suspended_at: '', suspension_id: '' });
    expect(await redis.hgetall(exec.streamMeta(0))).toMatchObject({ closed_at: now, closed_reason: 'suspension_timeout' });
    expect(await redis.hgetall(index.waitpoint(s.waitpointId))).toMatchObject({ state: 'closed', closed_at: now, close_reason: reason });
    expect(await redis.hgetall(index.waitpointCondition(s.waitpointId))).toMatchObject({ closed: '1', closed_at: now, closed_reason: reason });
    expect(await redis.hgetall(exec.suspensionCurrent())).toMatchObject({ closed_at: now, close_reason: reason });
    expect(await redis.zscore(index.suspensionTimeout(), s.executionId)).toBeNull();
    expect(await redis.zscore(index.laneSuspended(s.laneId), s.executionId)).toBeNull();
    expect(await redis.zscore(index.laneTerminal(s.laneId), s.executionId)).toBe(now);
    await expect(expireSuspensionOf(client, s.executionId)).resolves.toEqual({ status: 'not_suspended_cleaned' });
    await expect(scriptError(deliver(client, s, 'go'))).resolves.toMatchObject({ code: 'target_not_signalable' });
  });

  it.each(['retry_later', ''])('applies a behaviour another writer stored (%j) with fail semantics, typed as other_behavior', async (stored) => {
    // This library's suspend stores only the six known behaviours; a process on the
    // reference library may store anything. The call must not end in a parse error after
    // it has written the terminal state.
    const s = await createSuspended(client, { timeoutMs: 20, timeoutBehavior: 'fail' });
    const { exec } = keysOf(s.executionId);
    await redis.hset(exec.suspensionCurrent(), 'timeout_behavior', stored);
    await sleep(40);
    await expect(expireSuspensionOf(client, s.executionId)).resolves.toEqual({ status: 'other_behavior', subStatus: stored, publicState: 'failed' });
    expect(await redis.hgetall(exec.core())).toMatchObject({ lifecycle_phase: 'terminal', terminal_outcome: 'failed', public_state: 'failed', failure_reason: `suspension_timeout:${stored}` });
    expect(await redis.hget(exec.suspensionCurrent(), 'close_reason')).toBe('timed_out_fail');
  });

  it.each(['auto_resume', 'auto_resume_with_timeout_signal'] as const)('applies %s: runnable and eligible now', async (behavior) => {
    const s = await createSuspended(client, { timeoutMs: 20, timeoutBehavior: behavior });
    const { exec, index } = keysOf(s.executionId);
    await sleep(40);
    await expect(expireSuspensionOf(client, s.executionId)).resolves.toEqual({ status: 'auto_resume', publicState: 'waiting' });
    const core = await redis.hgetall(exec.core());
    const now = core.last_transition_at;
    expect(core).toMatchObject({ lifecycle_phase: 'runnable', eligibility_state: 'eligible_now', blocking_reason: 'waiting_for_worker', attempt_state: 'attempt_interrupted', public_state: 'waiting', current_waitpoint_id: '' });
    expect(await redis.zscore(index.laneEligible(s.laneId), s.executionId)).toBe(core.created_at);
    expect(await redis.zscore(index.laneSuspended(s.laneId), s.executionId)).toBeNull();
    expect(await redis.hgetall(index.waitpoint(s.waitpointId))).toMatchObject({ state: 'closed', closed_at: now, close_reason: 'timed_out_auto_resume' });
    expect(await redis.hget(index.waitpoint(s.waitpointId), 'satisfied_at')).toBeNull();
    expect(await redis.hgetall(index.waitpointCondition(s.waitpointId))).toMatchObject({ closed: '1', closed_reason: 'timed_out_auto_resume' });
    expect(await redis.hgetall(exec.suspensionCurrent())).toMatchObject({ closed_at: now, close_reason: 'timed_out_auto_resume', satisfied_at: '' });
    expect(await redis.hget(exec.attemptHash(0), 'attempt_state')).toBe('suspended');
    await expect(scriptError(deliver(client, s, 'go'))).resolves.toMatchObject({ code: 'target_not_signalable' });
  });

  it('applies escalate: stays suspended for an operator, timeout cleared, a signal still resumes it', async () => {
    const s = await createSuspended(client, { timeoutMs: 20, timeoutBehavior: 'escalate' });
    const { exec, index } = keysOf(s.executionId);
    await sleep(40);
    const transitionBefore = await redis.hget(exec.core(), 'last_transition_at');
    await expect(expireSuspensionOf(client, s.executionId)).resolves.toEqual({ status: 'escalate', publicState: 'suspended' });
    const core = await redis.hgetall(exec.core());
    const timeoutAt = (await redis.zscore(index.laneSuspended(s.laneId), s.executionId))!;
    expect(core).toMatchObject({ lifecycle_phase: 'suspended', blocking_reason: 'paused_by_operator', blocking_detail: `suspension escalated: timeout at ${timeoutAt}`, attempt_state: 'attempt_interrupted', public_state: 'suspended', last_transition_at: transitionBefore });
    expect(await redis.hgetall(exec.suspensionCurrent())).toMatchObject({ reason_code: 'waiting_for_operator_review', timeout_at: '', timeout_behavior: '', closed_at: '' });
    expect(await redis.zscore(index.suspensionTimeout(), s.executionId)).toBeNull();
    expect(await redis.hget(index.waitpoint(s.waitpointId), 'state')).toBe('active');
    // No timeout left: not due (the reference raised a runtime error here).
    await expect(expireSuspensionOf(client, s.executionId)).resolves.toEqual({ status: 'not_yet_due' });
    await expect(deliver(client, s, 'go')).resolves.toMatchObject({ effect: 'resume_condition_satisfied' });
    expect(await redis.hget(exec.core(), 'public_state')).toBe('waiting');
  });

  it('cleans stale index entries and waits for due timeouts', async () => {
    const ghost = newExecutionId();
    const ghostIndex = new PartitionKeys(new ExecKeys(ghost).tag).suspensionTimeout();
    await redis.zadd(ghostIndex, 1, ghost);
    await expect(expireSuspension(client, { executionId: ghost, laneId: 'l' as never, attemptIndex: 0 })).resolves.toEqual({ status: 'not_found_cleaned' });
    expect(await redis.zscore(ghostIndex, ghost)).toBeNull();
    const c = await claimedWithKeyring(client);
    await expect(expireSuspensionOf(client, c.executionId)).resolves.toEqual({ status: 'not_suspended_cleaned' });
    const s = await createSuspended(client, { timeoutMs: 60_000 });
    await expect(expireSuspensionOf(client, s.executionId)).resolves.toEqual({ status: 'not_yet_due' });
    expect(await redis.hget(keysOf(s.executionId).exec.core(), 'lifecycle_phase')).toBe('suspended');
    await redis.hset(keysOf(s.executionId).exec.suspensionCurrent(), 'closed_at', '1');
    await expect(expireSuspensionOf(client, s.executionId)).resolves.toEqual({ status: 'no_active_suspension_cleaned' });
    expect(await redis.zscore(keysOf(s.executionId).index.suspensionTimeout(), s.executionId)).toBeNull();
  });

  it('answers invalid_input for a stale pre-read or malformed ARGV, writing nothing', async () => {
    const s = await createSuspended(client, { timeoutMs: 10 }, privatePartition());
    await sleep(30);
    const good = { executionId: s.executionId, laneId: s.laneId, waitpointId: s.waitpointId, attemptIndex: 0 };
    const request = buildExpireSuspension(good, CONFIG);
    const before = await keyStates(redis, request.keys);
    for (const stale of [{ waitpointId: newWaitpointId() }, { attemptIndex: 1 }, { laneId: 'x' as never }]) {
      await expect(fcallPatched(redis, buildExpireSuspension({ ...good, ...stale }, CONFIG))).resolves.toEqual([0, 'invalid_input', expect.any(String)]);
    }
    const noWaitpoint = buildExpireSuspension({ executionId: s.executionId, laneId: s.laneId, attemptIndex: 0 }, CONFIG);
    await expect(fcallPatched(redis, noWaitpoint)).resolves.toEqual([0, 'invalid_input', expect.any(String)]);
    await expect(fcallPatched(redis, request, { 0: '' })).resolves.toEqual([0, 'invalid_input', expect.any(String)]);
    expect(await keyStates(redis, request.keys)).toEqual(before);
  });
});

describe('ff_close_waitpoint', () => {
  const { client, redis } = useServer();

  it('closes a pending waitpoint, idempotently; late signals are refused', async () => {
    const c = await claimedWithKeyring(client);
    const p = await createPending(client, c);
    const { index } = keysOf(c.executionId);
    await expect(closeWaitpoint(client, { executionId: c.executionId, waitpointId: p.waitpointId, reason: 'never_committed' })).resolves.toEqual({ status: 'OK' });
    const wp = await redis.hgetall(index.waitpoint(p.waitpointId));
    expect(wp).toMatchObject({ state: 'closed', close_reason: 'never_committed' });
    expect(wp.closed_at).not.toBe('');
    expect(await redis.zscore(index.pendingWaitpointExpiry(), p.waitpointId)).toBeNull();
    await expect(closeWaitpoint(client, { executionId: c.executionId, waitpointId: p.waitpointId })).resolves.toEqual({ status: 'OK', outcome: 'already_closed' });
    expect(await redis.hget(index.waitpoint(p.waitpointId), 'close_reason')).toBe('never_committed');
    await expect(scriptError(bufferSignalForPendingWaitpoint(client, bufferArgs(p, 'go')))).resolves.toMatchObject({ code: 'waitpoint_closed' });
    await expect(scriptError(deliver(client, p, 'go'))).resolves.toMatchObject({ code: 'target_not_signalable' });
  });

  it('closes the active waitpoint of a suspended execution and its condition; signals then answer waitpoint_closed', async () => {
    const s = await createSuspended(client);
    const { index } = keysOf(s.executionId);
    await expect(closeWaitpoint(client, { executionId: s.executionId, waitpointId: s.waitpointId })).resolves.toEqual({ status: 'OK' });
    expect(await redis.hget(index.waitpoint(s.waitpointId), 'close_reason')).toBe('proactive_close');
    expect(await redis.hgetall(index.waitpointCondition(s.waitpointId))).toMatchObject({ closed: '1', closed_reason: 'proactive_close' });
    expect(await redis.hget(keysOf(s.executionId).exec.core(), 'lifecycle_phase')).toBe('suspended');
    await expect(scriptError(deliver(client, s, 'go'))).resolves.toMatchObject({ code: 'waitpoint_closed' });
  });

  it('answers waitpoint_not_found (missing, or of another execution), waitpoint_not_open and invalid_input', async () => {
    const partition = privatePartition();
    const c = await claimedWithKeyring(client, partition);
    const other = await claimedWithKeyring(client, partition);
    await expect(scriptError(closeWaitpoint(client, { executionId: c.executionId, waitpointId: newWaitpointId() }))).resolves.toMatchObject({ code: 'waitpoint_not_found' });
    const p = await createPending(client, other);
    await expect(scriptError(closeWaitpoint(client, { executionId: c.executionId, waitpointId: p.waitpointId }))).resolves.toMatchObject({ code: 'waitpoint_not_found' });
    expect(await redis.hget(keysOf(c.executionId).index.waitpoint(p.waitpointId), 'state')).toBe('pending');
    await redis.hset(keysOf(c.executionId).index.waitpoint(p.waitpointId), 'state', 'limbo');
    await expect(scriptError(closeWaitpoint(client, { executionId: other.executionId, waitpointId: p.waitpointId }))).resolves.toMatchObject({ code: 'waitpoint_not_open' });
    const { buildCloseWaitpoint } = await import('../generated/suspension.js');
    const request = buildCloseWaitpoint({ executionId: other.executionId, waitpointId: p.waitpointId }, CONFIG);
    await expect(fcallPatched(redis, request, { 0: '' })).resolves.toEqual([0, 'invalid_input', expect.any(String)]);
    await expect(fcallPatched(redis, request, { 0: newWaitpointId() })).resolves.toEqual([0, 'invalid_input', expect.any(String)]);
  });
});

describe('ff_rotate_waitpoint_hmac_secret and ff_list_waitpoint_hmac_kids', () => {
  const { client, redis } = useServer();
  const secretA = 'aa'.repeat(32);
  const secretB = 'bb'.repeat(32);
  const secretC = 'cc'.repeat(32);

  it('bootstraps, rotates with grace, lists, replays as noop and refuses conflicts', async () => {
    const partition = privatePartition();
    const ring = PartitionKeys.forPartition(partition).waitpointHmacSecrets();
    await expect(listWaitpointHmacKids(client, { partition })).resolves.toEqual({ status: 'OK', count: 0, verifying: [] });
    await expect(rotateWaitpointHmacSecret(client, { partition, newKid: 'k1', newSecretHex: secretA, graceMs: 1000 })).resolves.toEqual({ status: 'rotated', newKid: 'k1', gcCount: 0 });
    expect(await redis.hgetall(ring)).toEqual({ current_kid: 'k1', 'secret:k1': secretA });
    await expect(rotateWaitpointHmacSecret(client, { partition, newKid: 'k1', newSecretHex: secretA, graceMs: 5 })).resolves.toEqual({ status: 'noop', kid: 'k1' });
    const conflict = await scriptError(rotateWaitpointHmacSecret(client, { partition, newKid: 'k1', newSecretHex: secretB, graceMs: 5 }));
    expect(conflict).toMatchObject({ code: 'rotation_conflict', detail: 'k1' });
    expect(conflict.message).not.toContain(secretB);
    const before = Date.now();
    const rotated = await rotateWaitpointHmacSecret(client, { partition, newKid: 'k2', newSecretHex: secretB, graceMs: 60_000 });
    expect(rotated).toEqual({ status: 'rotated', previousKid: 'k1', newKid: 'k2', gcCount: 0 });
    const stored = await redis.hgetall(ring);
    const expiresAt = Number(stored['expires_at:k1']);
    expect(expiresAt).toBeGreaterThanOrEqual(before + 60_000);
    expect(stored).toEqual({ current_kid: 'k2', 'secret:k1': secretA, 'secret:k2': secretB, 'expires_at:k1': String(expiresAt), previous_kid: 'k1', previous_expires_at: String(expiresAt) });
    await expect(listWaitpointHmacKids(client, { partition })).resolves.toEqual({ status: 'OK', currentKid: 'k2', count: 1, verifying: [{ kid: 'k1', expiresAt }] });
    // A torn write (secret missing for the current kid) is completed by the replay.
    await redis.hdel(ring, 'secret:k2');
    await expect(rotateWaitpointHmacSecret(client, { partition, newKid: 'k2', newSecretHex: secretB, graceMs: 0 })).resolves.toEqual({ status: 'noop', kid: 'k2' });
    expect(await redis.hget(ring, 'secret:k2')).toBe(secretB);
  });

  it('garbage-collects kids past their grace and keeps every in-grace kid (a ring)', async () => {
    const partition = privatePartition();
    const rotate = (newKid: string, newSecretHex: string, graceMs: number) => rotateWaitpointHmacSecret(client, { partition, newKid, newSecretHex, graceMs });
    await rotate('k1', secretA, 0);
    await rotate('k2', secretB, 0);
    await sleep(5);
    // k1's zero grace has ended: collected.
    await expect(rotate('k3', secretC, 60_000)).resolves.toEqual({ status: 'rotated', previousKid: 'k2', newKid: 'k3', gcCount: 1 });
    await expect(rotate('k4', secretA, 60_000)).resolves.toEqual({ status: 'rotated', previousKid: 'k3', newKid: 'k4', gcCount: 0 });
    const ring = await redis.hgetall(PartitionKeys.forPartition(partition).waitpointHmacSecrets());
    expect(Object.keys(ring).filter((f) => f.startsWith('secret:')).sort()).toEqual(['secret:k2', 'secret:k3', 'secret:k4']);
    const listed = await listWaitpointHmacKids(client, { partition });
    expect(listed).toMatchObject({ currentKid: 'k4', count: 2 });
    expect(listed.verifying.map((v) => v.kid)).toEqual(['k2', 'k3']);
  });

  it('drops a stale expiry when a kid name is reused (deviation)', async () => {
    const partition = privatePartition();
    const ring = PartitionKeys.forPartition(partition).waitpointHmacSecrets();
    await rotateWaitpointHmacSecret(client, { partition, newKid: 'k1', newSecretHex: secretA, graceMs: 0 });
    await rotateWaitpointHmacSecret(client, { partition, newKid: 'k2', newSecretHex: secretB, graceMs: 60_000 });
    await rotateWaitpointHmacSecret(client, { partition, newKid: 'k1', newSecretHex: secretC, graceMs: 60_000 });
    const stored = await redis.hgetall(ring);
    expect(stored.current_kid).toBe('k1');
    expect(stored['expires_at:k1']).toBeUndefined();
    expect(stored['secret:k1']).toBe(secretC);
    const listed = await listWaitpointHmacKids(client, { partition });
    expect(listed).toMatchObject({ currentKid: 'k1', verifying: [{ kid: 'k2' }] });
  });

  it('validates kid, secret and grace (and never echoes the secret)', async () => {
    const partition = privatePartition();
    const request = buildRotateWaitpointHmacSecret({ partition, newKid: 'k1', newSecretHex: secretA, graceMs: 0 }, CONFIG);
    const cases: [Record<number, string | null>, string][] = [
      [{ 0: '' }, 'invalid_kid'], [{ 0: 'a:b' }, 'invalid_kid'], [{ 0: null }, 'invalid_kid'],
      [{ 1: '' }, 'invalid_secret_hex'], [{ 1: 'abc' }, 'invalid_secret_hex'], [{ 1: 'zz' }, 'invalid_secret_hex'],
      [{ 2: '' }, 'invalid_grace_ms'], [{ 2: '-1' }, 'invalid_grace_ms'], [{ 2: '1.5' }, 'invalid_grace_ms'],
      [{ 2: 'soon' }, 'invalid_grace_ms'], [{ 2: '9007199254740992' }, 'invalid_grace_ms'],
    ];
    for (const [patch, code] of cases) {
      await expect(fcallPatched(redis, request, patch), JSON.stringify(patch)).resolves.toEqual([0, code]);
    }
    expect(await redis.exists(request.keys[0]!)).toBe(0);
    const reply = await fcallPatched(redis, request);
    expect(JSON.stringify(reply)).not.toContain(secretA);
    expect(reply).toEqual([1, 'OK', 'rotated', '', 'k1', '0']);
    const listed = await fcallPatched(redis, buildListWaitpointHmacKids({ partition }, CONFIG));
    expect(JSON.stringify(listed)).not.toContain(secretA);
  });

  it('caps an expiry beyond 2^53-1 ms and writes it as a plain integer (deviation)', async () => {
    const partition = privatePartition();
    await rotateWaitpointHmacSecret(client, { partition, newKid: 'k1', newSecretHex: secretA, graceMs: 0 });
    await rotateWaitpointHmacSecret(client, { partition, newKid: 'k2', newSecretHex: secretB, graceMs: Number.MAX_SAFE_INTEGER });
    expect(await redis.hget(PartitionKeys.forPartition(partition).waitpointHmacSecrets(), 'expires_at:k1')).toBe('9007199254740991');
    await expect(listWaitpointHmacKids(client, { partition })).resolves.toMatchObject({ verifying: [{ kid: 'k1', expiresAt: Number.MAX_SAFE_INTEGER }] });
  });

  it('lists with FCALL_RO (registered no-writes)', async () => {
    const request = buildListWaitpointHmacKids({ partition: privatePartition() }, CONFIG);
    expect(request.readOnly).toBe(true);
    await expect(redis.call('FCALL_RO', request.fn, 1, ...request.keys)).resolves.toEqual([1, 'OK', '', '0']);
  });
});
