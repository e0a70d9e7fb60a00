// End-to-end suspension scenarios through the generated wrappers: signal-driven resume and
// resumed claim, pending waitpoints with buffered signals, multi-signal conditions,
// idempotent delivery, timeouts, late signals, token rotation, limits, and the race between a
// signal and the timeout expiry of the same suspension.
import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { completeExecution } from '../generated/execution.js';
import { issueClaimGrant } from '../generated/scheduling.js';
import { buildDeliverSignal, deliverSignal, parseDeliverSignal, type DeliverSignalResult } from '../generated/signal.js';
import {
  buildExpireSuspension,
  expireSuspension,
  parseExpireSuspension,
  rotateWaitpointHmacSecret,
  suspendExecution,
  type ExpireSuspensionResult,
} from '../generated/suspension.js';
import type { FlowFabricClient } from '../runtime/client.js';
import { ScriptError } from '../runtime/errors.js';
import { newLeaseId } from '../runtime/ids.js';
import { claimResumed, expireSuspensionOf } from '../operations/waitpoints.js';
import { useServer } from './support/client.js';
import type { Claimed } from './support/lifecycle.js';
import {
  buffer,
  claimedWithKeyring,
  createPending,
  createSuspended,
  deliver,
  keysOf,
  privatePartition,
  signalArgs,
  sleep,
  suspendArgs,
  type Suspended,
} from './support/suspension.js';

async function scriptError(promise: Promise<unknown>): Promise<ScriptError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof ScriptError)) throw new Error(`expected a ScriptError, got ${String(error)}`);
  return error;
}

/** Grant + resumed claim + complete: the worker's path after a resume. */
async function claimAndComplete(client: FlowFabricClient, s: Claimed): Promise<void> {
  await issueClaimGrant(client, { executionId: s.executionId, laneId: s.laneId, workerId: s.workerId, workerInstanceId: s.workerInstanceId, grantTtlMs: 5000 });
  const claimed = await claimResumed(client, { executionId: s.executionId, laneId: s.laneId, workerId: s.workerId, workerInstanceId: s.workerInstanceId, leaseId: newLeaseId(), leaseTtlMs: 30_000 });
  expect(claimed).toMatchObject({ attemptIndex: s.lease.attemptIndex, attemptId: s.lease.attemptId, attemptType: 'resumed' });
  await expect(
    completeExecution(client, { executionId: s.executionId, laneId: s.laneId, workerInstanceId: s.workerInstanceId, attemptIndex: claimed.attemptIndex, leaseId: claimed.leaseId, leaseEpoch: claimed.leaseEpoch, attemptId: claimed.attemptId }),
  ).resolves.toEqual({ status: 'OK', publicState: 'completed' });
}

