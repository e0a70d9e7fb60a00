import { describe, expect, it } from 'vitest';
import { completeExecution } from '../generated/execution.js';
import { ExecKeys } from '../generated/keys.js';
import { revokeLease } from '../generated/lease.js';
import { appendFrame, buildAppendFrame, buildReadAttemptStream, readAttemptStream, type AppendFrameArgs } from '../generated/stream.js';
import { ArgumentError, ScriptError } from '../runtime/errors.js';
import { newLeaseId } from '../runtime/ids.js';
import { DEFAULT_PARTITION_CONFIG } from '../runtime/partition.js';
import { useServer } from './support/client.js';
import { newExecutionId } from './support/ids.js';
import { checkExecutionInvariants } from './support/invariants.js';
import { createClaimed, createWaiting, type Claimed } from './support/lifecycle.js';
import { fcallPatched, keyStates, sleep } from './support/raw.js';

const P = DEFAULT_PARTITION_CONFIG;

async function failure(promise: Promise<unknown>): Promise<ScriptError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ScriptError);
  return error as ScriptError;
}

function frame(c: Claimed, overrides: Partial<AppendFrameArgs> = {}): AppendFrameArgs {
  return { executionId: c.executionId, attemptIndex: c.lease.attemptIndex, leaseId: c.lease.leaseId, leaseEpoch: c.lease.leaseEpoch, attemptId: c.lease.attemptId, frameType: 'token', payload: 'p', ...overrides };
}

function streamKeys(c: Claimed, attemptIndex = 0): string[] {
  const exec = new ExecKeys(c.executionId);
  return [exec.core(), exec.stream(attemptIndex), exec.streamMeta(attemptIndex)];
}

