// Scheduling functions beyond the claim grant: priority changes, progress reports, delayed
// promotion and reclaim grants.
import { describe, expect, it } from 'vitest';
import { claimExecution, delayExecution, failExecution } from '../generated/execution.js';
import { ExecKeys, PartitionKeys } from '../generated/keys.js';
import { revokeLease } from '../generated/lease.js';
import {
  buildChangePriority, buildIssueReclaimGrant, buildPromoteDelayed, buildUpdateProgress, changePriority, issueClaimGrant, issueReclaimGrant,
  promoteDelayed, updateProgress,
} from '../generated/scheduling.js';
import { ArgumentError, isScriptError } from '../runtime/errors.js';
import { newAttemptId, newLeaseId } from '../runtime/ids.js';
import { useServer } from './support/client.js';
import { core, holderArgs, lapseLease, laneScore, waitUntilServerTime } from './support/exec-ops.js';
import { newExecutionId, uniqueLane } from './support/ids.js';
import { createClaimed, createWaiting } from './support/lifecycle.js';
import { fcallPatched, keyStates } from './support/raw.js';

describe('ff_change_priority', () => {
  const { client, redis } = useServer();

  it('re-scores an eligible execution and answers the old and new priority', async () => {
    const c = await createWaiting(client, { priority: 2 });
    await expect(changePriority(client, { executionId: c.executionId, laneId: c.laneId, newPriority: 7 })).resolves.toEqual({ status: 'OK', oldPriority: 2, newPriority: 7 });
    const stored = await core(redis, c.executionId);
    expect(stored.priority).toBe('7');
    expect(Number(stored.last_mutation_at)).toBeGreaterThanOrEqual(Number(stored.last_transition_at));
    expect(await laneScore(redis, c.executionId, c.laneId, 'eligible')).toBe(Number(stored.created_at) - 7e12);
  });

  it.each([[12_000, 9000], [-5, 0]])('clamps %d to %d', async (requested, stored) => {
    const c = await createWaiting(client);
    await expect(changePriority(client, { executionId: c.executionId, laneId: c.laneId, newPriority: requested })).resolves.toEqual({ status: 'OK', oldPriority: 0, newPriority: stored });
    const created = Number((await core(redis, c.executionId)).created_at);
    expect(await laneScore(redis, c.executionId, c.laneId, 'eligible')).toBe(created - stored * 1e12);
  });

  it('works while a claim grant is outstanding', async () => {
    const c = await createWaiting(client);
    await issueClaimGrant(client, { executionId: c.executionId, laneId: c.laneId, workerId: 'w', workerInstanceId: 'w-1', grantTtlMs: 5000 });
    await expect(changePriority(client, { executionId: c.executionId, laneId: c.laneId, newPriority: 1 })).resolves.toMatchObject({ newPriority: 1 });
  });

  it('answers execution_not_found and, unless runnable and eligible, execution_not_eligible', async () => {
    await expect(changePriority(client, { executionId: newExecutionId(), laneId: uniqueLane(), newPriority: 1 })).rejects.toMatchObject({ code: 'execution_not_found' });
    const delayed = await createWaiting(client, { delayUntil: Date.now() + 60_000 });
    await expect(changePriority(client, { executionId: delayed.executionId, laneId: delayed.laneId, newPriority: 1 })).rejects.toMatchObject({ code: 'execution_not_eligible' });
    const active = await createClaimed(client);
    await expect(changePriority(client, { executionId: active.executionId, laneId: active.laneId, newPriority: 1 })).rejects.toMatchObject({ code: 'execution_not_eligible' });
    expect(await laneScore(redis, delayed.executionId, delayed.laneId, 'eligible')).toBeNull();
  });

  it('answers invalid_input, writing nothing, for a non-numeric priority or a mismatched id', async () => {
    const c = await createWaiting(client, { priority: 3 });
    const request = buildChangePriority({ executionId: c.executionId, laneId: c.laneId, newPriority: 1 }, client.partitions);
    const before = await keyStates(redis, request.keys);
    await expect(fcallPatched(redis, request, { 1: 'high' })).resolves.toEqual([0, 'invalid_input', 'new_priority must be a number, got: high']);
    await expect(fcallPatched(redis, request, { 1: '' })).resolves.toEqual([0, 'invalid_input', expect.any(String)]);
    await expect(fcallPatched(redis, request, { 0: newExecutionId() })).resolves.toEqual([0, 'invalid_input', expect.any(String)]);
    expect(await keyStates(redis, request.keys)).toEqual(before);
    expect(() => buildChangePriority({ executionId: c.executionId, laneId: c.laneId, newPriority: 1.5 }, client.partitions)).toThrow(ArgumentError);
  });
});