describe('suspension scenarios', () => {
  const { client, redis } = useServer();

  it('suspend → matching signal → resumed → resumed claim → complete', async () => {
    const s = await createSuspended(client, { timeoutMs: 60_000 });
    const { exec } = keysOf(s.executionId);
    await expect(deliver(client, s, 'go')).resolves.toMatchObject({ effect: 'resume_condition_satisfied' });
    expect(await redis.hget(exec.core(), 'public_state')).toBe('waiting');
    await claimAndComplete(client, s);
    expect(await redis.hgetall(exec.core())).toMatchObject({ lifecycle_phase: 'terminal', terminal_outcome: 'success', current_lease_epoch: '2' });
    expect(await redis.hget(exec.attemptHash(0), 'attempt_state')).toBe('ended_success');
    // The worker can still see which signal resumed it.
    const matched = await redis.hget(keysOf(s.executionId).index.waitpointCondition(s.waitpointId), 'matcher:0:signal_id');
    expect(await redis.hget(keysOf(s.executionId).index.signal(matched as never), 'signal_name')).toBe('go');
    const history = await redis.xrange(exec.leaseHistory(), '-', '+');
    const reasonOf = (f: string[]) => (f.includes('reason') ? f[f.indexOf('reason') + 1] : '');
    expect(history.map(([, f]) => `${f[1]}:${reasonOf(f)}`)).toEqual(['acquired:', 'released:suspend', 'acquired:claim_resumed', 'released:completed']);
  });

  it('a signal buffered against a pending waitpoint satisfies the suspension: ALREADY_SATISFIED', async () => {
    const c = await claimedWithKeyring(client);
    const p = await createPending(client, c);
    const { exec, index } = keysOf(c.executionId);
    const early = await buffer(client, p, 'approve');
    const args = suspendArgs(c, { waitpointId: p.waitpointId, usePendingWaitpoint: true, resumeConditionJson: { required_signal_names: ['approve'] } });
    const result = await suspendExecution(client, args);
    expect(result).toEqual({ status: 'ALREADY_SATISFIED', suspensionId: args.suspensionId, waitpointId: p.waitpointId, waitpointKey: p.waitpointKey, waitpointToken: p.token });
    // Nothing about the execution changed: the worker still holds its lease.
    expect(await redis.hgetall(exec.core())).toMatchObject({ lifecycle_phase: 'active', ownership_state: 'leased', current_lease_id: c.lease.leaseId, current_waitpoint_id: '' });
    expect(await redis.exists(exec.suspensionCurrent())).toBe(0);
    expect(await redis.sismember(exec.waitpoints(), p.waitpointId)).toBe(0);
    const wp = await redis.hgetall(index.waitpoint(p.waitpointId));
    expect(wp).toMatchObject({ state: 'closed', close_reason: 'resumed', suspension_id: args.suspensionId });
    expect(wp.satisfied_at).toBe(wp.closed_at);
    expect(await redis.zscore(index.pendingWaitpointExpiry(), p.waitpointId)).toBeNull();
    expect(await redis.hgetall(index.waitpointCondition(p.waitpointId))).toMatchObject({ satisfied_count: '1', 'matcher:0:signal_id': early.status === 'OK' ? early.signalId : '', closed: '1', closed_reason: 'satisfied' });
    expect(await redis.hget(index.signal(early.status === 'OK' ? early.signalId : ('' as never)), 'observed_effect')).toBe('buffered_for_pending_waitpoint');
    // A retry finds the waitpoint closed; a late signal is refused; the worker carries on.
    await expect(scriptError(suspendExecution(client, args))).resolves.toMatchObject({ code: 'waitpoint_not_pending' });
    await expect(scriptError(deliver(client, p, 'approve'))).resolves.toMatchObject({ code: 'target_not_signalable' });
    await expect(completeExecution(client, { executionId: c.executionId, laneId: c.laneId, workerInstanceId: c.workerInstanceId, ...c.lease })).resolves.toMatchObject({ status: 'OK' });
  });

  it('buffered signals that do not satisfy the condition are replayed into it; delivery completes it', async () => {
    const c = await claimedWithKeyring(client);
    const p = await createPending(client, c);
    const { index } = keysOf(c.executionId);
    await buffer(client, p, 'a');
    await buffer(client, p, 'noise');
    const s = await suspendExecution(client, suspendArgs(c, { waitpointId: p.waitpointId, usePendingWaitpoint: true, resumeConditionJson: { required_signal_names: ['a', 'b'], signal_match_mode: 'all' } }));
    expect(s.status).toBe('OK');
    expect(await redis.hgetall(index.waitpointCondition(p.waitpointId))).toMatchObject({ satisfied_count: '1', 'matcher:0:satisfied': '1', 'matcher:1:satisfied': '0', closed: '0' });
    await expect(deliver(client, p, 'b')).resolves.toMatchObject({ effect: 'resume_condition_satisfied' });
    await claimAndComplete(client, c);
  });

  it('a condition needing several signals counts non-matching ones without satisfying', async () => {
    const s = await createSuspended(client, { resumeConditionJson: { required_signal_names: ['tool', 'tool', 'review'], signal_match_mode: 'all' } });
    const { exec, index } = keysOf(s.executionId);
    const effects: string[] = [];
    for (const name of ['noise', 'tool', 'review', 'review', 'TOOL']) {
      const result = await deliver(client, s, name);
      effects.push(result.status === 'OK' ? result.effect : result.status);
    }
    expect(effects).toEqual(['no_op', 'appended_to_waitpoint', 'appended_to_waitpoint', 'no_op', 'no_op']);
    expect(await redis.hgetall(index.waitpoint(s.waitpointId))).toMatchObject({ state: 'active', signal_count: '5', matched_signal_count: '2' });
    expect(await redis.hget(exec.core(), 'lifecycle_phase')).toBe('suspended');
    await expect(deliver(client, s, 'tool')).resolves.toMatchObject({ effect: 'resume_condition_satisfied' });
    expect(await redis.hget(index.waitpointCondition(s.waitpointId), 'satisfied_count')).toBe('3');
    expect(await redis.zcard(exec.execSignals())).toBe(6);
  });

  it('count mode needs minimum_signal_count matches; a wildcard matcher takes one signal only', async () => {
    const counted = await createSuspended(client, { resumeConditionJson: { required_signal_names: ['x', 'y', 'z'], signal_match_mode: 'at_least', minimum_signal_count: 2 } });
    await expect(deliver(client, counted, 'z')).resolves.toMatchObject({ effect: 'appended_to_waitpoint' });
    await expect(deliver(client, counted, 'x')).resolves.toMatchObject({ effect: 'resume_condition_satisfied' });
    const wildcard = await createSuspended(client, { resumeConditionJson: { required_signal_names: [], minimum_signal_count: 3 } });
    await expect(deliver(client, wildcard, 'anything')).resolves.toMatchObject({ effect: 'appended_to_waitpoint' });
    await expect(deliver(client, wildcard, 'more')).resolves.toMatchObject({ effect: 'no_op' });
    expect(await redis.hget(keysOf(wildcard.executionId).exec.core(), 'lifecycle_phase')).toBe('suspended');
  });

  it('delivers a signal once per idempotency key, across buffering and delivery', async () => {
    const c = await claimedWithKeyring(client);
    const p = await createPending(client, c);
    const first = await buffer(client, p, 'a', { idempotencyKey: 'order-42' });
    await suspendExecution(client, suspendArgs(c, { waitpointId: p.waitpointId, usePendingWaitpoint: true, resumeConditionJson: { required_signal_names: ['a', 'b', 'c'], signal_match_mode: 'all' } }));
    const dup = await deliver(client, p, 'b', { idempotencyKey: 'order-42' });
    expect(dup).toEqual({ status: 'DUPLICATE', existingSignalId: first.status === 'OK' ? first.signalId : '' });
    expect(await redis.hget(keysOf(c.executionId).exec.core(), 'lifecycle_phase')).toBe('suspended');
    const retries = await Promise.all(Array.from({ length: 5 }, () => deliver(client, p, 'b', { idempotencyKey: 'order-43' })));
    const accepted = retries.filter((r): r is Extract<DeliverSignalResult, { status: 'OK' }> => r.status === 'OK');
    expect(accepted).toHaveLength(1);
    expect(accepted[0]!.effect).toBe('appended_to_waitpoint');
    for (const r of retries) if (r.status === 'DUPLICATE') expect(r.existingSignalId).toBe(accepted[0]!.signalId);
    expect(await redis.hget(keysOf(c.executionId).index.waitpoint(p.waitpointId), 'signal_count')).toBe('1');
    await expect(deliver(client, p, 'c')).resolves.toMatchObject({ effect: 'resume_condition_satisfied' });
    // After the resolution the state gate answers first, before any dedup lookup.
    await expect(scriptError(deliver(client, p, 'b', { idempotencyKey: 'order-43' }))).resolves.toMatchObject({ code: 'target_not_signalable' });
  });

  it('a closed waitpoint refuses signals that arrive too late', async () => {
    const c = await claimedWithKeyring(client);
    const p = await createPending(client, c);
    const { closeWaitpoint } = await import('../generated/suspension.js');
    await closeWaitpoint(client, { executionId: c.executionId, waitpointId: p.waitpointId, reason: 'never_committed' });
    await expect(scriptError(buffer(client, p, 'late'))).resolves.toMatchObject({ code: 'waitpoint_closed' });
    await expect(scriptError(deliver(client, p, 'late'))).resolves.toMatchObject({ code: 'target_not_signalable' });
    await expect(scriptError(suspendExecution(client, suspendArgs(c, { waitpointId: p.waitpointId, usePendingWaitpoint: true })))).resolves.toMatchObject({ code: 'waitpoint_not_pending' });
    // Once satisfied, a waitpoint is closed for good.
    const s = await createSuspended(client, { resumeConditionJson: { required_signal_names: [] } });
    await deliver(client, s, 'first');
    await expect(scriptError(deliver(client, s, 'second'))).resolves.toMatchObject({ code: 'target_not_signalable' });
  });

  it('rejects a forged token, a token of another waitpoint and a token whose kid is past its grace', async () => {
    const partition = privatePartition();
    const s = await createSuspended(client, { resumeConditionJson: { required_signal_names: ['a', 'b', 'c'], signal_match_mode: 'all' } }, partition);
    const other = await createSuspended(client, {}, partition);
    const forged = `k1:${[...s.token.slice(3)].reverse().join('')}`;
    await expect(scriptError(deliver(client, { ...s, token: forged }, 'a'))).resolves.toMatchObject({ code: 'invalid_token' });
    await expect(scriptError(deliver(client, { ...s, token: other.token }, 'a'))).resolves.toMatchObject({ code: 'invalid_token' });
    // Rotate: the old kid keeps working during its grace, then answers token_expired.
    await rotateWaitpointHmacSecret(client, { partition, newKid: 'k2', newSecretHex: '12'.repeat(32), graceMs: 150 });
    await expect(deliver(client, s, 'a')).resolves.toMatchObject({ effect: 'appended_to_waitpoint' });
    const fresh = await createSuspended(client, {}, partition);
    expect(fresh.token.startsWith('k2:')).toBe(true);
    await sleep(200);
    await expect(scriptError(deliver(client, s, 'b'))).resolves.toMatchObject({ code: 'token_expired' });
    await expect(deliver(client, fresh, 'go')).resolves.toMatchObject({ effect: 'resume_condition_satisfied' });
    expect(await redis.hget(keysOf(s.executionId).exec.core(), 'lifecycle_phase')).toBe('suspended');
  });

  it('refuses an oversize payload and stops at the signal limit', async () => {
    const s = await createSuspended(client, { resumeConditionJson: { required_signal_names: ['done'] } });
    await expect(scriptError(deliver(client, s, 'done', { payload: 'x'.repeat(64 * 1024 + 1) }))).resolves.toMatchObject({ code: 'payload_too_large' });
    for (let i = 0; i < 3; i++) await deliver(client, s, `noise-${i}`, { maxSignalsPerExecution: 3 });
    await expect(scriptError(deliver(client, s, 'done', { maxSignalsPerExecution: 3 }))).resolves.toMatchObject({ code: 'signal_limit_exceeded' });
    expect(await redis.hget(keysOf(s.executionId).exec.core(), 'lifecycle_phase')).toBe('suspended');
  });
});

