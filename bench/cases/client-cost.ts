// Case 3: the client-side cost of one call with no server: building KEYS/ARGV (argument
// checks, key strings) and parsing a canned reply. Measures ff_suspend_execution (17 keys,
// 17 args) when its wrapper is generated, else ff_claim_execution (14 keys, 12 args).
import { randomUUID } from 'node:crypto';
import { buildClaimExecution, parseClaimExecution } from '../../generated/execution.js';
import { FlowFabricClient } from '../../runtime/client.js';
import { newAttemptId, newLeaseId, parseLaneId } from '../../runtime/ids.js';
import type { PartitionConfig } from '../../runtime/partition.js';
import type { BatchReply, FcallRequest, Transport } from '../../runtime/transport.js';
import { messageOf, optionalExport, randomExecutionId, type Case, type Context, type Row } from '../context.js';
import { benchWorker, suspendArgs } from '../engine.js';
import { measure, timed } from '../measure.js';

/** Answers every FCALL with the same reply, without I/O. */
class CannedTransport implements Transport {
  constructor(private readonly reply: unknown) {}
  fcall(): Promise<unknown> {
    return Promise.resolve(this.reply);
  }
  fcallBatch(requests: readonly FcallRequest[]): Promise<BatchReply[]> {
    return Promise.resolve(requests.map(() => ({ ok: true, reply: this.reply })));
  }
  command(): Promise<unknown> {
    return Promise.resolve('OK');
  }
  primaries(): Promise<Transport[]> {
    return Promise.resolve([this]);
  }
}

interface Subject {
  readonly label: string;
  readonly build: () => FcallRequest;
  readonly parse: (reply: unknown) => unknown;
  readonly reply: unknown;
}

type Build = (args: Record<string, unknown>, partitions: PartitionConfig) => FcallRequest;
type Parse = (reply: unknown) => unknown;

function subjects(ctx: Context): { subject: Subject; note: string } {
  const executionId = randomExecutionId();
  const laneId = parseLaneId('bench');
  const worker = benchWorker(0);
  const partitions = ctx.client.partitions;
  const buildSuspend = optionalExport<Build>(ctx, 'buildSuspendExecution');
  const parseSuspend = optionalExport<Parse>(ctx, 'parseSuspendExecution');
  if (buildSuspend && parseSuspend) {
    const ids = { suspensionId: randomUUID(), waitpointId: randomUUID() };
    const lease = { leaseId: newLeaseId(), leaseEpoch: 1, attemptId: newAttemptId(), attemptIndex: 0 };
    const args = suspendArgs(executionId, laneId, worker, lease, ids);
    const token = `k1:${'ab'.repeat(20)}`;
    return {
      subject: {
        label: 'buildSuspendExecution + parseSuspendExecution',
        build: () => buildSuspend(args, partitions),
        parse: parseSuspend,
        reply: [1, 'OK', ids.suspensionId, ids.waitpointId, `wpk:${ids.waitpointId}`, token],
      },
      note: 'ff_suspend_execution',
    };
  }
  const args = { executionId, laneId, ...worker, leaseId: newLeaseId(), attemptId: newAttemptId(), leaseTtlMs: 30_000 };
  return {
    subject: {
      label: 'buildClaimExecution + parseClaimExecution',
      build: () => buildClaimExecution(args, partitions),
      parse: parseClaimExecution,
      reply: [1, 'OK', args.leaseId, '1', '1700000000000', args.attemptId, '0', 'initial'],
    },
    note: 'ff_claim_execution (suspendExecution not generated yet)',
  };
}

export const clientCost: Case = {
  name: '3 client cost',
  async run(ctx: Context): Promise<Row[]> {
    const { subject, note } = subjects(ctx);
    const calls = ctx.quick ? 20_000 : 200_000;
    let request: FcallRequest;
    try {
      request = subject.build();
      subject.parse(subject.reply);
    } catch (error) {
      return [{ case: this.name, measurement: subject.label, value: undefined, unit: 'calls/s', note: `failed: ${messageOf(error)}` }];
    }
    const shape = `${note}: ${request.keys.length} keys, ${request.argv.length} args; no server, one core`;

    let sink = 0; // keeps the built requests observably used
    const direct = await measure(ctx.plan, () => {
      const started = performance.now();
      for (let i = 0; i < calls; i++) {
        sink += subject.build().keys.length;
        subject.parse(subject.reply);
      }
      return { ops: calls, ms: performance.now() - started };
    });
    if (sink === 0) throw new Error('no request was built');
    // The same through FlowFabricClient.call, as a wrapper does it, over a transport that answers at once.
    const client = new FlowFabricClient(new CannedTransport(subject.reply));
    const viaClient = await measure(ctx.plan, async () => ({
      ops: calls,
      ms: await timed(async () => {
        for (let i = 0; i < calls; i++) await client.call(subject.build(), subject.parse);
      }),
    }));
    return [
      { case: this.name, measurement: subject.label, value: direct.median, unit: 'calls/s', note: shape, rounds: direct.rounds },
      { case: this.name, measurement: 'same through FlowFabricClient.call, in-memory transport', value: viaClient.median, unit: 'calls/s', rounds: viaClient.rounds },
    ];
  },
};
