// Shortcuts for the execution and scheduling tests: the lease-holder arguments of a claim,
// the pre-read calls (cancel, expire, reclaim) with readExecutionContext, lease expiry, and
// small readers of the stored state.
import type { Redis } from 'ioredis';
import { cancelExecution, expireExecution, reclaimExecution, type CancelExecutionArgs, type ReclaimExecutionResult } from '../../generated/execution.js';
import { ExecKeys, PartitionKeys } from '../../generated/keys.js';
import { markLeaseExpiredIfDue } from '../../generated/lease.js';
import { issueReclaimGrant } from '../../generated/scheduling.js';
import type { FlowFabricClient } from '../../runtime/client.js';
import { newAttemptId, newLeaseId, type ExecutionId, type LaneId } from '../../runtime/ids.js';
import { readExecutionContext } from '../../operations/preread.js';
import type { Claimed } from './lifecycle.js';

/** The arguments every lease-holder call (complete, fail, delay, move) takes from a claim. */
export function holderArgs(c: Claimed): {
  executionId: ExecutionId;
  laneId: LaneId;
  workerInstanceId: string;
  leaseId: Claimed['lease']['leaseId'];
  leaseEpoch: number;
  attemptId: Claimed['lease']['attemptId'];
  attemptIndex: number;
} {
  return { executionId: c.executionId, laneId: c.laneId, workerInstanceId: c.workerInstanceId, ...c.lease };
}

type CancelOptions = Omit<CancelExecutionArgs, 'executionId' | 'currentAttemptIndex' | 'currentWorkerInstanceId' | 'currentWaitpointId' | 'laneId'>;

/** Cancels with the KEYS built from a fresh pre-read, as a production caller does. */
export async function cancel(client: FlowFabricClient, executionId: ExecutionId, options: CancelOptions = {}) {
  const ctx = await readExecutionContext(client.transport, executionId);
  return cancelExecution(client, {
    executionId,
    laneId: ctx.laneId,
    currentAttemptIndex: ctx.currentAttemptIndex,
    currentWorkerInstanceId: ctx.currentWorkerInstanceId,
    ...(ctx.currentWaitpointId ? { currentWaitpointId: ctx.currentWaitpointId } : {}),
    ...options,
  });
}

/** Expires with the KEYS built from a fresh pre-read, as the scanners do. */
export async function expire(client: FlowFabricClient, executionId: ExecutionId, expireReason?: string) {
  const ctx = await readExecutionContext(client.transport, executionId);
  return expireExecution(client, {
    executionId,
    laneId: ctx.laneId,
    currentAttemptIndex: ctx.currentAttemptIndex,
    currentWorkerInstanceId: ctx.currentWorkerInstanceId,
    ...(expireReason !== undefined ? { expireReason } : {}),
  });
}

export interface Reclaimed {
  readonly workerId: string;
  readonly workerInstanceId: string;
  readonly result: ReclaimExecutionResult;
  readonly lease: { leaseId: ReclaimExecutionResult['leaseId']; leaseEpoch: number; attemptId: ReclaimExecutionResult['attemptId']; attemptIndex: number };
}

