// Reads the deployment's partition counts from the server, where ff-server records them.
import { sendCommand } from '../runtime/classify.js';
import { GlobalKeys } from '../generated/keys.js';
import { readPartitionConfig, type PartitionConfig } from '../runtime/partition.js';
import type { Transport } from '../runtime/transport.js';

/** HGETALL of the global partition-count hash; defaults for absent fields (as workers do). */
export async function loadPartitionConfig(transport: Transport): Promise<PartitionConfig> {
  const flat = (await sendCommand(transport, 'HGETALL', [GlobalKeys.configPartitions()])) as unknown;
  const fields: Record<string, string> = {};
  if (Array.isArray(flat)) {
    for (let i = 0; i + 1 < flat.length; i += 2) fields[String(flat[i])] = String(flat[i + 1]);
  } else if (flat && typeof flat === 'object') {
    for (const [key, value] of Object.entries(flat)) fields[key] = String(value);
  }
  return readPartitionConfig(fields);
}
