// Case 10: one lane over a cluster. On a throwaway 3-primary cluster (tools/local-cluster.ts),
// N executions of ONE lane are created with spreadLanePartitioner(256) (every flow
// partition), and the project's Worker on that lane (worker/, fast path, concurrency 16,
// told the lane's partitions by the partitioner) claims and completes them all. Reported: how many
// executions each primary holds (read from each primary's own indexes), how many each
// completed, and whether every execution ended terminal. With the default partitioner
// (the reference's) all N would sit on the one primary that owns crc16(lane)'s slot.
import { randomUUID } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { buildCreateExecution, parseCreateExecution } from '../../generated/execution.js';
import { PartitionKeys } from '../../generated/keys.js';
import { call, FlowFabricClient } from '../../runtime/client.js';
import { executionPartition, type ExecutionId, type LaneId } from '../../runtime/ids.js';
import { clusterSlot, hashTag, laneHashPartitioner, soloExecutionId, spreadLanePartitioner, type SoloPartitioner } from '../../runtime/partition.js';
import { startCluster } from '../../tools/local-cluster.js';
import { benchLane, messageOf, type Case, type Context, type Row } from '../context.js';
import { inFlight } from '../measure.js';
import { Worker } from '../../worker/index.js';

const WORKERS = 16;

/** Per primary (by port): the sum of ZCARD of the lane's index on every partition that primary owns. */
async function perPrimary(nodes: readonly Redis[], ports: readonly number[], keyOf: (partition: number) => string, partitions: readonly number[]): Promise<Map<number, number>> {
  const counts = new Map<number, number>();
  for (const [i, node] of nodes.entries()) {
    let sum = 0;
    for (const partition of partitions) {
      try {
        sum += await node.zcard(keyOf(partition));
      } catch (error) {
        if (!/MOVED/.test(messageOf(error))) throw error; // another primary owns this partition's slot
      }
    }
    counts.set(ports[i]!, sum);
  }
  return counts;
}

/** Creates the ids, one pipeline per partition (a cluster pipeline must stay on one slot). */
async function createAll(client: FlowFabricClient, ids: readonly ExecutionId[], laneId: LaneId): Promise<void> {
  const byPartition = new Map<number, ExecutionId[]>();
  for (const id of ids) byPartition.set(executionPartition(id), [...(byPartition.get(executionPartition(id)) ?? []), id]);
  const groups = [...byPartition.values()];
  await inFlight(groups.length, 8, async (g) => {
    const calls = groups[g]!.map((executionId) => call(buildCreateExecution({ executionId, laneId, namespace: 'bench', executionKind: 'bench' }, client.partitions), parseCreateExecution));
    const failed = (await client.batch(calls)).find((s) => !s.ok);
    if (failed && !failed.ok) throw failed.error;
  });
}

/** The lane's Worker until it has completed `n` executions (or `limitMs` passed); returns how many it completed. */
async function runWorker(client: FlowFabricClient, laneId: LaneId, partitioner: SoloPartitioner, n: number, limitMs: number): Promise<number> {
  let completed = 0;
  let finish: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const worker = new Worker({
    client,
    lanes: laneId,
    handler: async () => undefined,
    concurrency: WORKERS,
    claimPath: 'fast',
    partitions: partitioner.partitionsOf(laneId, client.partitions),
  });
  worker.on('completed', () => {
    if (++completed === n) finish();
  });
  worker.on('error', () => undefined); // counted in worker.counters
  const timer = setTimeout(finish, limitMs);
  try {
    await worker.start();
    await done;
    return completed;
  } finally {
    clearTimeout(timer);
    await worker.close();
  }
}

const spreadText = (counts: Map<number, number>, n: number) => {
  const mean = n / counts.size;
  const worst = Math.max(...[...counts.values()].map((c) => Math.abs(c - mean) / mean));
  return { text: [...counts.values()].map((c) => c.toLocaleString('en-US')).join(' / '), worst };
};

export const scaleOut: Case = {
  name: '10 scale-out',
  async run(ctx: Context): Promise<Row[]> {
    const n = ctx.quick ? 2_000 : 10_000;
    const cluster = await startCluster(3);
    const connection = new Cluster([...cluster.seeds], { redisOptions: { maxRetriesPerRequest: 1 } });
    const nodes = cluster.nodes.map((node) => new Redis(node.url, { maxRetriesPerRequest: 1 }));
    const ports = cluster.nodes.map((node) => node.port);
    try {
      const client = FlowFabricClient.fromIoredis(connection);
      await client.ensureLibrary();
      const laneId = benchLane(ctx, 'spread');
      const partitioner = spreadLanePartitioner(client.partitions.numFlowPartitions);
      const partitions = partitioner.partitionsOf(laneId, client.partitions);
      const ids = Array.from({ length: n }, () => soloExecutionId(laneId, client.partitions, randomUUID(), partitioner));
      await createAll(client, ids, laneId);
      const created = await perPrimary(nodes, ports, (p) => PartitionKeys.forPartition(p).laneEligible(laneId), partitions);

      const started = performance.now();
      const totalDone = await runWorker(client, laneId, partitioner, n, 300_000);
      const seconds = (performance.now() - started) / 1000;
      const completed = await perPrimary(nodes, ports, (p) => PartitionKeys.forPartition(p).laneTerminal(laneId), partitions);
      const left = await perPrimary(nodes, ports, (p) => PartitionKeys.forPartition(p).laneEligible(laneId), partitions);
      const terminal = [...completed.values()].reduce((a, b) => a + b, 0);
      const remaining = [...left.values()].reduce((a, b) => a + b, 0);

      // What the default partitioner would have done with the same lane: one primary's slot.
      const defaultSlot = clusterSlot(hashTag('fp', laneHashPartitioner.partitionOf(laneId, randomUUID(), client.partitions)));
      const c = spreadText(created, n);
      const k = spreadText(completed, terminal);
      return [
        {
          case: this.name,
          measurement: `one lane's ${n.toLocaleString('en-US')} executions per primary, spreadLanePartitioner(256)`,
          value: c.worst * 100,
          unit: '% max deviation',
          note: `created per primary (ports ${ports.join(', ')}): ${c.text}; target ±10%: ${c.worst <= 0.1 ? 'met' : 'NOT met'}. The default partitioner puts all ${n.toLocaleString('en-US')} on the primary owning slot ${defaultSlot}`,
        },
        {
          case: this.name,
          measurement: `claimed and completed by the lane's Worker (fast path, concurrency ${WORKERS})`,
          value: terminal,
          unit: 'executions',
          note: `terminal per primary: ${k.text}; ${remaining} left eligible; the Worker reported ${totalDone} completed; ${(totalDone / seconds).toFixed(0)} jobs/s in ${seconds.toFixed(1)} s (its partitions: the ${partitions.length} the partitioner names; one process, local cluster on the same 2 cores)`,
        },
      ];
    } finally {
      connection.disconnect();
      for (const node of nodes) node.disconnect();
      await cluster.stop();
    }
  },
};
