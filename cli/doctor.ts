// `ff-script doctor`: checks a server (or every primary of a cluster) for what the engine
// needs and explains each finding. A problem (exit 1) is what loses or refuses work: an old
// server, an evicting memory policy, a missing or foreign library, partition counts that
// disagree with the deployment's record, partitions without a waitpoint secret, uncovered
// cluster slots. A warning (exit 0) is advice: persistence off, the lease-history memory
// cost, no partition record. The only writes are two throwaway probe keys, deleted again.
import { randomUUID } from 'node:crypto';
import { FUNCTION_NAMES, LIBRARY_VERSION } from '../generated/library.js';
import { GlobalKeys, PartitionKeys } from '../generated/keys.js';
import { sendCommand } from '../runtime/classify.js';
import type { FlowFabricClient } from '../runtime/client.js';
import { loadedVersion, registeredFunctions } from '../runtime/loader.js';
import { readPartitionConfig, type PartitionConfig } from '../runtime/partition.js';
import { hashReply, replyText } from '../runtime/reply.js';
import type { Transport } from '../runtime/transport.js';
import { type CliCommand, SERVER_HELP, serverOptions, UsageError, withClient } from './connection.js';

export type Status = 'ok' | 'warn' | 'fail' | 'info';

export interface Finding {
  readonly check: string;
  readonly status: Status;
  readonly summary: string;
  /** What to do about it. */
  readonly advice?: string;
}

/** The stream-node-max-bytes we recommend: a lease-history stream's first node fits in it. */
const RECOMMENDED_NODE_BYTES = 512;

const infoFields = (text: string): Record<string, string> =>
  Object.fromEntries(text.split(/\r?\n/).flatMap((line) => (line.includes(':') && !line.startsWith('#') ? [[line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1)]] : [])));

const versionAtLeast = (version: string, major: number, minor: number): boolean => {
  const [a = 0, b = 0] = version.split('.').map(Number);
  return a > major || (a === major && b >= minor);
};

const name = (transport: Transport, i: number): string => transport.describe?.() ?? `primary ${i + 1}`;

async function configGet(transport: Transport, parameter: string): Promise<string | undefined> {
  return hashReply(await sendCommand(transport, 'CONFIG', ['GET', parameter]))[parameter];
}

/** Server name and version from INFO server: Valkey 7.2+ or Redis 7.0+. */
async function checkServer(primaries: readonly Transport[]): Promise<Finding> {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const [i, p] of primaries.entries()) {
    const info = infoFields(replyText(await sendCommand(p, 'INFO', ['server'])) ?? '');
    const valkey = info.valkey_version ?? (info.server_name === 'valkey' ? info.redis_version : undefined);
    const [product, version, major, minor] = valkey ? ['Valkey', valkey, 7, 2] : ['Redis', info.redis_version ?? '?', 7, 0];
    seen.add(`${product} ${version}`);
    if (!versionAtLeast(version, major as number, minor as number)) problems.push(`${name(p, i)} runs ${product} ${version}`);
  }
  const found = [...seen].join(', ');
  return problems.length === 0
    ? { check: 'server', status: 'ok', summary: `${found} (the library needs Redis 7.0+ or Valkey 7.2+: Functions)` }
    : { check: 'server', status: 'fail', summary: `${problems.join('; ')}: too old for the function library`, advice: 'upgrade to Redis 7.0+ or Valkey 7.2+' };
}

/** An evicting policy drops keys under memory pressure: executions would vanish without a trace. */
async function checkEviction(primaries: readonly Transport[]): Promise<Finding> {
  const bad: string[] = [];
  for (const [i, p] of primaries.entries()) {
    const policy = await configGet(p, 'maxmemory-policy');
    if (policy !== 'noeviction') bad.push(`${name(p, i)}: ${policy ?? '(unreadable)'}`);
  }
  return bad.length === 0
    ? { check: 'maxmemory', status: 'ok', summary: 'maxmemory-policy is noeviction: a full server refuses writes instead of dropping executions' }
    : {
        check: 'maxmemory',
        status: 'fail',
        summary: `maxmemory-policy is not noeviction (${bad.join('; ')}): under memory pressure the server deletes keys, and executions, leases or indexes disappear silently`,
        advice: 'CONFIG SET maxmemory-policy noeviction, and set it in the server configuration file',
      };
}

