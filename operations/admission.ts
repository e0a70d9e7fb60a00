// Admission workflows that span two partition families. A budget lives on {b:M}, a quota
// policy on {q:K} and an execution on {fp:N}; no library function takes keys of two
// families (that would CROSSSLOT on a cluster), so "check the budget, then block the
// execution" is two FCALLs. These helpers make the two steps and say, in their result
// type, which of them happened: they are NOT atomic.
//
// Between the two calls the world can move: the execution may be claimed (the block then
// fails with execution_not_eligible), the budget may be reset or the quota window may
// drain (the execution is then blocked although it could run; the unblock scanner, or
// the caller with ff_unblock_execution, lifts it). If the second call fails, the first
// call's effect stands (usage breach counters, or nothing for a denied admission) and the
// execution stays where it was, eligible: the result is `block_failed` with the error,
// and the caller decides whether to retry the block.
import {
  blockExecutionForAdmission,
  reportUsageAndCheck,
  type BlockExecutionForAdmissionArgs,
  type ReportUsageAndCheckArgs,
  type ReportUsageAndCheckResult,
} from '../generated/budget.js';
import { BudgetPartitionKeys, ExecKeys, QuotaKeys } from '../generated/keys.js';
import { checkAdmissionAndRecord, type CheckAdmissionAndRecordArgs, type CheckAdmissionAndRecordResult } from '../generated/quota.js';
import { classifyWith, sendCommand } from '../runtime/classify.js';
import { ArgumentError, FlowFabricError, ScriptError } from '../runtime/errors.js';
import { parseLaneId, type BudgetId, type ExecutionId, type LaneId, type QuotaPolicyId } from '../runtime/ids.js';
import { budgetTag, quotaTag, type PartitionConfig } from '../runtime/partition.js';
import { replyText } from '../runtime/reply.js';
import type { FunctionCaller, Transport } from '../runtime/transport.js';

/** A caller that can also send plain commands (for the pre-reads); FlowFabricClient is one. */
export interface AdmissionClient extends FunctionCaller {
  readonly transport: Pick<Transport, 'command'>;
}

export type BlockingReason = BlockExecutionForAdmissionArgs['blockingReason'];
export type BlockedSet = BlockExecutionForAdmissionArgs['blockedSet'];

/**
 * The lane blocked index an admission block reason goes to (the same mapping the Lua
 * enforces). paused_by_policy has no index of its own in the reference; it shares the
 * operator index, which no scanner lifts.
 */
export function blockedSetFor(reason: BlockingReason): BlockedSet {
  switch (reason) {
    case 'waiting_for_budget':
      return 'budget';
    case 'waiting_for_quota':
      return 'quota';
    case 'waiting_for_capable_worker':
      return 'route';
    case 'paused_by_operator':
    case 'paused_by_policy':
      return 'operator';
  }
}

/**
 * The usage dedup key `ff:usagededup:{b:M}:<dedupId>`, on the budget's own tag so it shares
 * the budget call's slot. The key does not name the budget: use dedup ids unique per budget.
 */
export function usageDedupKey(budgetId: BudgetId, dedupId: string, partitions: PartitionConfig): string {
  if (typeof dedupId !== 'string' || dedupId.length === 0) throw new ArgumentError('ff_report_usage_and_check', 'dedup_id', 'must be a non-empty string');
  if (dedupId.includes('{') || dedupId.includes('}')) throw new ArgumentError('ff_report_usage_and_check', 'dedup_id', "must not contain '{' or '}'");
  return new BudgetPartitionKeys(budgetTag(budgetId, partitions)).usageDedup(dedupId);
}

/** Arguments of {@link reportUsage}: the dedup id instead of the full dedup key. */
export interface ReportUsageArgs extends Omit<ReportUsageAndCheckArgs, 'dedupKey'> {
  /** Retries with the same id within 24 h are applied once. */
  readonly dedupId?: string;
}

