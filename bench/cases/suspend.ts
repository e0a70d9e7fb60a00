// Case 5: suspend → signal → (resumed, eligible) → claim grant → claim resumed → complete
// cycles per second, 16 workers in flight. Each round first creates and claims its
// executions (untimed); the timed part is the five calls of the cycle.
import { benchLane, messageOf, randomExecutionId, serverCpuSeconds, type Case, type Context, type Row } from '../context.js';
import { benchWorker, createMany, ensureSecrets, grantAndClaim, suspendResumeComplete, type Held } from '../engine.js';
import { inFlight, median, rounds } from '../measure.js';

const WORKERS = 16;

export const suspendCycle: Case = {
  name: '5 suspend cycle',
  async run(ctx: Context): Promise<Row[]> {
    const measurement = 'suspend → signal → grant → claim resumed → complete';
    const n = ctx.quick ? 500 : 5_000;
    try {
      const results = await rounds(ctx.plan, async (warmup) => {
        const size = warmup ? Math.max(100, n / 4) : n;
        const laneId = benchLane(ctx, 'susp');
        const ids = Array.from({ length: size }, randomExecutionId);
        await ensureSecrets(ctx.client, ids);
        await createMany(ctx.client, ids, laneId);
        const held: Held[] = [];
        await inFlight(size, WORKERS, async (i, lane) => {
          const worker = benchWorker(lane);
          held[i] = { executionId: ids[i]!, worker, lease: await grantAndClaim(ctx.client, ids[i]!, laneId, worker) };
        });
        const cpuBefore = await serverCpuSeconds(ctx.redis);
        const started = performance.now();
        await inFlight(size, WORKERS, (i) => suspendResumeComplete(ctx.client, laneId, held[i]!));
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
