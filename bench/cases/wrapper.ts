// Case 2: what a generated wrapper (argument checks, key building, FlowFabricClient, reply
// parsing) costs on top of the identical FCALL sent through raw ioredis with pre-built
// KEYS and ARGV. Uses renewLease when generated, else version.
import { buildVersion, version } from '../../generated/version.js';
import type { PartitionConfig } from '../../runtime/partition.js';
import type { FcallRequest, FunctionCaller } from '../../runtime/transport.js';
import { benchLane, optionalExport, optionalWrapper, randomExecutionId, whyUnavailable, type Case, type Context, type Row } from '../context.js';
import { benchWorker, createMany, grantAndClaim, type Lease } from '../engine.js';
import { inFlight, measurePair, timed } from '../measure.js';

const PAIR_BLOCKS = 10;

type RenewArgs = Lease & { readonly executionId: string; readonly leaseTtlMs: number };

interface Subject {
  readonly label: string;
  readonly wrapper: () => Promise<unknown>;
  readonly request: FcallRequest;
}

async function renewSubject(ctx: Context): Promise<Subject | undefined> {
  const renewLease = optionalWrapper<(client: FunctionCaller, args: RenewArgs) => Promise<unknown>>(ctx, 'renewLease');
  const buildRenewLease = optionalExport<(args: RenewArgs, partitions: PartitionConfig) => FcallRequest>(ctx, 'buildRenewLease');
  if (!renewLease || !buildRenewLease) return undefined;
  const laneId = benchLane(ctx, 'renew');
  const executionId = randomExecutionId();
  await createMany(ctx.client, [executionId], laneId);
  // A long lease: every renewal extends it again, so it stays valid for the whole case.
  const lease = await grantAndClaim(ctx.client, executionId, laneId, benchWorker(0), 600_000);
  const args: RenewArgs = { executionId, ...lease, leaseTtlMs: 600_000 };
  return { label: 'renewLease', wrapper: () => renewLease(ctx.client, args), request: buildRenewLease(args, ctx.client.partitions) };
}

export const wrapperOverhead: Case = {
  name: '2 wrapper overhead',
  async run(ctx: Context): Promise<Row[]> {
    const subject = (await renewSubject(ctx)) ?? {
      label: `version (renewLease: ${whyUnavailable(ctx, 'renewLease')})`,
      wrapper: () => version(ctx.client),
      request: buildVersion(ctx.client.partitions),
    };
    const { request } = subject;
    const command = request.readOnly ? 'FCALL_RO' : 'FCALL';
    const rawArgs = [request.fn, request.keys.length, ...request.keys, ...request.argv];
    const raw = () => ctx.redis.call(command, ...rawArgs);

    const rows: Row[] = [];
    for (const [mode, ops, concurrency] of [
      ['sequential', ctx.quick ? 2_000 : 10_000, 1],
      ['64 in flight', ctx.quick ? 5_000 : 50_000, 64],
    ] as const) {
      // Each side's ops are split into PAIR_BLOCKS blocks interleaved with the other side's.
      const perBlock = Math.ceil(ops / PAIR_BLOCKS);
      const round = (op: () => Promise<unknown>) => async () => ({ ops: perBlock, ms: await timed(() => inFlight(perBlock, concurrency, op)) });
      const { a: viaWrapper, b: viaRaw, ratio: paired } = await measurePair(ctx.plan, round(subject.wrapper), round(raw), PAIR_BLOCKS);
      const ratio = { value: paired, of: 'wrapper/raw' };
      rows.push(
        { case: this.name, measurement: `${subject.label} wrapper, ${mode}`, value: viaWrapper.median, unit: 'ops/s', ratio, rounds: viaWrapper.rounds },
        { case: this.name, measurement: `same ${command} ${request.fn} via raw ioredis, ${mode}`, value: viaRaw.median, unit: 'ops/s', rounds: viaRaw.rounds },
      );
    }
    return rows;
  },
};
