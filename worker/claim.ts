// Finding and claiming work for one worker: one entry point that takes, in order, executions
// whose lease was lost (reclaim), then eligible ones (fresh, retry, replay and resumed, in
// the lane's priority order). Eligible work is found by reading the heads of the lane's
// eligible index on every partition, in chunks, starting at a per-instance offset and
// continuing where the last round stopped, so workers spread over partitions instead of
// all hammering one head; a head another worker holds a grant on is skipped for the next
// member. Three claim paths:
// - `admission`: the engine's scheduler cycle (issueGrants: capability, budget and quota
//   checks, one cycle for all free slots), each grant claimed as soon as it is issued;
// - `direct`: grant + claim per candidate (capability checked by the engine, no budget or
//   quota: the reference's direct claim);
// - `fast`: ff_claim_next_eligible, one call per partition (no budget or quota either).
// Whatever the path, an interrupted attempt (after a suspension, delay or waiting for
// children) is claimed with the resumed claim on the same grant.
import { sendCommand } from '../runtime/classify.js';
import type { FlowFabricClient } from '../runtime/client.js';
import { isScriptError, ScriptError } from '../runtime/errors.js';
import { newAttemptId, newLeaseId, parseExecutionId, type AttemptId, type ExecutionId, type LaneId, type LeaseId } from '../runtime/ids.js';
import { replyText } from '../runtime/reply.js';
import { blockExecutionForAdmission, unblockExecution } from '../generated/budget.js';
import { claimExecution, reclaimExecution, type ClaimExecutionResult } from '../generated/execution.js';
import { claimNextEligible } from '../generated/fastpath.js';
import { ExecKeys, PartitionKeys } from '../generated/keys.js';
import { markLeaseExpiredIfDue } from '../generated/lease.js';
import { issueClaimGrant, issueReclaimGrant, promoteDelayed, type IssueClaimGrantArgs } from '../generated/scheduling.js';
import { readExecutionContext } from '../operations/preread.js';
import { interleave, type Grant, type GrantRequest, type GrantsRequest } from '../operations/scheduler.js';
import { capabilitiesSatisfied, liveCapabilities } from '../operations/workers.js';
import { claimResumed } from '../operations/waitpoints.js';
import { ServerClockEstimate } from './clock-estimate.js';
import { inputFromClaimReply, readExecutionInput, type ExecutionInput } from './context.js';
import type { LanePartitions } from './lane-partitions.js';
import { takeSweepTurn } from './sweep-turn.js';

/** How the attempt the handler runs came about. */
export type AttemptKind = 'fresh' | 'retry' | 'reclaim' | 'resumed' | 'replay';

/** A lease this worker holds on one execution. */
export interface ClaimedLease {
  readonly executionId: ExecutionId;
  readonly laneId: LaneId;
  readonly leaseId: LeaseId;
  readonly leaseEpoch: number;
  readonly attemptId: AttemptId;
  readonly attemptIndex: number;
  readonly attemptKind: AttemptKind;
  readonly leaseExpiresAt: number;
  /** What the handler is given, when the claim answered it (fast path): no separate read. */
  readonly input?: ExecutionInput;
}

export type ClaimPath = 'admission' | 'direct' | 'fast';

/** The admission-checked grant cycle (operations/scheduler.ts's issueNextGrant), injectable for tests. */
export type IssueNextGrant = (client: FlowFabricClient, request: GrantRequest) => Promise<Pick<Grant, 'executionId' | 'laneId' | 'partition'> | undefined>;

/** The admission-checked grant cycle for several free slots (operations/scheduler.ts's issueGrants). */
export type IssueGrants = (
  client: FlowFabricClient,
  request: GrantsRequest & {
    readonly onGrant: (grant: Pick<Grant, 'executionId' | 'laneId' | 'partition'>) => void;
    readonly claim: (grant: Pick<Grant, 'executionId' | 'laneId' | 'partition'>, granted: Promise<boolean>) => Promise<boolean>;
  },
) => Promise<unknown>;

/**
 * A one-grant cycle (a Worker's injected `issueNextGrant`) run once per wanted grant, one
 * after the other, until it finds nothing: cycles run side by side would race for the same heads.
 */
export function grantsOneByOne(issue: IssueNextGrant): IssueGrants {
  return async (client, request) => {
    for (let i = 0; i < request.max; i++) {
      const grant = await issue(client, request);
      if (!grant) return;
      request.onGrant(grant);
      void request.claim(grant, Promise.resolve(true));
    }
  };
}

