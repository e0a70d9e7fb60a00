// Dedicated throwaway servers for the cases that need a server of their own: memory
// (used_memory deltas mean nothing on a server others write to), growth (millions of keys,
// freed afterwards) and server settings (stream-node-max-bytes). Never reconfigures a
// shared server: every setting is a start-up argument of a server this process started.
import { Redis } from 'ioredis';
import { FlowFabricClient } from '../runtime/client.js';
import { startServer, type RunningServer } from '../tools/local-server.js';

export interface Dedicated {
  readonly label: string;
  readonly server: RunningServer;
  readonly redis: Redis;
  readonly client: FlowFabricClient;
  stop(): Promise<void>;
}

/** The setting `ff-script doctor` recommends: a stream's first node is not preallocated at 4 KB. */
export const RECOMMENDED_SETTINGS: readonly string[] = ['--stream-node-max-bytes', '512'];

/** Starts a server with these start-up arguments, loads the library, and hands back a client. */
export async function dedicatedServer(label: string, args: readonly string[] = []): Promise<Dedicated> {
  const server = await startServer(args);
  const redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
  const client = FlowFabricClient.fromIoredis(redis);
  try {
    await client.ensureLibrary();
  } catch (error) {
    redis.disconnect();
    await server.stop();
    throw error;
  }
  return {
    label,
    server,
    redis,
    client,
    async stop() {
      redis.disconnect();
      await server.stop();
    },
  };
}

/** Starts several at once and stops them all afterwards, whatever happens in between. */
export async function withServers<T>(specs: readonly { label: string; args?: readonly string[] }[], body: (servers: Dedicated[]) => Promise<T>): Promise<T> {
  const servers: Dedicated[] = [];
  try {
    for (const spec of specs) servers.push(await dedicatedServer(spec.label, spec.args));
    return await body(servers);
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }
}

/** Numeric fields of one INFO section. */
export async function infoNumbers(redis: Redis, section: string): Promise<Record<string, number>> {
  const fields: Record<string, number> = {};
  for (const line of (await redis.info(section)).split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) {
      const value = Number(line.slice(colon + 1));
      if (!Number.isNaN(value)) fields[line.slice(0, colon)] = value;
    }
  }
  return fields;
}

/** Bytes the server's allocator holds for data and bookkeeping (INFO memory used_memory). */
export async function usedMemory(redis: Redis): Promise<number> {
  const used = (await infoNumbers(redis, 'memory')).used_memory;
  if (used === undefined) throw new Error('INFO memory has no used_memory');
  return used;
}

/** Commands the server has processed so far (INFO stats total_commands_processed). */
export async function commandsProcessed(redis: Redis): Promise<number> {
  return (await infoNumbers(redis, 'stats')).total_commands_processed ?? Number.NaN;
}

/** Sum of MEMORY USAGE (all samples) over the keys matching a pattern, and each key's share. */
export async function keyBytes(redis: Redis, pattern: string): Promise<{ total: number; keys: Record<string, number> }> {
  const keys: Record<string, number> = {};
  let cursor = '0';
  let total = 0;
  let pages = 0;
  do {
    const [next, found] = (await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 10_000)) as [string, string[]];
    cursor = next;
    for (const key of found) {
      const bytes = Number(await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));
      keys[key] = bytes;
      total += bytes;
    }
    pages += 1;
  } while (cursor !== '0' && pages < 10_000);
  return { total, keys };
}
