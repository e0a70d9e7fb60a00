// What the engine's indexes hold, per lane and partition: how many executions each lane
// index has (eligible, delayed, active, suspended, terminal, blocked by each cause) and the
// head of each (the lowest score: the next due, the oldest), plus the partition-wide
// timers (lease expiry, suspension and waitpoint timeouts, attempt timeouts, deadlines).
// Read-only and safe on a production server: lanes come from each partition's lane
// registry (`ff:idx:{fp:N}:lanes`, written at create) or from the caller, never from a scan
// of the keyspace; every command is a ZCARD, a one-element ZRANGE, an SMEMBERS of a
// registry or an EXISTS of a lane's indexes (where a lane has unfinished work: the Worker's
// discovery of its lanes' partitions).
import { PartitionKeys } from '../generated/keys.js';
import { sendCommand } from '../runtime/classify.js';
import { parseLaneId, type LaneId } from '../runtime/ids.js';
import type { PartitionConfig } from '../runtime/partition.js';
import { replyText } from '../runtime/reply.js';
import type { Transport } from '../runtime/transport.js';

/** A lane's indexes on one partition, by the suffix of their key (`ff:idx:{fp:N}:lane:<lane>:<index>`). */
export const LANE_INDEXES = [
  'eligible',
  'delayed',
  'active',
  'suspended',
  'terminal',
  'blocked:dependencies',
  'blocked:budget',
  'blocked:quota',
  'blocked:route',
  'blocked:operator',
] as const;
export type LaneIndex = (typeof LANE_INDEXES)[number];

/** The partition-wide timer indexes the engine's scanners walk. */
export const PARTITION_INDEXES = ['lease_expiry', 'suspension_timeout', 'pending_waitpoint_expiry', 'attempt_timeout', 'execution_deadline'] as const;
export type PartitionIndex = (typeof PARTITION_INDEXES)[number];

/** One sorted index: its size and its head (lowest score: the next due, or the oldest). */
export interface IndexHead {
  readonly count: number;
  readonly head?: { readonly executionId: string; readonly score: number };
}

export interface LanePartitionStats {
  readonly laneId: LaneId;
  readonly partition: number;
  readonly indexes: Readonly<Record<LaneIndex, IndexHead>>;
}

export interface LaneStats {
  readonly laneId: LaneId;
  /** Counts summed over the partitions the lane is on. */
  readonly totals: Readonly<Record<LaneIndex, number>>;
  /** One entry per partition where the lane has at least one indexed execution. */
  readonly partitions: readonly LanePartitionStats[];
}

export interface PartitionTimers {
  readonly partition: number;
  readonly indexes: Readonly<Record<PartitionIndex, IndexHead>>;
}

export interface LanesReport {
  readonly lanes: readonly LaneStats[];
  /** Partitions with at least one entry in a timer index. */
  readonly timers: readonly PartitionTimers[];
  /** Partitions read. */
  readonly partitionsRead: number;
}

export interface LaneStatsOptions {
  /** Lanes to report; default: every lane in the partitions' registries. */
  readonly lanes?: readonly string[];
  /** Partitions to read; default: all of them. */
  readonly partitions?: readonly number[];
  /** Commands in flight at once (default 64). */
  readonly concurrency?: number;
}

type Reader = Pick<Transport, 'command' | 'classify'>;
interface LaneReader {
  readonly transport: Reader;
  readonly partitions: PartitionConfig;
}

const texts = (reply: unknown): string[] => (Array.isArray(reply) ? reply.map((v) => replyText(v) ?? '') : []);

