// The scheduler's claim-grant cycle (engine.md §3): find an eligible execution of one lane
// that this worker may run, apply capability, budget and quota admission, and reserve it
// with a claim grant that the worker then consumes with ff_claim_execution.
//
// Unlike the reference, a candidate that cannot be granted does not hide the members
// behind it: each partition's eligible index is read page by page, and members left in
// place (a live grant of another worker, a failed block) are stepped over, up to
// `maxCandidatesPerPartition` per partition and call.
//
// Admission is several calls on several partition families ({fp:N}, {b:M}, {q:K}); none is
// atomic with the others. What keeps it safe: ff_check_admission_and_record admits under the
// cap atomically, the grant function re-checks eligibility and capabilities, and an admission
// recorded for a candidate that is then not granted is released at once.
import { blockExecutionForAdmission } from '../generated/budget.js';
import { BudgetKeys, ExecKeys, PartitionKeys } from '../generated/keys.js';
import { checkAdmissionAndRecord, releaseAdmission } from '../generated/quota.js';
import { issueClaimGrant } from '../generated/scheduling.js';
import type { FlowFabricClient } from '../runtime/client.js';
import { sendCommand } from '../runtime/classify.js';
import { encodeCapabilities } from '../runtime/encode.js';
import { ArgumentError, FlowFabricError, ScriptError } from '../runtime/errors.js';
import { assertKeySafe, isCanonicalUuid, parseExecutionId, parseLaneId, type BudgetId, type ExecutionId, type LaneId, type QuotaPolicyId } from '../runtime/ids.js';
import { fnv1aU16Mod, hashTag } from '../runtime/partition.js';
import { hashReply, replyText } from '../runtime/reply.js';
import { readQuotaLimits, type BlockingReason } from './admission.js';
import { serverTimeMs } from './server-clock.js';
import { capabilitiesSatisfied, splitCsv } from './workers.js';

export interface GrantRequest {
  readonly laneId: LaneId;
  readonly workerId: string;
  readonly workerInstanceId: string;
  /** What this worker can run; checked against each candidate's required_capabilities. */
  readonly capabilities: readonly string[];
  /** How long the grant lives (default 5 000 ms, the SDK's fixed value). */
  readonly grantTtlMs?: number;
  /** First partition visited; default fnv1a_u16(workerInstanceId) mod numFlowPartitions, as the reference. */
  readonly startPartition?: number;
  /**
   * Visit only these partitions, in this order (from `startPartition` when it is one of
   * them): a worker's own partitions, or one chunk of them per call (engine.md §4.4 reads at
   * most 32 per call). Default: every flow partition.
   */
  readonly partitions?: readonly number[];
  /** The server's time (epoch ms) when the caller keeps a server clock; default one TIME per call. */
  readonly nowMs?: number;
  /** Candidates examined per partition before moving on (default 32). */
  readonly maxCandidatesPerPartition?: number;
  /** Told about every candidate the cycle blocked or passed over, for logs. */
  readonly onSkip?: (event: SkipEvent) => void;
}

export interface Grant {
  readonly executionId: ExecutionId;
  readonly laneId: LaneId;
  readonly partition: number;
  /** now + grantTtlMs, on the server clock read before the grant. */
  readonly expiresAtMs: number;
}

/** A candidate the cycle did not grant, and why. */
export interface SkipEvent {
  readonly executionId: ExecutionId;
  readonly partition: number;
  /** blocked: moved to a blocked index; passed: left eligible (another grant, a race, an error). */
  readonly action: 'blocked' | 'passed';
  readonly reason: string;
}

export const DEFAULT_GRANT_TTL_MS = 5_000;
const PAGE = 8;
/** Partitions whose eligible heads are read at once (plain reads; processing stays in order). */
const READ_AHEAD = 16;

/** The budget's key tag: its own partition for a UUID id, `{b:0}` otherwise (as the reference). */
function budgetKeysOf(client: FlowFabricClient, budgetId: string): BudgetKeys {
  if (isCanonicalUuid(budgetId)) return BudgetKeys.for(budgetId as BudgetId, client.partitions);
  return new BudgetKeys(hashTag('b', 0), budgetId as BudgetId);
}

/** A hard breach of one budget, as the scheduler reads it: some `hard:<dim>` > 0 with usage ≥ it. */
export interface BudgetBreach {
  readonly budgetId: string;
  readonly detail: string;
}