export interface ClaimerOptions {
  readonly workerId: string;
  readonly workerInstanceId: string;
  readonly capabilities: readonly string[];
  readonly lanes: readonly LaneId[];
  readonly leaseTtlMs: number;
  /** Registered with the engine's attempt-timeout index at claim (the worker's own timeout plus a grace). */
  readonly attemptTimeoutMs?: number;
  readonly path: ClaimPath;
  /** The admission path's grant cycle. */
  readonly issueGrants?: IssueGrants;
  /** Told of each lease as soon as it is claimed, before claim() returns with all of them (the worker starts it at once). */
  readonly onClaimed?: (lease: ClaimedLease) => void;
  /** Where each lane's work is looked for (claims) and swept, in this instance's order. */
  readonly partitions: LanePartitions;
  /**
   * Sweep a lane only on this worker's turn, a turn lasting this long (worker/sweep-turn.ts),
   * so the lane's workers sweep it about once per turn between them; absent: every sweep.
   */
  readonly sweepTurnMs?: number;
  /** Mark due leases, promote due delayed executions, unblock route-blocked ones (the engine's share), or only find reclaimable ones. */
  readonly selfService: boolean;
  /** Heads read per partition (skip the ones others are taking). */
  readonly candidatesPerPartition: number;
  /** Partitions read per round trip. */
  readonly chunkSize: number;
  readonly grantTtlMs: number;
  /** Called for every error that did not stop the round (it is skipped). */
  readonly onError: (error: unknown, executionId?: ExecutionId) => void;
  /** A reclaim found the execution at its reclaim limit: the engine failed it. */
  readonly onReclaimLimit: (executionId: ExecutionId) => void;
}

const ATTEMPT_KIND: Readonly<Record<ClaimExecutionResult['attemptType'], AttemptKind>> = {
  initial: 'fresh',
  retry: 'retry',
  reclaim: 'reclaim',
  replay: 'replay',
  fallback: 'retry',
};

/** Codes that only mean "someone else got there first" or "not claimable now": skip the candidate. */
const SKIP_CODES = new Set([
  'grant_already_exists',
  'execution_not_eligible',
  'execution_not_in_eligible_set',
  'execution_not_found',
  'execution_not_leaseable',
  'execution_not_reclaimable',
  'invalid_claim_grant',
  'claim_grant_expired',
  'not_a_resumed_execution',
  'lease_conflict',
]);

const CAPABILITY_UNION_TTL_MS = 2000;

/** What a claim grant and a reclaim grant both take. */
type GrantArgs = Pick<IssueClaimGrantArgs, 'executionId' | 'laneId' | 'workerId' | 'workerInstanceId' | 'grantTtlMs' | 'workerCapabilitiesCsv'>;

/** Members a sweep reads per index and partition. */
const SWEEP_PAGE = 16;

/** The lanes' active indexes (revoked leases) are read every this many sweeps. */
const REVOKED_SWEEP_EVERY = 5;

/** What one sweep did: promoted delayed, queued expired and revoked leases, unblocked route-blocked. */
export interface SweepCounts {
  promoted: number;
  expired: number;
  revoked: number;
  unblocked: number;
}

/** The most sweeps a worker refused a lane's turn lets pass before asking again. */
const MAX_TURN_WAIT = 4;

/** How long a busy worker's server clock is advanced locally before it is read again. */
const CLOCK_RESYNC_MS = 5000;
/**
 * The same for idle probes and sweeps: longer than the idle probe's back-off (5 s), so an
 * idle worker does not pay a TIME per probe (issue 16); they only bound what is read, and
 * the calls they lead to re-check against the server's clock.
 */
const CLOCK_RESYNC_IDLE_MS = 60_000;

/** One index a sweep reads on one partition, and what it does with each member. */
interface SweepRead {
  readonly key: string;
  readonly max: number | '+inf';
  readonly counter: keyof SweepCounts;
  /** Read a page further each sweep (members stay in this index), instead of always the head. */
  readonly paged?: boolean;
  visit(executionId: ExecutionId): Promise<boolean>;
}

