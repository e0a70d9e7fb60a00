// Case 7: the floor under case 4. The Redis commands that the contract's create → grant →
// claim → complete issue for one execution (same keys, field names, value sizes and
// indexes), replayed inside one EVAL loop with no Lua logic and no per-call overhead:
// the server CPU that no implementation of this data model can go below.
import { buildClaimExecution, buildCompleteExecution, buildCreateExecution, parseClaimExecution, parseCompleteExecution, parseCreateExecution } from '../../generated/execution.js';
import { buildIssueClaimGrant, parseIssueClaimGrant } from '../../generated/scheduling.js';
import { call, type FlowFabricClient } from '../../runtime/client.js';
import { newAttemptId, newLeaseId, type LaneId } from '../../runtime/ids.js';
import type { FcallRequest } from '../../runtime/transport.js';
import { median, rounds } from '../measure.js';
import { benchLane, randomExecutionId, serverCpuSeconds, type Case, type Context, type Row } from '../context.js';
import { benchWorker, pipelined } from '../engine.js';

const EID = '{fp:7}:0f8fad5b-d9cb-469f-a165-70867728950e';
const CORE_FIELDS = [
  'execution_id', 'namespace', 'lane_id', 'execution_kind', 'partition_id', 'priority', 'creator_identity', 'total_attempt_count',
  'retry_count', 'replay_count', 'lease_reclaim_count', 'current_lease_epoch', 'current_attempt_index', 'current_attempt_id',
  'current_lease_id', 'current_worker_id', 'current_worker_instance_id', 'current_lane', 'created_at', 'started_at', 'completed_at',
  'lease_acquired_at', 'lease_expires_at', 'lease_last_renewed_at', 'lease_renewal_deadline', 'lease_expired_at', 'lease_revoked_at',
  'lease_revoke_reason', 'delay_until', 'current_suspension_id', 'current_waitpoint_id', 'pending_retry_reason', 'pending_replay_reason',
  'pending_replay_requested_by', 'pending_previous_attempt_index', 'progress_pct', 'progress_message', 'progress_updated_at', 'flow_id',
  'lifecycle_phase', 'ownership_state', 'eligibility_state', 'blocking_reason', 'blocking_detail', 'terminal_outcome', 'attempt_state',
  'public_state', 'last_mutation_at', 'last_transition_at',
];
const value = (field: string) => (field.endsWith('_at') ? "'1795866640707'" : field.endsWith('_id') ? `'${EID}'` : "'runnable'");
const hsetCore = (fields: readonly string[]) => `redis.call('HSET', k .. ':core', ${fields.map((f) => `'${f}', ${value(f)}`).join(', ')})`;
const uuid = `'0f8fad5b-d9cb-469f-a165-70867728950e'`;