/** Runs the tasks with at most `limit` in flight, keeping their order. */
async function bounded<T>(tasks: readonly (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results = new Array<T>(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}

function partitionList(client: LaneReader, options: LaneStatsOptions): number[] {
  const count = client.partitions.numFlowPartitions;
  const list = options.partitions ?? Array.from({ length: count }, (_, i) => i);
  for (const p of list) {
    if (!Number.isInteger(p) || p < 0 || p >= count) throw new RangeError(`partition ${p} is outside 0..${count - 1}`);
  }
  return [...list];
}

/** The lanes each partition's registry names, by partition (partitions with none are left out). */
export async function listLanes(client: LaneReader, options: Pick<LaneStatsOptions, 'partitions' | 'concurrency'> = {}): Promise<Map<number, LaneId[]>> {
  const partitions = partitionList(client, options);
  const replies = await bounded(
    partitions.map((p) => () => sendCommand(client.transport, 'SMEMBERS', [PartitionKeys.forPartition(p).lanes()]).then(texts)),
    options.concurrency ?? 64,
  );
  const lanes = new Map<number, LaneId[]>();
  partitions.forEach((p, i) => {
    const names = replies[i]!;
    if (names.length > 0) lanes.set(p, names.sort().map(parseLaneId));
  });
  return lanes;
}

async function indexHead(transport: Reader, key: string): Promise<IndexHead> {
  const [count, head] = await Promise.all([sendCommand(transport, 'ZCARD', [key]), sendCommand(transport, 'ZRANGE', [key, 0, 0, 'WITHSCORES'])]);
  // RESP2 answers [member, score]; RESP3 [[member, score]].
  const [member, score] = texts(Array.isArray(head) && Array.isArray(head[0]) ? head[0] : head);
  const n = Number(count);
  return member === undefined || n === 0 ? { count: n } : { count: n, head: { executionId: member, score: Number(score) } };
}

const LANE_KEYS: Readonly<Record<LaneIndex, (keys: PartitionKeys, lane: LaneId) => string>> = {
  eligible: (keys, lane) => keys.laneEligible(lane),
  delayed: (keys, lane) => keys.laneDelayed(lane),
  active: (keys, lane) => keys.laneActive(lane),
  suspended: (keys, lane) => keys.laneSuspended(lane),
  terminal: (keys, lane) => keys.laneTerminal(lane),
  'blocked:dependencies': (keys, lane) => keys.laneBlockedDependencies(lane),
  'blocked:budget': (keys, lane) => keys.laneBlockedBudget(lane),
  'blocked:quota': (keys, lane) => keys.laneBlockedQuota(lane),
  'blocked:route': (keys, lane) => keys.laneBlockedRoute(lane),
  'blocked:operator': (keys, lane) => keys.laneBlockedOperator(lane),
};

/** The lane indexes that hold unfinished work (every one but `terminal`): where a lane still lives. */
export const LIVE_LANE_INDEXES: readonly LaneIndex[] = LANE_INDEXES.filter((index) => index !== 'terminal');

/**
 * Which of the partitions hold unfinished work of each lane: one EXISTS per lane and
 * partition naming the lane's live indexes (eligible, delayed, active, suspended, blocked),
 * which share the partition's hash tag, so it works on a cluster. Unlike the lane registry
 * (written at create, never pruned), it sees executions any producer created and forgets a
 * partition once the lane's work there is finished. Lanes with work nowhere map to [].
 */
export async function partitionsWithWork(
  client: LaneReader,
  lanes: readonly LaneId[],
  options: Pick<LaneStatsOptions, 'partitions' | 'concurrency'> = {},
): Promise<Map<LaneId, number[]>> {
  const partitions = partitionList(client, options);
  const pairs = partitions.flatMap((partition) => lanes.map((lane) => ({ partition, lane })));
  const counts = await bounded(
    pairs.map(({ partition, lane }) => () => {
      const keys = PartitionKeys.forPartition(partition);
      return sendCommand(client.transport, 'EXISTS', LIVE_LANE_INDEXES.map((index) => LANE_KEYS[index](keys, lane)));
    }),
    options.concurrency ?? 64,
  );
  const found = new Map<LaneId, number[]>(lanes.map((lane) => [lane, []]));
  pairs.forEach(({ partition, lane }, i) => {
    if (Number(counts[i]) > 0) found.get(lane)!.push(partition);
  });
  return found;
}

const TIMER_KEYS: Readonly<Record<PartitionIndex, (keys: PartitionKeys) => string>> = {
  lease_expiry: (keys) => keys.leaseExpiry(),
  suspension_timeout: (keys) => keys.suspensionTimeout(),
  pending_waitpoint_expiry: (keys) => keys.pendingWaitpointExpiry(),
  attempt_timeout: (keys) => keys.attemptTimeout(),
  execution_deadline: (keys) => keys.executionDeadline(),
};

async function readIndexes<I extends string>(transport: Reader, names: readonly I[], keyOf: (index: I) => string): Promise<Record<I, IndexHead>> {
  const heads = await Promise.all(names.map((index) => indexHead(transport, keyOf(index))));
  return Object.fromEntries(names.map((index, i) => [index, heads[i]!])) as Record<I, IndexHead>;
}

/**
 * Counts per lane and partition, with each index's head, and the partition-wide timers.
 * Lanes come from `options.lanes` when given (looked for on every partition read), else
 * from the registries; a lane with nothing indexed on a partition is left out there.
 */
export async function readLaneStats(client: LaneReader, options: LaneStatsOptions = {}): Promise<LanesReport> {
  const partitions = partitionList(client, options);
  const concurrency = options.concurrency ?? 64;
  const wanted = options.lanes?.map(parseLaneId);
  const registry = wanted ? undefined : await listLanes(client, { partitions, concurrency });
  const pairs = partitions.flatMap((p) => (wanted ?? registry?.get(p) ?? []).map((lane) => ({ partition: p, lane })));
  const [laneRows, timerRows] = await Promise.all([
    bounded(
      pairs.map(({ partition, lane }) => async (): Promise<LanePartitionStats> => {
        const keys = PartitionKeys.forPartition(partition);
        return { laneId: lane, partition, indexes: await readIndexes(client.transport, LANE_INDEXES, (index) => LANE_KEYS[index](keys, lane)) };
      }),
      Math.max(1, Math.floor(concurrency / (LANE_INDEXES.length * 2))),
    ),
    bounded(
      partitions.map((partition) => async (): Promise<PartitionTimers> => {
        const keys = PartitionKeys.forPartition(partition);
        return { partition, indexes: await readIndexes(client.transport, PARTITION_INDEXES, (index) => TIMER_KEYS[index](keys)) };
      }),
      Math.max(1, Math.floor(concurrency / (PARTITION_INDEXES.length * 2))),
    ),
  ]);
  const byLane = new Map<LaneId, LanePartitionStats[]>();
  for (const lane of wanted ?? []) byLane.set(lane, []);
  for (const row of laneRows) {
    const empty = LANE_INDEXES.every((index) => row.indexes[index].count === 0);
    if (!byLane.has(row.laneId)) byLane.set(row.laneId, []);
    if (!empty) byLane.get(row.laneId)!.push(row);
  }
  const lanes = [...byLane].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([laneId, rows]): LaneStats => {
    const totals = Object.fromEntries(LANE_INDEXES.map((index) => [index, rows.reduce((sum, row) => sum + row.indexes[index].count, 0)])) as Record<LaneIndex, number>;
    return { laneId, totals, partitions: rows };
  });
  const timers = timerRows.filter((row) => PARTITION_INDEXES.some((index) => row.indexes[index].count > 0));
  return { lanes, timers, partitionsRead: partitions.length };
}