export class Claimer {
  /** Per lane, where the next round starts in `partitions`. */
  private readonly cursors = new Map<LaneId, number>();
  /** Per lane, how many rounds in a row started again at a chunk that had work (bounded, so other chunks get their turn). */
  private readonly stays = new Map<LaneId, number>();
  private nextLane = 0;
  /** Lanes whose last round found nothing: probed a chunk of partitions at a time. */
  private readonly idleLanes = new Set<LaneId>();
  /** Executions with a lost lease on our lanes, found by the sweep: claimed first. */
  private readonly reclaimable = new Map<ExecutionId, LaneId>();
  /** Expired leases on other lanes: not looked at again for a while. */
  private readonly foreign = new Map<ExecutionId, number>();
  private capabilityUnion: { readonly at: number; readonly union: Set<string> } | undefined;
  /** Per paged index key (a lane's active index on one partition), where the next sweep reads. */
  private readonly pageCursors = new Map<string, number>();
  private sweeps = 0;
  /** Per lane refused a sweep turn: sweeps to let pass before asking again, and how many are left. */
  private readonly turnWaits = new Map<LaneId, { wait: number; left: number }>();
  /** The server clock, shared by grant cycles and sweeps (worker/clock-estimate.ts). */
  private readonly clock: ServerClockEstimate;
  misses = 0;

  constructor(
    private readonly client: FlowFabricClient,
    private readonly options: ClaimerOptions,
  ) {
    this.clock = new ServerClockEstimate(client);
  }

  get hasReclaimable(): boolean {
    return this.reclaimable.size > 0;
  }

  /** Claims up to `max` executions: reclaims first, then each lane in turn (the first lane rotates per round). */
  async claim(max: number): Promise<ClaimedLease[]> {
    const out: ClaimedLease[] = [];
    for (const [executionId, laneId] of [...this.reclaimable]) {
      if (out.length >= max) break;
      this.reclaimable.delete(executionId);
      const claimed = await this.guard(executionId, () => this.reclaim(executionId, laneId));
      if (claimed) this.took(out, claimed);
    }
    const lanes = this.options.lanes;
    for (let i = 0; i < lanes.length && out.length < max; i++) {
      await this.claimFromLane(lanes[(this.nextLane + i) % lanes.length]!, max, out);
    }
    this.nextLane = (this.nextLane + 1) % lanes.length;
    if (out.length === 0) this.misses += 1;
    return out;
  }

  private async claimFromLane(laneId: LaneId, max: number, out: ClaimedLease[]): Promise<void> {
    const partitions = this.options.partitions.of(laneId);
    if (partitions.length === 0) return; // Nowhere known to hold the lane's work: a wake-up or the re-check names a partition.
    let cursor = this.cursors.get(laneId) ?? 0;
    if (this.options.path === 'admission') {
      await this.claimAdmitted(laneId, max, out, cursor);
      return;
    }
    // An idle lane (the last round found nothing) is probed one chunk a round, the next round
    // going on from there, instead of every partition each round.
    const idle = this.idleLanes.has(laneId);
    const scanLimit = idle ? Math.min(this.options.chunkSize, partitions.length) : partitions.length;
    const found = out.length;
    let scanned = 0;
    let busyChunk: number | undefined;
    while (scanned < scanLimit && out.length < max) {
      const size = Math.min(this.options.chunkSize, partitions.length - scanned);
      const chunk = Array.from({ length: size }, (_, i) => partitions[(cursor + i) % partitions.length]!);
      const chunkStart = cursor;
      const before = out.length;
      cursor = (cursor + size) % partitions.length;
      scanned += size;
      const heads = await Promise.all(
        chunk.map((partition) =>
          sendCommand(this.client.transport, 'ZRANGEBYSCORE', [PartitionKeys.forPartition(partition).laneEligible(laneId), '-inf', '+inf', 'LIMIT', 0, this.options.candidatesPerPartition]),
        ),
      );
      const perPartition = chunk.map((partition, i) => {
        const members = Array.isArray(heads[i]) ? (heads[i] as unknown[]).map((m) => replyText(m) ?? '').filter((m) => m !== '') : [];
        // Each worker tries the heads from a random one on, so workers sharing a partition do
        // not all race for its first member.
        const offset = Math.floor(Math.random() * members.length);
        return [...members.slice(offset), ...members.slice(0, offset)].map((member) => ({ partition, member }));
      });
      // Interleaved over partitions, then tried in parallel, never more at once than slots are
      // left, so a round never claims more than asked.
      const candidates = interleave(perPartition);
      while (candidates.length > 0 && out.length < max) {
        const batch = candidates.splice(0, max - out.length);
        const results = await Promise.all(batch.map((candidate) => this.claimCandidate(laneId, candidate.partition, candidate.member)));
        for (const claimed of results) if (claimed) this.took(out, claimed);
      }
      if (out.length > before) busyChunk = chunkStart;
    }
    if (out.length > found) this.idleLanes.delete(laneId);
    else this.idleLanes.add(laneId);
    // Work found and slots filled: the next round starts at that chunk again (where more work
    // likely waits) rather than walking every empty partition first, a few rounds at most.
    const stays = this.stays.get(laneId) ?? 0;
    if (out.length >= max && busyChunk !== undefined && stays < 8) {
      cursor = busyChunk;
      this.stays.set(laneId, stays + 1);
    } else {
      this.stays.set(laneId, 0);
    }
    this.cursors.set(laneId, cursor);
  }

