import type { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { completeExecution } from '../generated/execution.js';
import { ExecKeys } from '../generated/keys.js';
import { appendFrame } from '../generated/stream.js';
import { ArgumentError, ReplyParseError, TransportError } from '../runtime/errors.js';
import { IoredisTransport } from '../runtime/ioredis.js';
import { parseXreadReply, tailAttemptStream, type StreamFrame, type TailEnd, type TailOptions } from '../operations/stream-tail.js';
import type { Transport } from '../runtime/transport.js';
import { useServer } from './support/client.js';
import { newExecutionId } from './support/ids.js';
import { createClaimed, type Claimed } from './support/lifecycle.js';
import { sleep } from './support/raw.js';

/** A transport that records commands and must never be used. */
function recordingTransport(): { transport: Transport; sent: string[] } {
  const sent: string[] = [];
  const transport: Transport = {
    fcall: () => Promise.reject(new Error('unused')),
    fcallBatch: () => Promise.reject(new Error('unused')),
    command: (name) => {
      sent.push(name);
      return Promise.resolve(null);
    },
    primaries: () => Promise.resolve([]),
  };
  return { transport, sent };
}

/** Runs a tail to its end, collecting frames and the return value. */
async function drain(iterator: AsyncGenerator<StreamFrame, TailEnd, undefined>): Promise<{ frames: StreamFrame[]; end: TailEnd }> {
  const frames: StreamFrame[] = [];
  for (;;) {
    const step = await iterator.next();
    if (step.done) return { frames, end: step.value };
    frames.push(step.value);
  }
}

describe('tailAttemptStream: options', () => {
  const base: TailOptions = { executionId: newExecutionId(), attemptIndex: 0 };

  it.each([
    ['count 0', { count: 0 }],
    ['count above the hard cap', { count: 10_001 }],
    ['fractional count', { count: 1.5 }],
    ['blockMs 0 (would poll without pause)', { blockMs: 0 }],
    ['blockMs above 30000', { blockMs: 30_001 }],
    ['a cursor that is not an entry id', { after: '$' }],
    ['a range bound as cursor', { after: '-' }],
    ['a malformed cursor', { after: '12-ab' }],
    ['a negative attempt index', { attemptIndex: -1 }],
    ['a malformed execution id', { executionId: 'nope' as never }],
  ])('refuses %s before any I/O', (_what, override) => {
    const { transport, sent } = recordingTransport();
    expect(() => tailAttemptStream(transport, { ...base, ...override })).toThrow(ArgumentError);
    expect(sent).toEqual([]);
  });

  it('accepts the bounds themselves', () => {
    const { transport, sent } = recordingTransport();
    expect(() => tailAttemptStream(transport, { ...base, count: 10_000, blockMs: 30_000, after: '0' })).not.toThrow();
    expect(() => tailAttemptStream(transport, { ...base, count: 1, blockMs: 1, after: '1700000000000-5' })).not.toThrow();
    expect(sent).toEqual([]);
  });
});

describe('parseXreadReply', () => {
  const key = 'ff:stream:{fp:1}:{fp:1}:x:0';
  const expected = [
    { id: '1-0', fields: { a: '1', b: '2' } },
    { id: '2-0', fields: { a: '3' } },
  ];

  it('reads nil as no frames', () => {
    expect(parseXreadReply(null, key)).toEqual([]);
  });

  it('reads the RESP2 array form and ignores other streams', () => {
    const reply = [
      ['other', [['9-0', ['z', '9']]]],
      [key, [['1-0', ['a', '1', 'b', '2']], ['2-0', [Buffer.from('a'), Buffer.from('3')]]]],
    ];
    expect(parseXreadReply(reply, key)).toEqual(expected);
    expect(parseXreadReply([['other', []]], key)).toEqual([]);
  });

  it('reads the RESP3 map forms: Map or object, entries as array or map, fields as pairs or map', () => {
    expect(parseXreadReply(new Map([[key, [['1-0', ['a', '1', 'b', '2']], ['2-0', new Map([['a', '3']])]]]]), key)).toEqual(expected);
    expect(parseXreadReply({ [key]: new Map<string, unknown>([['1-0', { a: '1', b: '2' }], ['2-0', ['a', '3']]]) }, key)).toEqual(expected);
    expect(parseXreadReply({ [key]: { '1-0': ['a', '1', 'b', '2'], '2-0': { a: '3' } }, other: {} }, key)).toEqual(expected);
    expect(parseXreadReply(new Map([[Buffer.from(key), null]]), key)).toEqual([]);
    // Flattened by the client (ioredis 6 over RESP3): [key, entries, key, entries].
    expect(parseXreadReply(['other', [['9-0', ['z', '9']]], key, [['1-0', ['a', '1', 'b', '2']], ['2-0', ['a', '3']]]], key)).toEqual(expected);
    expect(parseXreadReply([key, ['1-0', ['a', '1', 'b', '2'], '2-0', ['a', '3']]], key)).toEqual(expected);
  });

  it('refuses shapes it cannot read', () => {
    expect(() => parseXreadReply([[key]], key)).toThrow(ReplyParseError);
    expect(() => parseXreadReply([key], key)).toThrow(ReplyParseError);
    expect(() => parseXreadReply([[key, [['1-0', ['a']]]]], key)).toThrow(ReplyParseError);
    expect(() => parseXreadReply(42, key)).toThrow(ReplyParseError);
  });
});

describe('tailAttemptStream against the server', () => {
  const { client, redis } = useServer();
  const dedicated: Redis[] = [];
  afterAll(() => {
    for (const connection of dedicated) connection.disconnect();
  });

  /** A transport over its own connection: the blocking XREAD must not stall the shared one. */
  function tailTransport(): Transport {
    const connection = redis.duplicate();
    dedicated.push(connection);
    return new IoredisTransport(connection);
  }

  function append(c: Claimed, payload: string) {
    return appendFrame(client, { executionId: c.executionId, attemptIndex: 0, leaseId: c.lease.leaseId, leaseEpoch: c.lease.leaseEpoch, attemptId: c.lease.attemptId, frameType: 'token', payload });
  }

  function complete(c: Claimed) {
    return completeExecution(client, { executionId: c.executionId, laneId: c.laneId, workerInstanceId: c.workerInstanceId, ...c.lease });
  }

  it('yields frames as they are appended and stops once the execution completes', async () => {
    const c = await createClaimed(client);
    const tail = drain(tailAttemptStream(tailTransport(), { executionId: c.executionId, attemptIndex: 0, blockMs: 100, count: 2 }));
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      ids.push((await append(c, `chunk-${i}`)).entryId);
      if (i % 3 === 0) await sleep(20);
    }
    await complete(c);
    const { frames, end } = await tail;
    expect(frames.map((f) => f.id)).toEqual(ids);
    expect(frames.map((f) => f.fields.payload)).toEqual(ids.map((_, i) => `chunk-${i}`));
    expect(frames[0]!.fields).toMatchObject({ frame_type: 'token', encoding: 'utf8', source: 'worker' });
    const meta = await redis.hgetall(new ExecKeys(c.executionId).streamMeta(0));
    expect(end).toEqual({ closedAt: Number(meta.closed_at), closedReason: 'attempt_success' });
  });

  it('on a closed stream, yields everything after the cursor in pages, then stops', async () => {
    const c = await createClaimed(client);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await append(c, `f${i}`)).entryId);
    await complete(c);
    const all = await drain(tailAttemptStream(tailTransport(), { executionId: c.executionId, attemptIndex: 0, blockMs: 50, count: 2 }));
    expect(all.frames.map((f) => f.id)).toEqual(ids);
    expect(all.end.closedReason).toBe('attempt_success');
    const after = await drain(tailAttemptStream(tailTransport(), { executionId: c.executionId, attemptIndex: 0, blockMs: 50, count: 2, after: ids[1]! }));
    expect(after.frames.map((f) => f.id)).toEqual(ids.slice(2));
    const atEnd = await drain(tailAttemptStream(tailTransport(), { executionId: c.executionId, attemptIndex: 0, blockMs: 50, after: ids[4]! }));
    expect(atEnd.frames).toEqual([]);
  });

  it('works with for await, and ends quietly when aborted', async () => {
    const c = await createClaimed(client);
    await append(c, 'first');
    const controller = new AbortController();
    const seen: string[] = [];
    for await (const f of tailAttemptStream(tailTransport(), { executionId: c.executionId, attemptIndex: 0, blockMs: 30_000, signal: controller.signal })) {
      seen.push(f.fields.payload ?? '');
      // The next read blocks (nothing more is appended) until the abort ends the loop.
      setTimeout(() => controller.abort(), 20);
    }
    expect(seen).toEqual(['first']);
  });

  it('ends with a TransportError when a command fails', async () => {
    const transport: Transport = { ...recordingTransport().transport, command: () => Promise.reject(new Error('ERR boom')) };
    const error = await drain(tailAttemptStream(transport, { executionId: newExecutionId(), attemptIndex: 0 })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransportError);
    expect(error).toMatchObject({ kind: 'response_error' });
  });

  it('returns at once when the signal is already aborted', async () => {
    const { transport, sent } = recordingTransport();
    const controller = new AbortController();
    controller.abort();
    const result = await drain(tailAttemptStream(transport, { executionId: newExecutionId(), attemptIndex: 0, signal: controller.signal }));
    expect(result).toEqual({ frames: [], end: {} });
    expect(sent).toEqual([]);
  });
});
