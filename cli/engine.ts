// `ff-script engine`: runs the background engine (scanners, completion listener, retention)
// against a server or a cluster until SIGINT or SIGTERM, then stops cleanly and exits 0.
import type { ParseArgsConfig } from 'node:util';
import { Cluster, Redis } from 'ioredis';
import { DEFAULT_INTERVALS_MS, Engine, SCANNER_NAMES, isLogLevel, type ScannerName, type Subscriber } from '../engine/index.js';
import { loadPartitionConfig } from '../operations/config.js';
import { FlowFabricClient } from '../runtime/client.js';
import { parseLaneId, type LaneId } from '../runtime/ids.js';
import type { PartitionConfig } from '../runtime/partition.js';
import { SERVER_HELP, serverOptions, UsageError, withClient } from './connection.js';

const options = {
  ...serverOptions,
  lanes: { type: 'string' },
  scanners: { type: 'string' },
  interval: { type: 'string', multiple: true },
  'retention-ms': { type: 'string' },
  'lane-retention': { type: 'string', multiple: true },
  'flow-partitions': { type: 'string' },
  'budget-partitions': { type: 'string' },
  'quota-partitions': { type: 'string' },
  concurrency: { type: 'string' },
  'no-listener': { type: 'boolean', default: false },
  'secret-hex': { type: 'string' },
  'log-level': { type: 'string', default: 'info' },
  'stats-every': { type: 'string' },
  'library-check-ms': { type: 'string' },
} satisfies NonNullable<ParseArgsConfig['options']>;

const usage = [
  'ff-script engine [options]   (runs until SIGINT or SIGTERM)',
  SERVER_HELP,
  '  --lanes A,B             lanes for the lane-scoped scanners (default: every lane in the partitions\' lane registries)',
  `  --scanners A,B          run only these scanners (default all: ${SCANNER_NAMES.join(', ')})`,
  '  --interval NAME=MS      a scanner\'s interval, repeatable; defaults:',
  ...SCANNER_NAMES.map((name) => `                            ${name}=${DEFAULT_INTERVALS_MS[name]}`),
  '  --retention-ms MS       keep terminal executions this long (default 86400000)',
  '  --lane-retention L=MS   retention of one lane, repeatable',
  '  --flow-partitions N     partition counts (default: the server\'s ff:config:partitions, else 256/32/32)',
  '  --budget-partitions N',
  '  --quota-partitions N',
  '  --concurrency N         partitions one scanner works on at once (default 4)',
  '  --no-listener           do not subscribe to ff:dag:completions (the dependency reconciler still runs)',
  '  --secret-hex HEX        waitpoint HMAC secret to install on partitions without one (default: random)',
  '  --log-level LEVEL       error, warn, info (default) or debug',
  '  --stats-every SEC       log every scanner\'s numbers this often',
  '  --library-check-ms MS   how often to check the library is loaded everywhere (default 5000; 0: never)',
].join('\n');

function count(text: unknown, name: string): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0 || String(text).trim() === '') throw new UsageError(`${name} must be a non-negative integer, got ${String(text)}`);
  return value;
}

function pairs(list: unknown, name: string): [string, number][] {
  const items = Array.isArray(list) ? list.map(String) : list === undefined ? [] : [String(list)];
  return items.map((item) => {
    const at = item.lastIndexOf('=');
    if (at <= 0) throw new UsageError(`${name} takes NAME=MS, got ${item}`);
    return [item.slice(0, at), count(item.slice(at + 1), name)!];
  });
}

function scannerName(text: string): ScannerName {
  if (!(SCANNER_NAMES as readonly string[]).includes(text)) throw new UsageError(`unknown scanner ${text}; known: ${SCANNER_NAMES.join(', ')}`);
  return text as ScannerName;
}