  /**
   * The admission path: one grant cycle for all free slots over all of this worker's
   * partitions (each head checked once, several at a time), each grant claimed as soon as it
   * is issued; the round stops at the first cycle that finds nothing, and the lane counts as
   * idle. An idle lane is probed over one chunk of partitions (at most `chunkSize`, as
   * engine.md §4.4's claim reads at most 32 per call), the next probe going on from there:
   * an idle worker reads one chunk of heads per round instead of every partition.
   */
  private async claimAdmitted(laneId: LaneId, max: number, out: ClaimedLease[], from: number): Promise<void> {
    const issue = this.options.issueGrants!;
    const partitions = this.options.partitions.of(laneId);
    let cursor = from;
    while (out.length < max) {
      const idle = this.idleLanes.has(laneId);
      const now = await this.serverNow(idle);
      const start = cursor;
      const visit = idle
        ? Array.from({ length: Math.min(this.options.chunkSize, partitions.length) }, (_, i) => partitions[(start + i) % partitions.length]!)
        : partitions;
      const wanted = max - out.length;
      const granted: Pick<Grant, 'partition'>[] = [];
      const claims: Promise<boolean>[] = [];
      await issue(this.client, {
        laneId,
        workerId: this.options.workerId,
        workerInstanceId: this.options.workerInstanceId,
        capabilities: this.options.capabilities,
        grantTtlMs: this.options.grantTtlMs,
        startPartition: partitions[start],
        partitions: visit,
        nowMs: now,
        max: wanted,
        onGrant: (grant) => void granted.push(grant),
        claim: (grant, issued) => {
          const claiming = this.claimBehind(out, grant.executionId, laneId, issued);
          claims.push(claiming);
          return claiming;
        },
      }).catch((error: unknown) => void this.options.onError(error));
      await Promise.all(claims);
      if (granted.length === 0) {
        if (idle) cursor = (start + visit.length) % partitions.length;
        this.idleLanes.add(laneId);
        break;
      }
      this.idleLanes.delete(laneId);
      // Start the next cycle where the work was found (a few rounds in a row at most), so a
      // lane on a few partitions is not looked for across all the empty ones first.
      const found = partitions.indexOf(granted[0]!.partition);
      const stays = this.stays.get(laneId) ?? 0;
      if (found >= 0 && (found !== start || stays < 8)) {
        this.stays.set(laneId, found === start ? stays + 1 : 0);
        cursor = found;
      } else {
        this.stays.set(laneId, 0);
        cursor = (found >= 0 ? found + 1 : cursor + 1) % partitions.length;
      }
      if (granted.length < wanted) break;
    }
    this.cursors.set(laneId, cursor);
  }

  /**
   * Claims a candidate right behind its grant, sent before the grant's reply (`granted`): a
   * claim without a grant is refused and writes nothing. When the grant was issued but the
   * claim was refused all the same (it ran first), it is claimed once more on the grant. The
   * lease is handed on at once; true when it took the execution.
   */
  private async claimBehind(out: ClaimedLease[], executionId: ExecutionId, laneId: LaneId, granted: Promise<boolean>): Promise<boolean> {
    let lease: ClaimedLease | undefined;
    try {
      lease = await this.claimGranted(executionId, laneId, granted);
    } catch (error) {
      if (await granted) lease = await this.guard(executionId, () => this.claimGranted(executionId, laneId));
      else if (!(error instanceof ScriptError)) this.options.onError(error, executionId);
    }
    if (lease) this.took(out, lease);
    return lease !== undefined;
  }

