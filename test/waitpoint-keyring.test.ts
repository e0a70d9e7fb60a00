// operations/waitpoints.ts key-ring helpers: bootstrap and the rotation fan-out to every flow
// partition. They touch every partition's key ring, so they run against a server of their
// own (the shared test server's key rings are in use by the other suspension tests).
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PartitionKeys } from '../generated/keys.js';
import { listWaitpointHmacKids } from '../generated/suspension.js';
import { FlowFabricClient } from '../runtime/client.js';
import { ArgumentError, ScriptError } from '../runtime/errors.js';
import { installWaitpointSecret, installWaitpointSecretEverywhere, rotateWaitpointSecretEverywhere } from '../operations/waitpoints.js';
import { startServer, type RunningServer } from '../tools/local-server.js';

const PARTITIONS = 8;
const SECRET_1 = '0f'.repeat(32);
const SECRET_2 = 'a1'.repeat(32);

describe('waitpoint key ring across partitions (private server)', () => {
  let server: RunningServer;
  let redis: Redis;
  let client: FlowFabricClient;

  beforeAll(async () => {
    server = await startServer();
    redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
    client = FlowFabricClient.fromIoredis(redis, { partitions: { numFlowPartitions: PARTITIONS, numBudgetPartitions: 4, numQuotaPartitions: 4 } });
    await client.ensureLibrary({ retryDelayMs: 50 });
  });
  afterAll(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  const ring = (partition: number) => PartitionKeys.forPartition(partition).waitpointHmacSecrets();

  it('bootstraps every partition once, keeping what is there and repairing torn writes', async () => {
    await expect(installWaitpointSecretEverywhere(client, { secretHex: SECRET_1 })).resolves.toEqual(Array(PARTITIONS).fill('installed'));
    for (let p = 0; p < PARTITIONS; p++) expect(await redis.hgetall(ring(p))).toEqual({ current_kid: 'k1', 'secret:k1': SECRET_1 });
    // A second bootstrap (another server starting, even with another secret) keeps the ring.
    await expect(installWaitpointSecretEverywhere(client, { secretHex: SECRET_2 })).resolves.toEqual(Array(PARTITIONS).fill('present'));
    expect(await redis.hget(ring(3), 'secret:k1')).toBe(SECRET_1);
    await redis.hdel(ring(5), 'secret:k1');
    await expect(installWaitpointSecret(client, 5, { secretHex: SECRET_1 })).resolves.toBe('repaired');
    expect(await redis.hget(ring(5), 'secret:k1')).toBe(SECRET_1);
    await expect(installWaitpointSecret(client, 0, { secretHex: 'xyz' })).rejects.toBeInstanceOf(ArgumentError);
  });

  it('rotates every partition, reports per partition, and completes a partial rotation when re-run', async () => {
    const report = await rotateWaitpointSecretEverywhere(client, { kid: 'k2', secretHex: SECRET_2, graceMs: 60_000 });
    expect(report).toMatchObject({ newKid: 'k2', rotated: [0, 1, 2, 3, 4, 5, 6, 7], noop: [], failed: [] });
    expect(report.results[4]).toEqual({ partition: 4, ok: true, result: { status: 'rotated', previousKid: 'k1', newKid: 'k2', gcCount: 0 } });
    expect(JSON.stringify(report)).not.toContain(SECRET_2);
    for (let p = 0; p < PARTITIONS; p++) {
      await expect(listWaitpointHmacKids(client, { partition: p })).resolves.toMatchObject({ currentKid: 'k2', verifying: [{ kid: 'k1' }] });
    }
    // Partition 6 already moved to k3 with another secret: a rotation to k3 conflicts there only.
    await redis.hset(ring(6), 'current_kid', 'k3', 'secret:k3', 'ee'.repeat(32));
    const partial = await rotateWaitpointSecretEverywhere(client, { kid: 'k3', secretHex: SECRET_1, graceMs: 60_000 });
    expect(partial).toMatchObject({ rotated: [0, 1, 2, 3, 4, 5, 7], failed: [6] });
    const failure = partial.results[6];
    expect(failure?.ok === false && failure.error).toBeInstanceOf(ScriptError);
    expect(failure?.ok === false && (failure.error as ScriptError).code).toBe('rotation_conflict');
    // Repair the odd partition, re-run: the done ones answer noop.
    await redis.hset(ring(6), 'current_kid', 'k2');
    const rerun = await rotateWaitpointSecretEverywhere(client, { kid: 'k3', secretHex: SECRET_1, graceMs: 60_000, concurrency: 3 });
    expect(rerun).toMatchObject({ rotated: [6], noop: [0, 1, 2, 3, 4, 5, 7], failed: [] });
  });

  it('validates the kid, secret and grace before sending anything', async () => {
    const before = await redis.hgetall(ring(0));
    await expect(rotateWaitpointSecretEverywhere(client, { kid: 'a:b', secretHex: SECRET_1 })).rejects.toBeInstanceOf(ArgumentError);
    await expect(rotateWaitpointSecretEverywhere(client, { kid: 'k9', secretHex: 'abc' })).rejects.toBeInstanceOf(ArgumentError);
    await expect(rotateWaitpointSecretEverywhere(client, { kid: 'k9', secretHex: SECRET_1, graceMs: -1 })).rejects.toBeInstanceOf(ArgumentError);
    const error = await rotateWaitpointSecretEverywhere(client, { kid: 'k9', secretHex: 'zz' + SECRET_1 }).catch((e: unknown) => e);
    expect(String(error)).not.toContain(SECRET_1);
    expect(await redis.hgetall(ring(0))).toEqual(before);
  });
});