/**
 * Checks a budget's hard limits against its usage (engine.md §3.5): usage equal to the
 * limit already blocks. Missing budgets and unreadable limits do not block.
 */
export async function findBudgetBreach(client: FlowFabricClient, budgetId: string): Promise<BudgetBreach | undefined> {
  const keys = budgetKeysOf(client, budgetId);
  const limits = hashReply(await sendCommand(client.transport, 'HGETALL', [keys.limits()]));
  const hard = Object.entries(limits).filter(([field, value]) => field.startsWith('hard:') && /^[0-9]+$/.test(value) && Number(value) > 0);
  if (hard.length === 0) return undefined;
  const dims = hard.map(([field]) => field.slice('hard:'.length));
  const usage = await sendCommand(client.transport, 'HMGET', [keys.usage(), ...dims]);
  for (let i = 0; i < hard.length; i++) {
    const used = Number(replyText(Array.isArray(usage) ? usage[i] : undefined) ?? '0');
    const limit = Number(hard[i]![1]);
    if (Number.isFinite(used) && used >= limit) return { budgetId, detail: `budget ${keys.usage()}: ${dims[i]} ${used}/${limit}` };
  }
  return undefined;
}


const CANDIDATE_FIELDS = ['required_capabilities', 'budget_ids', 'quota_policy_id'] as const;

type Verdict = { readonly granted: Grant } | { readonly blocked: string } | { readonly passed: string };

/** What one cycle works with: the request's arguments, checked up front (nothing sent). */
interface Cycle {
  readonly caps: ReadonlySet<string>;
  /** The partitions to visit, in order. */
  readonly order: readonly number[];
  readonly maxPerPartition: number;
  readonly budgetCache: Map<string, BudgetBreach | undefined>;
  /** The server's time now: read (or given) once, advanced by the local monotonic clock. */
  now(): number;
}

async function startCycle(fn: string, client: FlowFabricClient, request: GrantRequest): Promise<Cycle> {
  const count = client.partitions.numFlowPartitions;
  // Arguments are checked up front (nothing sent): a bad one would otherwise be refused
  // per candidate and look like "nothing to grant".
  if (typeof request.workerId !== 'string' || request.workerId.length === 0) throw new ArgumentError(fn, 'workerId', 'must be a non-empty string');
  try {
    assertKeySafe(request.workerInstanceId, 'workerInstanceId');
    parseLaneId(request.laneId);
  } catch (error) {
    throw new ArgumentError(fn, 'request', error instanceof Error ? error.message : String(error));
  }
  const ttl = request.grantTtlMs ?? DEFAULT_GRANT_TTL_MS;
  if (!Number.isSafeInteger(ttl) || ttl < 1) throw new ArgumentError(fn, 'grantTtlMs', `must be a positive integer, got ${String(ttl)}`);
  const capsCsv = encodeCapabilities(fn, 'capabilities', request.capabilities);
  const start = ((request.startPartition ?? fnv1aU16Mod(request.workerInstanceId, count)) % count + count) % count;
  const order = visitOrder(fn, count, start, request.partitions);
  if (request.nowMs !== undefined && (!Number.isSafeInteger(request.nowMs) || request.nowMs < 0)) throw new ArgumentError(fn, 'nowMs', `must be epoch ms, got ${String(request.nowMs)}`);
  // Server time once per call, advanced by the local monotonic clock: one TIME, not one per candidate.
  const base = request.nowMs ?? (await serverTimeMs(client));
  const started = performance.now();
  return {
    caps: new Set(splitCsv(capsCsv)),
    order,
    maxPerPartition: Math.max(1, request.maxCandidatesPerPartition ?? 32),
    budgetCache: new Map(),
    now: () => base + Math.floor(performance.now() - started),
  };
}

/**
 * Runs the claim-grant cycle over the lane's partitions, starting at `startPartition`, and
 * returns the first grant, or undefined when no partition has an execution this worker may
 * take now. Transport errors of the pre-reads end the call (thrown); per-candidate refusals
 * move on.
 */