  /** A lease this round claimed: collected for claim()'s answer and told to onClaimed at once. */
  private took(out: ClaimedLease[], lease: ClaimedLease): void {
    out.push(lease);
    this.options.onClaimed?.(lease);
  }

  /**
   * A wake-up: work became eligible on the lane, on `partition` when known. The next round
   * starts there (an idle lane's one-chunk probe included), the partition now one the worker
   * looks in; without a partition it looks at every known partition again. False when the
   * partition is not one this worker looks in (outside its given `partitions`).
   */
  hint(laneId: LaneId, partition: number | undefined): boolean {
    if (!this.options.lanes.includes(laneId)) return false;
    if (partition === undefined) {
      this.idleLanes.delete(laneId);
      return true;
    }
    if (!this.options.partitions.learn(laneId, partition)) return false;
    const at = this.options.partitions.of(laneId).indexOf(partition);
    if (at < 0) return false;
    this.cursors.set(laneId, at);
    return true;
  }

  /**
   * One claim attempt for one head: the fast path claims whichever head of the partition it
   * can in one call, falling back to the grant path for this member (the one-call claim skips
   * interrupted attempts, which need the resumed claim).
   */
  private async claimCandidate(laneId: LaneId, partition: number, member: string): Promise<ClaimedLease | undefined> {
    if (this.options.path === 'fast') {
      const claimed = await this.guard(undefined, () => this.claimNext(laneId, partition));
      if (claimed) return claimed;
    }
    let executionId: ExecutionId;
    try {
      executionId = parseExecutionId(member);
    } catch (error) {
      this.options.onError(error);
      return undefined;
    }
    return this.guard(executionId, () => this.grantAndClaim(executionId, laneId));
  }

  /** Runs one claim step; skip-codes and other errors become `undefined` (errors are reported). */
  private async guard(executionId: ExecutionId | undefined, step: () => Promise<ClaimedLease | undefined>): Promise<ClaimedLease | undefined> {
    try {
      return await step();
    } catch (error) {
      if (error instanceof ScriptError && SKIP_CODES.has(error.code)) return undefined;
      if (isScriptError(error, 'max_retries_exhausted') && executionId) {
        this.options.onReclaimLimit(executionId);
        return undefined;
      }
      this.options.onError(error, executionId);
      return undefined;
    }
  }

  private async claimNext(laneId: LaneId, partition: number): Promise<ClaimedLease | undefined> {
    const o = this.options;
    const result = await claimNextEligible(this.client, {
      partition,
      workerId: o.workerId,
      workerInstanceId: o.workerInstanceId,
      laneId,
      leaseId: newLeaseId(),
      attemptId: newAttemptId(),
      leaseTtlMs: o.leaseTtlMs,
      ...(o.attemptTimeoutMs !== undefined ? { attemptTimeoutMs: o.attemptTimeoutMs } : {}),
      maxCandidates: o.candidatesPerPartition,
      ...this.capabilitiesArg(),
      withInput: true,
    });
    if (result.status !== 'claimed') return undefined;
    return { ...lease(result), executionId: result.executionId, laneId, attemptKind: ATTEMPT_KIND[result.attemptType], input: inputFromClaimReply(result) };
  }

  private async grantAndClaim(executionId: ExecutionId, laneId: LaneId): Promise<ClaimedLease | undefined> {
    if (!(await this.grant(issueClaimGrant, executionId, laneId))) {
      await this.onCapabilityMismatch(executionId, laneId);
      return undefined;
    }
    return this.claimGranted(executionId, laneId);
  }

  /** Asks for a claim or reclaim grant for this worker; false when refused with capability_mismatch. */
  private async grant(issue: (client: FlowFabricClient, args: GrantArgs) => Promise<unknown>, executionId: ExecutionId, laneId: LaneId): Promise<boolean> {
    const o = this.options;
    try {
      await issue(this.client, { executionId, laneId, workerId: o.workerId, workerInstanceId: o.workerInstanceId, grantTtlMs: o.grantTtlMs, ...this.capabilitiesArg() });
      return true;
    } catch (error) {
      if (isScriptError(error, 'capability_mismatch')) return false;
      throw error;
    }
  }

  /** The worker's capabilities as the grant and fast-path calls take them (absent when none). */
  private capabilitiesArg(): { workerCapabilitiesCsv?: readonly string[] } {
    return this.options.capabilities.length > 0 ? { workerCapabilitiesCsv: this.options.capabilities } : {};
  }

