// The Valkey GLIDE transport on the real server and on a local three-primary cluster: the
// same scenarios the ioredis and iovalkey transports run (an execution's life and typed
// errors, the call hook, the library on every primary, executions on partitions owned by
// every primary, suspend → signal → resume), a batch through GLIDE's own Batch, the typed
// reads whose replies come back as RESP3 maps, and GLIDE's errors on the contract's classes.
import { GlideClient, GlideClusterClient, RequestError, TimeoutError, ClosingError, ConnectionError } from '@valkey/valkey-glide';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { completeExecution, createExecution } from '../generated/execution.js';
import { LIBRARY_VERSION } from '../generated/library.js';
import { issueClaimGrant } from '../generated/scheduling.js';
import { appendFrame } from '../generated/stream.js';
import { buildVersion, parseVersion, version } from '../generated/version.js';
import { call, type CallEvent, type FlowFabricClient } from '../runtime/client.js';
import { LibraryError, ScriptError, TransportError } from '../runtime/errors.js';
import { classifyGlideError, fromGlide, glideServerMessage, resp2Reply } from '../runtime/glide.js';
import { newLeaseId } from '../runtime/ids.js';
import { claimResumed } from '../operations/waitpoints.js';
import { inspectExecution } from '../operations/inspect.js';
import { readLaneStats } from '../operations/lanes.js';
import { tailAttemptStream } from '../operations/stream-tail.js';
import { startServer } from '../tools/local-server.js';
import { newExecutionId, uniqueLane } from './support/ids.js';
import { createClaimed } from './support/lifecycle.js';
import { createSuspended, deliver } from './support/suspension.js';
import { expectLibraryOnEveryPrimary, expectResumesOnEveryPrimary, expectRunsOnEveryPrimary, useLocalCluster } from './support/cluster.js';
import { complete } from './support/flow.js';

const address = (url: string) => {
  const { hostname, port } = new URL(url);
  return { host: hostname, port: Number(port) };
};