describe('ff_update_progress', () => {
  const { client, redis } = useServer();

  it('stores the given values and leaves absent ones unchanged', async () => {
    const c = await createClaimed(client);
    const lease = { executionId: c.executionId, leaseId: c.lease.leaseId, leaseEpoch: c.lease.leaseEpoch };
    await expect(updateProgress(client, { ...lease, progressPct: 40, progressMessage: 'halfway-ish' })).resolves.toEqual({ status: 'OK' });
    const first = await core(redis, c.executionId);
    expect(first).toMatchObject({ progress_pct: '40', progress_message: 'halfway-ish' });
    expect(first.progress_updated_at).toBe(first.last_mutation_at);
    await updateProgress(client, { ...lease, progressPct: 0 });
    expect(await core(redis, c.executionId)).toMatchObject({ progress_pct: '0', progress_message: 'halfway-ish', lifecycle_phase: 'active' });
    await updateProgress(client, { ...lease, progressMessage: 'done soon' });
    expect(await core(redis, c.executionId)).toMatchObject({ progress_pct: '0', progress_message: 'done soon' });
  });

  it('answers execution_not_found, execution_not_active (with context), lease_revoked and stale_lease', async () => {
    await expect(updateProgress(client, { executionId: newExecutionId(), leaseId: newLeaseId(), leaseEpoch: 1 })).rejects.toMatchObject({ code: 'execution_not_found' });
    const waiting = await createWaiting(client);
    const notActive = await updateProgress(client, { executionId: waiting.executionId, leaseId: newLeaseId(), leaseEpoch: 0 }).catch((e: unknown) => e);
    expect(isScriptError(notActive, 'execution_not_active') && notActive.details).toEqual(['none', '0']);
    const c = await createClaimed(client);
    await expect(updateProgress(client, { executionId: c.executionId, leaseId: newLeaseId(), leaseEpoch: 1 })).rejects.toMatchObject({ code: 'stale_lease' });
    await expect(updateProgress(client, { executionId: c.executionId, leaseId: c.lease.leaseId, leaseEpoch: 2 })).rejects.toMatchObject({ code: 'stale_lease' });
    await revokeLease(client, { executionId: c.executionId, workerInstanceId: c.workerInstanceId });
    await expect(updateProgress(client, { executionId: c.executionId, leaseId: c.lease.leaseId, leaseEpoch: 1 })).rejects.toMatchObject({ code: 'lease_revoked' });
  });

  it('answers lease_expired for a lapsed lease without marking it', async () => {
    const c = await createClaimed(client, {}, { leaseTtlMs: 50 });
    await waitUntilServerTime(redis, c.claim.leaseExpiresAt);
    await expect(updateProgress(client, { executionId: c.executionId, leaseId: c.lease.leaseId, leaseEpoch: 1, progressPct: 5 })).rejects.toMatchObject({ code: 'lease_expired' });
    expect(await core(redis, c.executionId)).toMatchObject({ ownership_state: 'leased', progress_pct: '' });
  });

  it('refuses a progress_pct that is not an integer in 0..100 (deviation)', async () => {
    const c = await createClaimed(client);
    const request = buildUpdateProgress({ executionId: c.executionId, leaseId: c.lease.leaseId, leaseEpoch: 1, progressPct: 1 }, client.partitions);
    const before = await keyStates(redis, request.keys);
    for (const value of ['150', '-1', 'half', '2.5']) {
      await expect(fcallPatched(redis, request, { 3: value })).resolves.toEqual([0, 'invalid_input', expect.stringContaining('progress_pct')]);
    }
    expect(await keyStates(redis, request.keys)).toEqual(before);
    expect(() => buildUpdateProgress({ executionId: c.executionId, leaseId: c.lease.leaseId, leaseEpoch: 1, progressPct: 101 }, client.partitions)).toThrow(ArgumentError);
  });
});