  /**
   * Consumes a grant this worker holds: a normal claim, or the resumed claim for an
   * interrupted attempt (only once `granted`, when the grant's reply is still to come).
   */
  private async claimGranted(executionId: ExecutionId, laneId: LaneId, granted?: Promise<boolean>): Promise<ClaimedLease> {
    const o = this.options;
    const identity = { executionId, laneId, workerId: o.workerId, workerInstanceId: o.workerInstanceId, leaseId: newLeaseId(), leaseTtlMs: o.leaseTtlMs };
    // The handler's input is read alongside the claim (same round trip); wasted only when the
    // claim is refused, and read again by the worker if this read failed.
    const reading = readExecutionInput(this.client, executionId).catch(() => undefined);
    const withInput = async <T extends object>(claimed: T): Promise<T & { input?: ExecutionInput }> => {
      const input = await reading;
      return input ? { ...claimed, input } : claimed;
    };
    try {
      const claim = await claimExecution(this.client, { ...identity, attemptId: newAttemptId(), ...(o.attemptTimeoutMs !== undefined ? { attemptTimeoutMs: o.attemptTimeoutMs } : {}) });
      return withInput({ ...lease(claim), executionId, laneId, attemptKind: ATTEMPT_KIND[claim.attemptType] });
    } catch (error) {
      if (!isScriptError(error, 'use_claim_resumed_execution') || (granted && !(await granted))) throw error;
    }
    // The claim refuses before touching the grant, so it is still ours.
    // The handler runs again with a whole timeout (the worker's own timer restarts too).
    const resumed = await claimResumed(this.client, { ...identity, ...(o.attemptTimeoutMs !== undefined ? { remainingAttemptTimeoutMs: o.attemptTimeoutMs } : {}) });
    return withInput({ ...lease(resumed), executionId, laneId, attemptKind: 'resumed' as const });
  }

  private async reclaim(executionId: ExecutionId, laneId: LaneId): Promise<ClaimedLease | undefined> {
    const o = this.options;
    if (!(await this.grant(issueReclaimGrant, executionId, laneId))) return undefined;
    const context = await readExecutionContext(this.client.transport, executionId);
    const result = await reclaimExecution(this.client, {
      executionId,
      laneId,
      workerId: o.workerId,
      workerInstanceId: o.workerInstanceId,
      currentAttemptIndex: context.currentAttemptIndex,
      newAttemptIndex: context.totalAttemptCount,
      leaseId: newLeaseId(),
      attemptId: newAttemptId(),
      leaseTtlMs: o.leaseTtlMs,
    });
    return { ...lease(result), executionId, laneId, attemptKind: 'reclaim' };
  }

  /**
   * A head this worker may not take (engine.md §3.4, §4.4): when no live worker advertises
   * the capabilities it needs, it is blocked as route-blocked, for the engine's unblock
   * scanner to release once one does; when one does, it is left for that worker.
   */
  private async onCapabilityMismatch(executionId: ExecutionId, laneId: LaneId): Promise<void> {
    const required = replyText(await sendCommand(this.client.transport, 'HGET', [new ExecKeys(executionId).core(), 'required_capabilities'])) ?? '';
    const satisfied = (union: ReadonlySet<string>) => capabilitiesSatisfied(required, union);
    const now = Date.now();
    if (this.capabilityUnion && now - this.capabilityUnion.at <= CAPABILITY_UNION_TTL_MS && satisfied(this.capabilityUnion.union)) return;
    // About to block: decide on a fresh read, so a capable worker that just started is seen.
    this.capabilityUnion = { at: now, union: await liveCapabilities(this.client) };
    if (satisfied(this.capabilityUnion.union)) return;
    await blockExecutionForAdmission(this.client, {
      executionId,
      laneId,
      blockedSet: 'route',
      blockingReason: 'waiting_for_capable_worker',
      blockingDetail: 'no connected worker satisfies required_capabilities',
    }).catch((error: unknown) => {
      if (!(error instanceof ScriptError)) throw error; // Lost a race (no longer eligible): nothing to do.
    });
  }