async function checkPersistence(primaries: readonly Transport[]): Promise<Finding> {
  const off: string[] = [];
  for (const [i, p] of primaries.entries()) {
    const [save, aof] = await Promise.all([configGet(p, 'save'), configGet(p, 'appendonly')]);
    if (!save && aof !== 'yes') off.push(name(p, i));
  }
  return off.length === 0
    ? { check: 'persistence', status: 'ok', summary: 'RDB snapshots or the append-only file are on' }
    : {
        check: 'persistence',
        status: 'warn',
        summary: `persistence is off on ${off.join(', ')}: a restart loses every execution and the function library`,
        advice: 'turn on appendonly (appendfsync everysec) or RDB snapshots; with it off, create clients with autoLoad so the library comes back',
      };
}

async function checkLibrary(primaries: readonly Transport[]): Promise<Finding> {
  const problems: string[] = [];
  for (const [i, p] of primaries.entries()) {
    const version = await loadedVersion(p);
    if (version === undefined) {
      problems.push(`${name(p, i)}: not loaded`);
      continue;
    }
    if (version !== LIBRARY_VERSION) problems.push(`${name(p, i)}: version ${version}`);
    const loaded = await registeredFunctions(p);
    const missing = FUNCTION_NAMES.filter((fn) => !loaded.has(fn));
    if (missing.length > 0) problems.push(`${name(p, i)}: ${missing.length} function(s) missing (${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', …' : ''})`);
  }
  const where = primaries.length === 1 ? 'the server' : `all ${primaries.length} primaries`;
  return problems.length === 0
    ? { check: 'library', status: 'ok', summary: `flowfabric ${LIBRARY_VERSION} with all ${FUNCTION_NAMES.length} functions on ${where}` }
    : { check: 'library', status: 'fail', summary: `this package needs flowfabric ${LIBRARY_VERSION}: ${problems.join('; ')}`, advice: 'ff-script load (add --cluster for every primary of a cluster)' };
}

/** The deployment's recorded partition counts, or undefined when nothing is recorded. */
async function recordedPartitions(client: FlowFabricClient): Promise<PartitionConfig | undefined> {
  const fields = hashReply(await sendCommand(client.transport, 'HGETALL', [GlobalKeys.configPartitions()]));
  return Object.keys(fields).length === 0 ? undefined : readPartitionConfig(fields);
}

function checkPartitions(recorded: PartitionConfig | undefined, ours: PartitionConfig): Finding {
  const text = (c: PartitionConfig) => `${c.numFlowPartitions} flow / ${c.numBudgetPartitions} budget / ${c.numQuotaPartitions} quota`;
  if (!recorded) {
    return {
      check: 'partitions',
      status: 'warn',
      summary: `no partition record (${GlobalKeys.configPartitions()}): every client must be configured with the same counts (here ${text(ours)})`,
      advice: `record them once: HSET ${GlobalKeys.configPartitions()} num_flow_partitions ${ours.numFlowPartitions} num_budget_partitions ${ours.numBudgetPartitions} num_quota_partitions ${ours.numQuotaPartitions}`,
    };
  }
  const same = recorded.numFlowPartitions === ours.numFlowPartitions && recorded.numBudgetPartitions === ours.numBudgetPartitions && recorded.numQuotaPartitions === ours.numQuotaPartitions;
  return same
    ? { check: 'partitions', status: 'ok', summary: `the recorded partition counts (${text(recorded)}) match this client's` }
    : {
        check: 'partitions',
        status: 'fail',
        summary: `the deployment records ${text(recorded)} but this client uses ${text(ours)}: ids and keys would land on other partitions`,
        advice: 'pass the recorded counts (--partitions here; ClientOptions.partitions or loadPartitionConfig in programs)',
      };
}

/** Runs the tasks with at most `limit` in flight. */
async function bounded<T>(items: readonly number[], limit: number, task: (item: number) => Promise<T>): Promise<T[]> {
  const results = new Array<T>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await task(items[i]!);
      }
    }),
  );
  return results;
}

/** Every flow partition needs a current kid with its secret, or suspensions there are refused. */
async function checkSecrets(client: FlowFabricClient, flowPartitions: number): Promise<Finding> {
  const partitions = Array.from({ length: flowPartitions }, (_, i) => i);
  const missing = await bounded(partitions, 64, async (p) => {
    const key = PartitionKeys.forPartition(p).waitpointHmacSecrets();
    const kid = replyText(await sendCommand(client.transport, 'HGET', [key, 'current_kid']));
    if (!kid) return true;
    return Number(await sendCommand(client.transport, 'HEXISTS', [key, `secret:${kid}`])) !== 1;
  });
  const bad = partitions.filter((p) => missing[p]);
  if (bad.length === 0) return { check: 'secrets', status: 'ok', summary: `a waitpoint secret is installed on all ${flowPartitions} flow partitions` };
  return {
    check: 'secrets',
    status: 'fail',
    summary: `no waitpoint secret on ${bad.length} of ${flowPartitions} flow partitions (${bad.slice(0, 8).join(', ')}${bad.length > 8 ? ', …' : ''}): suspensions there fail and signals cannot be verified`,
    advice: `ff-script rotate-secret --kid k1 --secret-hex <64 hex chars> --partitions ${flowPartitions}`,
  };
}