export async function issueNextGrant(client: FlowFabricClient, request: GrantRequest): Promise<Grant | undefined> {
  const cycle = await startCycle('issueNextGrant', client, request);
  const { order, maxPerPartition } = cycle;
  for (let offset = 0; offset < order.length; offset += READ_AHEAD) {
    const window = order.slice(offset, offset + READ_AHEAD);
    const heads = await Promise.all(window.map((p) => readEligible(client, p, request.laneId, 0, PAGE)));
    for (let w = 0; w < window.length; w++) {
      const partition = window[w]!;
      let page = heads[w]!;
      let examined = 0;
      let position = 0;
      while (page.length > 0 && examined < maxPerPartition) {
        let stayed = 0;
        for (const member of page) {
          if (examined >= maxPerPartition) break;
          examined++;
          const verdict = await consider(client, request, cycle, partition, member, await readCandidate(client, member));
          if ('granted' in verdict) return verdict.granted;
          if ('passed' in verdict) stayed++;
          skipped(request, partition, member, verdict);
        }
        if (page.length < PAGE) break;
        // Blocked members left the index; the ones passed over are still ahead of the rest.
        position += stayed;
        page = await readEligible(client, partition, request.laneId, position, PAGE);
      }
    }
  }
  return undefined;
}

export interface GrantsRequest extends GrantRequest {
  /** At most this many grants (a worker: its free slots). */
  readonly max: number;
  /** Told of each grant as soon as it is issued, so the caller can claim it while the cycle goes on. */
  readonly onGrant?: (grant: Grant) => void;
  /**
   * Claims a candidate: called as its grant is sent, before the grant's reply, so the claim
   * can go right behind it (one round trip less per grant; sent on the same connection, it
   * runs after the grant). `granted` tells whether the grant was issued. A claim sent
   * without a grant is refused and writes nothing (ff_claim_execution checks the grant
   * before its first write); when the grant was issued but the claim ran first or was
   * refused, the claim is the caller's to retry on it. Answers whether it took the
   * execution: a refused grant whose claim took it (on a grant this worker id already held)
   * counts as granted, its admission kept.
   */
  readonly claim?: (grant: Grant, granted: Promise<boolean>) => Promise<boolean>;
}

/**
 * The claim-grant cycle for up to `max` executions at once (a worker with several free
 * slots): the same admission as {@link issueNextGrant} (capabilities, budgets, quota, then
 * the grant, which re-checks eligibility and capabilities atomically), but each head is
 * considered by one check only, several heads at a time (never more at once than grants are
 * still wanted), instead of `max` cycles racing for the same heads. The heads of a window of
 * partitions are read together, and their candidate fields in one batch. Returns the grants
 * in the order issued (each also told to `onGrant` as it comes). Transport errors end the
 * call (thrown, once every check in flight has settled; grants issued before were told to
 * `onGrant`); per-candidate refusals move on.
 */
export async function issueGrants(client: FlowFabricClient, request: GrantsRequest): Promise<Grant[]> {
  const fn = 'issueGrants';
  if (!Number.isSafeInteger(request.max) || request.max < 1) throw new ArgumentError(fn, 'max', `must be a positive integer, got ${String(request.max)}`);
  const cycle = await startCycle(fn, client, request);
  const { order, maxPerPartition } = cycle;
  const max = request.max;
  const granted: Grant[] = [];
  // Enough heads for every wanted grant from one partition, in pages no smaller than the single cycle's.
  const pageSize = Math.min(maxPerPartition, Math.max(PAGE, max));
  for (let offset = 0; offset < order.length && granted.length < max; offset += READ_AHEAD) {
    const window = order.slice(offset, offset + READ_AHEAD).map((partition) => ({ partition, position: 0, examined: 0, more: true }));
    let reading = window;
    while (reading.length > 0 && granted.length < max) {
      const pages = await Promise.all(reading.map((p) => readEligible(client, p.partition, request.laneId, p.position, pageSize)));
      const perPartition = reading.map((p, i) => {
        const page = pages[i]!.slice(0, maxPerPartition - p.examined);
        p.more = pages[i]!.length === pageSize && p.examined + page.length < maxPerPartition;
        p.examined += page.length;
        return page.map((member) => ({ p, member }));
      });
      const candidates = interleave(perPartition);
      const fields = await Promise.all(candidates.map((c) => readCandidate(client, c.member)));
      let next = 0;
      let checking = 0;
      // One runner per grant still wanted; a runner takes the next head while grants issued
      // and checks in flight leave room for one more.
      const runner = async (): Promise<void> => {
        while (next < candidates.length && granted.length + checking < max) {
          const i = next++;
          const { p, member } = candidates[i]!;
          checking++;
          let verdict: Verdict;
          try {
            verdict = await consider(client, request, cycle, p.partition, member, fields[i]!);
          } finally {
            checking--;
          }
          if ('granted' in verdict) {
            granted.push(verdict.granted);
            request.onGrant?.(verdict.granted);
            p.position++; // Granted members stay in the index until claimed.
            continue;
          }
          if ('passed' in verdict) p.position++;
          skipped(request, p.partition, member, verdict);
        }
      };
      const runs = await Promise.allSettled(Array.from({ length: Math.min(candidates.length, max - granted.length) }, runner));
      const failed = runs.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      // Partitions whose page was all examined and may hold more: their next page.
      reading = next >= candidates.length ? window.filter((p) => p.more) : [];
    }
  }
  return granted;
}

