// A private server for engine tests: the engine scans every partition of the server, so it
// must not share one with tests that leave leases, suspensions and budgets in chosen states.
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { Engine, type EngineOptions } from '../../engine/index.js';
import { FlowFabricClient, type ClientOptions } from '../../runtime/client.js';
import { startServer, type RunningServer } from '../../tools/local-server.js';
import { ENGINE_TEST_PARTITIONS } from './engine-partitions.js';

export { ENGINE_TEST_PARTITIONS };

export interface EngineServer {
  readonly server: () => RunningServer;
  readonly redis: () => Redis;
  readonly client: () => FlowFabricClient;
  /** Another connection and client to the same server (a second engine process, a worker). */
  connect(options?: ClientOptions): { redis: Redis; client: FlowFabricClient };
  /** An engine on its own connection, stopped when the test ends; boot and listener per options. */
  engine(options?: Partial<EngineOptions>): Engine;
}

export function useEngineServer(): EngineServer {
  let server: RunningServer | undefined;
  let redis: Redis | undefined;
  let client: FlowFabricClient | undefined;
  const opened: Redis[] = [];
  const engines: Engine[] = [];
  const connect = (options: ClientOptions = {}) => {
    const connection = new Redis(server!.url, { maxRetriesPerRequest: 1 });
    connection.on('error', () => undefined);
    opened.push(connection);
    return { redis: connection, client: FlowFabricClient.fromIoredis(connection, { partitions: ENGINE_TEST_PARTITIONS, ...options }) };
  };
  beforeAll(async () => {
    server = await startServer(['--enable-debug-command', 'local']);
    ({ redis, client } = connect());
    await client.ensureLibrary({ retryDelayMs: 50 });
  });
  // Each test's engines stop when it ends, passed or failed, so a failed test's loops
  // cannot act on the next test's state.
  afterEach(async () => {
    await Promise.all(engines.splice(0).map((e) => e.stop()));
  });
  afterAll(async () => {
    for (const connection of opened) connection.disconnect();
    await server?.stop();
  });
  return {
    server: () => server!,
    redis: () => redis!,
    client: () => client!,
    connect,
    engine(options = {}) {
      const engine = new Engine({ client: connect().client, logSink: () => undefined, completionListener: false, ...options });
      engines.push(engine);
      return engine;
    },
  };
}