describe('suspension timeouts', () => {
  const { client, redis } = useServer();

  it.each([
    ['fail', 'terminal', 'failed'],
    ['cancel', 'terminal', 'cancelled'],
    ['expire', 'terminal', 'expired'],
    ['auto_resume', 'runnable', 'waiting'],
    ['auto_resume_with_timeout_signal', 'runnable', 'waiting'],
    ['escalate', 'suspended', 'suspended'],
  ] as const)('%s: short timeout, then the expiry scanner call', async (behavior, phase, publicState) => {
    const s = await createSuspended(client, { timeoutMs: 25, timeoutBehavior: behavior });
    await sleep(50);
    const result = await expireSuspensionOf(client, s.executionId);
    expect(result).toMatchObject({ publicState });
    expect(await redis.hgetall(keysOf(s.executionId).exec.core())).toMatchObject({ lifecycle_phase: phase, public_state: publicState });
    expect(await redis.zscore(keysOf(s.executionId).index.suspensionTimeout(), s.executionId)).toBeNull();
    if (phase === 'runnable') await claimAndComplete(client, s);
  });
});

// ---- the race between a signal and the timeout expiry of one suspension ----

type Race = { deliver: DeliverSignalResult | ScriptError; expire: ExpireSuspensionResult | ScriptError };