  /**
   * Housekeeping for when no engine runs (harmless next to one: every call re-checks):
   * promotes due delayed executions of this worker's lanes (retry backoff, delays) and marks
   * due leases expired (ff_mark_lease_expired_if_due, as the engine's scanner), queueing those
   * on this worker's lanes for reclaim. Revoked leases are queued too: revocation takes them
   * out of the lease-expiry index but leaves them in the lane's active index, scored by the
   * lease expiry at claim, so they are found there once that time has passed (like an expired
   * lease), a page per partition and lane each sweep, the next sweep going on from where this
   * one stopped. Returns how many it promoted, queued and unblocked.
   */
  async sweep(): Promise<SweepCounts> {
    const counts: SweepCounts = { promoted: 0, expired: 0, revoked: 0, unblocked: 0 };
    // Only the partitions holding work of this worker's lanes (worker/lane-partitions.ts).
    const targets = this.options.partitions.sweepTargets();
    if (targets.length === 0) return counts;
    const self = this.options.selfService;
    const capable = self && this.options.capabilities.length > 0;
    const onTurn = await this.lanesOnTurn();
    if (onTurn.size === 0 && !capable) return counts;
    this.sweeps += 1;
    const now = await this.sweepClock();
    // Revoked leases are found one claim-time TTL late anyway: every few sweeps is enough.
    const revokedTurn = this.sweeps % REVOKED_SWEEP_EVERY === 1;
    for (let start = 0; start < targets.length; start += this.options.chunkSize) {
      const chunk = targets.slice(start, start + this.options.chunkSize);
      await Promise.all(
        chunk.map(({ partition, lanes }) => {
          const keys = PartitionKeys.forPartition(partition);
          const reads: SweepRead[] = lanes.some((laneId) => onTurn.has(laneId)) ? [{ key: keys.leaseExpiry(), max: now, counter: 'expired', visit: (id) => this.checkExpired(id) }] : [];
          for (const laneId of lanes) {
            // Route-blocked work this worker could take: every capable worker looks, turn or not
            // (the turn's holder may lack the capabilities).
            if (capable) reads.push({ key: keys.laneBlockedRoute(laneId), max: '+inf', counter: 'unblocked', visit: (id) => this.unblockIfCapable(id, laneId) });
            if (!onTurn.has(laneId)) continue;
            if (revokedTurn) reads.push({ key: keys.laneActive(laneId), max: now, counter: 'revoked', paged: true, visit: (id) => this.checkRevoked(id, laneId) });
            if (self) reads.push({ key: keys.laneDelayed(laneId), max: now, counter: 'promoted', visit: async (executionId) => (await promoteDelayed(this.client, { executionId, laneId, nowMs: now })).status === 'promoted' });
          }
          return Promise.all(reads.map((read) => this.sweepRead(read, counts)));
        }),
      );
    }
    if (this.sweeps % 50 === 0) for (const [id, until] of this.foreign) if (until <= this.sweeps) this.foreign.delete(id);
    return counts;
  }

  /**
   * The lanes this sweep covers: all of them, or, when the lanes' workers take turns
   * (`sweepTurnMs`, worker/sweep-turn.ts), those whose turn this worker just took.
   */
  private async lanesOnTurn(): Promise<ReadonlySet<LaneId>> {
    const turnMs = this.options.sweepTurnMs;
    if (turnMs === undefined) return new Set(this.options.lanes);
    // A worker refused a lane's turn lets a few sweeps pass before asking again (doubling up
    // to MAX_TURN_WAIT): among many workers the one sweeping keeps its turn and the others
    // ask rarely, while a lone worker always gets it.
    const asking = this.options.lanes.filter((laneId) => {
      const wait = this.turnWaits.get(laneId);
      if (!wait || wait.left === 0) return true;
      wait.left -= 1;
      return false;
    });
    const taken = await Promise.all(asking.map((laneId) => takeSweepTurn(this.client, laneId, this.options.workerInstanceId, turnMs)));
    asking.forEach((laneId, i) => {
      if (taken[i]) {
        this.turnWaits.delete(laneId);
        return;
      }
      const wait = Math.min(MAX_TURN_WAIT, 2 * (this.turnWaits.get(laneId)?.wait ?? 0) || 1);
      this.turnWaits.set(laneId, { wait, left: wait });
    });
    return new Set(asking.filter((_, i) => taken[i]));
  }

  /**
   * The server clock for a sweep: it bounds the scores read (due leases, due delayed
   * executions) and every call the sweep leads to re-checks against the server clock, so the
   * idle age serves (an idle worker's sweep is a handful of reads; a TIME each time was a
   * fifth of its commands).
   */
  private sweepClock(): Promise<number> {
    return this.clock.now(CLOCK_RESYNC_IDLE_MS);
  }

