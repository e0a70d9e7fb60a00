// `ff-script lanes`: per lane and partition, how many executions each engine index holds
// and its head (the next due or the oldest), and the partition-wide timers. Read-only: the
// lanes come from each partition's lane registry or from --lane, never from a keyspace scan.
import { hashTag } from '../runtime/partition.js';
import { LANE_INDEXES, PARTITION_INDEXES, readLaneStats, type IndexHead, type LanesReport } from '../operations/lanes.js';
import { type CliCommand, SERVER_HELP, serverOptions, UsageError, withClient } from './connection.js';
import { when } from './inspect.js';

/** Scores that are times (due, expiry, end); the eligible index's score is priority then age. */
const timed = (index: string): boolean => index !== 'eligible';

function head(index: string, h: IndexHead, now: number): string {
  if (!h.head) return `${index} ${h.count}`;
  return `${index} ${h.count} (head ${h.head.executionId}${timed(index) ? `, ${when(h.head.score, now)}` : ''})`;
}

export function formatLanes(report: LanesReport, now = Date.now()): string {
  const lines: string[] = [];
  if (report.lanes.length === 0) lines.push(`no lanes in the registries of the ${report.partitionsRead} partition(s) read (give lanes with --lane)`);
  for (const lane of report.lanes) {
    const totals = LANE_INDEXES.filter((i) => lane.totals[i] > 0).map((i) => `${i} ${lane.totals[i]}`);
    lines.push(`lane ${lane.laneId}: ${totals.length > 0 ? totals.join(' · ') : 'empty'}`);
    for (const row of lane.partitions) {
      lines.push(`  ${hashTag('fp', row.partition)}`);
      for (const index of LANE_INDEXES) if (row.indexes[index].count > 0) lines.push(`    ${head(index, row.indexes[index], now)}`);
    }
  }
  lines.push('', `timers (${report.timers.length} of ${report.partitionsRead} partition(s) with entries)`);
  for (const row of report.timers) {
    lines.push(`  ${hashTag('fp', row.partition)}`);
    for (const index of PARTITION_INDEXES) if (row.indexes[index].count > 0) lines.push(`    ${head(index, row.indexes[index], now)}`);
  }
  return lines.join('\n');
}

const list = (value: unknown): string[] => (Array.isArray(value) ? value.map(String) : value === undefined ? [] : [String(value)]);

export const lanesCommand: CliCommand = {
  summary: 'per lane and partition: executions in each engine index and the next due; partition timers (read-only)',
  usage: [
    'ff-script lanes [--lane LANE]... [--partition N]... [--partitions N] [--json] [--url URL] [--cluster]',
    '  --lane LANE     report this lane (repeatable); default: every lane in the partitions\' registries',
    '  --partition N   read only this flow partition (repeatable); default: all',
    '  --partitions N  flow partitions of the deployment (default 256)',
    '  --json          print the typed read (readLaneStats) as JSON',
    SERVER_HELP,
  ].join('\n'),
  options: {
    ...serverOptions,
    lane: { type: 'string', multiple: true },
    partition: { type: 'string', multiple: true },
    partitions: { type: 'string', default: '256' },
    json: { type: 'boolean', default: false },
  },
  async run(values) {
    const count = Number(values.partitions);
    if (!Number.isSafeInteger(count) || count < 1 || count > 65535) throw new UsageError('--partitions must be an integer in 1..65535');
    const partitions = list(values.partition).map(Number);
    if (partitions.some((p) => !Number.isSafeInteger(p) || p < 0 || p >= count)) throw new UsageError(`--partition must be an integer in 0..${count - 1}`);
    const lanes = list(values.lane);
    const report = await withClient(
      values,
      (client) => readLaneStats(client, { ...(lanes.length > 0 ? { lanes } : {}), ...(partitions.length > 0 ? { partitions } : {}) }),
      { partitions: { numFlowPartitions: count, numBudgetPartitions: 32, numQuotaPartitions: 32 } },
    );
    console.log(values.json ? JSON.stringify(report, null, 2) : formatLanes(report));
    return 0;
  },
};
