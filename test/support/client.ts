// Per-file connection to the test server, with the library loaded once.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, inject } from 'vitest';
import { FlowFabricClient, type ClientOptions } from '../../runtime/client.js';
import { LateGlideTransport, useGlide } from './glide.js';

export interface TestConnection {
  readonly redis: Redis;
  readonly client: FlowFabricClient;
}

/** Opens a connection for the current test file and loads the library before its tests. */
export function useServer(options: ClientOptions = {}): TestConnection {
  const redis = new Redis(inject('redisUrl'), { lazyConnect: true, maxRetriesPerRequest: 1 });
  // FF_TEST_TRANSPORT=glide: the same tests with the client on Valkey GLIDE.
  const glide = useGlide ? new LateGlideTransport() : undefined;
  const client = glide ? new FlowFabricClient(glide, options) : FlowFabricClient.fromIoredis(redis, options);
  beforeAll(async () => {
    await redis.connect();
    await glide?.connect(inject('redisUrl'));
    await client.ensureLibrary({ retryDelayMs: 50 });
  });
  afterAll(async () => {
    redis.disconnect();
    glide?.close();
  });
  return { redis, client };
}