/** Issues a reclaim grant to a worker and reclaims with it (pre-reading the attempt indexes). */
export async function reclaim(client: FlowFabricClient, executionId: ExecutionId, laneId: LaneId, workerId = 'worker-b', leaseTtlMs = 30_000): Promise<Reclaimed> {
  const workerInstanceId = `${workerId}-1`;
  await issueReclaimGrant(client, { executionId, laneId, workerId, workerInstanceId, grantTtlMs: 5000 });
  const ctx = await readExecutionContext(client.transport, executionId);
  const result = await reclaimExecution(client, {
    executionId,
    laneId,
    workerId,
    workerInstanceId,
    currentAttemptIndex: ctx.currentAttemptIndex,
    newAttemptIndex: ctx.totalAttemptCount,
    leaseId: newLeaseId(),
    attemptId: newAttemptId(),
    leaseTtlMs,
  });
  return {
    workerId,
    workerInstanceId,
    result,
    lease: { leaseId: result.leaseId, leaseEpoch: result.leaseEpoch, attemptId: result.attemptId, attemptIndex: result.attemptIndex },
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every 10 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** Waits until the server clock has passed `at` (epoch ms), e.g. a short lease's expiry. */
export async function waitUntilServerTime(redis: Redis, at: number): Promise<void> {
  for (;;) {
    const [seconds, micros] = (await redis.time()) as [string | number, string | number];
    const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    if (now > at) return;
    await sleep(Math.min(50, at - now + 1));
  }
}

/** Lets a short lease lapse and has the scanner step mark it expired. */
export async function lapseLease(client: FlowFabricClient, redis: Redis, executionId: ExecutionId, leaseExpiresAt: number): Promise<void> {
  await waitUntilServerTime(redis, leaseExpiresAt);
  const marked = await markLeaseExpiredIfDue(client, { executionId });
  if (marked.status !== 'marked_expired') throw new Error(`lease not marked expired: ${JSON.stringify(marked)}`);
}

/** exec_core of an execution. */
export function core(redis: Redis, executionId: ExecutionId): Promise<Record<string, string>> {
  return redis.hgetall(new ExecKeys(executionId).core());
}

/** Score of the execution in one of its partition's lane indexes, or null. */
export async function laneScore(redis: Redis, executionId: ExecutionId, laneId: LaneId, index: 'eligible' | 'delayed' | 'active' | 'terminal' | 'suspended' | 'blocked:dependencies'): Promise<number | null> {
  const keys = new PartitionKeys(new ExecKeys(executionId).tag);
  const key = {
    eligible: keys.laneEligible(laneId),
    delayed: keys.laneDelayed(laneId),
    active: keys.laneActive(laneId),
    terminal: keys.laneTerminal(laneId),
    suspended: keys.laneSuspended(laneId),
    'blocked:dependencies': keys.laneBlockedDependencies(laneId),
  }[index];
  const score = await redis.zscore(key, executionId);
  return score === null ? null : Number(score);
}

/** The `event` (and `reason`, when present) of every lease history entry, in order. */
export async function historyEvents(redis: Redis, executionId: ExecutionId): Promise<Record<string, string>[]> {
  const entries = await redis.xrange(new ExecKeys(executionId).leaseHistory(), '-', '+');
  return entries.map(([, fields]) => {
    const record: Record<string, string> = {};
    for (let i = 0; i < fields.length; i += 2) record[fields[i]!] = fields[i + 1]!;
    return record;
  });
}

/**
 * A subscriber to ff:dag:completions that collects the messages it hears, in order. The
 * server is shared, so other tests publish too: read a test's own messages with `of(ids)`
 * and wait for them with `waitFor(count, ids)`.
 */
export async function listenCompletions(url: string): Promise<{
  messages: Record<string, string>[];
  of(ids: readonly string[]): Record<string, string>[];
  waitFor(count: number, ids: readonly string[]): Promise<void>;
  close(): void;
}> {
  const { Redis } = await import('ioredis');
  const subscriber = new Redis(url, { maxRetriesPerRequest: 1 });
  const messages: Record<string, string>[] = [];
  subscriber.on('message', (_channel: string, text: string) => messages.push(JSON.parse(text) as Record<string, string>));
  await subscriber.subscribe('ff:dag:completions');
  const of = (ids: readonly string[]) => messages.filter((m) => ids.includes(m.execution_id ?? ''));
  return {
    messages,
    of,
    async waitFor(count, ids) {
      // Bounded: the assertion after it shows what arrived.
      const deadline = Date.now() + 10_000;
      while (of(ids).length < count && Date.now() < deadline) await sleep(5);
    },
    close: () => subscriber.disconnect(),
  };
}

/** Suspends a claimed execution on a new waitpoint (installing an HMAC key on its partition first). */
export async function suspendClaimed(client: FlowFabricClient, c: Claimed, timeoutMs?: number) {
  const { suspendExecution } = await import('../../generated/suspension.js');
  const { newSuspensionId, newWaitpointId } = await import('../../runtime/ids.js');
  const { ensureKeyring } = await import('./suspension.js');
  const waitpointId = newWaitpointId();
  // Installs the shared test key only where a partition has none: never rotates shared rings.
  await ensureKeyring(client, c.executionId);
  await suspendExecution(client, {
    ...holderArgs(c), suspensionId: newSuspensionId(), waitpointId, waitpointKey: `wpk:${waitpointId}`,
    resumeConditionJson: { required_signal_names: ['go'] }, ...(timeoutMs !== undefined ? { timeoutMs } : {}),
  });
  return waitpointId;
}
