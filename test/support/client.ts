// Per-file connection to the test server, with the library loaded once.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, inject } from 'vitest';
import { FlowFabricClient, type ClientOptions } from '../../runtime/client.js';

export interface TestConnection {
  readonly redis: Redis;
  readonly client: FlowFabricClient;
}

/** Opens a connection for the current test file and loads the library before its tests. */
export function useServer(options: ClientOptions = {}): TestConnection {
  const redis = new Redis(inject('redisUrl'), { lazyConnect: true, maxRetriesPerRequest: 1 });
  const client = FlowFabricClient.fromIoredis(redis, options);
  beforeAll(async () => {
    await redis.connect();
    await client.ensureLibrary({ retryDelayMs: 50 });
  });
  afterAll(async () => {
    redis.disconnect();
  });
  return { redis, client };
}