describe('ff_promote_delayed', () => {
  const { client, redis } = useServer();

  it('leaves an execution that is not yet due, then promotes it to eligible keeping its attempt state', async () => {
    const delayUntil = Date.now() + 60_000;
    const c = await createWaiting(client, { delayUntil, priority: 4 });
    await expect(promoteDelayed(client, { executionId: c.executionId, laneId: c.laneId, nowMs: delayUntil - 1 })).resolves.toEqual({ status: 'not_yet_due' });
    expect(await laneScore(redis, c.executionId, c.laneId, 'delayed')).toBe(delayUntil);
    await expect(promoteDelayed(client, { executionId: c.executionId, laneId: c.laneId, nowMs: delayUntil })).resolves.toEqual({ status: 'promoted' });
    const stored = await core(redis, c.executionId);
    expect(stored).toMatchObject({
      lifecycle_phase: 'runnable', ownership_state: 'unowned', eligibility_state: 'eligible_now', blocking_reason: 'waiting_for_worker', blocking_detail: '',
      terminal_outcome: 'none', attempt_state: 'pending_first_attempt', public_state: 'waiting', delay_until: '',
      last_transition_at: String(delayUntil), last_mutation_at: String(delayUntil),
    });
    expect(await laneScore(redis, c.executionId, c.laneId, 'delayed')).toBeNull();
    expect(await laneScore(redis, c.executionId, c.laneId, 'eligible')).toBe(Number(stored.created_at) - 4e12);
    await expect(promoteDelayed(client, { executionId: c.executionId, laneId: c.laneId, nowMs: delayUntil })).resolves.toEqual({ status: 'not_delayed_cleaned' });
    expect(await laneScore(redis, c.executionId, c.laneId, 'eligible')).not.toBeNull();
  });

  it('keeps attempt_interrupted for a worker delay, so the next claim is a resumed one', async () => {
    const c = await createClaimed(client);
    await delayExecution(client, { ...holderArgs(c), delayUntil: 1000 });
    await expect(promoteDelayed(client, { executionId: c.executionId, laneId: c.laneId, nowMs: Date.now() })).resolves.toEqual({ status: 'promoted' });
    expect((await core(redis, c.executionId)).attempt_state).toBe('attempt_interrupted');
  });

  it('cleans stale index entries: missing, not runnable', async () => {
    const missing = newExecutionId();
    const lane = uniqueLane();
    const delayedKey = new PartitionKeys(new ExecKeys(missing).tag).laneDelayed(lane);
    await redis.zadd(delayedKey, '1', missing);
    await expect(promoteDelayed(client, { executionId: missing, laneId: lane, nowMs: Date.now() })).resolves.toEqual({ status: 'not_found_cleaned' });
    expect(await redis.zscore(delayedKey, missing)).toBeNull();
    const active = await createClaimed(client);
    await redis.zadd(new PartitionKeys(new ExecKeys(active.executionId).tag).laneDelayed(active.laneId), '1', active.executionId);
    await expect(promoteDelayed(client, { executionId: active.executionId, laneId: active.laneId, nowMs: Date.now() })).resolves.toEqual({ status: 'not_runnable_cleaned' });
    expect(await laneScore(redis, active.executionId, active.laneId, 'delayed')).toBeNull();
    expect((await core(redis, active.executionId)).lifecycle_phase).toBe('active');
  });

  it('falls back to the delayed score when delay_until is empty, as resume-with-delay leaves it (deviation)', async () => {
    const c = await createClaimed(client);
    await delayExecution(client, { ...holderArgs(c), delayUntil: Date.now() + 60_000 });
    // The state a resume with a delay leaves behind: delayed, with delay_until empty.
    const due = Date.now() + 30_000;
    await redis.hset(new ExecKeys(c.executionId).core(), 'delay_until', '');
    await redis.zadd(new PartitionKeys(new ExecKeys(c.executionId).tag).laneDelayed(c.laneId), String(due), c.executionId);
    await expect(promoteDelayed(client, { executionId: c.executionId, laneId: c.laneId, nowMs: due - 1 })).resolves.toEqual({ status: 'not_yet_due' });
    await expect(promoteDelayed(client, { executionId: c.executionId, laneId: c.laneId, nowMs: due })).resolves.toEqual({ status: 'promoted' });
  });

  it('answers invalid_input, writing nothing, for a non-integer now_ms or a mismatched id', async () => {
    const c = await createWaiting(client, { delayUntil: Date.now() + 60_000 });
    const request = buildPromoteDelayed({ executionId: c.executionId, laneId: c.laneId, nowMs: Date.now() + 120_000 }, client.partitions);
    const before = await keyStates(redis, request.keys);
    for (const [slot, value] of [[1, 'now'], [1, ''], [1, '1.5'], [0, newExecutionId()], [0, '']] as const) {
      await expect(fcallPatched(redis, request, { [slot]: value })).resolves.toEqual([0, 'invalid_input', expect.any(String)]);
    }
    expect(await keyStates(redis, request.keys)).toEqual(before);
  });
});

