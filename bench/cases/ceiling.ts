// Case 1: how many `FCALL ff_version 0` round trips one ioredis connection gets, with no
// wrapper in the way: the ceiling every other number sits under.
import type { Case, Context, Row } from '../context.js';
import { inFlight, measure, timed } from '../measure.js';

export const ceiling: Case = {
  name: '1 ceiling',
  async run(ctx: Context): Promise<Row[]> {
    const sequentialOps = ctx.quick ? 2_000 : 20_000;
    const parallelOps = ctx.quick ? 10_000 : 100_000;
    const fcall = () => ctx.redis.call('FCALL', 'ff_version', 0);

    const sequential = await measure(ctx.plan, async () => ({
      ops: sequentialOps,
      ms: await timed(async () => {
        for (let i = 0; i < sequentialOps; i++) await fcall();
      }),
    }));
    const parallel = await measure(ctx.plan, async () => ({ ops: parallelOps, ms: await timed(() => inFlight(parallelOps, 64, fcall)) }));

    return [
      { case: this.name, measurement: 'raw FCALL ff_version 0, sequential', value: sequential.median, unit: 'ops/s', rounds: sequential.rounds },
      { case: this.name, measurement: 'raw FCALL ff_version 0, 64 in flight', value: parallel.median, unit: 'ops/s', rounds: parallel.rounds },
    ];
  },
};
