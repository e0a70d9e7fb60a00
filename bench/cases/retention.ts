// Case 11: steady-state memory under retention. On a dedicated server (stream-node-max-bytes
// 512), executions of one lane are created and finished at a fixed rate (create pipelined,
// fast-path claim + complete) while the engine (engine/, all scanners) runs with a retention
// period of seconds instead of 24 h and its trimmer every 250 ms (100 members per page).
// used_memory and the key count are sampled every tick; after the first period, memory
// must level off: the level of the last period against the second one is the figure.
import { Engine } from '../../engine/index.js';
import { soloExecutionId } from '../../runtime/partition.js';
import { benchLane, messageOf, type Case, type Context, type Row } from '../context.js';
import { benchWorker, createMany, fastWorker } from '../engine.js';
import { median } from '../measure.js';
import { RECOMMENDED_SETTINGS, usedMemory, withServers } from '../servers.js';

const TICK_MS = 100;

export const retention: Case = {
  name: '11 retention',
  async run(ctx: Context): Promise<Row[]> {
    const ratePerSecond = ctx.quick ? 1_000 : 2_000;
    const periodMs = ctx.quick ? 1_000 : 2_000;
    const periods = ctx.quick ? 4 : 8;
    return withServers([{ label: 'retention', args: RECOMMENDED_SETTINGS }], async ([s]) => {
      const server = s!;
      const laneId = benchLane(ctx, 'retention');
      const engine = new Engine({
        client: server.client,
        retention: { defaultMs: periodMs },
        intervals: { retention_trimmer: 250 },
        batchSizes: { retention_trimmer: 100 },
        logLevel: 'error',
      });
      await engine.start();
      const perTick = Math.round((ratePerSecond * TICK_MS) / 1000);
      const baseline = await usedMemory(server.redis);
      const baselineKeys = await server.redis.dbsize();
      const samples: { t: number; bytes: number; keys: number }[] = [];
      const started = performance.now();
      let finished = 0;
      let late = 0;
      for (let tick = 0; performance.now() - started < periods * periodMs; tick++) {
        const tickStart = performance.now();
        await createMany(server.client, Array.from({ length: perTick }, () => soloExecutionId(laneId, server.client.partitions)), laneId);
        const done = await Promise.all([0, 1, 2, 3].map((i) => fastWorker(server.client, laneId, benchWorker(i))));
        finished += done.reduce((a, b) => a + b, 0);
        samples.push({ t: performance.now() - started, bytes: (await usedMemory(server.redis)) - baseline, keys: await server.redis.dbsize() });
        const spent = performance.now() - tickStart;
        if (spent > TICK_MS) late += 1;
        else await new Promise((resolve) => setTimeout(resolve, TICK_MS - spent));
      }
      // Creation stops; the engine runs on for one period and a bit: everything must go.
      await new Promise((resolve) => setTimeout(resolve, periodMs + 1_500));
      const leftKeys = (await server.redis.dbsize()) - baselineKeys;
      const leftBytes = (await usedMemory(server.redis)) - baseline;
      await engine.stop();
      const trimmer = engine.stats().scanners.find((x) => x.name === 'retention_trimmer');
      const levelOf = (period: number) => median(samples.filter((x) => x.t >= period * periodMs && x.t < (period + 1) * periodMs).map((x) => x.bytes));
      const keysOf = (period: number) => median(samples.filter((x) => x.t >= period * periodMs && x.t < (period + 1) * periodMs).map((x) => x.keys));
      const levels = Array.from({ length: periods }, (_, p) => levelOf(p));
      const second = levels[1]!;
      const last = levels[periods - 1]!;
      // Least-squares slope of the levels after the first period, as a share of their mean, per period.
      const later = levels.slice(1);
      const xMean = (later.length - 1) / 2;
      const yMean = later.reduce((a, b) => a + b, 0) / later.length;
      const slope = later.reduce((sum, y, x) => sum + (x - xMean) * (y - yMean), 0) / later.reduce((sum, _, x) => sum + (x - xMean) ** 2, 0) / yMean;
      const c = this.name;
      const achieved = (finished * 1000) / (periods * periodMs);
      return [
        {
          case: c,
          measurement: `memory level, last retention period against the second (period ${periodMs / 1000} s, ${periods} periods)`,
          value: last / second,
          unit: '×',
          note:
            `median used_memory above the empty server per period: ${levels.map((l) => `${(l / 1024).toFixed(0)} KiB`).join(', ')}; keys per period ${Array.from({ length: periods }, (_, p) => keysOf(p).toFixed(0)).join(', ')}; ` +
            `${finished} finished (${achieved.toFixed(0)}/s of ${ratePerSecond}/s asked; ${late} late ticks); trimmer: ${trimmer?.cycles ?? 0} cycles, ${trimmer?.processed ?? 0} purged, ${trimmer?.errors ?? 0} errors, lag ${trimmer?.lagMs ?? 0} ms; trend after the first period ${(slope * 100).toFixed(1)}% of the level per period (${Math.abs(slope) <= 0.05 ? 'flat: within ±5%' : 'NOT flat'}). ` +
            'Retention by the engine\'s retention_trimmer (ff_purge_execution per member)',
        },
        {
          case: c,
          measurement: 'left one period after creation stopped (engine still running)',
          value: leftKeys,
          unit: 'keys',
          note: `${(leftBytes / 1024).toFixed(0)} KiB used_memory above the empty server (with the engine booted); at the peak ${Math.max(...samples.map((x) => x.keys)) - baselineKeys} keys: a leak would leave keys per execution finished (${finished})`,
        },
      ];
    }).catch((error: unknown) => [{ case: this.name, measurement: '(case failed)', value: undefined, unit: '', note: messageOf(error) }]);
  },
};