const TERMINAL: Record<string, string> = { fail: 'failed', cancel: 'cancelled', expire: 'expired' };

/** Exactly one resolution, and indexes and records that agree with it. */
async function checkResolution(redis: Redis, s: Suspended, behavior: string, race: Race): Promise<'signal' | 'timeout'> {
  const { exec, index } = keysOf(s.executionId);
  const signalWon = !(race.deliver instanceof ScriptError) && race.deliver.status === 'OK' && race.deliver.effect === 'resume_condition_satisfied';
  const timeoutWon = !(race.expire instanceof ScriptError) && race.expire.status !== 'not_suspended_cleaned' && race.expire.status !== 'not_yet_due';
  expect(signalWon !== timeoutWon, `deliver=${JSON.stringify(race.deliver)} expire=${JSON.stringify(race.expire)}`).toBe(true);
  if (signalWon) expect(race.expire).toEqual({ status: 'not_suspended_cleaned' });
  else expect(race.deliver).toMatchObject({ code: 'target_not_signalable' });

  const core = await redis.hgetall(exec.core());
  const suspension = await redis.hgetall(exec.suspensionCurrent());
  const wp = await redis.hgetall(index.waitpoint(s.waitpointId));
  const condition = await redis.hgetall(index.waitpointCondition(s.waitpointId));
  expect(await redis.zscore(index.laneSuspended(s.laneId), s.executionId)).toBeNull();
  expect(await redis.zscore(index.suspensionTimeout(), s.executionId)).toBeNull();
  expect(wp.state).toBe('closed');
  expect(condition.closed).toBe('1');
  expect(suspension.closed_at).not.toBe('');
  expect(core.current_waitpoint_id).toBe('');
  const resumedBySignal = signalWon;
  const autoResumed = !signalWon && behavior.startsWith('auto_resume');
  if (resumedBySignal || autoResumed) {
    expect(core).toMatchObject({ lifecycle_phase: 'runnable', eligibility_state: 'eligible_now', public_state: 'waiting', attempt_state: 'attempt_interrupted' });
    expect(await redis.zscore(index.laneEligible(s.laneId), s.executionId)).not.toBeNull();
    expect(await redis.zscore(index.laneTerminal(s.laneId), s.executionId)).toBeNull();
    expect(suspension.close_reason).toBe(resumedBySignal ? 'resumed' : 'timed_out_auto_resume');
    expect(condition.closed_reason).toBe(resumedBySignal ? 'satisfied' : 'timed_out_auto_resume');
  } else {
    expect(core).toMatchObject({ lifecycle_phase: 'terminal', terminal_outcome: TERMINAL[behavior], public_state: TERMINAL[behavior] });
    expect(await redis.zscore(index.laneTerminal(s.laneId), s.executionId)).not.toBeNull();
    expect(await redis.zscore(index.laneEligible(s.laneId), s.executionId)).toBeNull();
    expect(suspension.close_reason).toBe(`timed_out_${behavior}`);
  }
  // Only the winning signal (if any) was recorded as resuming.
  expect(Number(wp.signal_count)).toBe(signalWon ? 1 : 0);
  return signalWon ? 'signal' : 'timeout';
}

