// The CLI's connection to a server or a cluster: options shared by every command that talks
// to one, and a client whose connection errors are caught here (ioredis prints an
// "Unhandled error event" for each one nobody listens to) and surface as the command's own
// typed error, naming the server and saying whether anything was sent.
import type { ParseArgsConfig } from 'node:util';
import { Cluster, Redis } from 'ioredis';
import { connectionError } from '../runtime/classify.js';
import { FlowFabricClient, type ClientOptions } from '../runtime/client.js';
import { IoredisTransport } from '../runtime/ioredis.js';

export const serverOptions = {
  url: { type: 'string', default: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' },
  cluster: { type: 'boolean', default: false },
  glide: { type: 'boolean', default: false },
} as const;

export const SERVER_HELP =
  '  --url URL     server to use (default $REDIS_URL or redis://127.0.0.1:6379)\n  --cluster     treat --url as a cluster seed and act on every primary\n  --glide       connect with Valkey GLIDE (@valkey/valkey-glide, installed separately) instead of ioredis';

/** One `ff-script` command: what `--help` prints, its options, and what it does (exit code). */
export interface CliCommand {
  readonly summary: string;
  readonly usage: string;
  readonly options: NonNullable<ParseArgsConfig['options']>;
  /** Set by commands that take positional arguments (e.g. an execution id). */
  readonly positionals?: boolean;
  run(values: Record<string, string | boolean | string[] | undefined>, positionals: readonly string[]): Promise<number>;
}

/** A mistake in the command line: reported with the command's usage, exit code 2. */
export class UsageError extends Error {}

/** Opens a client for the command, runs `use`, and always disconnects. */
export async function withClient<T>(values: Record<string, unknown>, use: (client: FlowFabricClient) => Promise<T>, options?: ClientOptions): Promise<T> {
  const url = String(values.url);
  if (values.glide) return withGlideClient(url, Boolean(values.cluster), use, options);
  const connection = values.cluster
    ? new Cluster([url], { redisOptions: { maxRetriesPerRequest: 1 }, clusterRetryStrategy: (times) => (times > 2 ? null : 100) })
    : new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
  // Each failure also rejects the command that met it, which says it better.
  let lastError: unknown;
  connection.on('error', (error: unknown) => (lastError = error));
  if (connection instanceof Cluster) connection.on('node error', () => undefined);
  const transport = new IoredisTransport(connection);
  const client = new FlowFabricClient(transport, options);
  try {
    if (connection instanceof Redis) {
      // Nothing is sent before the connection is up, whatever ioredis says on the way.
      await connection.connect().catch((error: unknown) => {
        const cause = lastError ?? error;
        throw connectionError('io_error', cause instanceof Error ? cause.message : String(cause), true, transport.where(), cause);
      });
    }
    return await use(client);
  } finally {
    connection.disconnect();
  }
}

/** `--glide` without the optional peer dependency installed: exit 1 with what to do. */
export class GlideMissingError extends Error {
  constructor(cause: unknown) {
    super('--glide needs the Valkey GLIDE client, which is not installed: npm install @valkey/valkey-glide (or leave out --glide to use ioredis)', { cause });
    this.name = 'GlideMissingError';
  }
}

/**
 * The same over Valkey GLIDE (ff-script/glide's fromGlide). GLIDE is an optional peer
 * dependency, so it is imported only here, when asked for.
 */
async function withGlideClient<T>(url: string, cluster: boolean, use: (client: FlowFabricClient) => Promise<T>, options?: ClientOptions): Promise<T> {
  let glide: typeof import('@valkey/valkey-glide');
  let adapter: typeof import('../runtime/glide.js');
  try {
    [glide, adapter] = await Promise.all([import('@valkey/valkey-glide'), import('../runtime/glide.js')]);
  } catch (error) {
    throw new GlideMissingError(error);
  }
  const parsed = new URL(url);
  const where = `${parsed.hostname}:${parsed.port || '6379'}`;
  const config = {
    addresses: [{ host: parsed.hostname, port: Number(parsed.port || 6379) }],
    requestTimeout: 10_000,
    ...(parsed.protocol === 'rediss:' ? { useTLS: true } : {}),
    ...(parsed.password ? { credentials: { password: decodeURIComponent(parsed.password), ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}) } } : {}),
  };
  let connection: import('@valkey/valkey-glide').GlideClient | import('@valkey/valkey-glide').GlideClusterClient;
  try {
    connection = cluster ? await glide.GlideClusterClient.createClient(config) : await glide.GlideClient.createClient(config);
  } catch (error) {
    throw connectionError('io_error', error instanceof Error ? error.message : String(error), true, where, error);
  }
  try {
    return await use(adapter.fromGlide(connection, options));
  } finally {
    connection.close();
  }
}