function skipped(request: GrantRequest, partition: number, executionId: ExecutionId, verdict: Exclude<Verdict, { granted: Grant }>): void {
  request.onSkip?.({ executionId, partition, action: 'blocked' in verdict ? 'blocked' : 'passed', reason: 'blocked' in verdict ? verdict.blocked : verdict.passed });
}

/** Round-robin over the lists: first elements of each, then second elements… (also the worker's fast-path round). */
export function interleave<T>(lists: readonly (readonly T[])[]): T[] {
  const out: T[] = [];
  const longest = Math.max(0, ...lists.map((l) => l.length));
  for (let i = 0; i < longest; i++) for (const list of lists) if (i < list.length) out.push(list[i]!);
  return out;
}

/** The partitions one cycle visits, in order: the given ones (rotated to `start` when listed) or all from `start`. */
function visitOrder(fn: string, count: number, start: number, partitions: readonly number[] | undefined): number[] {
  if (partitions === undefined) return Array.from({ length: count }, (_, i) => (start + i) % count);
  for (const p of partitions) {
    if (!Number.isSafeInteger(p) || p < 0 || p >= count) throw new ArgumentError(fn, 'partitions', `must be flow partitions in [0, ${count}), got ${String(p)}`);
  }
  const at = partitions.indexOf(start);
  return at <= 0 ? [...partitions] : [...partitions.slice(at), ...partitions.slice(0, at)];
}

async function readEligible(client: FlowFabricClient, partition: number, laneId: LaneId, offset: number, count: number): Promise<ExecutionId[]> {
  const key = PartitionKeys.forPartition(partition).laneEligible(laneId);
  const reply = await sendCommand(client.transport, 'ZRANGEBYSCORE', [key, '-inf', '+inf', 'LIMIT', offset, count]);
  const out: ExecutionId[] = [];
  for (const raw of Array.isArray(reply) ? reply : []) {
    try {
      out.push(parseExecutionId(replyText(raw) ?? ''));
    } catch {
      // Not an execution id: nothing we can grant; it stays and is stepped over by position.
    }
  }
  return out;
}

/** A candidate's admission inputs, read from its core before it is considered. */
interface CandidateFields {
  readonly required: string | undefined;
  readonly budgetIds: string | undefined;
  readonly quotaId: string | undefined;
}

async function readCandidate(client: FlowFabricClient, executionId: ExecutionId): Promise<CandidateFields> {
  const fields = await sendCommand(client.transport, 'HMGET', [new ExecKeys(executionId).core(), ...CANDIDATE_FIELDS]);
  const [required, budgetIds, quotaId] = CANDIDATE_FIELDS.map((_, i) => replyText(Array.isArray(fields) ? fields[i] : undefined));
  return { required, budgetIds, quotaId };
}

