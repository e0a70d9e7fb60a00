// Consistency checks of one execution's stored state, for the end of any scenario:
//
//   expect(await checkExecutionInvariants(redis, executionId)).toEqual([]);
//
// It reads exec_core, lease_current, the attempt hashes, every lane index of the
// execution's lane, lease_expiry and the holder's worker_leases set, and returns one line
// per broken rule, `<rule>: <what is wrong>` (empty = consistent). Each rule is small and
// named; rules the v0.2.0 reference itself breaks are narrowed to what it keeps, with the
// reason next to them. The reads are not atomic, so call it when nothing else is writing
// to the execution.
import type { Redis } from 'ioredis';
import { ExecKeys, PartitionKeys } from '../../generated/keys.js';
import { parseLaneId, type ExecutionId, type LaneId } from '../../runtime/ids.js';

type Hash = Record<string, string>;

/** Everything the rules look at, read once. */
export interface ExecutionSnapshot {
  readonly executionId: ExecutionId;
  readonly core: Hash;
  readonly leaseCurrent: Hash;
  /** Attempt hashes by index, for 0..total_attempt_count-1 (missing ones are empty). */
  readonly attempts: readonly Hash[];
  /** Lane index name (`eligible`, `blocked:budget`, …) → score, for the indexes holding the execution. */
  readonly laneIndexes: Readonly<Record<string, number>>;
  /** Score in lease_expiry, when a member. */
  readonly leaseExpiryScore: number | undefined;
  /** The worker instance whose lease set is checked (see `holderOf`), and whether it lists the execution. */
  readonly holder: string | undefined;
  readonly inHolderSet: boolean;
  /** Server time (ms) when the snapshot was taken. */
  readonly now: number;
}

const LANE_INDEXES = [
  'eligible', 'delayed', 'active', 'terminal', 'suspended',
  'blocked:dependencies', 'blocked:budget', 'blocked:quota', 'blocked:route', 'blocked:operator',
] as const;
type LaneIndex = (typeof LANE_INDEXES)[number];

function laneIndexKey(index: PartitionKeys, lane: LaneId, name: LaneIndex): string {
  switch (name) {
    case 'eligible': return index.laneEligible(lane);
    case 'delayed': return index.laneDelayed(lane);
    case 'active': return index.laneActive(lane);
    case 'terminal': return index.laneTerminal(lane);
    case 'suspended': return index.laneSuspended(lane);
    case 'blocked:dependencies': return index.laneBlockedDependencies(lane);
    case 'blocked:budget': return index.laneBlockedBudget(lane);
    case 'blocked:quota': return index.laneBlockedQuota(lane);
    case 'blocked:route': return index.laneBlockedRoute(lane);
    case 'blocked:operator': return index.laneBlockedOperator(lane);
  }
}

/**
 * The worker whose lease set should (or should not) list the execution: the recorded
 * holder, or, once a release cleared it, the worker of the latest attempt.
 */
function holderOf(core: Hash, attempts: readonly Hash[]): string | undefined {
  if (core.current_worker_instance_id) return core.current_worker_instance_id;
  const latest = attempts[attempts.length - 1];
  return latest?.worker_instance_id || undefined;
}

/** Reads everything the rules need about one execution. */
export async function readExecutionSnapshot(redis: Redis, executionId: ExecutionId): Promise<ExecutionSnapshot> {
  const exec = new ExecKeys(executionId);
  const index = new PartitionKeys(exec.tag);
  const core = await redis.hgetall(exec.core());
  const leaseCurrent = await redis.hgetall(exec.leaseCurrent());
  const total = Number(core.total_attempt_count ?? '0');
  const attempts: Hash[] = [];
  for (let i = 0; Number.isSafeInteger(total) && i < total; i++) attempts.push(await redis.hgetall(exec.attemptHash(i)));
  // The lane indexes are keyed by the submission lane; the reference falls back to `default`.
  const lane = parseLaneId(core.lane_id || 'default');
  const laneIndexes: Record<string, number> = {};
  for (const name of LANE_INDEXES) {
    const score = await redis.zscore(laneIndexKey(index, lane, name), executionId);
    if (score !== null) laneIndexes[name] = Number(score);
  }
  const expiry = await redis.zscore(index.leaseExpiry(), executionId);
  const holder = holderOf(core, attempts);
  const inHolderSet = holder !== undefined && (await redis.sismember(index.workerLeases(holder), executionId)) === 1;
  const [seconds, micros] = await redis.time();
  return {
    executionId, core, leaseCurrent, attempts, laneIndexes,
    leaseExpiryScore: expiry === null ? undefined : Number(expiry),
    holder, inHolderSet,
    now: Number(seconds) * 1000 + Math.floor(Number(micros) / 1000),
  };
}

