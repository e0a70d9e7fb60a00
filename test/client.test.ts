// The client against servers of its own (these tests flush and replace the library, so
// they never touch the shared test server).
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCreateExecution, parseCreateExecution } from '../generated/execution.js';
import { LIBRARY_SOURCE, LIBRARY_VERSION } from '../generated/library.js';
import { buildVersion, parseVersion, version } from '../generated/version.js';
import { call, FlowFabricClient, type CallEvent } from '../runtime/client.js';
import { LibraryError, ScriptError } from '../runtime/errors.js';
import { DEFAULT_PARTITION_CONFIG } from '../runtime/partition.js';
import { startServer, type RunningServer } from '../tools/local-server.js';
import { newExecutionId, uniqueLane } from './support/ids.js';

let server: RunningServer;
const connections: Redis[] = [];
function connect(): Redis {
  const redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
  connections.push(redis);
  return redis;
}

beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  connections.forEach((c) => c.disconnect());
  await server.stop();
});

describe('library presence', () => {
  it('reports a missing library as a typed error, and reloads it once with autoLoad', async () => {
    const redis = connect();
    await redis.call('FUNCTION', 'FLUSH');
    const plain = FlowFabricClient.fromIoredis(redis);
    await expect(version(plain)).rejects.toBeInstanceOf(LibraryError);
    await expect(version(plain)).rejects.toMatchObject({ kind: 'missing' });
    const loading = FlowFabricClient.fromIoredis(redis, { autoLoad: true, load: { retryDelayMs: 10 } });
    await expect(version(loading)).resolves.toEqual({ status: 'OK', version: LIBRARY_VERSION });
  });

  it('replaces a library of another version', async () => {
    const redis = connect();
    const other = LIBRARY_SOURCE.replace("return '" + LIBRARY_VERSION + "'", "return 'old'");
    await redis.call('FUNCTION', 'LOAD', 'REPLACE', other);
    const [status] = await FlowFabricClient.fromIoredis(redis).ensureLibrary();
    expect(status).toEqual({ before: 'old', after: LIBRARY_VERSION, loaded: true });
  });

  it('surfaces a compile error with the server message, without retrying', async () => {
    const redis = connect();
    const client = FlowFabricClient.fromIoredis(redis);
    const broken = `${LIBRARY_SOURCE}\nthis is not lua\n`;
    const error = await client.ensureLibrary({ source: broken, version: 'broken', retryDelayMs: 10 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LibraryError);
    expect(error).toMatchObject({ kind: 'compile' });
    expect((error as Error).message).toMatch(/Error compiling|syntax error/);
  });

  it('lets two processes ensure the library at the same time', async () => {
    const a = connect();
    const b = connect();
    await a.call('FUNCTION', 'FLUSH');
    const results = await Promise.all([FlowFabricClient.fromIoredis(a).ensureLibrary(), FlowFabricClient.fromIoredis(b).ensureLibrary()]);
    expect(results.flat().map((r) => r.after)).toEqual([LIBRARY_VERSION, LIBRARY_VERSION]);
  });
});

describe('batch', () => {
  it('sends many calls in one pipeline and types each outcome', async () => {
    const redis = connect();
    const events: CallEvent[] = [];
    const client = FlowFabricClient.fromIoredis(redis, { onCall: (e) => events.push(e) });
    await client.ensureLibrary();
    const laneId = uniqueLane();
    const executionId = newExecutionId();
    const args = { executionId, laneId, namespace: 'ns', executionKind: 'k' };
    const [v, created, duplicate, bad] = await client.batch([
      call(buildVersion(DEFAULT_PARTITION_CONFIG), parseVersion),
      call(buildCreateExecution(args, DEFAULT_PARTITION_CONFIG), parseCreateExecution),
      call(buildCreateExecution(args, DEFAULT_PARTITION_CONFIG), parseCreateExecution),
      call({ ...buildCreateExecution({ ...args, executionId: newExecutionId() }, DEFAULT_PARTITION_CONFIG), argv: ['{fp:1}:x', 'ns', 'l', 'k', 'NaN'] }, parseCreateExecution),
    ]);
    expect(v).toEqual({ ok: true, value: { status: 'OK', version: LIBRARY_VERSION } });
    expect(created).toEqual({ ok: true, value: { status: 'OK', executionId, publicState: 'waiting' } });
    expect(duplicate).toEqual({ ok: true, value: { status: 'DUPLICATE', executionId } });
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.error).toBeInstanceOf(ScriptError);
    expect(events.map((e) => [e.fn, e.outcome, e.code])).toEqual([
      ['ff_version', 'ok', undefined],
      ['ff_create_execution', 'ok', undefined],
      ['ff_create_execution', 'ok', undefined],
      ['ff_create_execution', 'error', 'invalid_input'],
    ]);
  });
});

describe('library of the same version but missing functions', () => {
  it('is replaced by ensureLibrary', async () => {
    const redis = connect();
    // An older build of the same version: only ff_version and one other function.
    const partial = `#!lua name=flowfabric\nredis.register_function{function_name='ff_version', callback=function() return '${LIBRARY_VERSION}' end, flags={'no-writes'}}\nredis.register_function('ff_create_execution', function() return {0, 'internal_error', 'old'} end)\n`;
    await redis.call('FUNCTION', 'LOAD', 'REPLACE', partial);
    const [status] = await FlowFabricClient.fromIoredis(redis).ensureLibrary();
    expect(status).toEqual({ before: LIBRARY_VERSION, after: LIBRARY_VERSION, loaded: true });
  });
});