async function partitionsFor(values: Record<string, unknown>, client: FlowFabricClient): Promise<PartitionConfig> {
  const recorded = await loadPartitionConfig(client.transport);
  return {
    numFlowPartitions: count(values['flow-partitions'], '--flow-partitions') ?? recorded.numFlowPartitions,
    numBudgetPartitions: count(values['budget-partitions'], '--budget-partitions') ?? recorded.numBudgetPartitions,
    numQuotaPartitions: count(values['quota-partitions'], '--quota-partitions') ?? recorded.numQuotaPartitions,
  };
}

/** An ioredis subscriber connection for the completion listener of a `--glide` engine. */
function subscriberFor(url: string, cluster: boolean): Subscriber {
  const connection = cluster ? new Cluster([url]) : new Redis(url);
  return connection as unknown as Subscriber;
}

/** Resolves on the first SIGINT or SIGTERM. */
function signalled(): Promise<string> {
  return new Promise((resolve) => {
    const on = (signal: string) => () => resolve(signal);
    process.once('SIGINT', on('SIGINT'));
    process.once('SIGTERM', on('SIGTERM'));
  });
}

export const engineCommand = {
  summary: 'run the background engine (scanners, completion listener, retention) until SIGINT/SIGTERM',
  usage,
  options,
  async run(values: Record<string, unknown>): Promise<number> {
    const logLevel = String(values['log-level']);
    if (!isLogLevel(logLevel)) throw new UsageError(`--log-level must be error, warn, info or debug, got ${logLevel}`);
    const intervals = Object.fromEntries(pairs(values.interval, '--interval').map(([name, ms]) => [scannerName(name), ms]));
    const laneRetention = Object.fromEntries(pairs(values['lane-retention'], '--lane-retention').map(([lane, ms]) => [parseLaneId(lane), ms]));
    const lanes: LaneId[] | undefined = values.lanes === undefined ? undefined : String(values.lanes).split(',').filter(Boolean).map(parseLaneId);
    const scanners = values.scanners === undefined ? undefined : String(values.scanners).split(',').filter(Boolean).map(scannerName);
    const retentionMs = count(values['retention-ms'], '--retention-ms');
    const concurrency = count(values.concurrency, '--concurrency');
    const statsEvery = count(values['stats-every'], '--stats-every');
    const libraryCheck = count(values['library-check-ms'], '--library-check-ms');
    const stop = signalled();
    return withClient(values, async (probe) => {
      // autoLoad: a server restarted without persistence, or a FUNCTION FLUSH, gets the library back.
      const client = new FlowFabricClient(probe.transport, { partitions: await partitionsFor(values, probe), autoLoad: true });
      const engine = new Engine({
        client,
        logLevel,
        intervals,
        retention: { ...(retentionMs !== undefined ? { defaultMs: retentionMs } : {}), lanes: laneRetention },
        ...(lanes ? { lanes } : {}),
        ...(scanners ? { scanners } : {}),
        ...(concurrency !== undefined ? { concurrency } : {}),
        // GLIDE delivers pub/sub to a callback fixed at client creation, with no reconnect
        // event to run the reconciler for a gap: the listener's subscription stays on ioredis.
        completionListener: values['no-listener'] === true ? false : values.glide ? { subscriber: () => subscriberFor(String(values.url), Boolean(values.cluster)) } : true,
        ...(libraryCheck !== undefined ? { libraryCheckMs: libraryCheck === 0 ? false : libraryCheck } : {}),
        boot: values['secret-hex'] === undefined ? {} : { waitpointSecretHex: String(values['secret-hex']) },
      });
      await engine.start();
      const timer = statsEvery ? setInterval(() => {
        for (const s of engine.stats().scanners) engine.log.info(`stats ${s.name}`, { processed: s.processed, errors: s.errors, skipped: s.skipped, lagMs: s.lagMs, cycleMs: s.lastCycleMs });
      }, statsEvery * 1000) : undefined;
      const signal = await stop;
      if (timer) clearInterval(timer);
      engine.log.info(`${signal}: stopping`);
      await engine.stop();
      return 0;
    });
  },
};
