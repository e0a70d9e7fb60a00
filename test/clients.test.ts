// The transport with both client libraries it supports, the observability hooks, and what
// transport errors say: where the command went and whether it can have run.
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Valkey } from 'iovalkey';
import { Redis, type RedisOptions } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { completeExecution } from '../generated/execution.js';
import { version } from '../generated/version.js';
import { FlowFabricClient, type CallEvent } from '../runtime/client.js';
import { ScriptError, TransportError } from '../runtime/errors.js';
import { classifyIoredisError, IoredisTransport } from '../runtime/ioredis.js';
import { openTelemetryHook } from '../runtime/otel.js';
import { freePort, startServer, type RunningServer } from '../tools/local-server.js';
import { createClaimed } from './support/lifecycle.js';

describe('iovalkey transport', () => {
  const valkey = new Valkey(inject('redisUrl'), { lazyConnect: true, maxRetriesPerRequest: 1 });
  const client = FlowFabricClient.fromIoredis(valkey);
  beforeAll(async () => {
    await valkey.connect();
    await client.ensureLibrary();
  });
  afterAll(() => valkey.disconnect());

  it('runs an execution through its life and reads typed errors', async () => {
    const c = await createClaimed(client);
    const args = { executionId: c.executionId, laneId: c.laneId, workerInstanceId: c.workerInstanceId, ...c.lease };
    await expect(completeExecution(client, args)).resolves.toEqual({ status: 'OK', publicState: 'completed' });
    await expect(completeExecution(client, args)).rejects.toBeInstanceOf(ScriptError);
  });
});

describe('call hook and OpenTelemetry spans', () => {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const events: CallEvent[] = [];
  const hook = openTelemetryHook(provider.getTracer('ff-script-test'));
  const valkey = new Valkey(inject('redisUrl'), { lazyConnect: true, maxRetriesPerRequest: 1 });
  const client = FlowFabricClient.fromIoredis(valkey, { onCall: (e) => (events.push(e), hook(e)) });
  beforeAll(async () => {
    await valkey.connect();
    await client.ensureLibrary();
  });
  afterAll(() => valkey.disconnect());

  it('reports each call with its outcome and records a span', async () => {
    await version(client);
    const c = await createClaimed(client);
    const args = { executionId: c.executionId, laneId: c.laneId, workerInstanceId: c.workerInstanceId, ...c.lease };
    await completeExecution(client, args);
    await completeExecution(client, args).catch(() => undefined);
    expect(events.map((e) => [e.fn, e.outcome, e.code])).toEqual([
      ['ff_version', 'ok', undefined],
      ['ff_create_execution', 'ok', undefined],
      ['ff_issue_claim_grant', 'ok', undefined],
      ['ff_claim_execution', 'ok', undefined],
      ['ff_complete_execution', 'ok', undefined],
      ['ff_complete_execution', 'error', 'execution_not_active'],
    ]);
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => s.name)).toContain('FCALL ff_claim_execution');
    const failed = spans.at(-1)!;
    expect(failed.attributes).toMatchObject({ 'ff.function': 'ff_complete_execution', 'ff.error_code': 'execution_not_active', 'ff.error_class': 'terminal' });
    expect(failed.status.code).toBe(2);
  });
});

describe('transport errors say where and whether the command ran', () => {
  let server: RunningServer;
  const opened: Redis[] = [];
  const open = (url: string, options: RedisOptions = {}): FlowFabricClient => {
    const redis = new Redis(url, { maxRetriesPerRequest: 1, ...options });
    redis.on('error', () => undefined);
    opened.push(redis);
    return FlowFabricClient.fromIoredis(redis);
  };
  beforeAll(async () => {
    server = await startServer(['--enable-debug-command', 'yes']);
  });
  afterAll(async () => {
    opened.forEach((r) => r.disconnect());
    await server.stop();
  });

  const failure = (promise: Promise<unknown>): Promise<TransportError> =>
    promise.then(
      () => expect.fail('the call succeeded'),
      (error: unknown) => {
        expect(error).toBeInstanceOf(TransportError);
        return error as TransportError;
      },
    );

  it('a port where no server ever ran: never sent, retryable, with host and port', async () => {
    const port = await freePort();
    for (const options of [{ retryStrategy: () => null }, {}, { lazyConnect: true }]) {
      const error = await failure(version(open(`redis://127.0.0.1:${port}`, options)));
      expect(error).toMatchObject({ notSent: true, retryable: true });
      expect(error.message).toContain(`127.0.0.1:${port}`);
      expect(error.message).toContain('never sent');
    }
  });

  it('offline queue off and not yet connected: never sent, retryable', async () => {
    const error = await failure(version(open(server.url, { enableOfflineQueue: false, lazyConnect: true })));
    expect(error).toMatchObject({ kind: 'fatal_send', notSent: true, retryable: true });
    expect(error.message).toContain(`127.0.0.1:${server.port}`);
  });

  it('calls made after the server stopped under a connected client: never sent, retryable', async () => {
    for (const options of [{}, { retryStrategy: () => null }]) {
      const own = await startServer();
      const client = open(own.url, options);
      await expect(version(client)).rejects.toMatchObject({ name: 'LibraryError' });
      await own.stop();
      // Once the client has seen the connection go (a call it wrote before that may have run).
      const connection = (client.transport as IoredisTransport).client as Redis;
      await expect.poll(() => connection.status, { timeout: 5000, interval: 10 }).not.toBe('ready');
      const error = await failure(version(client));
      expect(error).toMatchObject({ notSent: true, retryable: true });
      expect(error.message).toContain(`127.0.0.1:${own.port}`);
    }
  });

  it('a reply lost with its connection: may have run, not retryable, with host and port', async () => {
    const victim = new Redis(server.url, { maxRetriesPerRequest: 1, autoResendUnfulfilledCommands: false });
    victim.on('error', () => undefined);
    opened.push(victim);
    const client = FlowFabricClient.fromIoredis(victim);
    await client.ensureLibrary();
    const id = (await victim.client('ID')) as number;
    // Connected before the sleep: a connection opened during it would be served after the FCALL.
    const admin = new Redis(server.url);
    opened.push(admin);
    await admin.ping();
    const sleeping = victim.call('DEBUG', 'SLEEP', '0.3').catch((e: unknown) => e);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const pending = failure(version(client));
    await new Promise((resolve) => setTimeout(resolve, 50));
    await admin.call('CLIENT', 'KILL', 'ID', String(id));
    const error = await pending;
    await sleeping;
    expect(error).toMatchObject({ kind: 'fatal_receive', notSent: false, retryable: false });
    expect(error.message).toContain(`127.0.0.1:${server.port}`);
    expect(error.message).toContain('may have run');
  });

  it('a cluster that gave up redirecting is classified by the last reply', () => {
    const gaveUp = new Error('Too many Cluster redirections. Last error: ReplyError: CLUSTERDOWN The cluster is down');
    expect(classifyIoredisError(gaveUp)).toMatchObject({ kind: 'cluster_down', retryable: true, notSent: true });
    expect(classifyIoredisError(new Error('Too many Cluster redirections. Last error: ReplyError: MOVED 3999 127.0.0.1:7001'))).toMatchObject({ kind: 'moved', retryable: false });
  });

  it('error replies keep the server message and its retry class', async () => {
    const client = open(server.url);
    const error = await failure(client.transport.command('FUNCTION', ['LOAD', 'not lua']).catch((e: unknown) => Promise.reject(client.transport.classify!(e))));
    expect(error).toMatchObject({ kind: 'response_error', retryable: false });
    expect(error.message).toMatch(/^ERR /);
  });
});