describe('ff_append_frame', () => {
  const { client, redis } = useServer();

  it('creates the metadata on the first append and counts every append', async () => {
    const c = await createClaimed(client);
    const exec = new ExecKeys(c.executionId);
    const first = await appendFrame(client, frame(c, { payload: 'héllo', ts: 1234 }));
    expect(first).toEqual({ status: 'OK', entryId: expect.stringMatching(/^\d+-\d+$/), frameCount: 1 });
    const meta = await redis.hgetall(exec.streamMeta(0));
    expect(meta).toEqual({
      stream_id: `${c.executionId}:0`,
      execution_id: c.executionId,
      attempt_id: c.lease.attemptId,
      attempt_index: '0',
      created_at: meta.last_frame_at,
      closed_at: '',
      closed_reason: '',
      durability_mode: 'durable_full',
      retention_maxlen: '0',
      last_sequence: first.entryId,
      frame_count: '1',
      total_bytes: '6',
      last_frame_at: expect.stringMatching(/^\d+$/),
    });
    const second = await appendFrame(client, frame(c, { frameType: 'log', payload: 'abc', encoding: 'json', source: 'system', correlationId: 'corr-1' }));
    expect(second.frameCount).toBe(2);
    expect(await redis.hgetall(exec.streamMeta(0))).toMatchObject({ frame_count: '2', total_bytes: '9', last_sequence: second.entryId, created_at: meta.created_at });
    const entries = await redis.xrange(exec.stream(0), '-', '+');
    expect(entries).toEqual([
      [first.entryId, ['frame_type', 'token', 'ts', '1234', 'payload', 'héllo', 'encoding', 'utf8', 'source', 'worker']],
      [second.entryId, ['frame_type', 'log', 'ts', expect.stringMatching(/^\d+$/), 'payload', 'abc', 'encoding', 'json', 'source', 'system', 'correlation_id', 'corr-1']],
    ]);
    // Without a producer timestamp the frame carries the server time of the append.
    expect(entries[1]![1][3]).toBe(await redis.hget(exec.streamMeta(0), 'last_frame_at'));
    // Appending leaves the execution itself alone.
    expect(await checkExecutionInvariants(redis, c.executionId)).toEqual([]);
  });

  it('keeps explicit empty encoding and source', async () => {
    const c = await createClaimed(client);
    const { entryId } = await appendFrame(client, frame(c, { encoding: '', source: '' }));
    const [[, fields]] = (await redis.xrange(new ExecKeys(c.executionId).stream(0), entryId, entryId)) as [[string, string[]]];
    expect(fields).toEqual(['frame_type', 'token', 'ts', expect.any(String), 'payload', 'p', 'encoding', '', 'source', '']);
  });

  it('trims exactly to retention_maxlen while frame_count keeps the lifetime count', async () => {
    const c = await createClaimed(client);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await appendFrame(client, frame(c, { payload: `f${i}`, retentionMaxlen: 2 }))).entryId);
    const exec = new ExecKeys(c.executionId);
    expect((await redis.xrange(exec.stream(0), '-', '+')).map(([id]) => id)).toEqual(ids.slice(2));
    expect(await redis.hgetall(exec.streamMeta(0))).toMatchObject({ frame_count: '4', retention_maxlen: '2', total_bytes: '8' });
  });

  it('enforces the payload ceiling in bytes, 65536 by default, writing nothing', async () => {
    const c = await createClaimed(client);
    const before = await keyStates(redis, streamKeys(c));
    expect((await failure(appendFrame(client, frame(c, { payload: 'x'.repeat(65537) })))).code).toBe('retention_limit_exceeded');
    expect((await failure(appendFrame(client, frame(c, { payload: 'é'.repeat(6), maxPayloadBytes: 11 })))).code).toBe('retention_limit_exceeded');
    expect((await failure(appendFrame(client, frame(c, { payload: 'a', maxPayloadBytes: 0 })))).code).toBe('retention_limit_exceeded');
    expect(await keyStates(redis, streamKeys(c))).toEqual(before);
    await expect(appendFrame(client, frame(c, { payload: 'x'.repeat(65536) }))).resolves.toMatchObject({ frameCount: 1 });
    await expect(appendFrame(client, frame(c, { payload: 'é'.repeat(6), maxPayloadBytes: 12 }))).resolves.toMatchObject({ frameCount: 2 });
    await expect(appendFrame(client, frame(c, { payload: '', maxPayloadBytes: 0 }))).resolves.toMatchObject({ frameCount: 3 });
  });

  it('answers stream_closed for an execution that is not active, or missing', async () => {
    const waiting = await createWaiting(client);
    const missingId = newExecutionId();
    for (const executionId of [waiting.executionId, missingId]) {
      const args = { executionId, attemptIndex: 0, leaseId: newLeaseId(), leaseEpoch: 1, frameType: 'token' };
      expect((await failure(appendFrame(client, args))).code).toBe('stream_closed');
      expect(await redis.exists(new ExecKeys(executionId).streamMeta(0))).toBe(0);
    }
  });

  it('refuses appends once the attempt completed (stream closed)', async () => {
    const c = await createClaimed(client);
    await appendFrame(client, frame(c));
    await completeExecution(client, { executionId: c.executionId, laneId: c.laneId, workerInstanceId: c.workerInstanceId, ...c.lease });
    expect(await redis.hgetall(new ExecKeys(c.executionId).streamMeta(0))).toMatchObject({ closed_reason: 'attempt_success' });
    const before = await keyStates(redis, streamKeys(c));
    expect((await failure(appendFrame(client, frame(c)))).code).toBe('stream_closed');
    expect(await keyStates(redis, streamKeys(c))).toEqual(before);
  });

  it('answers stream_closed when the meta is closed while the lease is still live', async () => {
    const c = await createClaimed(client);
    await appendFrame(client, frame(c));
    await redis.hset(new ExecKeys(c.executionId).streamMeta(0), 'closed_at', '1', 'closed_reason', 'test');
    const before = await keyStates(redis, streamKeys(c));
    expect((await failure(appendFrame(client, frame(c)))).code).toBe('stream_closed');
    expect(await keyStates(redis, streamKeys(c))).toEqual(before);
  });

  it.each<[string, Partial<AppendFrameArgs>]>([
    ['lease id', { leaseId: newLeaseId() }],
    ['lease epoch', { leaseEpoch: 7 }],
    ['attempt index', { attemptIndex: 1 }],
  ])('answers stale_owner_cannot_append for another %s, writing nothing', async (_what, override) => {
    const c = await createClaimed(client);
    const attemptIndex = override.attemptIndex ?? 0;
    const before = await keyStates(redis, streamKeys(c, attemptIndex));
    expect((await failure(appendFrame(client, frame(c, override)))).code).toBe('stale_owner_cannot_append');
    expect(await keyStates(redis, streamKeys(c, attemptIndex))).toEqual(before);
  });

  it('answers stale_owner_cannot_append for a lapsed lease without marking it, and for a revoked one', async () => {
    const lapsed = await createClaimed(client, {}, { leaseTtlMs: 50 });
    await sleep(80);
    expect((await failure(appendFrame(client, frame(lapsed)))).code).toBe('stale_owner_cannot_append');
    expect(await redis.hget(new ExecKeys(lapsed.executionId).core(), 'ownership_state')).toBe('leased');
    expect(await redis.exists(new ExecKeys(lapsed.executionId).streamMeta(0))).toBe(0);

    const revoked = await createClaimed(client);
    await revokeLease(client, { executionId: revoked.executionId, workerInstanceId: revoked.workerInstanceId });
    expect((await failure(appendFrame(client, frame(revoked)))).code).toBe('stale_owner_cannot_append');
  });

  it('answers stale_owner_cannot_append when lease_expires_at is empty (deviation: runtime error in the reference)', async () => {
    const c = await createClaimed(client);
    await redis.hset(new ExecKeys(c.executionId).core(), 'lease_expires_at', '');
    expect((await failure(appendFrame(client, frame(c)))).code).toBe('stale_owner_cannot_append');
  });

  it('answers malformed ARGV and mismatched keys with invalid_input, writing nothing (deviation)', async () => {
    const c = await createClaimed(client);
    const request = buildAppendFrame(frame(c), P);
    const before = await keyStates(redis, streamKeys(c));
    const cases: Record<number, string | null>[] = [
      { 0: '' }, { 0: newExecutionId() },
      { 1: 'x' }, { 1: '0.5' }, { 1: '1' }, { 1: '-1' },
      { 5: 'now' }, { 5: '1.5' },
      { 10: 'x' }, { 10: '-1' }, { 10: '2.5' }, { 10: '4294967296' },
      { 12: 'x' }, { 12: '-1' }, { 12: '1e3' },
    ];
    for (const patch of cases) {
      expect(await fcallPatched(redis, request, patch), JSON.stringify(patch)).toEqual([0, 'invalid_input', expect.any(String)]);
    }
    // Keys of another attempt than ARGV names.
    const exec = new ExecKeys(c.executionId);
    const otherKeys = [exec.core(), exec.stream(1), exec.streamMeta(1)];
    expect(await fcallPatched(redis, request, {}, otherKeys)).toEqual([0, 'invalid_input', 'stream keys do not match execution_id and attempt_index']);
    expect(await keyStates(redis, streamKeys(c))).toEqual(before);
    expect(await redis.exists(exec.stream(1), exec.streamMeta(1))).toBe(0);
  });

  it('treats empty optional numbers as absent', async () => {
    const c = await createClaimed(client);
    const request = buildAppendFrame(frame(c), P);
    const reply = await fcallPatched(redis, request, { 5: '', 10: '', 12: '' });
    expect(reply).toEqual([1, 'OK', expect.any(String), '1']);
  });

  it('refuses out-of-range numbers before the round trip', () => {
    const c = { executionId: newExecutionId(), attemptIndex: 0, leaseId: newLeaseId(), leaseEpoch: 1, frameType: 't' };
    expect(() => buildAppendFrame({ ...c, retentionMaxlen: -1 }, P)).toThrow(ArgumentError);
    expect(() => buildAppendFrame({ ...c, maxPayloadBytes: 2 ** 32 }, P)).toThrow(ArgumentError);
    expect(() => buildAppendFrame({ ...c, ts: 1.5 }, P)).toThrow(ArgumentError);
  });
});

