// ff_deliver_signal, ff_buffer_signal_for_pending_waitpoint and ff_claim_resumed_execution:
// happy paths with state read back, every error code, and the Lua's own defences.
import { describe, expect, it } from 'vitest';
import { ExecKeys, PartitionKeys } from '../generated/keys.js';
import { issueClaimGrant } from '../generated/scheduling.js';
import {
  buildBufferSignalForPendingWaitpoint,
  buildClaimResumedExecution,
  buildDeliverSignal,
  bufferSignalForPendingWaitpoint,
  claimResumedExecution,
  deliverSignal,
} from '../generated/signal.js';
import { closeWaitpoint, rotateWaitpointHmacSecret } from '../generated/suspension.js';
import { ScriptError } from '../runtime/errors.js';
import { newLeaseId, newSignalId, newWaitpointId } from '../runtime/ids.js';
import { DEFAULT_PARTITION_CONFIG } from '../runtime/partition.js';
import { claimResumed, deliverSignalTo, resumeSuspendedExecution } from '../operations/waitpoints.js';
import { useServer } from './support/client.js';
import { newExecutionId } from './support/ids.js';
import { createWaiting } from './support/lifecycle.js';
import { fcallPatched, keyStates } from './support/raw.js';
import {
  buffer,
  bufferArgs,
  claimedWithKeyring,
  createPending,
  createSuspended,
  deliver,
  keysOf,
  privatePartition,
  signalArgs,
  sleep,
  type Suspended,
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

async function resumedAndGranted(client: Parameters<typeof createSuspended>[0], s: Suspended): Promise<void> {
  await deliver(client, s, 'go');
  await issueClaimGrant(client, { executionId: s.executionId, laneId: s.laneId, workerId: s.workerId, workerInstanceId: s.workerInstanceId, grantTtlMs: 5000 });
}

describe('ff_deliver_signal', () => {
  const { client, redis } = useServer();

  it('appends a matching signal, then resumes on the last one; records everything', async () => {
    const s = await createSuspended(client, { resumeConditionJson: { required_signal_names: ['a', 'b'], signal_match_mode: 'all' }, timeoutMs: 60_000 });
    const { exec, index } = keysOf(s.executionId);
    const first = signalArgs(s, 'a', { payload: '{"x":1}', correlationId: 'corr-1', createdAt: 1234, idempotencyKey: 'idem-a' });
    await expect(deliverSignal(client, first)).resolves.toEqual({ status: 'OK', signalId: first.signalId, effect: 'appended_to_waitpoint' });
    const record = await redis.hgetall(index.signal(first.signalId));
    expect(record).toEqual({
      signal_id: first.signalId, target_execution_id: s.executionId, target_waitpoint_id: s.waitpointId, target_scope: 'waitpoint',
      signal_name: 'a', signal_category: 'custom', source_type: 'external_api', source_identity: 'test', correlation_id: 'corr-1',
      idempotency_key: 'idem-a', created_at: '1234', accepted_at: record.accepted_at, matched_waitpoint_id: s.waitpointId,
      payload_encoding: 'json', observed_effect: 'appended_to_waitpoint',
    });
    expect(await redis.get(index.signalPayload(first.signalId))).toBe('{"x":1}');
    expect(await redis.get(index.signalDedup(s.waitpointId, 'idem-a'))).toBe(first.signalId);
    expect(Number(await redis.zscore(exec.execSignals(), first.signalId))).toBe(Number(record.accepted_at));
    const stream = await redis.xrange(index.waitpointSignals(s.waitpointId), '-', '+');
    expect(stream.map(([, f]) => f)).toEqual([['signal_id', first.signalId, 'signal_name', 'a', 'signal_category', 'custom', 'source_type', 'external_api', 'source_identity', 'test', 'matched', '0', 'accepted_at', record.accepted_at]]);
    expect(await redis.hgetall(index.waitpointCondition(s.waitpointId))).toMatchObject({ satisfied_count: '1', 'matcher:0:satisfied': '1', 'matcher:0:signal_id': first.signalId, 'matcher:1:satisfied': '0', closed: '0' });
    expect(await redis.hgetall(index.waitpoint(s.waitpointId))).toMatchObject({ state: 'active', signal_count: '1', matched_signal_count: '1', last_signal_at: record.accepted_at });
    expect(await redis.hget(exec.suspensionCurrent(), 'last_signal_at')).toBe(record.accepted_at);
    expect(await redis.hget(exec.core(), 'lifecycle_phase')).toBe('suspended');

    const second = signalArgs(s, 'b');
    await expect(deliverSignal(client, second)).resolves.toEqual({ status: 'OK', signalId: second.signalId, effect: 'resume_condition_satisfied' });
    const core = await redis.hgetall(exec.core());
    const now = core.last_transition_at;
    expect(core).toMatchObject({
      lifecycle_phase: 'runnable', ownership_state: 'unowned', eligibility_state: 'eligible_now', blocking_reason: 'waiting_for_worker',
      blocking_detail: '', terminal_outcome: 'none', attempt_state: 'attempt_interrupted', public_state: 'waiting',
      current_suspension_id: '', current_waitpoint_id: '', delay_until: '',
    });
    expect(await redis.hgetall(index.signal(second.signalId))).toMatchObject({ observed_effect: 'resume_condition_satisfied', created_at: now, idempotency_key: '', correlation_id: '' });
    expect(await redis.exists(index.signalPayload(second.signalId))).toBe(0);
    expect(await redis.zscore(index.laneEligible(s.laneId), s.executionId)).toBe(core.created_at);
    expect(await redis.zscore(index.laneSuspended(s.laneId), s.executionId)).toBeNull();
    expect(await redis.zscore(index.suspensionTimeout(), s.executionId)).toBeNull();
    expect(await redis.hgetall(index.waitpointCondition(s.waitpointId))).toMatchObject({ satisfied_count: '2', 'matcher:1:signal_id': second.signalId, closed: '1', closed_at: now, closed_reason: 'satisfied' });
    expect(await redis.hgetall(index.waitpoint(s.waitpointId))).toMatchObject({ state: 'closed', satisfied_at: now, closed_at: now, close_reason: 'resumed', signal_count: '2', matched_signal_count: '2' });
    expect(await redis.hgetall(exec.suspensionCurrent())).toMatchObject({ satisfied_at: now, closed_at: now, close_reason: 'resumed', last_signal_at: now });
    expect(await redis.hget(exec.attemptHash(0), 'attempt_state')).toBe('suspended');
    expect(await redis.zcard(exec.execSignals())).toBe(2);
  });

  it('records a non-matching signal as no_op and counts it', async () => {
    const s = await createSuspended(client);
    const { index } = keysOf(s.executionId);
    await expect(deliver(client, s, 'other')).resolves.toMatchObject({ effect: 'no_op' });
    expect(await redis.hgetall(index.waitpoint(s.waitpointId))).toMatchObject({ signal_count: '1', matched_signal_count: '0' });
    expect(await redis.hget(index.waitpointCondition(s.waitpointId), 'satisfied_count')).toBe('0');
  });

  it('resumes with a delay into the delayed index, writing delay_until', async () => {
    const s = await createSuspended(client);
    const { exec, index } = keysOf(s.executionId);
    await expect(deliver(client, s, 'go', { resumeDelayMs: 2500 })).resolves.toMatchObject({ effect: 'resume_condition_satisfied' });
    const core = await redis.hgetall(exec.core());
    const due = Number(core.last_transition_at) + 2500;
    expect(core).toMatchObject({ eligibility_state: 'not_eligible_until_time', blocking_reason: 'waiting_for_resume_delay', blocking_detail: 'resume delay 2500ms after signal go', public_state: 'delayed', delay_until: String(due) });
    expect(Number(await redis.zscore(index.laneDelayed(s.laneId), s.executionId))).toBe(due);
  });

  it('answers DUPLICATE for a repeated idempotency key and writes nothing', async () => {
    const s = await createSuspended(client, { resumeConditionJson: { required_signal_names: ['a', 'b'], signal_match_mode: 'all' } });
    const { exec, index } = keysOf(s.executionId);
    const first = signalArgs(s, 'a', { idempotencyKey: 'once' });
    await deliverSignal(client, first);
    const watched = [exec.core(), exec.execSignals(), index.waitpoint(s.waitpointId), index.waitpointCondition(s.waitpointId), index.waitpointSignals(s.waitpointId)];
    const before = await keyStates(redis, watched);
    const retry = signalArgs(s, 'b', { idempotencyKey: 'once' });
    await expect(deliverSignal(client, retry)).resolves.toEqual({ status: 'DUPLICATE', existingSignalId: first.signalId });
    expect(await redis.exists(index.signal(retry.signalId))).toBe(0);
    expect(await keyStates(redis, watched)).toEqual(before);
    // A zero TTL disables dedup.
    await expect(deliver(client, s, 'x', { idempotencyKey: 'once', dedupTtlMs: 0 })).resolves.toMatchObject({ status: 'OK', effect: 'no_op' });
  });

  it('takes the defaults for an empty dedup_ttl_ms, resume_delay_ms, signal_maxlen and max_signals_per_execution (deviation)', async () => {
    const s = await createSuspended(client, { resumeConditionJson: { required_signal_names: ['a', 'b'], signal_match_mode: 'all' } });
    const empty = { 13: '', 14: '', 15: '', 16: '' };
    const first = signalArgs(s, 'a', { idempotencyKey: 'empty-ttl' });
    await expect(fcallPatched(redis, buildDeliverSignal(first, CONFIG), empty)).resolves.toEqual([1, 'OK', first.signalId, 'appended_to_waitpoint']);
    // The reference read the empty TTL as 0 and deduplicated nothing; the default 24 h holds the key.
    const retry = signalArgs(s, 'b', { idempotencyKey: 'empty-ttl' });
    await expect(fcallPatched(redis, buildDeliverSignal(retry, CONFIG), empty)).resolves.toEqual([1, 'DUPLICATE', first.signalId]);
    const ttl = await redis.pttl(keysOf(s.executionId).index.signalDedup(s.waitpointId, 'empty-ttl'));
    expect(ttl).toBeGreaterThan(86_400_000 - 60_000);
  });

  it('checks the token first and stamps failed validations', async () => {
    const partition = privatePartition();
    const s = await createSuspended(client, {}, partition);
    const other = await createSuspended(client, {}, partition);
    const { exec } = keysOf(s.executionId);
    const stamp = () => redis.hget(exec.core(), 'last_hmac_validation_failed_at');
    // A missing waitpoint, or one of another execution, answers like a bad token, unstamped.
    await expect(scriptError(deliver(client, { ...s, waitpointId: newWaitpointId() }, 'go'))).resolves.toMatchObject({ code: 'invalid_token' });
    await expect(scriptError(deliver(client, { ...s, waitpointId: other.waitpointId, token: other.token }, 'go'))).resolves.toMatchObject({ code: 'invalid_token' });
    expect(await stamp()).toBeNull();
    await expect(scriptError(deliver(client, { ...s, token: '' }, 'go'))).resolves.toMatchObject({ code: 'missing_token' });
    expect(await stamp()).not.toBeNull();
    for (const token of ['nocolon', ':abc', 'k1:', 'k1:abc', `k1:${'0'.repeat(40)}`, `k9:${s.token.slice(3)}`, other.token, s.token.toUpperCase()]) {
      await expect(scriptError(deliver(client, { ...s, token }, 'go')), token).resolves.toMatchObject({ code: 'invalid_token' });
    }
    // The token of another waitpoint of the same partition does not open this one.
    await expect(scriptError(deliver(client, { ...s, token: other.token }, 'go'))).resolves.toMatchObject({ code: 'invalid_token' });
    expect(await redis.hget(exec.core(), 'lifecycle_phase')).toBe('suspended');
    await expect(deliver(client, s, 'go')).resolves.toMatchObject({ effect: 'resume_condition_satisfied' });
  });

  it('answers the key-ring errors: hmac_secret_not_initialized, invalid_secret, invalid_keys_missing_hmac', async () => {
    const partition = privatePartition();
    const s = await createSuspended(client, {}, partition);
    const ring = PartitionKeys.forPartition(partition).waitpointHmacSecrets();
    const saved = await redis.hgetall(ring);
    await redis.del(ring);
    await expect(scriptError(deliver(client, s, 'go'))).resolves.toMatchObject({ code: 'hmac_secret_not_initialized' });
    await redis.hset(ring, 'current_kid', 'k1', 'secret:k1', 'xyz!');
    await expect(scriptError(deliver(client, s, 'go'))).resolves.toMatchObject({ code: 'invalid_secret' });
    await redis.hset(ring, saved);
    const request = buildDeliverSignal(signalArgs(s, 'go'), CONFIG);
    const keys = [...request.keys];
    keys[13] = '';
    await expect(fcallPatched(redis, request, {}, keys)).resolves.toEqual([0, 'invalid_keys_missing_hmac']);
    expect(await redis.hget(keysOf(s.executionId).exec.core(), 'lifecycle_phase')).toBe('suspended');
  });

  it('accepts an old kid within its grace and answers token_expired after it (invalid_token once collected)', async () => {
    const partition = privatePartition();
    const s = await createSuspended(client, { resumeConditionJson: { required_signal_names: ['a', 'b', 'c'], signal_match_mode: 'all' } }, partition);
    await rotateWaitpointHmacSecret(client, { partition, newKid: 'k2', newSecretHex: 'ab'.repeat(20), graceMs: 150 });
    await expect(deliver(client, s, 'a')).resolves.toMatchObject({ effect: 'appended_to_waitpoint' });
    await sleep(200);
    await expect(scriptError(deliver(client, s, 'b'))).resolves.toMatchObject({ code: 'token_expired' });
    await rotateWaitpointHmacSecret(client, { partition, newKid: 'k3', newSecretHex: 'cd'.repeat(20), graceMs: 60_000 });
    await expect(scriptError(deliver(client, s, 'b'))).resolves.toMatchObject({ code: 'invalid_token' });
  });

  it('applies the state gate: target_not_signalable, waitpoint_pending_use_buffer_script, waitpoint_not_found, waitpoint_closed', async () => {
    await expect(scriptError(deliver(client, { executionId: newExecutionId(), laneId: 'l' as never, waitpointId: newWaitpointId(), token: 'k1:x' }, 'go'))).resolves.toMatchObject({ code: 'execution_not_found' });
    const c = await claimedWithKeyring(client);
    const p = await createPending(client, c);
    await expect(scriptError(deliver(client, p, 'go'))).resolves.toMatchObject({ code: 'waitpoint_pending_use_buffer_script' });
    // Suspended on another waitpoint: the pending one has no condition.
    const { suspendClaimed } = await import('./support/suspension.js');
    const s = await suspendClaimed(client, c);
    await expect(scriptError(deliver(client, p, 'go'))).resolves.toMatchObject({ code: 'waitpoint_not_found' });
    await closeWaitpoint(client, { executionId: s.executionId, waitpointId: s.waitpointId });
    await expect(scriptError(deliver(client, s, 'go'))).resolves.toMatchObject({ code: 'waitpoint_closed' });
    await resumeSuspendedExecution(client, { executionId: s.executionId });
    await expect(scriptError(deliver(client, s, 'go'))).resolves.toMatchObject({ code: 'target_not_signalable' });
  });

  it('enforces the per-execution signal limit before dedup', async () => {
    const s = await createSuspended(client, { resumeConditionJson: { required_signal_names: ['never'] } });
    const limit = { maxSignalsPerExecution: 2 };
    await deliver(client, s, 'x', { ...limit, idempotencyKey: 'k' });
    await deliver(client, s, 'y', limit);
    await expect(scriptError(deliver(client, s, 'z', limit))).resolves.toMatchObject({ code: 'signal_limit_exceeded' });
    await expect(scriptError(deliver(client, s, 'x', { ...limit, idempotencyKey: 'k' }))).resolves.toMatchObject({ code: 'signal_limit_exceeded' });
    await expect(deliver(client, s, 'z', { maxSignalsPerExecution: 0 })).resolves.toMatchObject({ status: 'OK' });
    expect(await redis.zcard(keysOf(s.executionId).exec.execSignals())).toBe(3);
  });

  it('accepts a 65536-byte payload and refuses a bigger one with payload_too_large', async () => {
    const s = await createSuspended(client, { resumeConditionJson: { required_signal_names: ['never'] } });
    const fits = signalArgs(s, 'x', { payload: 'p'.repeat(65_536) });
    await expect(deliverSignal(client, fits)).resolves.toMatchObject({ status: 'OK' });
    expect(await redis.strlen(keysOf(s.executionId).index.signalPayload(fits.signalId))).toBe(65_536);
    const big = signalArgs(s, 'x', { payload: 'é'.repeat(32_769) });
    await expect(scriptError(deliverSignal(client, big))).resolves.toMatchObject({ code: 'payload_too_large' });
    expect(await redis.exists(keysOf(s.executionId).index.signal(big.signalId))).toBe(0);
  });

  it('resumes only from the current waitpoint (deviation)', async () => {
    const s = await createSuspended(client, {}, privatePartition());
    const { exec, index } = keysOf(s.executionId);
    // An older waitpoint of the same execution whose condition was left open (as the
    // reference left them): satisfying it closes it but resumes nothing.
    const old = newWaitpointId();
    await redis.hset(index.waitpoint(old), { ...(await redis.hgetall(index.waitpoint(s.waitpointId))), waitpoint_id: old });
    await redis.hset(index.waitpointCondition(old), await redis.hgetall(index.waitpointCondition(s.waitpointId)));
    const { expectedToken, TEST_SECRET_HEX } = await import('./support/suspension.js');
    const created = (await redis.hget(index.waitpoint(old), 'created_at'))!;
    const token = expectedToken('k1', TEST_SECRET_HEX, old, s.waitpointKey, created);
    await expect(deliver(client, { ...s, waitpointId: old, token }, 'go')).resolves.toMatchObject({ effect: 'resume_condition_satisfied' });
    expect(await redis.hget(exec.core(), 'lifecycle_phase')).toBe('suspended');
    expect(await redis.hget(exec.suspensionCurrent(), 'closed_at')).toBe('');
    expect(await redis.zscore(index.laneSuspended(s.laneId), s.executionId)).not.toBeNull();
    await expect(deliver(client, s, 'go')).resolves.toMatchObject({ effect: 'resume_condition_satisfied' });
    expect(await redis.hget(exec.core(), 'lifecycle_phase')).toBe('runnable');
  });

  it('delivers through the lane pre-read helper', async () => {
    const s = await createSuspended(client);
    const { laneId: _lane, ...rest } = signalArgs(s, 'go');
    await expect(deliverSignalTo(client, rest)).resolves.toMatchObject({ effect: 'resume_condition_satisfied' });
  });

  it('answers malformed ARGV and foreign KEYS with invalid_input and writes nothing', async () => {
    const s = await createSuspended(client, {}, privatePartition());
    const request = buildDeliverSignal(signalArgs(s, 'go', { idempotencyKey: 'i' }), CONFIG);
    const before = await keyStates(redis, request.keys);
    const patches: Record<number, string>[] = [
      { 0: '' }, { 1: '' }, { 2: '' }, { 12: 'yesterday' }, { 13: '-1' }, { 13: 'x' }, { 14: 'soon' }, { 15: '-3' }, { 16: '1e3' },
      { 2: newWaitpointId() }, { 0: newSignalId() }, { 9: 'other-key' }, { 1: newExecutionId() },
    ];
    for (const patch of patches) {
      await expect(fcallPatched(redis, request, patch), JSON.stringify(patch)).resolves.toEqual([0, 'invalid_input', expect.any(String)]);
    }
    const wrongLane = buildDeliverSignal(signalArgs(s, 'go', { laneId: 'not-its-lane' as never }), CONFIG);
    await expect(fcallPatched(redis, wrongLane)).resolves.toEqual([0, 'invalid_input', expect.stringContaining('lane')]);
    const keys = [...request.keys];
    keys[1] = new PartitionKeys(new ExecKeys(s.executionId).tag).waitpointCondition(newWaitpointId());
    await expect(fcallPatched(redis, request, {}, keys)).resolves.toEqual([0, 'invalid_input', expect.stringContaining('KEYS[2]')]);
    expect(await keyStates(redis, request.keys)).toEqual(before);
    // Empty resume delay, maxlen and limit take their defaults.
    await expect(fcallPatched(redis, request, { 14: '', 15: '', 16: '' })).resolves.toEqual([1, 'OK', request.argv[0], 'resume_condition_satisfied']);
  });
});

describe('ff_buffer_signal_for_pending_waitpoint', () => {
  const { client, redis } = useServer();

  it('records the signal for the pending waitpoint without evaluating it', async () => {
    const c = await claimedWithKeyring(client);
    const p = await createPending(client, c);
    const { exec, index } = keysOf(c.executionId);
    const args = bufferArgs(p, 'go', { payload: 'early', idempotencyKey: 'b1' });
    await expect(bufferSignalForPendingWaitpoint(client, args)).resolves.toEqual({ status: 'OK', signalId: args.signalId, effect: 'buffered_for_pending_waitpoint' });
    expect(await redis.hgetall(index.signal(args.signalId))).toMatchObject({ signal_name: 'go', observed_effect: 'buffered_for_pending_waitpoint', target_waitpoint_id: p.waitpointId, idempotency_key: 'b1' });
    expect(await redis.get(index.signalPayload(args.signalId))).toBe('early');
    expect(await redis.xlen(index.waitpointSignals(p.waitpointId))).toBe(1);
    expect(await redis.zscore(exec.execSignals(), args.signalId)).not.toBeNull();
    expect(await redis.hgetall(index.waitpoint(p.waitpointId))).toMatchObject({ state: 'pending', signal_count: '0', matched_signal_count: '0', last_signal_at: '' });
    expect(await redis.exists(index.waitpointCondition(p.waitpointId))).toBe(0);
    expect(await redis.hget(exec.core(), 'lifecycle_phase')).toBe('active');
    await expect(buffer(client, p, 'again', { idempotencyKey: 'b1' })).resolves.toEqual({ status: 'DUPLICATE', existingSignalId: args.signalId });
    expect(await redis.xlen(index.waitpointSignals(p.waitpointId))).toBe(1);
  });

  it('answers execution_not_found, waitpoint_not_found, the token codes, waitpoint_closed, waitpoint_not_pending and signal_limit_exceeded', async () => {
    const partition = privatePartition();
    const c = await claimedWithKeyring(client, partition);
    const other = await claimedWithKeyring(client, partition);
    const p = await createPending(client, c);
    const foreign = await createPending(client, other);
    await expect(scriptError(buffer(client, { ...p, executionId: newExecutionId() }, 'go'))).resolves.toMatchObject({ code: 'execution_not_found' });
    await expect(scriptError(buffer(client, { ...p, waitpointId: newWaitpointId() }, 'go'))).resolves.toMatchObject({ code: 'waitpoint_not_found' });
    await expect(scriptError(buffer(client, { ...p, waitpointId: foreign.waitpointId, token: foreign.token }, 'go'))).resolves.toMatchObject({ code: 'waitpoint_not_found' });
    const stamp = () => redis.hget(keysOf(c.executionId).exec.core(), 'last_hmac_validation_failed_at');
    expect(await stamp()).toBeNull();
    await expect(scriptError(buffer(client, { ...p, token: '' }, 'go'))).resolves.toMatchObject({ code: 'missing_token' });
    await expect(scriptError(buffer(client, { ...p, token: foreign.token }, 'go'))).resolves.toMatchObject({ code: 'invalid_token' });
    expect(await stamp()).not.toBeNull();
    await buffer(client, p, 'one', { maxSignalsPerExecution: 1 });
    await expect(scriptError(buffer(client, p, 'two', { maxSignalsPerExecution: 1 }))).resolves.toMatchObject({ code: 'signal_limit_exceeded' });
    // Active: use delivery (the reference silently recorded it and never evaluated it).
    const { suspendClaimed } = await import('./support/suspension.js');
    await suspendClaimed(client, c, { waitpointId: p.waitpointId, usePendingWaitpoint: true, resumeConditionJson: { required_signal_names: ['never'] } });
    await expect(scriptError(buffer(client, p, 'late'))).resolves.toMatchObject({ code: 'waitpoint_not_pending' });
    await closeWaitpoint(client, { executionId: other.executionId, waitpointId: foreign.waitpointId });
    await expect(scriptError(buffer(client, foreign, 'late'))).resolves.toMatchObject({ code: 'waitpoint_closed' });
  });

  it('answers invalid_input and payload_too_large before anything is read, writing nothing', async () => {
    const c = await claimedWithKeyring(client, privatePartition());
    const p = await createPending(client, c);
    const request = buildBufferSignalForPendingWaitpoint(bufferArgs(p, 'go'), CONFIG);
    expect(request.argv.slice(13, 17)).toEqual(['86400000', '0', '1000', '10000']);
    const before = await keyStates(redis, request.keys);
    for (const patch of [{ 0: '' }, { 12: 'x' }, { 13: '1.5' }, { 16: 'lots' }, { 2: newWaitpointId() }]) {
      await expect(fcallPatched(redis, request, patch), JSON.stringify(patch)).resolves.toEqual([0, 'invalid_input', expect.any(String)]);
    }
    await expect(fcallPatched(redis, request, { 7: 'x'.repeat(65_537) })).resolves.toEqual([0, 'payload_too_large']);
    expect(await keyStates(redis, request.keys)).toEqual(before);
  });
});

describe('ff_claim_resumed_execution', () => {
  const { client, redis } = useServer();

  it('resumes the same attempt under a new lease', async () => {
    const s = await createSuspended(client);
    const { exec, index } = keysOf(s.executionId);
    await resumedAndGranted(client, s);
    const leaseId = newLeaseId();
    const result = await claimResumedExecution(client, { executionId: s.executionId, laneId: s.laneId, workerId: s.workerId, workerInstanceId: s.workerInstanceId, leaseId, leaseTtlMs: 30_000, currentAttemptIndex: 0, remainingAttemptTimeoutMs: 60_000 });
    expect(result).toEqual({ status: 'OK', leaseId, leaseEpoch: 2, leaseExpiresAt: expect.any(Number), attemptId: s.lease.attemptId, attemptIndex: 0, attemptType: 'resumed' });
    const core = await redis.hgetall(exec.core());
    const now = Number(core.last_transition_at);
    expect(result.leaseExpiresAt).toBe(now + 30_000);
    expect(core).toMatchObject({
      lifecycle_phase: 'active', ownership_state: 'leased', eligibility_state: 'not_applicable', blocking_reason: 'none', blocking_detail: '',
      terminal_outcome: 'none', attempt_state: 'running_attempt', public_state: 'active', current_lease_id: leaseId, current_lease_epoch: '2',
      current_worker_id: s.workerId, current_worker_instance_id: s.workerInstanceId, current_lane: s.laneId, lease_acquired_at: String(now),
      lease_expires_at: String(now + 30_000), lease_renewal_deadline: String(now + 20_000), total_attempt_count: '1', current_attempt_index: '0',
    });
    expect(await redis.hgetall(exec.attemptHash(0))).toMatchObject({ attempt_state: 'started', resumed_at: String(now), lease_id: leaseId, lease_epoch: '2', worker_id: s.workerId, suspended_at: '', suspension_id: '' });
    expect(await redis.hgetall(exec.leaseCurrent())).toEqual({
      lease_id: leaseId, lease_epoch: '2', execution_id: s.executionId, attempt_id: s.lease.attemptId, worker_id: s.workerId,
      worker_instance_id: s.workerInstanceId, acquired_at: String(now), expires_at: String(now + 30_000), last_renewed_at: String(now), renewal_deadline: String(now + 20_000),
    });
    expect(await redis.exists(exec.claimGrant())).toBe(0);
    expect(await redis.zscore(index.laneEligible(s.laneId), s.executionId)).toBeNull();
    expect(Number(await redis.zscore(index.leaseExpiry(), s.executionId))).toBe(now + 30_000);
    expect(Number(await redis.zscore(index.laneActive(s.laneId), s.executionId))).toBe(now + 30_000);
    expect(await redis.sismember(index.workerLeases(s.workerInstanceId), s.executionId)).toBe(1);
    expect(Number(await redis.zscore(index.attemptTimeout(), s.executionId))).toBe(now + 60_000);
    const history = await redis.xrange(exec.leaseHistory(), '-', '+');
    expect(history.at(-1)![1]).toEqual(['event', 'acquired', 'lease_id', leaseId, 'lease_epoch', '2', 'attempt_index', '0', 'attempt_id', s.lease.attemptId, 'worker_id', s.workerId, 'reason', 'claim_resumed', 'ts', String(now)]);
    // The grant is consumed: a retry is refused.
    await expect(scriptError(claimResumed(client, { executionId: s.executionId, laneId: s.laneId, workerId: s.workerId, workerInstanceId: s.workerInstanceId, leaseId: newLeaseId(), leaseTtlMs: 1000 }))).resolves.toMatchObject({ code: 'execution_not_leaseable' });
  });

  it('answers execution_not_found, execution_not_leaseable, not_a_resumed_execution, invalid_claim_grant and claim_grant_expired', async () => {
    const claim = (target: { executionId: Suspended['executionId']; laneId: Suspended['laneId'] }, workerId = 'worker-a') =>
      claimResumed(client, { executionId: target.executionId, laneId: target.laneId, workerId, workerInstanceId: 'worker-a-1', leaseId: newLeaseId(), leaseTtlMs: 1000 });
    await expect(scriptError(claim({ executionId: newExecutionId(), laneId: 'l' as never }))).resolves.toMatchObject({ code: 'execution_not_found' });
    const s = await createSuspended(client);
    await expect(scriptError(claim(s))).resolves.toMatchObject({ code: 'execution_not_leaseable' });
    const fresh = await createWaiting(client);
    await expect(scriptError(claim(fresh))).resolves.toMatchObject({ code: 'not_a_resumed_execution' });
    await deliver(client, s, 'go');
    await expect(scriptError(claim(s))).resolves.toMatchObject({ code: 'invalid_claim_grant' });
    await issueClaimGrant(client, { executionId: s.executionId, laneId: s.laneId, workerId: 'worker-a', workerInstanceId: 'worker-a-1', grantTtlMs: 5000 });
    await expect(scriptError(claim(s, 'worker-b'))).resolves.toMatchObject({ code: 'invalid_claim_grant' });
    const grant = keysOf(s.executionId).exec.claimGrant();
    await redis.hset(grant, 'grant_expires_at', String(Date.now() - 1000));
    await expect(scriptError(claim(s))).resolves.toMatchObject({ code: 'claim_grant_expired' });
    expect(await redis.exists(grant)).toBe(0);
  });

  it('answers not_a_resumed_execution for an execution without a current attempt id (the reference raised a runtime error)', async () => {
    const s = await createSuspended(client);
    await resumedAndGranted(client, s);
    await redis.hdel(keysOf(s.executionId).exec.core(), 'current_attempt_id');
    await expect(scriptError(claimResumed(client, { executionId: s.executionId, laneId: s.laneId, workerId: s.workerId, workerInstanceId: s.workerInstanceId, leaseId: newLeaseId(), leaseTtlMs: 1000 }))).resolves.toMatchObject({ code: 'not_a_resumed_execution' });
    expect(await redis.exists(keysOf(s.executionId).exec.claimGrant())).toBe(1);
  });

  it('answers invalid_input for bad ARGV or a stale attempt pre-read, before consuming the grant', async () => {
    const s = await createSuspended(client, {}, privatePartition());
    await resumedAndGranted(client, s);
    const request = buildClaimResumedExecution({ executionId: s.executionId, laneId: s.laneId, workerId: s.workerId, workerInstanceId: s.workerInstanceId, leaseId: newLeaseId(), leaseTtlMs: 1000, currentAttemptIndex: 0 }, CONFIG);
    const before = await keyStates(redis, request.keys);
    await expect(fcallPatched(redis, request, { 6: 'abc' })).resolves.toEqual([0, 'invalid_input', 'lease_ttl_ms must be a number, got: abc']);
    for (const patch of [{ 6: '0' }, { 6: '1.5' }, { 7: 'x' }, { 0: '' }, { 1: '' }, { 2: 'other-instance' }]) {
      await expect(fcallPatched(redis, request, patch), JSON.stringify(patch)).resolves.toEqual([0, 'invalid_input', expect.any(String)]);
    }
    const stale = buildClaimResumedExecution({ executionId: s.executionId, laneId: s.laneId, workerId: s.workerId, workerInstanceId: s.workerInstanceId, leaseId: newLeaseId(), leaseTtlMs: 1000, currentAttemptIndex: 3 }, CONFIG);
    await expect(fcallPatched(redis, stale)).resolves.toEqual([0, 'invalid_input', expect.stringContaining('KEYS[6]')]);
    expect(await keyStates(redis, request.keys)).toEqual(before);
    await expect(fcallPatched(redis, request)).resolves.toEqual([1, 'OK', request.argv[5], '2', expect.any(String), s.lease.attemptId, '0', 'resumed']);
  });
});