/** Reads one execution's state and returns every broken invariant (empty = consistent). */
export async function checkExecutionInvariants(redis: Redis, executionId: ExecutionId): Promise<string[]> {
  return checkSnapshot(await readExecutionSnapshot(redis, executionId));
}

/** The rules, over a snapshot (exported so a test can check a hand-made snapshot). */
export function checkSnapshot(s: ExecutionSnapshot): string[] {
  if (Object.keys(s.core).length === 0) return ['core-exists: exec_core is missing'];
  const violations: string[] = [];
  for (const rule of RULES) {
    for (const message of rule.check(s)) violations.push(`${rule.name}: ${message}`);
  }
  return violations;
}

interface Rule {
  readonly name: string;
  readonly check: (s: ExecutionSnapshot) => string[];
}

const STATE_VALUES: Readonly<Record<string, readonly string[]>> = {
  lifecycle_phase: ['submitted', 'runnable', 'active', 'suspended', 'terminal'],
  ownership_state: ['unowned', 'leased', 'lease_expired_reclaimable', 'lease_revoked'],
  eligibility_state: [
    'eligible_now', 'not_eligible_until_time', 'blocked_by_dependencies', 'blocked_by_budget', 'blocked_by_quota',
    'blocked_by_route', 'blocked_by_lane_state', 'blocked_by_operator', 'not_applicable',
  ],
  blocking_reason: [
    'none', 'waiting_for_worker', 'waiting_for_retry_backoff', 'waiting_for_resume_delay', 'waiting_for_delay',
    'waiting_for_signal', 'waiting_for_approval', 'waiting_for_callback', 'waiting_for_tool_result', 'waiting_for_children',
    'waiting_for_budget', 'waiting_for_quota', 'waiting_for_capable_worker', 'waiting_for_locality_match',
    'paused_by_operator', 'paused_by_policy', 'paused_by_flow_cancel',
  ],
  terminal_outcome: ['none', 'success', 'failed', 'cancelled', 'expired', 'skipped'],
  attempt_state: [
    'none', 'pending_first_attempt', 'running_attempt', 'attempt_interrupted', 'pending_retry_attempt',
    'pending_replay_attempt', 'attempt_terminal',
  ],
  public_state: ['waiting', 'delayed', 'rate_limited', 'waiting_children', 'active', 'suspended', 'completed', 'failed', 'cancelled', 'expired', 'skipped'],
};

const ATTEMPT_LIFECYCLE = ['created', 'started', 'suspended', 'ended_success', 'ended_failure', 'ended_cancelled', 'interrupted_reclaimed'];

/** model.md §4.2, in its order. */
export function derivePublicState(core: Hash): string {
  switch (core.lifecycle_phase) {
    case 'terminal':
      return ({ success: 'completed', failed: 'failed', cancelled: 'cancelled', expired: 'expired', skipped: 'skipped' } as Hash)[core.terminal_outcome ?? ''] ?? 'failed';
    case 'suspended':
      return 'suspended';
    case 'active':
      return 'active';
    case 'runnable':
      switch (core.eligibility_state) {
        case 'not_eligible_until_time': return 'delayed';
        case 'blocked_by_dependencies': return 'waiting_children';
        case 'blocked_by_budget':
        case 'blocked_by_quota': return 'rate_limited';
        default: return 'waiting';
      }
    default:
      return 'waiting';
  }
}

/** The one lane index an execution in this state belongs to; undefined when none is defined. */
function expectedLaneIndexes(core: Hash): readonly LaneIndex[] | undefined {
  switch (core.lifecycle_phase) {
    case 'active': return ['active'];
    case 'suspended': return ['suspended'];
    case 'terminal': return ['terminal'];
    case 'runnable':
      switch (core.eligibility_state) {
        case 'eligible_now': return ['eligible'];
        case 'not_eligible_until_time': return ['delayed'];
        case 'blocked_by_dependencies': return ['blocked:dependencies'];
        case 'blocked_by_budget': return ['blocked:budget'];
        case 'blocked_by_quota': return ['blocked:quota'];
        case 'blocked_by_route': return ['blocked:route'];
        case 'blocked_by_operator': return ['blocked:operator'];
        // No blocked:lane_state index exists: a lane-state block goes to whichever blocked
        // set the caller passed (model.md §3.2), so any one of them is right.
        case 'blocked_by_lane_state': return ['blocked:dependencies', 'blocked:budget', 'blocked:quota', 'blocked:route', 'blocked:operator'];
        default: return undefined;
      }
    default:
      return undefined;
  }
}