/** One execution's command sequence, per phase, with `k` the exec key prefix and `e` the member. */
const PHASES: Record<string, string> = {
  create: `redis.call('GET', 'ff:idem:{fp:7}:ns:' .. i) redis.call('EXISTS', k .. ':core') ${hsetCore(CORE_FIELDS)}
    redis.call('ZADD', 'ff:idx:{fp:7}:lane:floor:eligible', i, e) redis.call('SADD', 'ff:idx:{fp:7}:all_executions', e)`,
  grant: `redis.call('TIME') redis.call('HMGET', k .. ':core', 'lifecycle_phase', 'eligibility_state', 'required_capabilities')
    redis.call('EXISTS', k .. ':claim_grant') redis.call('ZSCORE', 'ff:idx:{fp:7}:lane:floor:eligible', e)
    redis.call('HSET', k .. ':claim_grant', 'worker_id', 'w', 'worker_instance_id', 'w1', 'lane_id', 'floor', 'capability_hash', '', 'route_snapshot_json', '', 'admission_summary', '', 'created_at', '1795866640707', 'grant_expires_at', '1795866700707')
    redis.call('PEXPIREAT', k .. ':claim_grant', 1895866700707)`,
  claim: `redis.call('TIME') redis.call('HMGET', k .. ':core', ${CORE_FIELDS.slice(0, 12).map((f) => `'${f}'`).join(', ')})
    redis.call('HMGET', k .. ':claim_grant', 'worker_id', 'grant_expires_at') redis.call('DEL', k .. ':claim_grant')
    redis.call('HSET', 'ff:attempt:{fp:7}:' .. e .. ':0', 'attempt_id', ${uuid}, 'execution_id', e, 'attempt_index', '0', 'attempt_state', 'started', 'created_at', '1795866640707', 'started_at', '1795866640707', 'lease_id', ${uuid}, 'lease_epoch', '1', 'worker_id', 'w', 'worker_instance_id', 'w1', 'attempt_type', 'initial')
    redis.call('ZADD', k .. ':attempts', 1795866640707, 0) redis.call('HSET', 'ff:attempt:{fp:7}:' .. e .. ':0:usage', 'last_usage_report_seq', '0')
    redis.call('DEL', k .. ':lease:current')
    redis.call('HSET', k .. ':lease:current', 'lease_id', ${uuid}, 'lease_epoch', '1', 'execution_id', e, 'attempt_id', ${uuid}, 'worker_id', 'w', 'worker_instance_id', 'w1', 'acquired_at', '1795866640707', 'expires_at', '1795866700707', 'last_renewed_at', '1795866640707', 'renewal_deadline', '1795866680707')
    ${hsetCore(CORE_FIELDS.slice(0, 25))}
    redis.call('ZREM', 'ff:idx:{fp:7}:lane:floor:eligible', e) redis.call('ZADD', 'ff:idx:{fp:7}:lease_expiry', 1795866700707, e)
    redis.call('SADD', 'ff:idx:{fp:7}:worker:w1:leases', e) redis.call('ZADD', 'ff:idx:{fp:7}:lane:floor:active', 1795866700707, e)
    redis.call('XADD', k .. ':lease:history', 'MAXLEN', '~', '1000', '*', 'event', 'acquired', 'lease_id', ${uuid}, 'lease_epoch', '1', 'attempt_id', ${uuid}, 'attempt_index', '0', 'worker_id', 'w', 'ts', '1795866640707')`,
  complete: `redis.call('TIME') redis.call('HMGET', k .. ':core', ${CORE_FIELDS.slice(0, 12).map((f) => `'${f}'`).join(', ')})
    redis.call('HSET', 'ff:attempt:{fp:7}:' .. e .. ':0', 'attempt_state', 'ended_success', 'ended_at', '1795866640707')
    redis.call('EXISTS', 'ff:stream:{fp:7}:' .. e .. ':0:meta')
    ${hsetCore(CORE_FIELDS.slice(0, 18))}
    redis.call('ZREM', 'ff:idx:{fp:7}:lease_expiry', e) redis.call('SREM', 'ff:idx:{fp:7}:worker:w1:leases', e)
    redis.call('ZADD', 'ff:idx:{fp:7}:lane:floor:terminal', 1795866640707, e) redis.call('ZREM', 'ff:idx:{fp:7}:lane:floor:active', e)
    redis.call('ZREM', 'ff:idx:{fp:7}:attempt_timeout', e) redis.call('ZREM', 'ff:idx:{fp:7}:execution_deadline', e)
    redis.call('DEL', k .. ':lease:current')
    redis.call('XADD', k .. ':lease:history', 'MAXLEN', '~', '1000', '*', 'event', 'released', 'lease_id', ${uuid}, 'lease_epoch', '1', 'attempt_index', '0', 'reason', 'completed', 'ts', '1795866640707')`,
};

/** The EVAL script that replays one phase's commands for n executions named prefix1..prefixN. */
export function floorScript(phase: string, n: number, prefix: string): string {
  const body = PHASES[phase];
  if (body === undefined) throw new Error(`no floor phase ${phase}`);
  return `for i = 1, ${n} do local e = '${prefix}' .. i local k = 'ff:exec:{fp:7}:' .. e ${body} end return 1`;
}