  /**
   * The server clock for a grant cycle, saving the cycle's own TIME (a round trip per job):
   * read every CLOCK_RESYNC_MS while the lane has work, every CLOCK_RESYNC_IDLE_MS while
   * idle probes find none (a probe that finds work makes the next cycle a busy one). The
   * grant and claim functions re-check against the server's own clock.
   */
  private serverNow(idle: boolean): Promise<number> {
    return this.clock.now(idle ? CLOCK_RESYNC_IDLE_MS : CLOCK_RESYNC_MS);
  }

  /** Reads one page of an index and visits its members at once, counting those visited with effect. */
  private async sweepRead(read: SweepRead, counts: SweepCounts): Promise<void> {
    const offset = read.paged ? (this.pageCursors.get(read.key) ?? 0) : 0;
    const reply = await sendCommand(this.client.transport, 'ZRANGEBYSCORE', [read.key, '-inf', read.max, 'LIMIT', offset, SWEEP_PAGE]);
    const members = Array.isArray(reply) ? reply.map((m) => replyText(m) ?? '') : [];
    if (read.paged) this.pageCursors.set(read.key, members.length < SWEEP_PAGE ? 0 : offset + members.length);
    await Promise.all(
      members.map(async (member) => {
        let executionId: ExecutionId | undefined;
        try {
          executionId = parseExecutionId(member);
          if (await read.visit(executionId)) counts[read.counter] += 1;
        } catch (error) {
          this.options.onError(error, executionId);
        }
      }),
    );
  }

  /** A member of the lane's active index whose lease was revoked: queued for reclaim. */
  private async checkRevoked(executionId: ExecutionId, laneId: LaneId): Promise<boolean> {
    if (this.reclaimable.has(executionId)) return false;
    const ownership = replyText(await sendCommand(this.client.transport, 'HGET', [new ExecKeys(executionId).core(), 'ownership_state']));
    if (ownership !== 'lease_revoked') return false;
    this.reclaimable.set(executionId, laneId);
    return true;
  }

  /**
   * The route part of the engine's unblock scanner (engine.md §2.10), for this worker's own
   * capabilities: a route-blocked execution it can run is made eligible again.
   */
  private async unblockIfCapable(executionId: ExecutionId, laneId: LaneId): Promise<boolean> {
    const required = replyText(await sendCommand(this.client.transport, 'HGET', [new ExecKeys(executionId).core(), 'required_capabilities'])) ?? '';
    if (!capabilitiesSatisfied(required, new Set(this.options.capabilities))) return false;
    try {
      await unblockExecution(this.client, { executionId, laneId, blockedSet: 'route', expectedBlockingReason: 'waiting_for_capable_worker' });
      return true;
    } catch (error) {
      if (error instanceof ScriptError) return false; // Someone else unblocked it first.
      throw error;
    }
  }

  private async checkExpired(executionId: ExecutionId): Promise<boolean> {
    if ((this.foreign.get(executionId) ?? 0) > this.sweeps || this.reclaimable.has(executionId)) return false;
    const core = new ExecKeys(executionId).core();
    const lane = replyText(await sendCommand(this.client.transport, 'HGET', [core, 'lane_id'])) ?? 'default';
    const mine = this.options.lanes.find((l) => l === lane);
    if (!mine) {
      // Another lane's lease: left to its own workers and the engine, not looked at for a while.
      this.foreign.set(executionId, this.sweeps + 20);
      return false;
    }
    if (this.options.selfService) {
      const marked = await markLeaseExpiredIfDue(this.client, { executionId });
      if (marked.status !== 'marked_expired' && marked.reason !== 'already_expired' && marked.reason !== 'already_revoked') return false;
    } else {
      // Without self-service only what the engine already marked is taken.
      const ownership = replyText(await sendCommand(this.client.transport, 'HGET', [core, 'ownership_state']));
      if (ownership !== 'lease_expired_reclaimable' && ownership !== 'lease_revoked') return false;
    }
    this.reclaimable.set(executionId, mine);
    return true;
  }
}

function lease(result: { leaseId: LeaseId; leaseEpoch: number; attemptId: AttemptId; attemptIndex: number; leaseExpiresAt: number }) {
  return { leaseId: result.leaseId, leaseEpoch: result.leaseEpoch, attemptId: result.attemptId, attemptIndex: result.attemptIndex, leaseExpiresAt: result.leaseExpiresAt };
}