describe('ff_read_attempt_stream', () => {
  const { client, redis } = useServer();

  async function withFrames(n: number): Promise<{ c: Claimed; ids: string[] }> {
    const c = await createClaimed(client);
    const ids: string[] = [];
    for (let i = 0; i < n; i++) ids.push((await appendFrame(client, frame(c, { payload: `f${i}` }))).entryId);
    return { c, ids };
  }

  it('reads the frames with their fields, and no markers while open', async () => {
    const { c, ids } = await withFrames(3);
    const result = await readAttemptStream(client, { executionId: c.executionId, attemptIndex: 0, countLimit: 10 });
    expect(result).toEqual({
      status: 'OK',
      entries: ids.map((id, i) => ({ id, fields: { frame_type: 'token', ts: expect.any(String), payload: `f${i}`, encoding: 'utf8', source: 'worker' } })),
    });
  });

  it('honours count and bounds, and pages with an exclusive start', async () => {
    const { c, ids } = await withFrames(5);
    const base = { executionId: c.executionId, attemptIndex: 0 };
    const page1 = await readAttemptStream(client, { ...base, countLimit: 2 });
    expect(page1.entries.map((e) => e.id)).toEqual(ids.slice(0, 2));
    const page2 = await readAttemptStream(client, { ...base, fromId: `(${page1.entries[1]!.id}`, countLimit: 2 });
    expect(page2.entries.map((e) => e.id)).toEqual(ids.slice(2, 4));
    const inclusive = await readAttemptStream(client, { ...base, fromId: ids[1]!, toId: ids[3]!, countLimit: 10 });
    expect(inclusive.entries.map((e) => e.id)).toEqual(ids.slice(1, 4));
    const max = await readAttemptStream(client, { ...base, countLimit: 10_000 });
    expect(max.entries).toHaveLength(5);
  });

  it('reports the close markers once the attempt completed', async () => {
    const { c } = await withFrames(1);
    await completeExecution(client, { executionId: c.executionId, laneId: c.laneId, workerInstanceId: c.workerInstanceId, ...c.lease });
    const result = await readAttemptStream(client, { executionId: c.executionId, attemptIndex: 0, countLimit: 10 });
    const closedAt = Number(await redis.hget(new ExecKeys(c.executionId).streamMeta(0), 'closed_at'));
    expect(result).toMatchObject({ closedAt, closedReason: 'attempt_success' });
    expect(result.entries).toHaveLength(1);
  });

  it('reads a never-written stream as no frames and no markers', async () => {
    await expect(readAttemptStream(client, { executionId: newExecutionId(), attemptIndex: 3, countLimit: 1 })).resolves.toEqual({ status: 'OK', entries: [] });
  });

  it('is read-only: sent with FCALL_RO, and plain FCALL works too', async () => {
    const { c } = await withFrames(2);
    const request = buildReadAttemptStream({ executionId: c.executionId, attemptIndex: 0, countLimit: 5 }, P);
    expect(request.readOnly).toBe(true);
    const viaFcall = await redis.call('FCALL', request.fn, request.keys.length, ...request.keys, ...request.argv);
    const viaRo = await redis.call('FCALL_RO', request.fn, request.keys.length, ...request.keys, ...request.argv);
    expect(viaRo).toEqual(viaFcall);
    expect(viaFcall).toEqual([1, 'OK', expect.any(Array), '', '']);
  });

  it('checks count_limit bounds: 1..10000, integers only', async () => {
    const base = { executionId: newExecutionId(), attemptIndex: 0 };
    expect(() => buildReadAttemptStream({ ...base, countLimit: 0 }, P)).toThrow(ArgumentError);
    expect(() => buildReadAttemptStream({ ...base, countLimit: 10_001 }, P)).toThrow(ArgumentError);
    const request = buildReadAttemptStream({ ...base, countLimit: 1 }, P);
    const cases: [string | null, string][] = [
      ['0', 'count_limit must be >= 1'],
      ['-5', 'count_limit must be >= 1'],
      ['x', 'count_limit must be >= 1'],
      ['', 'count_limit must be >= 1'],
      [null, 'count_limit must be >= 1'],
      ['10001', 'count_limit_exceeds_hard_cap'],
      ['1.5', 'count_limit must be an integer, got: 1.5'],
    ];
    for (const [value, detail] of cases) {
      expect(await fcallPatched(redis, request, { 2: value }), String(value)).toEqual([0, 'invalid_input', detail]);
    }
  });

  it('answers malformed ids with invalid_input (deviation: a runtime error in the reference)', async () => {
    const request = buildReadAttemptStream({ executionId: newExecutionId(), attemptIndex: 0, countLimit: 1 }, P);
    const cases: Record<number, string>[] = [{ 0: 'abc' }, { 0: '1-x' }, { 1: '((5' }, { 0: '99999999999999999999999-0' }, { 0: '(18446744073709551615-18446744073709551615' }];
    for (const patch of cases) {
      expect(await fcallPatched(redis, request, patch), JSON.stringify(patch)).toEqual([0, 'invalid_input', expect.any(String)]);
    }
    // Empty bounds mean the whole stream.
    expect(await fcallPatched(redis, request, { 0: '', 1: '' })).toEqual([1, 'OK', [], '', '']);
  });
});