const RULES: readonly Rule[] = [
  {
    name: 'state-values',
    check: ({ core }) =>
      Object.entries(STATE_VALUES)
        .filter(([field, values]) => !values.includes(core[field] ?? ''))
        .map(([field]) => `${field} is ${JSON.stringify(core[field])}`),
  },
  {
    // Known divergence kept: ff_block_execution_for_admission writes rate_limited for
    // route / operator / lane-state blocks, where the rule gives waiting (model.md §4.2).
    name: 'public-state-derived',
    check: ({ core }) => {
      const derived = derivePublicState(core);
      if (core.public_state === derived) return [];
      const admissionBlock = core.lifecycle_phase === 'runnable'
        && ['blocked_by_route', 'blocked_by_operator', 'blocked_by_lane_state'].includes(core.eligibility_state ?? '')
        && core.public_state === 'rate_limited';
      return admissionBlock ? [] : [`public_state is ${core.public_state} but the state vector derives ${derived}`];
    },
  },
  {
    name: 'outcome-iff-terminal',
    check: ({ core }) => {
      const terminal = core.lifecycle_phase === 'terminal';
      if (terminal && core.terminal_outcome === 'none') return ['terminal execution has terminal_outcome none'];
      if (!terminal && core.terminal_outcome !== 'none') return [`${core.lifecycle_phase} execution has terminal_outcome ${core.terminal_outcome}`];
      return [];
    },
  },
  {
    name: 'owned-iff-active',
    check: ({ core }) => {
      const active = core.lifecycle_phase === 'active';
      if (active && core.ownership_state === 'unowned') return ['active execution is unowned'];
      if (!active && core.ownership_state !== 'unowned') return [`${core.lifecycle_phase} execution has ownership ${core.ownership_state}`];
      return [];
    },
  },
  {
    name: 'one-lane-index',
    check: ({ core, laneIndexes }) => {
      const present = Object.keys(laneIndexes);
      const expected = expectedLaneIndexes(core);
      if (expected === undefined) {
        return present.length > 0 ? [`no lane index is defined for ${core.lifecycle_phase}/${core.eligibility_state}, found in ${present.join(', ')}`] : [];
      }
      if (present.length === 1 && expected.includes(present[0] as LaneIndex)) return [];
      const want = expected.length === 1 ? expected[0] : `one of ${expected.join(', ')}`;
      return [`${core.lifecycle_phase}/${core.eligibility_state} belongs in ${want}, found in ${present.length > 0 ? present.join(', ') : 'none'}`];
    },
  },
  {
    // Leased: indexed at the lease expiry (renew moves it). Expired-reclaimable: mark_expired
    // keeps the entry so reclaim can find it. Revoked: revoke removes it. Not active: every
    // path out of active removes it.
    name: 'lease-expiry-index',
    check: ({ core, leaseExpiryScore }) => {
      const active = core.lifecycle_phase === 'active';
      const owner = core.ownership_state;
      if (active && owner === 'leased') {
        if (leaseExpiryScore === undefined) return ['leased execution is missing from lease_expiry'];
        if (String(leaseExpiryScore) !== core.lease_expires_at) return [`lease_expiry score ${leaseExpiryScore} differs from lease_expires_at ${core.lease_expires_at}`];
        return [];
      }
      if (active && owner === 'lease_expired_reclaimable') {
        return leaseExpiryScore === undefined ? ['expired-reclaimable execution is missing from lease_expiry'] : [];
      }
      return leaseExpiryScore === undefined ? [] : [`${core.lifecycle_phase}/${owner} execution is in lease_expiry`];
    },
  },
  {
    // lease_current mirrors the live lease. The reference breaks "only while leased" in two
    // ways, so they are not asserted: mark_expired leaves lease_current in place, and renew's
    // PEXPIREAT may let it lapse past the expiry before the scanner marks the execution.
    name: 'lease-current',
    check: ({ core, leaseCurrent, now }) => {
      const exists = Object.keys(leaseCurrent).length > 0;
      const owner = core.ownership_state;
      const out: string[] = [];
      if (owner === 'leased' && !exists && Number(core.lease_expires_at) > now) out.push('leased execution has no lease_current');
      if ((owner === 'unowned' || owner === 'lease_revoked') && exists) out.push(`${owner} execution still has lease_current`);
      if (exists) {
        if (leaseCurrent.lease_id !== core.current_lease_id) out.push(`lease_current.lease_id ${leaseCurrent.lease_id} differs from current_lease_id ${core.current_lease_id}`);
        if (leaseCurrent.lease_epoch !== core.current_lease_epoch) out.push(`lease_current.lease_epoch ${leaseCurrent.lease_epoch} differs from current_lease_epoch ${core.current_lease_epoch}`);
      }
      return out;
    },
  },
  {
    // Only the holder's set is checked. Not asserted, because the reference breaks them:
    // an expired-reclaimable execution stays listed (mark_expired leaves worker_leases), and
    // a reclaim leaves it in the previous holder's set (quirk Q6).
    name: 'worker-leases',
    check: ({ core, holder, inHolderSet }) => {
      const owner = core.ownership_state;
      if (owner === 'leased' && !inHolderSet) return [`leased execution is missing from worker ${holder ?? '(none)'}'s lease set`];
      if ((owner === 'unowned' || owner === 'lease_revoked') && inHolderSet) return [`${owner} execution is still in worker ${holder}'s lease set`];
      return [];
    },
  },
  {
    name: 'attempt-count',
    check: ({ core, attempts }) => {
      const out: string[] = [];
      attempts.forEach((attempt, i) => {
        if (Object.keys(attempt).length === 0) out.push(`attempt ${i} of ${attempts.length} is missing`);
        else if (!ATTEMPT_LIFECYCLE.includes(attempt.attempt_state ?? '')) out.push(`attempt ${i} has attempt_state ${JSON.stringify(attempt.attempt_state)}`);
      });
      const current = core.current_attempt_index;
      if (current && !(Number(current) < attempts.length)) out.push(`current_attempt_index ${current} is not below total_attempt_count ${attempts.length}`);
      return out;
    },
  },
  {
    name: 'leased-attempt-running',
    check: ({ core, attempts }) => {
      if (core.ownership_state !== 'leased') return [];
      const attempt = attempts[Number(core.current_attempt_index)];
      if (!attempt || Object.keys(attempt).length === 0) return [`leased execution has no attempt hash for index ${core.current_attempt_index}`];
      const out: string[] = [];
      if (attempt.attempt_state !== 'started') out.push(`current attempt is ${attempt.attempt_state}, not started`);
      if (attempt.attempt_id !== core.current_attempt_id) out.push(`current attempt id ${attempt.attempt_id} differs from current_attempt_id ${core.current_attempt_id}`);
      if (attempt.lease_id !== core.current_lease_id || attempt.lease_epoch !== core.current_lease_epoch) {
        out.push(`current attempt holds lease ${attempt.lease_id}/${attempt.lease_epoch}, exec_core ${core.current_lease_id}/${core.current_lease_epoch}`);
      }
      return out;
    },
  },
  {
    // An attempt runs only while the execution is active, and at most one at a time.
    // Not asserted: the max-reclaim terminal path of reclaim leaves the old attempt
    // `started` (quirk Q7), recognisable by failure_reason max_reclaims_exceeded.
    name: 'started-attempts',
    check: ({ core, attempts }) => {
      const started = attempts.map((a, i) => (a.attempt_state === 'started' ? i : -1)).filter((i) => i >= 0);
      const out: string[] = [];
      if (started.length > 1) out.push(`attempts ${started.join(', ')} are all started`);
      const q7 = core.lifecycle_phase === 'terminal' && core.failure_reason === 'max_reclaims_exceeded';
      if (core.lifecycle_phase !== 'active' && started.length > 0 && !q7) {
        out.push(`${core.lifecycle_phase} execution has started attempt ${started.join(', ')}`);
      }
      return out;
    },
  },
];

/** The rule names, for documentation and tests. */
export const INVARIANT_RULES: readonly string[] = RULES.map((r) => r.name);