describe('GLIDE transport on a single server', () => {
  let glide: GlideClient;
  let client: FlowFabricClient;
  const events: CallEvent[] = [];
  beforeAll(async () => {
    glide = await GlideClient.createClient({ addresses: [address(inject('redisUrl'))], requestTimeout: 5000 });
    client = fromGlide(glide, { onCall: (e) => events.push(e) });
    await client.ensureLibrary({ retryDelayMs: 50 });
  });
  afterAll(() => glide?.close());

  it('runs an execution through its life and reads typed errors', async () => {
    const c = await createClaimed(client);
    const args = { executionId: c.executionId, laneId: c.laneId, workerInstanceId: c.workerInstanceId, ...c.lease };
    await expect(completeExecution(client, args)).resolves.toEqual({ status: 'OK', publicState: 'completed' });
    const refused = await completeExecution(client, args).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ScriptError);
    expect(refused).toMatchObject({ code: 'execution_not_active', errorClass: 'terminal' });
  });

  it('reports each call to the hook', async () => {
    events.length = 0;
    await version(client);
    expect(events.map((e) => [e.fn, e.outcome])).toEqual([['ff_version', 'ok']]);
  });

  it('sends a batch through GLIDE\'s Batch, each call settled on its own', async () => {
    const executionId = newExecutionId();
    const laneId = uniqueLane('glide');
    const { buildCreateExecution, parseCreateExecution } = await import('../generated/execution.js');
    const create = buildCreateExecution({ executionId, laneId, namespace: 'glide', executionKind: 'k' }, client.partitions);
    const [v, created, duplicate, missing] = await client.batch([
      call(buildVersion(client.partitions), parseVersion),
      call(create, parseCreateExecution),
      call(create, parseCreateExecution),
      call({ fn: 'ff_no_such_function', keys: [], argv: [] }, (reply) => reply),
    ] as const);
    expect(v).toEqual({ ok: true, value: { status: 'OK', version: LIBRARY_VERSION } });
    expect(created).toMatchObject({ ok: true, value: { status: 'OK', executionId } });
    expect(duplicate).toMatchObject({ ok: true, value: { status: 'DUPLICATE' } });
    // A function the server does not know is reported as such, as on ioredis.
    expect(missing.ok).toBe(false);
    expect(!missing.ok && missing.error).toBeInstanceOf(LibraryError);
  });

  it('reads RESP3 replies the way the readers expect: inspect, lanes, stream tail', async () => {
    const laneId = uniqueLane('glide');
    const c = await createClaimed(client, { laneId });
    for (const payload of ['a', 'b']) {
      await appendFrame(client, { executionId: c.executionId, attemptIndex: c.lease.attemptIndex, leaseId: c.lease.leaseId, leaseEpoch: c.lease.leaseEpoch, frameType: 'text_chunk', payload });
    }
    const details = await inspectExecution(client, c.executionId);
    expect(details?.execution).toMatchObject({ publicState: 'active', laneId, namespace: 'test' });
    expect(details?.lease).toMatchObject({ leaseEpoch: 1, workerInstanceId: c.workerInstanceId });
    expect(details?.attempts).toEqual([expect.objectContaining({ index: 0, type: 'initial', state: 'started' })]);
    expect(details?.output?.frames.map((f) => f.payload)).toEqual(['a', 'b']);
    const stats = await readLaneStats(client, { lanes: [laneId] });
    expect(stats.lanes[0]?.totals).toMatchObject({ active: 1, eligible: 0 });
    expect(stats.lanes[0]?.partitions[0]?.indexes.active.head?.executionId).toBe(c.executionId);
    await complete(client, c);
    const frames: string[] = [];
    for await (const frame of tailAttemptStream(client.transport, { executionId: c.executionId, attemptIndex: c.lease.attemptIndex, blockMs: 100 })) frames.push(frame.fields.payload ?? '');
    expect(frames).toEqual(['a', 'b']);
  });

  it('suspends, signals and resumes', async () => {
    const s = await createSuspended(client, { timeoutMs: 60_000 });
    await expect(deliver(client, s, 'go')).resolves.toMatchObject({ effect: 'resume_condition_satisfied' });
    await issueClaimGrant(client, { executionId: s.executionId, laneId: s.laneId, workerId: s.workerId, workerInstanceId: s.workerInstanceId, grantTtlMs: 5000 });
    const claimed = await claimResumed(client, { executionId: s.executionId, laneId: s.laneId, workerId: s.workerId, workerInstanceId: s.workerInstanceId, leaseId: newLeaseId(), leaseTtlMs: 30_000 });
    expect(claimed.attemptIndex).toBe(s.lease.attemptIndex);
  });

  it('maps a missing library onto LibraryError, and autoLoad brings it back', async () => {
    const own = await startServer();
    const g = await GlideClient.createClient({ addresses: [address(own.url)], requestTimeout: 5000 });
    try {
      const plain = fromGlide(g);
      await expect(version(plain)).rejects.toSatisfy((e) => e instanceof LibraryError && e.kind === 'missing');
      const auto = fromGlide(g, { autoLoad: true, load: { retryDelayMs: 10 } });
      await expect(createExecution(auto, { executionId: newExecutionId(), laneId: uniqueLane(), namespace: 'glide', executionKind: 'k' })).resolves.toMatchObject({ status: 'OK' });
    } finally {
      g.close();
      await own.stop();
    }
  });
});