export const FLOOR_PHASES: readonly string[] = Object.keys(PHASES);

/**
 * A library with one function that does nothing, registered like ours (it may write): what
 * FCALL itself costs for a given KEYS and ARGV (parsing, building the KEYS/ARGV tables,
 * the call, the reply), with no command and no logic. Deleted again after the case.
 */
export const NOOP_LIBRARY = "#!lua name=ffbench_noop\nredis.register_function('ffbench_noop', function() return { 1, 'OK' } end)";

/** The four calls of one execution as the generated builders make them (real id and key lengths). */
export function lifecycleRequests(client: FlowFabricClient, laneId: LaneId): Record<string, FcallRequest> {
  const executionId = randomExecutionId();
  const worker = { workerId: 'bench-worker', workerInstanceId: 'bench-worker-0' };
  const lease = { leaseId: newLeaseId(), attemptId: newAttemptId() };
  const p = client.partitions;
  return {
    create: buildCreateExecution({ executionId, laneId, namespace: 'bench', executionKind: 'bench' }, p),
    grant: buildIssueClaimGrant({ executionId, laneId, ...worker, grantTtlMs: 10_000 }, p),
    claim: buildClaimExecution({ executionId, laneId, ...worker, ...lease, leaseTtlMs: 60_000 }, p),
    complete: buildCompleteExecution({ executionId, laneId, workerInstanceId: worker.workerInstanceId, ...lease, leaseEpoch: 1, attemptIndex: 0 }, p),
  };
}

/** Server CPU (µs) per call of the no-op function with each request's KEYS and ARGV, pipelined. */
async function callOverhead(ctx: Context, requests: Record<string, FcallRequest>, n: number): Promise<Record<string, number>> {
  const perCall: Record<string, number> = {};
  for (const [phase, request] of Object.entries(requests)) {
    const before = await serverCpuSeconds(ctx.redis);
    for (let start = 0; start < n; start += 1_000) {
      const pipeline = ctx.redis.pipeline();
      for (let i = start; i < Math.min(n, start + 1_000); i++) {
        pipeline.call('FCALL', 'ffbench_noop', request.keys.length, ...request.keys, ...request.argv);
      }
      await pipeline.exec();
    }
    perCall[phase] = (((await serverCpuSeconds(ctx.redis)) - before) * 1e6) / n;
  }
  return perCall;
}

/**
 * The contract's own four calls for n new executions, each step pipelined 1000 per round
 * trip (as bench:phases): server CPU µs per execution, by step. Measured in the same rounds
 * as the floor, so the ratio of the two sees the same machine.
 */
async function contractLifecycle(ctx: Context, n: number): Promise<Record<string, number>> {
  const laneId = benchLane(ctx, 'contract');
  const ids = Array.from({ length: n }, randomExecutionId);
  const worker = benchWorker(0);
  const leases = ids.map(() => ({ leaseId: newLeaseId(), attemptId: newAttemptId() }));
  const p = ctx.client.partitions;
  const steps: Record<string, () => Promise<void>> = {
    create: () => pipelined(ctx.client, n, (i) => call(buildCreateExecution({ executionId: ids[i]!, laneId, namespace: 'bench', executionKind: 'bench' }, p), parseCreateExecution)),
    grant: () => pipelined(ctx.client, n, (i) => call(buildIssueClaimGrant({ executionId: ids[i]!, laneId, ...worker, grantTtlMs: 600_000 }, p), parseIssueClaimGrant)),
    claim: () => pipelined(ctx.client, n, (i) => call(buildClaimExecution({ executionId: ids[i]!, laneId, ...worker, ...leases[i]!, leaseTtlMs: 600_000 }, p), parseClaimExecution)),
    complete: () =>
      pipelined(ctx.client, n, (i) =>
        call(buildCompleteExecution({ executionId: ids[i]!, laneId, workerInstanceId: worker.workerInstanceId, ...leases[i]!, leaseEpoch: 1, attemptIndex: 0 }, p), parseCompleteExecution),
      ),
  };
  const perStep: Record<string, number> = {};
  for (const [step, run] of Object.entries(steps)) {
    const before = await serverCpuSeconds(ctx.redis);
    await run();
    perStep[step] = (((await serverCpuSeconds(ctx.redis)) - before) * 1e6) / n;
  }
  return perStep;
}