async function consider(
  client: FlowFabricClient,
  request: GrantRequest & Pick<GrantsRequest, 'claim'>,
  cycle: Cycle,
  partition: number,
  executionId: ExecutionId,
  { required, budgetIds, quotaId }: CandidateFields,
): Promise<Verdict> {
  const { caps, budgetCache } = cycle;
  const now = cycle.now();

  // 1. Capabilities, before any admission is recorded for a candidate this worker cannot take.
  if (!capabilitiesSatisfied(required, caps)) {
    return block(client, request, executionId, 'waiting_for_capable_worker', 'no connected worker satisfies required_capabilities', now);
  }

  // 2. Budgets, in list order; the first hard breach blocks.
  for (const budgetId of splitCsv(budgetIds)) {
    if (!budgetCache.has(budgetId)) budgetCache.set(budgetId, await findBudgetBreach(client, budgetId));
    const breach = budgetCache.get(budgetId);
    if (breach) return block(client, request, executionId, 'waiting_for_budget', breach.detail, now);
  }

  // 3. Quota: admit (recorded atomically under the cap) or block. A candidate that holds
  // another worker's live grant is passed over first, so its admission is not touched.
  let admitted: QuotaPolicyId | undefined;
  if (quotaId && isCanonicalUuid(quotaId)) {
    const policy = quotaId as QuotaPolicyId;
    const limits = await readQuotaLimits(client, policy);
    if (limits && (limits.rateLimit > 0 || limits.concurrencyCap > 0)) {
      if (Number(await sendCommand(client.transport, 'EXISTS', [new ExecKeys(executionId).claimGrant()])) === 1) return { passed: 'grant_already_exists' };
      const admission = await checkAdmissionAndRecord(client, {
        quotaPolicyId: policy,
        executionId,
        nowMs: now,
        windowSeconds: Math.max(1, limits.windowSeconds),
        rateLimit: limits.rateLimit,
        concurrencyCap: limits.concurrencyCap,
        jitterMs: limits.jitterMs,
      });
      if (admission.status === 'RATE_EXCEEDED') {
        return block(client, request, executionId, 'waiting_for_quota', `quota ${policy}: rate limit ${limits.rateLimit} per ${limits.windowSeconds}s window`, now);
      }
      if (admission.status === 'CONCURRENCY_EXCEEDED') {
        return block(client, request, executionId, 'waiting_for_quota', `quota ${policy}: concurrency cap ${limits.concurrencyCap}`, now);
      }
      // Only an admission recorded by this call is given back if the grant fails: an
      // ALREADY_ADMITTED one belongs to an earlier grant (releasing it would let the next
      // candidate in over the cap).
      if (admission.status === 'ADMITTED') admitted = policy;
    }
  }

  // 4. The grant; the function re-checks eligibility and capabilities atomically.
  const ttl = request.grantTtlMs ?? DEFAULT_GRANT_TTL_MS;
  const grant: Grant = { executionId, laneId: request.laneId, partition, expiresAtMs: now + ttl };
  const granting = issueClaimGrant(client, {
    executionId,
    workerId: request.workerId,
    workerInstanceId: request.workerInstanceId,
    laneId: request.laneId,
    grantTtlMs: ttl,
    workerCapabilitiesCsv: [...caps],
  });
  // The claim goes right behind the grant, before its reply (same connection, so in order).
  const claiming = request.claim?.(grant, granting.then(() => true, () => false));
  try {
    await granting;
    return { granted: grant };
  } catch (error) {
    // Refused, but the claim behind it took the execution: on a grant this worker id already
    // held (a claim never takes one without), so it is this worker's, admission included.
    if (claiming && (await claiming.catch(() => false))) return { granted: grant };
    if (admitted) await release(client, admitted, executionId);
    if (error instanceof ScriptError && error.code === 'capability_mismatch') {
      return block(client, request, executionId, 'waiting_for_capable_worker', 'no connected worker satisfies required_capabilities', now);
    }
    if (error instanceof FlowFabricError && !(error instanceof ArgumentError)) return { passed: error instanceof ScriptError ? error.code : error.message };
    throw error;
  }
}

async function block(client: FlowFabricClient, request: GrantRequest, executionId: ExecutionId, reason: BlockingReason, detail: string, now: number): Promise<Verdict> {
  const blockedSet = reason === 'waiting_for_budget' ? 'budget' : reason === 'waiting_for_quota' ? 'quota' : 'route';
  try {
    await blockExecutionForAdmission(client, { executionId, laneId: request.laneId, blockedSet, blockingReason: reason, blockingDetail: detail, nowMs: now });
    return { blocked: reason };
  } catch (error) {
    // Claimed or moved meanwhile: it stays where it is and the cycle steps over it.
    if (error instanceof FlowFabricError) return { passed: `${reason} (block failed: ${error.message})` };
    throw error;
  }
}

async function release(client: FlowFabricClient, quotaPolicyId: QuotaPolicyId, executionId: ExecutionId): Promise<void> {
  try {
    await releaseAdmission(client, { quotaPolicyId, executionId });
  } catch {
    // The guard lapses with its TTL (one window); the quota reconciler then repairs the counter.
  }
}