describe('GLIDE errors on the contract\'s retry classes', () => {
  it('reads GLIDE\'s wording of server errors back into the server\'s', () => {
    expect(glideServerMessage('An error was signalled by the server: - ResponseError: Function not found')).toBe('ERR Function not found');
    expect(glideServerMessage('WRONGTYPE: Operation against a key holding the wrong kind of value')).toBe('WRONGTYPE Operation against a key holding the wrong kind of value');
    expect(glideServerMessage('An error was signalled by the server: - TryAgain: Multiple keys request during rehashing of slot')).toBe('TRYAGAIN Multiple keys request during rehashing of slot');
    expect(glideServerMessage('timed out')).toBeUndefined();
  });

  it.each([
    [new RequestError('An error was signalled by the server: - TryAgain: rehashing'), 'try_again', true, true],
    [new RequestError('An error was signalled by the server: - ClusterDown: The cluster is down'), 'cluster_down', true, true],
    [new RequestError('An error was signalled by the server: - CrossSlot: Keys in request don\'t hash to the same slot'), 'cross_slot', false, false],
    [new RequestError('An error was signalled by the server: - ResponseError: unknown command'), 'response_error', false, false],
    [new RequestError('NOPERM: this user has no permissions'), 'permission_denied', false, false],
    [new TimeoutError('timed out'), 'timeout', false, false],
    [new ConnectionError('Received error - FatalReceiveError: connection closed'), 'fatal_receive', false, false],
    [new ConnectionError('Received error - FatalSendError: broken pipe'), 'fatal_send', true, true],
    [new ConnectionError('Received error - IoError: Connection refused'), 'io_error', true, true],
    [new ConnectionError('connection lost'), 'fatal_receive', false, false],
    [new ClosingError('Unable to execute requests; the client is closed.'), 'client_error', false, true],
  ])('%s → %s', (error, kind, retryable, notSent) => {
    const classified = classifyGlideError(error, '127.0.0.1:6379');
    expect(classified).toBeInstanceOf(TransportError);
    expect(classified).toMatchObject({ kind, retryable, notSent });
  });

  it('names the server in connection failures, and a closed client is never sent to', async () => {
    const own = await startServer();
    const g = await GlideClient.createClient({ addresses: [address(own.url)], requestTimeout: 300 });
    const client = fromGlide(g);
    await own.stop();
    const lost = await version(client).catch((e: unknown) => e);
    // GLIDE reconnects in the background: the call times out (may have run) or, when GLIDE
    // knows it never wrote it, fails as never sent; either way the server is named.
    expect(lost).toMatchObject({ name: 'TransportError' });
    expect((lost as TransportError).retryable).toBe((lost as TransportError).notSent);
    expect((lost as Error).message).toContain(`127.0.0.1:${own.port}`);
    g.close();
    const closed = await version(client).catch((e: unknown) => e);
    expect(closed).toMatchObject({ name: 'TransportError', kind: 'client_error', notSent: true, retryable: false });
  });

  it('turns RESP3 maps back into RESP2 shapes', () => {
    expect(resp2Reply('HGETALL', [{ key: 'a', value: '1' }, { key: 'b', value: '2' }])).toEqual(['a', '1', 'b', '2']);
    expect(resp2Reply('XRANGE', [{ key: '1-0', value: [['f', 'v'], ['g', 'w']] }])).toEqual([['1-0', ['f', 'v', 'g', 'w']]]);
    expect(resp2Reply('XREAD', [{ key: 's', value: [{ key: '1-0', value: [['f', 'v']] }] }])).toEqual([['s', [['1-0', ['f', 'v']]]]]);
    expect(resp2Reply('XREAD', null)).toBeNull();
    expect(resp2Reply('SMEMBERS', [])).toEqual([]);
  });
});

describe('GLIDE transport on a three-primary cluster', () => {
  const env = useLocalCluster(async (cluster) => {
    const glide = await GlideClusterClient.createClient({ addresses: cluster.seeds.map((s) => ({ host: s.host, port: s.port })), requestTimeout: 5000 });
    return { client: fromGlide(glide), close: () => glide.close() };
  });

  it('loads the library on every primary', async () => {
    await expectLibraryOnEveryPrimary(env.client());
    const primaries = await env.client().transport.primaries();
    expect(new Set(primaries.map((p) => p.describe?.())).size).toBe(3);
  });

  it('runs executions on partitions owned by every primary', () => expectRunsOnEveryPrimary(env.client()));

  it('sends a batch spread over every primary through ClusterBatch', async () => {
    const client = env.client();
    const { buildCreateExecution, parseCreateExecution } = await import('../generated/execution.js');
    const ids = [3, 90, 200].map((p) => newExecutionId(p));
    const results = await client.batch(ids.map((executionId) => call(buildCreateExecution({ executionId, laneId: uniqueLane('glide'), namespace: 'glide', executionKind: 'k' }, client.partitions), parseCreateExecution)));
    expect(results.map((r) => r.ok && r.value.status)).toEqual(['OK', 'OK', 'OK']);
  });

  it('suspends, signals, resumes and completes on partitions owned by every primary', () => expectResumesOnEveryPrimary(env.client()));
});