export const floor: Case = {
  name: '7 floor',
  async run(ctx: Context): Promise<Row[]> {
    const n = ctx.quick ? 2_000 : 10_000;
    let run = 0;
    const results = await rounds(ctx.plan, async () => {
      run += 1;
      const prefix = `floor-${ctx.runId}-${run}-`;
      const perPhase: Record<string, number> = {};
      for (const phase of FLOOR_PHASES) {
        const script = floorScript(phase, n, prefix);
        const before = await serverCpuSeconds(ctx.redis);
        await ctx.redis.eval(script, 0);
        perPhase[phase] = (((await serverCpuSeconds(ctx.redis)) - before) * 1e6) / n;
      }
      const contract = await contractLifecycle(ctx, n);
      for (const [step, us] of Object.entries(contract)) perPhase[`contract ${step}`] = us;
      return perPhase;
    });
    const phases = Object.keys(PHASES);
    const medianOf = (phase: string) => median(results.map((r) => r[phase]!));
    const total = median(results.map((r) => phases.reduce((sum, p) => sum + r[p]!, 0)));
    const contractOf = (r: Record<string, number>) => phases.reduce((sum, p) => sum + r[`contract ${p}`]!, 0);
    const floorOf = (r: Record<string, number>) => phases.reduce((sum, p) => sum + r[p]!, 0);
    const contractTotal = median(results.map(contractOf));
    const contractRatio = median(results.map((r) => contractOf(r) / floorOf(r)));

    await ctx.redis.call('FUNCTION', 'LOAD', 'REPLACE', NOOP_LIBRARY);
    let overhead: Record<string, number>[];
    try {
      const requests = lifecycleRequests(ctx.client, benchLane(ctx, 'noop'));
      overhead = await rounds(ctx.plan, () => callOverhead(ctx, requests, n));
    } finally {
      await ctx.redis.call('FUNCTION', 'DELETE', 'ffbench_noop');
    }
    const overheadOf = (phase: string) => median(overhead.map((r) => r[phase]!));
    const overheadTotal = median(overhead.map((r) => phases.reduce((sum, p) => sum + r[p]!, 0)));
    return [
      {
        case: this.name,
        measurement: 'the contract functions: create → grant → claim → complete, each pipelined',
        value: contractTotal,
        unit: 'µs/execution',
        ratio: { value: contractRatio, of: 'of the commands-only floor (target ≤ 1.10)' },
        note: `${phases.map((p) => `${p} ${medianOf(`contract ${p}`).toFixed(1)}`).join(' + ')} µs; every check kept; measured in the same rounds as the floor below. Against floor + FCALL cost (next row): ${(contractTotal / (total + overheadTotal)).toFixed(2)}×`,
        rounds: results.map(contractOf),
      },
      {
        case: this.name,
        measurement: 'commands only of create → grant → claim → complete',
        value: total,
        unit: 'µs/execution',
        note: `${phases.map((p) => `${p} ${medianOf(p).toFixed(1)}`).join(' + ')} µs; same keys, fields and indexes as the contract functions, in one EVAL loop without Lua logic or per-call overhead`,
        rounds: results.map((r) => phases.reduce((sum, p) => sum + r[p]!, 0)),
      },
      {
        case: this.name,
        measurement: 'FCALL cost alone of the same four calls (no-op function, same KEYS and ARGV)',
        value: overheadTotal,
        unit: 'µs/execution',
        note: `${phases.map((p) => `${p} ${overheadOf(p).toFixed(1)}`).join(' + ')} µs; pipelined 1000 per round trip. Floor plus this is what the contract's four calls cost before any Lua logic`,
        rounds: overhead.map((r) => phases.reduce((sum, p) => sum + r[p]!, 0)),
      },
    ];
  },
};