function settle<T>(promise: Promise<T>): Promise<T | ScriptError> {
  return promise.catch((error: unknown) => {
    if (error instanceof ScriptError) return error;
    throw error;
  });
}

function parseOrError<T>(parse: () => T): T | ScriptError {
  try {
    return parse();
  } catch (error) {
    if (error instanceof ScriptError) return error;
    throw error;
  }
}

describe('signal versus timeout expiry', () => {
  const { client, redis } = useServer();
  const BEHAVIORS = ['fail', 'cancel', 'expire', 'auto_resume'] as const;

  async function dueSuspensions(count: number): Promise<{ s: Suspended; behavior: (typeof BEHAVIORS)[number] }[]> {
    const rounds = await Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const behavior = BEHAVIORS[i % BEHAVIORS.length]!;
        const s = await createSuspended(client, { timeoutMs: 40, timeoutBehavior: behavior });
        return { s, behavior };
      }),
    );
    await sleep(80);
    return rounds;
  }

  it('50 rounds, both calls in one pipeline, in either order: exactly one resolution', async () => {
    const rounds = await dueSuspensions(50);
    const winners = { signal: 0, timeout: 0 };
    for (const [i, { s, behavior }] of rounds.entries()) {
      const deliverRequest = buildDeliverSignal(signalArgs(s, 'go'), client.partitions);
      const expireRequest = buildExpireSuspension({ executionId: s.executionId, laneId: s.laneId, waitpointId: s.waitpointId, attemptIndex: 0 }, client.partitions);
      const signalFirst = i % 2 === 0;
      const replies = await client.transport.fcallBatch(signalFirst ? [deliverRequest, expireRequest] : [expireRequest, deliverRequest]);
      const [deliverReply, expireReply] = signalFirst ? replies : [replies[1]!, replies[0]!];
      if (!deliverReply!.ok || !expireReply!.ok) throw new Error('transport failure in the pipeline');
      const resolved: Race = {
        deliver: parseOrError(() => parseDeliverSignal(deliverReply!.reply)),
        expire: parseOrError(() => parseExpireSuspension(expireReply!.reply)),
      };
      const winner = await checkResolution(redis, s, behavior, resolved);
      winners[winner] += 1;
      expect(winner).toBe(signalFirst ? 'signal' : 'timeout');
    }
    expect(winners).toEqual({ signal: 25, timeout: 25 });
  });

  it('50 rounds of concurrent promises: exactly one resolution, consistent state', async () => {
    const rounds = await dueSuspensions(50);
    const outcomes = await Promise.all(
      rounds.map(async ({ s, behavior }) => {
        const [d, e] = await Promise.all([
          settle(deliverSignal(client, signalArgs(s, 'go'))),
          settle(expireSuspension(client, { executionId: s.executionId, laneId: s.laneId, waitpointId: s.waitpointId, attemptIndex: 0 })),
        ]);
        return checkResolution(redis, s, behavior, { deliver: d, expire: e });
      }),
    );
    expect(outcomes).toHaveLength(50);
  });

  it('a second signal or a second expiry after the resolution changes nothing', async () => {
    const { s } = (await dueSuspensions(1))[0]!;
    await expect(expireSuspensionOf(client, s.executionId)).resolves.toEqual({ status: 'fail', publicState: 'failed' });
    const snapshot = await redis.hgetall(keysOf(s.executionId).exec.core());
    await expect(scriptError(deliver(client, s, 'go'))).resolves.toMatchObject({ code: 'target_not_signalable' });
    await expect(expireSuspensionOf(client, s.executionId)).resolves.toEqual({ status: 'not_suspended_cleaned' });
    expect(await redis.hgetall(keysOf(s.executionId).exec.core())).toEqual(snapshot);
  });
});