describe('ff_issue_reclaim_grant', () => {
  const { client, redis } = useServer();

  it('writes the grant with its expiry for an execution whose lease lapsed', async () => {
    const c = await createClaimed(client, {}, { leaseTtlMs: 50 });
    await lapseLease(client, redis, c.executionId, c.claim.leaseExpiresAt);
    const args = { executionId: c.executionId, laneId: c.laneId, workerId: 'rw', workerInstanceId: 'rw-1', grantTtlMs: 5000, capabilityHash: 'h', admissionSummary: 'ok' };
    await expect(issueReclaimGrant(client, args)).resolves.toEqual({ status: 'OK', executionId: c.executionId });
    const exec = new ExecKeys(c.executionId);
    const grant = await redis.hgetall(exec.claimGrant());
    expect(grant).toMatchObject({ worker_id: 'rw', worker_instance_id: 'rw-1', lane_id: c.laneId, capability_hash: 'h', route_snapshot_json: '', admission_summary: 'ok' });
    expect(Number(grant.grant_expires_at)).toBe(Number(grant.created_at) + 5000);
    expect(await redis.call('PEXPIRETIME', exec.claimGrant())).toBe(Number(grant.grant_expires_at));
    expect(await redis.zscore(new PartitionKeys(exec.tag).leaseExpiry(), c.executionId)).not.toBeNull();
    expect((await core(redis, c.executionId)).ownership_state).toBe('lease_expired_reclaimable');
    await expect(issueReclaimGrant(client, args)).rejects.toMatchObject({ code: 'grant_already_exists' });
  });

  it('answers execution_not_found and, unless active with a lapsed or revoked lease, execution_not_reclaimable', async () => {
    const args = { workerId: 'rw', workerInstanceId: 'rw-1', grantTtlMs: 5000 };
    await expect(issueReclaimGrant(client, { ...args, executionId: newExecutionId(), laneId: uniqueLane() })).rejects.toMatchObject({ code: 'execution_not_found' });
    const waiting = await createWaiting(client);
    await expect(issueReclaimGrant(client, { ...args, executionId: waiting.executionId, laneId: waiting.laneId })).rejects.toMatchObject({ code: 'execution_not_reclaimable' });
    const leased = await createClaimed(client);
    await expect(issueReclaimGrant(client, { ...args, executionId: leased.executionId, laneId: leased.laneId })).rejects.toMatchObject({ code: 'execution_not_reclaimable' });
    const failed = await createClaimed(client);
    await failExecution(client, holderArgs(failed));
    await expect(issueReclaimGrant(client, { ...args, executionId: failed.executionId, laneId: failed.laneId })).rejects.toMatchObject({ code: 'execution_not_reclaimable' });
    expect(await redis.exists(new ExecKeys(leased.executionId).claimGrant())).toBe(0);
  });

  it('checks capabilities like the claim grant', async () => {
    const c = await createWaiting(client, { policyJson: { routing_requirements: { required_capabilities: ['gpu', 'cuda'] } } });
    await issueClaimGrant(client, { executionId: c.executionId, laneId: c.laneId, workerId: 'w', workerInstanceId: 'w-1', grantTtlMs: 5000, workerCapabilitiesCsv: ['cuda', 'gpu'] });
    await claimExecution(client, { executionId: c.executionId, laneId: c.laneId, workerId: 'w', workerInstanceId: 'w-1', leaseId: newLeaseId(), attemptId: newAttemptId(), leaseTtlMs: 30_000 });
    await revokeLease(client, { executionId: c.executionId, workerInstanceId: 'w-1' });
    const args = { executionId: c.executionId, laneId: c.laneId, workerId: 'rw', workerInstanceId: 'rw-1', grantTtlMs: 5000 };
    await expect(issueReclaimGrant(client, { ...args, workerCapabilitiesCsv: ['gpu'] })).rejects.toMatchObject({ code: 'capability_mismatch', detail: 'cuda' });
    expect(await redis.hget(new ExecKeys(c.executionId).core(), 'last_capability_mismatch_at')).toMatch(/^\d+$/);
    const tooMany = Array.from({ length: 257 }, (_, i) => `c${i}`).join(',');
    await expect(fcallPatched(redis, buildIssueReclaimGrant(args, client.partitions), { 8: tooMany })).resolves.toEqual([0, 'invalid_capabilities', 'worker:too_many_tokens']);
    await expect(issueReclaimGrant(client, { ...args, workerCapabilitiesCsv: ['cuda', 'gpu'] })).resolves.toMatchObject({ status: 'OK' });
  });

  it('answers invalid_input, writing nothing, for a bad TTL or an empty worker (deviation)', async () => {
    const c = await createClaimed(client);
    await revokeLease(client, { executionId: c.executionId, workerInstanceId: c.workerInstanceId });
    const request = buildIssueReclaimGrant({ executionId: c.executionId, laneId: c.laneId, workerId: 'rw', workerInstanceId: 'rw-1', grantTtlMs: 5000 }, client.partitions);
    const before = await keyStates(redis, request.keys);
    for (const [slot, value] of [[5, 'x'], [5, '1.5'], [5, '0'], [5, '-10'], [1, ''], [0, '']] as const) {
      await expect(fcallPatched(redis, request, { [slot]: value })).resolves.toEqual([0, 'invalid_input', expect.any(String)]);
    }
    expect(await keyStates(redis, request.keys)).toEqual(before);
  });
});