async function checkCluster(client: FlowFabricClient, cluster: boolean, primaries: readonly Transport[]): Promise<Finding> {
  if (!cluster) {
    const info = infoFields(replyText(await sendCommand(client.transport, 'INFO', ['cluster'])) ?? '');
    return info.cluster_enabled === '1'
      ? { check: 'cluster', status: 'fail', summary: 'this server is a cluster node, but the check ran as a single server', advice: 'run again with --cluster' }
      : { check: 'cluster', status: 'info', summary: 'a single server (not a cluster)' };
  }
  const problems: string[] = [];
  for (const [i, p] of primaries.entries()) {
    const info = infoFields(replyText(await sendCommand(p, 'CLUSTER', ['INFO'])) ?? '');
    if (info.cluster_state !== 'ok') problems.push(`${name(p, i)}: cluster_state ${info.cluster_state ?? '?'}`);
    if (info.cluster_slots_assigned !== '16384') problems.push(`${name(p, i)}: ${info.cluster_slots_assigned ?? '?'} of 16384 slots assigned`);
    if (info.cluster_slots_fail && info.cluster_slots_fail !== '0') problems.push(`${name(p, i)}: ${info.cluster_slots_fail} slot(s) failing`);
  }
  return problems.length === 0
    ? { check: 'cluster', status: 'ok', summary: `all 16384 slots are covered; ${primaries.length} primaries report cluster_state ok` }
    : { check: 'cluster', status: 'fail', summary: problems.join('; '), advice: 'assign every slot (redis-cli --cluster fix) and bring failed nodes back' };
}

/** The fields of a fresh execution's first lease-history entry (written at claim). */
const PROBE_ENTRY = ['event', 'acquired', 'lease_id', randomUUID(), 'lease_epoch', '1', 'attempt_id', randomUUID(), 'attempt_index', '0', 'worker_id', 'worker-1', 'ts', String(Date.now())];

/** XADD one lease-history-like entry to a throwaway key on `primary`, read MEMORY USAGE, delete it. */
async function probeStream(primary: Transport): Promise<number> {
  // On a cluster the key must hash to a slot this primary owns: try tags until one does.
  for (let attempt = 0; attempt < 500; attempt++) {
    const key = `ff:doctor:{probe-${attempt}}:${randomUUID()}`;
    try {
      await sendCommand(primary, 'XADD', [key, 'MAXLEN', '~', 1000, '*', ...PROBE_ENTRY]);
    } catch (error) {
      if ((error as { kind?: string }).kind === 'moved') continue;
      throw error;
    }
    try {
      return Number(await sendCommand(primary, 'MEMORY', ['USAGE', key]));
    } finally {
      await sendCommand(primary, 'DEL', [key]);
    }
  }
  throw new Error('found no probe key this primary owns');
}

/**
 * Redis preallocates min(4096, stream-node-max-bytes) for a stream's first node, so each
 * execution's lease history (one small entry per lease event) costs about 4.7 KB at the
 * default. Measured on the server, with the current setting and, by setting it for the
 * probe only and restoring it at once, with the recommended 512.
 */
async function checkStreamMemory(primary: Transport, label: string): Promise<Finding> {
  const setting = Number(await configGet(primary, 'stream-node-max-bytes'));
  const current = await probeStream(primary);
  if (setting > 0 && setting <= RECOMMENDED_NODE_BYTES) {
    return { check: 'memory', status: 'ok', summary: `a fresh execution's lease-history stream takes ${current} bytes (stream-node-max-bytes ${setting}, measured on ${label})` };
  }
  let recommended: number | undefined;
  try {
    await sendCommand(primary, 'CONFIG', ['SET', 'stream-node-max-bytes', RECOMMENDED_NODE_BYTES]);
    try {
      recommended = await probeStream(primary);
    } finally {
      await sendCommand(primary, 'CONFIG', ['SET', 'stream-node-max-bytes', setting]);
    }
  } catch {
    // CONFIG SET refused (a managed service, an ACL): report the current figure alone.
  }
  const comparison = recommended === undefined ? '' : `, ${recommended} bytes with ${RECOMMENDED_NODE_BYTES}`;
  return {
    check: 'memory',
    status: 'warn',
    summary: `a fresh execution's lease-history stream takes ${current} bytes with stream-node-max-bytes ${setting}${comparison} (measured on ${label} with MEMORY USAGE)`,
    advice: `CONFIG SET stream-node-max-bytes ${RECOMMENDED_NODE_BYTES}, and set it in the server configuration file (streams created before keep their size)`,
  };
}

