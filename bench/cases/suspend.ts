// Case 5: suspend → signal → (resumed, eligible) → claim grant → claim resumed → complete
// cycles per second, 16 workers in flight. Each round first creates and claims its
// executions (untimed); the timed part is the five calls of the cycle.
import { randomBytes, randomUUID } from 'node:crypto';
import { completeExecution } from '../../generated/execution.js';
import { PartitionKeys } from '../../generated/keys.js';
import { issueClaimGrant } from '../../generated/scheduling.js';
import { executionPartition, newLeaseId, type ExecutionId, type LaneId } from '../../runtime/ids.js';
import { hashTag } from '../../runtime/partition.js';
import type { FunctionCaller } from '../../runtime/transport.js';
import { benchLane, messageOf, optionalWrapper, randomExecutionId, serverCpuSeconds, unavailable, whyUnavailable, type Case, type Context, type Row } from '../context.js';
import { benchWorker, createMany, grantAndClaim, suspendArgs, type Lease, type Worker } from '../engine.js';
import { inFlight, median, rounds } from '../measure.js';

const WORKERS = 16;
type Wrapper = (client: FunctionCaller, args: Record<string, unknown>) => Promise<Record<string, unknown>>;
const NEEDED = ['suspendExecution', 'deliverSignal', 'claimResumedExecution', 'rotateWaitpointHmacSecret'] as const;

/** Gives every partition the executions use a signing key, unless it already has one. */
async function ensureSecrets(ctx: Context, rotate: Wrapper, ids: readonly ExecutionId[]): Promise<void> {
  const partitions = new Set(ids.map(executionPartition));
  for (const partition of partitions) {
    if (await ctx.redis.hget(new PartitionKeys(hashTag('fp', partition)).waitpointHmacSecrets(), 'current_kid')) continue;
    await rotate(ctx.client, { partition, newKid: 'bench', newSecretHex: randomBytes(32).toString('hex'), graceMs: 0 });
  }
}

interface Held {
  readonly executionId: ExecutionId;
  readonly worker: Worker;
  readonly lease: Lease;
}

export const suspendCycle: Case = {
  name: '5 suspend cycle',
  async run(ctx: Context): Promise<Row[]> {
    const measurement = 'suspend → signal → grant → claim resumed → complete';
    const [suspend, deliver, claimResumed, rotate] = NEEDED.map((name) => optionalWrapper<Wrapper>(ctx, name));
    if (!suspend || !deliver || !claimResumed || !rotate) {
      return [unavailable(this.name, measurement, NEEDED.flatMap((name) => whyUnavailable(ctx, name) ?? []))];
    }

    const n = ctx.quick ? 500 : 5_000;
    const cycle = async (laneId: LaneId, held: Held): Promise<void> => {
      const { executionId, worker, lease } = held;
      const suspended = await suspend(ctx.client, suspendArgs(executionId, laneId, worker, lease, { suspensionId: randomUUID(), waitpointId: randomUUID() }));
      await deliver(ctx.client, {
        executionId, laneId, signalId: randomUUID(), waitpointId: suspended.waitpointId, waitpointToken: suspended.waitpointToken,
        signalName: 'go', signalCategory: 'bench', sourceType: 'bench', sourceIdentity: 'bench', targetScope: 'waitpoint',
      });
      await issueClaimGrant(ctx.client, { executionId, laneId, ...worker, grantTtlMs: 10_000 });
      const leaseId = newLeaseId();
      const resumed = await claimResumed(ctx.client, { executionId, laneId, ...worker, leaseId, leaseTtlMs: 60_000, currentAttemptIndex: lease.attemptIndex });
      // The resumed claim keeps the attempt and bumps the epoch of the new lease.
      await completeExecution(ctx.client, { executionId, laneId, workerInstanceId: worker.workerInstanceId, ...lease, leaseId, leaseEpoch: Number(resumed.leaseEpoch) });
    };

    try {
      const results = await rounds(ctx.plan, async (warmup) => {
        const size = warmup ? Math.max(100, n / 4) : n;
        const laneId = benchLane(ctx, 'susp');
        const ids = Array.from({ length: size }, randomExecutionId);
        await ensureSecrets(ctx, rotate, ids);
        await createMany(ctx.client, ids, laneId);
        const held: Held[] = [];
        await inFlight(size, WORKERS, async (i, lane) => {
          const worker = benchWorker(lane);
          held[i] = { executionId: ids[i]!, worker, lease: await grantAndClaim(ctx.client, ids[i]!, laneId, worker) };
        });
        const cpuBefore = await serverCpuSeconds(ctx.redis);
        const started = performance.now();
        await inFlight(size, WORKERS, (i) => cycle(laneId, held[i]!));
        const ms = performance.now() - started;
        return { rate: (size * 1000) / ms, cpuPerCycle: (((await serverCpuSeconds(ctx.redis)) - cpuBefore) * 1e6) / size };
      });
      const rates = results.map((r) => r.rate);
      return [
        { case: this.name, measurement: `${measurement}, N=${n}, ${WORKERS} in flight`, value: median(rates), unit: 'cycles/s', note: '5 FCALLs per cycle; create + first claim done before timing', rounds: rates },
        { case: this.name, measurement: 'server CPU per cycle', value: median(results.map((r) => r.cpuPerCycle)), unit: 'µs/cycle' },
      ];
    } catch (error) {
      return [{ case: this.name, measurement, value: undefined, unit: 'cycles/s', note: `failed: ${messageOf(error)}` }];
    }
  },
};
