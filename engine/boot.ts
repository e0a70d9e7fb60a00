// What must be on the server before anything scans (engine.md §1.2, §7): the library on
// every primary, the partition-count record that workers read, and a waitpoint HMAC key
// ring on every flow partition that has none.
import { GlobalKeys } from '../generated/keys.js';
import { ensureWaitpointSecrets } from '../operations/waitpoints.js';
import { sendCommand } from '../runtime/classify.js';
import type { FlowFabricClient } from '../runtime/client.js';
import { FlowFabricError } from '../runtime/errors.js';
import { hashReply, replyText } from '../runtime/reply.js';
import type { Logger } from './log.js';

export interface BootOptions {
  /** Load the library where missing or of another version (default true). */
  readonly loadLibrary?: boolean;
  /** Write / check `ff:config:partitions` against the client's partition counts (default true). */
  readonly partitionRecord?: boolean;
  /** Give partitions without a key ring one (default true). */
  readonly waitpointSecrets?: boolean;
  /** The secret to install there (hex); default a random one per boot (a stored secret always wins). */
  readonly waitpointSecretHex?: string;
}

/** The server's partition-count record says other counts than this engine was given. */
export class PartitionMismatchError extends FlowFabricError {
  override readonly name = 'PartitionMismatchError';
  readonly errorClass = 'terminal' as const;
  constructor(field: string, stored: string, configured: number) {
    super(`ff:config:partitions ${field} is ${stored} on the server but the engine was given ${configured}; start the engine with the deployment's counts`);
  }
}

const FIELDS = [
  ['num_flow_partitions', 'numFlowPartitions'],
  ['num_budget_partitions', 'numBudgetPartitions'],
  ['num_quota_partitions', 'numQuotaPartitions'],
] as const;

export async function boot(client: FlowFabricClient, options: BootOptions, log: Logger): Promise<void> {
  const pong = replyText(await sendCommand(client.transport, 'PING', []));
  if (pong !== 'PONG') throw new Error(`PING answered ${String(pong)}`);
  if (options.loadLibrary !== false) {
    const statuses = await client.ensureLibrary();
    statuses.forEach((s, i) => log.info(`library on primary ${i + 1}: ${s.loaded ? `loaded ${s.after}` : `already ${s.after}`}`));
  }
  if (options.partitionRecord !== false) {
    // First writer wins field by field (HSETNX); then every field must agree with ours.
    const key = GlobalKeys.configPartitions();
    for (const [field, name] of FIELDS) await sendCommand(client.transport, 'HSETNX', [key, field, client.partitions[name]]);
    const stored = hashReply(await sendCommand(client.transport, 'HGETALL', [key]));
    for (const [field, name] of FIELDS) {
      if (stored[field] !== String(client.partitions[name])) throw new PartitionMismatchError(field, stored[field] ?? '(missing)', client.partitions[name]);
    }
  }
  if (options.waitpointSecrets !== false) {
    const report = await ensureWaitpointSecrets(client, options.waitpointSecretHex ? { secretHex: options.waitpointSecretHex } : {});
    if (report.installed.length > 0) log.info(`waitpoint key ring installed on ${report.installed.length} partition(s)`);
    if (report.repaired.length > 0) log.warn(`waitpoint key ring repaired on ${report.repaired.length} partition(s)`);
  }
}