export interface DiagnoseOptions {
  readonly cluster: boolean;
  /** Skip the memory measurement (its throwaway keys and the brief CONFIG SET). */
  readonly measure: boolean;
}

/** Runs every check; a check that cannot run is itself a finding. */
export async function diagnose(client: FlowFabricClient, options: DiagnoseOptions): Promise<Finding[]> {
  const primaries = await client.transport.primaries();
  const guarded = async (check: string, run: () => Promise<Finding>): Promise<Finding> => {
    try {
      return await run();
    } catch (error) {
      return { check, status: 'fail', summary: `could not check: ${error instanceof Error ? error.message : String(error)}` };
    }
  };
  const recorded = await recordedPartitions(client);
  const findings = [
    await guarded('server', () => checkServer(primaries)),
    await guarded('maxmemory', () => checkEviction(primaries)),
    await guarded('persistence', () => checkPersistence(primaries)),
    await guarded('library', () => checkLibrary(primaries)),
    checkPartitions(recorded, client.partitions),
    await guarded('secrets', () => checkSecrets(client, (recorded ?? client.partitions).numFlowPartitions)),
    await guarded('cluster', () => checkCluster(client, options.cluster, primaries)),
  ];
  if (options.measure) findings.push(await guarded('memory', () => checkStreamMemory(primaries[0]!, name(primaries[0]!, 0))));
  return findings;
}

const LABELS: Record<Status, string> = { ok: 'ok  ', warn: 'warn', fail: 'FAIL', info: 'info' };

export function formatFindings(target: string, findings: readonly Finding[]): string {
  const width = Math.max(...findings.map((f) => f.check.length));
  const lines = [`ff-script doctor: ${target}`];
  for (const f of findings) {
    lines.push(`  ${LABELS[f.status]}  ${f.check.padEnd(width)}  ${f.summary}`);
    if (f.advice && f.status !== 'ok') lines.push(`  ${' '.repeat(4)}  ${' '.repeat(width)}  → ${f.advice}`);
  }
  const problems = findings.filter((f) => f.status === 'fail').length;
  const warnings = findings.filter((f) => f.status === 'warn').length;
  lines.push(problems === 0 ? `no problems${warnings ? `, ${warnings} warning(s)` : ''}` : `${problems} problem(s)${warnings ? `, ${warnings} warning(s)` : ''}`);
  return lines.join('\n');
}

export const doctorCommand: CliCommand = {
  summary: 'check a server or cluster for what the engine needs, and explain each finding (exit 1 on a problem)',
  usage: [
    'ff-script doctor [--url URL] [--cluster] [--partitions N] [--no-measure] [--json]',
    SERVER_HELP,
    '  --partitions N   flow partitions this deployment uses (default 256; budget and quota 32)',
    '  --no-measure     skip the memory measurement (it writes two throwaway keys, deleted at once,',
    '                   and sets stream-node-max-bytes to 512 for the second probe only)',
    '  --json           print the findings as JSON',
    '',
    'Checks: server version (Redis 7.0+ / Valkey 7.2+), maxmemory-policy noeviction, persistence,',
    'the library (version and functions, every primary), the partition record, waitpoint secrets on',
    'every flow partition, cluster slot coverage, and the lease-history memory cost.',
  ].join('\n'),
  options: { ...serverOptions, partitions: { type: 'string', default: '256' }, 'no-measure': { type: 'boolean', default: false }, json: { type: 'boolean', default: false } },
  async run(values) {
    const flow = Number(values.partitions);
    if (!Number.isSafeInteger(flow) || flow < 1 || flow > 65535) throw new UsageError('--partitions must be an integer in 1..65535');
    const findings = await withClient(values, (client) => diagnose(client, { cluster: Boolean(values.cluster), measure: !values['no-measure'] }), {
      partitions: { numFlowPartitions: flow, numBudgetPartitions: 32, numQuotaPartitions: 32 },
    });
    console.log(values.json ? JSON.stringify({ target: String(values.url), findings }, null, 2) : formatFindings(String(values.url), findings));
    return findings.some((f) => f.status === 'fail') ? 1 : 0;
  },
};
