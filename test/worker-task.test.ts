// The task's operations as a handler uses them, and what the worker tells its listeners:
// input modes, delay, cancel, wait for children in a flow, frames, progress, usage against a
// budget, the event iterator, and the first suspension on a fresh server.
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { readAttemptStream } from '../generated/stream.js';
import { addDependency, createFlowFor, getExecution, signalExecution, submitExecution, waitForOutcome } from '../operations/executions.js';
import { FlowFabricClient } from '../runtime/client.js';
import { startServer } from '../tools/local-server.js';
import { Worker, type Task, type WorkerEvent, type WorkerOptions } from '../worker/index.js';
import { createTestBudget } from './support/budget.js';
import { useServer } from './support/client.js';
import { uniqueLane } from './support/ids.js';

describe('Task operations', () => {
  const { client } = useServer();
  const open: Worker<any>[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((w) => w.close({ timeoutMs: 1000 })));
  });

  function worker<I = unknown>(options: Omit<WorkerOptions<I>, 'client'>): Worker<I> {
    const w = new Worker<I>({ client, claimPath: 'direct', housekeepingIntervalMs: 50, idleBackoff: { minMs: 10, maxMs: 50 }, installWaitpointSecrets: false, ...options });
    open.push(w);
    return w;
  }

  it('decodes input as text or bytes, and fails an execution whose JSON input cannot be read', async () => {
    const lane = uniqueLane();
    const { executionId: text } = await submitExecution(client, { lane, kind: 'text', payload: 'plain words' });
    const seen: unknown[] = [];
    const t = worker<string>({ lanes: lane, input: 'text', output: 'raw', handler: (task) => task.input.toUpperCase() });
    await t.start();
    expect(await waitForOutcome(client, text, { timeoutMs: 5000 })).toMatchObject({ result: 'PLAIN WORDS' });
    await t.close();

    const { executionId: bytes } = await submitExecution(client, { lane, kind: 'bytes', payload: new Uint8Array([104, 105]) });
    const b = worker<Buffer>({ lanes: lane, input: 'bytes', handler: (task) => void seen.push([...task.input]) });
    await b.start();
    await waitForOutcome(client, bytes, { timeoutMs: 5000 });
    expect(seen).toEqual([[104, 105]]);
    await b.close();

    const { executionId: broken } = await submitExecution(client, { lane, kind: 'json', payload: '{not json', retry: { maxRetries: 3 } });
    const j = worker({ lanes: lane, handler: () => 'never' });
    await j.start();
    expect(await waitForOutcome(client, broken, { timeoutMs: 5000 })).toMatchObject({ publicState: 'failed', attempts: 1 });
    expect((await getExecution(client, broken))?.failureReason).toMatch(/input is not valid JSON/);
  });

  it('delays (the handler runs again, resumed, once due) and cancels', async () => {
    const lane = uniqueLane();
    const { executionId: later } = await submitExecution(client, { lane, kind: 'later' });
    const { executionId: unwanted } = await submitExecution(client, { lane, kind: 'unwanted' });
    const runs: string[] = [];
    const w = worker({ lanes: lane, concurrency: 2, handler: async (task: Task) => {
      runs.push(`${task.kind}:${task.attemptKind}`);
      if (task.kind === 'unwanted') return task.cancel('not needed');
      if (task.attemptKind === 'fresh') return task.delay({ ms: 100 });
      return 'done later';
    } });
    await w.start();
    expect(await waitForOutcome(client, unwanted, { timeoutMs: 5000 })).toMatchObject({ publicState: 'cancelled', cancellationReason: 'not needed' });
    expect(await waitForOutcome(client, later, { timeoutMs: 5000 })).toMatchObject({ publicState: 'completed', attempts: 1 });
    expect(runs.sort()).toEqual(['later:fresh', 'later:resumed', 'unwanted:fresh']);
    await w.close(); // The counters move once each call's reply is back, which can be after the state is visible.
    expect(w.counters).toMatchObject({ released: 2, completed: 1 });
  });

  it('waits for children it created in its flow, and runs again once they completed', async () => {
    const lane = uniqueLane();
    const flowId = await createFlowFor(client, { kind: 'fan-out' });
    const { executionId: parent } = await submitExecution(client, { lane, kind: 'parent', flowId });
    const w = worker({ lanes: lane, handler: async (task: Task) => {
      if (task.kind === 'child') return `child ${String(task.input)}`;
      if (task.attemptKind === 'resumed') return 'all children done';
      for (const n of [1, 2]) {
        const child = await submitExecution(client, { lane, kind: 'child', input: n, flowId });
        await addDependency(client, { flowId, upstream: child.executionId, downstream: parent });
      }
      await task.waitForChildren();
    } });
    await w.start();
    expect(await waitForOutcome(client, parent, { timeoutMs: 5000 })).toMatchObject({ publicState: 'completed', result: '"all children done"' });
    await w.close();
    expect(w.counters).toMatchObject({ completed: 3, released: 1 });
  });

  it('appends frames, records progress and reports usage against a budget', async () => {
    const lane = uniqueLane();
    const budget = await createTestBudget(client);
    const { executionId } = await submitExecution(client, { lane, kind: 'llm', budgetIds: [budget.budgetId] });
    const breaches: string[] = [];
    const w = worker({ lanes: lane, handler: async (task: Task) => {
      await task.appendFrame('token', 'Hel');
      await task.appendFrame('token', 'lo');
      await task.progress(50, 'half way');
      breaches.push((await task.reportUsage(budget.budgetId, { tokens: 90 })).status);
      expect((await getExecution(client, task.executionId))?.progress).toEqual({ pct: 50, message: 'half way' });
      return 'Hello';
    } });
    await w.start();
    await waitForOutcome(client, executionId, { timeoutMs: 5000 });
    const frames = await readAttemptStream(client, { executionId, attemptIndex: 0, countLimit: 100 });
    expect(frames.entries.map((e) => e.fields.payload)).toEqual(['Hel', 'lo']);
    expect(breaches).toEqual(['SOFT_BREACH']);
  });

  it('tells what happens through events() until it is closed', async () => {
    const lane = uniqueLane();
    const { executionId: ok } = await submitExecution(client, { lane, kind: 'ok' });
    const { executionId: bad } = await submitExecution(client, { lane, kind: 'bad', retry: { maxRetries: 1, backoff: { type: 'fixed', delayMs: 0 } } });
    const w = worker({ lanes: lane, handler: (task: Task) => {
      if (task.kind === 'bad') throw new Error('nope');
    } });
    const seen: WorkerEvent[] = [];
    const collecting = (async () => {
      for await (const event of w.events()) seen.push(event);
    })();
    await w.start();
    await waitForOutcome(client, ok, { timeoutMs: 5000 });
    await waitForOutcome(client, bad, { timeoutMs: 5000 });
    await w.close();
    await collecting;
    const summary = seen.map((e) => ('executionId' in e && e.executionId ? `${e.type}:${e.executionId === ok ? 'ok' : 'bad'}` : e.type));
    expect(summary.filter((s) => s.endsWith(':ok'))).toEqual(['claimed:ok', 'completed:ok']);
    expect(summary.filter((s) => s.endsWith(':bad'))).toEqual(['claimed:bad', 'retrying:bad', 'claimed:bad', 'failed:bad']);
    expect(summary.at(-1)).toBe('closed');
    expect(w.counters).toMatchObject({ claimed: 3, completed: 1, retried: 1, failed: 1, inFlight: 0 });
  });
});