/** ff_report_usage_and_check, with the dedup key built from the budget's tag. */
export function reportUsage(client: FunctionCaller, args: ReportUsageArgs): Promise<ReportUsageAndCheckResult> {
  const { dedupId, ...rest } = args;
  const dedupKey = dedupId === undefined ? undefined : usageDedupKey(args.budgetId, dedupId, client.partitions);
  return reportUsageAndCheck(client, dedupKey === undefined ? rest : { ...rest, dedupKey });
}

/** The execution's lane (exec_core lane_id), or undefined when it has no core. */
export async function readExecutionLane(client: AdmissionClient, executionId: ExecutionId): Promise<LaneId | undefined> {
  let raw: unknown;
  try {
    raw = await sendCommand(client.transport, 'HGET', [new ExecKeys(executionId).core(), 'lane_id']);
  } catch (error) {
    throw classifyWith(client.transport, error);
  }
  const text = replyText(raw);
  return text === undefined || text === '' ? undefined : parseLaneId(text);
}

/** Quota limits as the scheduler reads them from a policy definition. */
export interface QuotaLimits {
  readonly windowSeconds: number;
  readonly rateLimit: number;
  readonly concurrencyCap: number;
  readonly jitterMs: number;
}

/**
 * Reads a policy's limits with the scheduler's defaults for absent fields (window 60 s,
 * no rate limit, no cap, no jitter); undefined when the policy does not exist.
 */
export async function readQuotaLimits(client: AdmissionClient, quotaPolicyId: QuotaPolicyId): Promise<QuotaLimits | undefined> {
  const key = new QuotaKeys(quotaTag(quotaPolicyId, client.partitions), quotaPolicyId).definition();
  let raw: unknown;
  try {
    raw = await sendCommand(client.transport, 'HMGET', [key, 'quota_policy_id', 'requests_per_window_seconds', 'max_requests_per_window', 'active_concurrency_cap', 'jitter_ms']);
  } catch (error) {
    throw classifyWith(client.transport, error);
  }
  const values = Array.isArray(raw) ? raw.map((v) => replyText(v)) : [];
  if (values[0] === undefined) return undefined;
  const read = (index: number, fallback: number): number => {
    const text = values[index];
    return text !== undefined && /^[0-9]+$/.test(text) ? Number(text) : fallback;
  };
  return { windowSeconds: read(1, 60), rateLimit: read(2, 0), concurrencyCap: read(3, 0), jitterMs: read(4, 0) };
}

/** The second step's outcome, shared by both workflows. */
type BlockStep = { readonly blocked: true } | { readonly blocked: false; readonly error: FlowFabricError };

async function blockStep(client: AdmissionClient, executionId: ExecutionId, laneId: LaneId | undefined, reason: BlockingReason, detail: string, nowMs: number | undefined): Promise<BlockStep> {
  try {
    const lane = laneId ?? (await readExecutionLane(client, executionId));
    if (lane === undefined) {
      return { blocked: false, error: new ScriptError('ff_block_execution_for_admission', 'execution_not_found', []) };
    }
    await blockExecutionForAdmission(client, {
      executionId,
      laneId: lane,
      blockedSet: blockedSetFor(reason),
      blockingReason: reason,
      blockingDetail: detail,
      ...(nowMs === undefined ? {} : { nowMs }),
    });
    return { blocked: true };
  } catch (error) {
    if (error instanceof FlowFabricError) return { blocked: false, error };
    throw error;
  }
}

type HardBreach = Extract<ReportUsageAndCheckResult, { status: 'HARD_BREACH' }>;

/** What {@link reportUsageAndBlockOnBreach} did. */
export type UsageAdmissionOutcome =
  /** The report was applied (OK, SOFT_BREACH) or had been (ALREADY_APPLIED); nothing blocked. */
  | { readonly status: 'within_budget'; readonly report: Exclude<ReportUsageAndCheckResult, HardBreach> }
  /** The report was refused by a hard limit and the execution is now blocked for budget. */
  | { readonly status: 'blocked'; readonly report: HardBreach }
  /** The report was refused by a hard limit, but blocking the execution failed: it is unchanged. */
  | { readonly status: 'block_failed'; readonly report: HardBreach; readonly error: FlowFabricError };

