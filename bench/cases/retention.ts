// Case 11: steady-state memory under retention. On a dedicated server (stream-node-max-bytes
// 512), executions of one lane are created and finished at a fixed rate (create pipelined,
// fast-path claim + complete) while a retention pass runs every tick: the lane's terminal
// index read for members older than the retention period (ZRANGEBYSCORE -inf now−period),
// each purged with ff_purge_execution (the library's atomic purge, with that period). The
// bench drives the purge itself, as the engine's retention scanner would (engine.md §6)
// but with a period of seconds instead of 24 h. used_memory and the key count are sampled
// every tick; after the first period, memory must level off: the level of the last
// period against the second one is the figure.
import { buildPurgeExecution, parsePurgeExecution } from '../../generated/engine.js';
import { PartitionKeys } from '../../generated/keys.js';
import { call } from '../../runtime/client.js';
import { parseExecutionId } from '../../runtime/ids.js';
import { soloExecutionId, soloPartition } from '../../runtime/partition.js';
import { benchLane, messageOf, type Case, type Context, type Row } from '../context.js';
import { benchWorker, createMany, fastWorker, pipelinedValues } from '../engine.js';
import { median } from '../measure.js';
import { RECOMMENDED_SETTINGS, usedMemory, withServers } from '../servers.js';

const TICK_MS = 100;

export const retention: Case = {
  name: '11 retention',
  async run(ctx: Context): Promise<Row[]> {
    const ratePerSecond = ctx.quick ? 1_000 : 2_000;
    const periodMs = ctx.quick ? 1_000 : 2_000;
    const periods = ctx.quick ? 4 : 6;
    return withServers([{ label: 'retention', args: RECOMMENDED_SETTINGS }], async ([s]) => {
      const server = s!;
      const laneId = benchLane(ctx, 'retention');
      const partition = soloPartition(laneId, server.client.partitions);
      const terminal = PartitionKeys.forPartition(partition).laneTerminal(laneId);
      const perTick = Math.round((ratePerSecond * TICK_MS) / 1000);
      const baseline = await usedMemory(server.redis);
      const samples: { t: number; bytes: number; keys: number }[] = [];
      const started = performance.now();
      let finished = 0;
      let purged = 0;
      let late = 0;
      for (let tick = 0; performance.now() - started < periods * periodMs; tick++) {
        const tickStart = performance.now();
        await createMany(server.client, Array.from({ length: perTick }, () => soloExecutionId(laneId, server.client.partitions)), laneId);
        const done = await Promise.all([0, 1, 2, 3].map((i) => fastWorker(server.client, laneId, benchWorker(i))));
        finished += done.reduce((a, b) => a + b, 0);
        // The retention pass: every member older than the period, purged atomically.
        for (let batch = 0; batch < 100; batch++) {
          const due = (await server.redis.zrangebyscore(terminal, '-inf', Date.now() - periodMs, 'LIMIT', 0, 1000)).map((m) => parseExecutionId(m));
          if (due.length === 0) break;
          const results = await pipelinedValues(server.client, due.length, (i) =>
            call(buildPurgeExecution({ executionId: due[i]!, laneId, retentionMs: periodMs }, server.client.partitions), parsePurgeExecution),
          );
          purged += results.filter((r) => r.status === 'purged').length;
          if (results.every((r) => r.status === 'not_due')) break;
        }
        samples.push({ t: performance.now() - started, bytes: (await usedMemory(server.redis)) - baseline, keys: await server.redis.dbsize() });
        const spent = performance.now() - tickStart;
        if (spent > TICK_MS) late += 1;
        else await new Promise((resolve) => setTimeout(resolve, TICK_MS - spent));
      }
      const levelOf = (period: number) => median(samples.filter((x) => x.t >= period * periodMs && x.t < (period + 1) * periodMs).map((x) => x.bytes));
      const keysOf = (period: number) => median(samples.filter((x) => x.t >= period * periodMs && x.t < (period + 1) * periodMs).map((x) => x.keys));
      const levels = Array.from({ length: periods }, (_, p) => levelOf(p));
      const second = levels[1]!;
      const last = levels[periods - 1]!;
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
            `${finished} finished (${achieved.toFixed(0)}/s of ${ratePerSecond}/s asked; ${late} late ticks), ${purged} purged; ${Math.abs(last / second - 1) <= 0.1 ? 'flat (within 10%)' : 'NOT flat'}. ` +
            'Retention driven by the bench with ff_purge_execution (the engine\'s trimmer is not used)',
        },
      ];
    }).catch((error: unknown) => [{ case: this.name, measurement: '(case failed)', value: undefined, unit: '', note: messageOf(error) }]);
  },
};