describe('on a fresh server', () => {
  it('the first suspension works: the worker installs waitpoint secrets at start', async () => {
    const server = await startServer();
    const redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
    const client = FlowFabricClient.fromIoredis(redis, { partitions: { numFlowPartitions: 4, numBudgetPartitions: 2, numQuotaPartitions: 2 } });
    const w = new Worker({ client, lanes: 'fresh', claimPath: 'direct', idleBackoff: { minMs: 10, maxMs: 50 }, handler: async (task: Task) => {
      if (task.attemptKind === 'resumed') return 'resumed';
      await task.suspend({ signals: ['go'] });
    } });
    try {
      await client.ensureLibrary();
      const { executionId } = await submitExecution(client, { lane: 'fresh', kind: 'k' });
      await w.start();
      for (let i = 0; i < 100 && (await getExecution(client, executionId))?.publicState !== 'suspended'; i++) await sleep(20);
      await signalExecution(client, executionId, { name: 'go' });
      expect(await waitForOutcome(client, executionId, { timeoutMs: 5000 })).toMatchObject({ publicState: 'completed', result: '"resumed"' });
      expect(w.counters.errors).toBe(0);
    } finally {
      await w.close({ timeoutMs: 1000 });
      redis.disconnect();
      await server.stop();
    }
  });
});
