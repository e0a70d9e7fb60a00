// The transport with both client libraries it supports, and the observability hooks.
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Valkey } from 'iovalkey';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { completeExecution } from '../generated/execution.js';
import { version } from '../generated/version.js';
import { FlowFabricClient, type CallEvent } from '../runtime/client.js';
import { ScriptError } from '../runtime/errors.js';
import { openTelemetryHook } from '../runtime/otel.js';
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