export interface ReportUsageAndBlockArgs extends ReportUsageArgs {
  readonly executionId: ExecutionId;
  /** The execution's lane; read from its core when absent (one more round trip). */
  readonly laneId?: LaneId;
}

/**
 * Reports usage to a budget ({b:M}) and, on a hard breach, blocks the execution for budget
 * on its own partition ({fp:N}): two calls, not atomic (see the top of this file). Only a
 * runnable execution can be blocked; an active one answers `block_failed` with
 * execution_not_eligible, and its worker should fail it cooperatively instead. A failure
 * of the first call is thrown (nothing happened); a failure of the second is returned.
 */
export async function reportUsageAndBlockOnBreach(client: AdmissionClient, args: ReportUsageAndBlockArgs): Promise<UsageAdmissionOutcome> {
  const { executionId, laneId, ...usageArgs } = args;
  const report = await reportUsage(client, usageArgs);
  if (report.status !== 'HARD_BREACH') return { status: 'within_budget', report };
  const detail = `budget ${args.budgetId}: ${report.dimension} at ${report.currentUsage} of hard limit ${report.hardLimit}`;
  const step = await blockStep(client, executionId, laneId, 'waiting_for_budget', detail, args.nowMs);
  return step.blocked ? { status: 'blocked', report } : { status: 'block_failed', report, error: step.error };
}

type Admitted = Extract<CheckAdmissionAndRecordResult, { status: 'ADMITTED' | 'ALREADY_ADMITTED' }>;
type Denied = Exclude<CheckAdmissionAndRecordResult, Admitted>;

/** What {@link admitOrBlock} did. */
export type QuotaAdmissionOutcome =
  /** Admitted now, or already admitted in this window: the caller may claim. */
  | { readonly status: 'admitted'; readonly admission: Admitted }
  /** Denied (rate or concurrency) and the execution is now blocked for quota. */
  | { readonly status: 'blocked'; readonly admission: Denied }
  /** Denied, but blocking the execution failed: it is unchanged. */
  | { readonly status: 'block_failed'; readonly admission: Denied; readonly error: FlowFabricError };

export interface AdmitOrBlockArgs extends CheckAdmissionAndRecordArgs {
  /** The execution's lane; read from its core when absent (one more round trip). */
  readonly laneId?: LaneId;
}

/**
 * Checks and records an admission under a quota policy ({q:K}) and, when it is denied,
 * blocks the execution for quota on its own partition ({fp:N}): two calls, not atomic (see
 * the top of this file). The limits are the caller's (see {@link readQuotaLimits}). If the
 * execution is admitted but the claim that follows fails, give the slot back with
 * releaseAdmission.
 */
export async function admitOrBlock(client: AdmissionClient, args: AdmitOrBlockArgs): Promise<QuotaAdmissionOutcome> {
  const { laneId, ...checkArgs } = args;
  const admission = await checkAdmissionAndRecord(client, checkArgs);
  if (admission.status === 'ADMITTED' || admission.status === 'ALREADY_ADMITTED') return { status: 'admitted', admission };
  const detail =
    admission.status === 'RATE_EXCEEDED'
      ? `quota ${args.quotaPolicyId}: ${args.rateLimit} admissions per ${args.windowSeconds}s reached; retry in ${admission.retryAfterMs} ms`
      : `quota ${args.quotaPolicyId}: concurrency cap ${args.concurrencyCap} reached`;
  const step = await blockStep(client, args.executionId, laneId, 'waiting_for_quota', detail, args.nowMs);
  return step.blocked ? { status: 'blocked', admission } : { status: 'block_failed', admission, error: step.error };
}
