// Faults a deployment meets: a restarted server without persistence, an operator's
// FUNCTION FLUSH, a connection killed mid-call, and a slow server with command timeouts.
// Each test uses a server of its own; the shared test server is never disturbed.
import { Redis, type RedisOptions } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createExecution } from '../generated/execution.js';
import { version } from '../generated/version.js';
import { FlowFabricClient } from '../runtime/client.js';
import { LibraryError, TransportError } from '../runtime/errors.js';
import { startServer, type RunningServer } from '../tools/local-server.js';
import { newExecutionId, uniqueLane } from './support/ids.js';

let server: RunningServer;
const connections: Redis[] = [];
function connect(options: RedisOptions = {}): Redis {
  const redis = new Redis(server.url, { maxRetriesPerRequest: 1, autoResendUnfulfilledCommands: false, ...options });
  connections.push(redis);
  return redis;
}

beforeAll(async () => {
  server = await startServer(['--enable-debug-command', 'yes']);
});
afterAll(async () => {
  connections.forEach((c) => c.disconnect());
  await server.stop();
});

const createArgs = () => ({ executionId: newExecutionId(), laneId: uniqueLane(), namespace: 'faults', executionKind: 'k' });

describe('library gone', () => {
  it('after a restart without persistence: typed error, then autoLoad reloads once and the call runs', async () => {
    const redis = connect();
    const plain = FlowFabricClient.fromIoredis(redis);
    const auto = FlowFabricClient.fromIoredis(redis, { autoLoad: true, load: { retryDelayMs: 10 } });
    await plain.ensureLibrary();
    await server.restart();
    await expect(createExecution(plain, createArgs())).rejects.toSatisfy((e) => e instanceof LibraryError && e.kind === 'missing');
    const args = createArgs();
    await expect(createExecution(auto, args)).resolves.toMatchObject({ status: 'OK', executionId: args.executionId });
  });

  it('after an operator FUNCTION FLUSH', async () => {
    const redis = connect();
    const auto = FlowFabricClient.fromIoredis(redis, { autoLoad: true, load: { retryDelayMs: 10 } });
    await auto.ensureLibrary();
    await redis.call('FUNCTION', 'FLUSH');
    await expect(version(auto)).resolves.toMatchObject({ status: 'OK' });
  });
});

describe('connection faults', () => {
  it('a connection killed while a call waits is a non-retryable transport error, and the client recovers', async () => {
    const victim = connect();
    const admin = connect();
    const client = FlowFabricClient.fromIoredis(victim);
    await client.ensureLibrary();
    const id = (await victim.client('ID')) as number;
    // The sleep holds the victim's connection; the FCALL queued behind it never gets an answer.
    // It is sent once the server sleeps, so the server cannot read it together with the sleep
    // and answer it before it sees the kill: after the sleep both wait in the same loop turn.
    const sleeping = victim.call('DEBUG', 'SLEEP', '0.3').catch((e: unknown) => e);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const args = createArgs();
    const pending = createExecution(client, args).catch((e: unknown) => e);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await admin.call('CLIENT', 'KILL', 'ID', String(id));
    const error = await pending;
    await sleeping;
    expect(error).toBeInstanceOf(TransportError);
    expect(error).toMatchObject({ retryable: false, notSent: false });
    // The client reconnects by itself; whether the lost call ran is for the caller to check.
    await expect(version(client)).resolves.toMatchObject({ status: 'OK' });
  });

  it('a slow server and a command timeout: a timeout error that is not retryable, then normal service', async () => {
    const slow = connect({ commandTimeout: 100 });
    const admin = connect();
    const client = FlowFabricClient.fromIoredis(slow);
    await client.ensureLibrary();
    const sleeping = admin.call('DEBUG', 'SLEEP', '0.4');
    await new Promise((resolve) => setTimeout(resolve, 20));
    await expect(version(client)).rejects.toMatchObject({ name: 'TransportError', kind: 'timeout', retryable: false });
    await sleeping;
    await expect(version(client)).resolves.toMatchObject({ status: 'OK' });
  });
});
