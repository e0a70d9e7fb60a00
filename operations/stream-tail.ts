// Tailing an attempt's output stream (scheduling.md §7.6, model.md §9). Blocking reads are
// not allowed inside library functions, so this is a plain client loop: XREAD BLOCK for new
// frames, then HMGET of the stream meta for the close marker. Once the stream is closed no
// frame can be appended any more, so one last XRANGE from the cursor picks up whatever the
// last XREAD did not return, and the iteration ends.
import { ExecKeys } from '../generated/keys.js';
import { classifyWith } from '../runtime/classify.js';
import type { StreamEntry } from '../runtime/decode.js';
import { ArgumentError, ReplyParseError } from '../runtime/errors.js';
import { parseExecutionId, type ExecutionId } from '../runtime/ids.js';
import { replyText } from '../runtime/reply.js';
import type { Transport } from '../runtime/transport.js';

/** One frame of an attempt's output stream: its entry id and its fields. */
export type StreamFrame = StreamEntry;

/** Most frames one read may return (the engine's STREAM_READ_HARD_CAP). */
export const STREAM_READ_HARD_CAP = 10_000;
/** Longest block of one XREAD (the engine's MAX_TAIL_BLOCK_MS). */
export const MAX_TAIL_BLOCK_MS = 30_000;

export interface TailOptions {
  readonly executionId: ExecutionId;
  readonly attemptIndex: number;
  /** Exclusive cursor: only frames after this entry id (`<ms>` or `<ms>-<seq>`). Default `0-0`, the whole stream. */
  readonly after?: string;
  /** How long one XREAD waits for new frames, 1..30000 ms. Default 5000. */
  readonly blockMs?: number;
  /** Most frames per read, 1..10000. Default 100. */
  readonly count?: number;
  /**
   * Ends the iteration (without an error) as soon as it is aborted. A blocking XREAD already
   * sent is not interrupted: the connection stays busy until its block time elapses.
   */
  readonly signal?: AbortSignal;
}

/** How a tail ended: the stream's close marker, or nothing when it was aborted. */
export interface TailEnd {
  readonly closedAt?: number;
  readonly closedReason?: string;
}

const FN = 'tailAttemptStream';
const STREAM_ID = /^(0|[1-9][0-9]{0,19})(-(0|[1-9][0-9]{0,19}))?$/;
const DEFAULT_BLOCK_MS = 5000;
const DEFAULT_COUNT = 100;

/**
 * Iterates over an attempt's output frames as they are appended, oldest first, and ends
 * when the stream is closed (the attempt completed, failed, was cancelled, reclaimed or
 * lost its lease), after yielding every frame. Use it with `for await`; the generator's
 * return value ({@link TailEnd}) carries the close marker.
 *
 * A blocking XREAD occupies its connection for up to `blockMs`, and the close of a stream
 * does not wake it (it is a plain HSET), so pass a transport over a **dedicated**
 * connection (e.g. `new IoredisTransport(redis.duplicate())`), not the one other calls
 * share, and expect the end to be noticed up to `blockMs` after the close. On a cluster
 * the connection must reach the primary of the execution's slot.
 *
 * The options are validated before anything is sent: a bad one throws an ArgumentError
 * from this call itself. A failed command ends the iteration with a TransportError; a reply
 * of an unexpected shape with a ReplyParseError.
 */
export function tailAttemptStream(transport: Transport, options: TailOptions): AsyncGenerator<StreamFrame, TailEnd, undefined> {
  const plan = validate(options);
  return run(transport, plan, options.signal);
}

interface Plan {
  readonly streamKey: string;
  readonly metaKey: string;
  readonly after: string;
  readonly blockMs: number;
  readonly count: number;
}

function validate(options: TailOptions): Plan {
  if (typeof options !== 'object' || options === null) throw new ArgumentError(FN, 'options', 'expected an object');
  let executionId: ExecutionId;
  try {
    executionId = parseExecutionId(options.executionId);
  } catch (error) {
    throw new ArgumentError(FN, 'executionId', error instanceof Error ? error.message : String(error));
  }
  const attemptIndex = integerIn('attemptIndex', options.attemptIndex, 0, 4294967295);
  const blockMs = integerIn('blockMs', options.blockMs ?? DEFAULT_BLOCK_MS, 1, MAX_TAIL_BLOCK_MS);
  const count = integerIn('count', options.count ?? DEFAULT_COUNT, 1, STREAM_READ_HARD_CAP);
  const after = options.after ?? '0-0';
  if (typeof after !== 'string' || !STREAM_ID.test(after)) {
    throw new ArgumentError(FN, 'after', `expected a stream entry id <ms> or <ms>-<seq>, got ${JSON.stringify(after)}`);
  }
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw new ArgumentError(FN, 'signal', 'expected an AbortSignal');
  }
  const keys = new ExecKeys(executionId);
  return { streamKey: keys.stream(attemptIndex), metaKey: keys.streamMeta(attemptIndex), after, blockMs, count };
}

function integerIn(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw new ArgumentError(FN, name, `expected an integer, got ${String(value)}`);
  if (value < min || value > max) throw new ArgumentError(FN, name, `must be in ${min}..${max}, got ${value}`);
  return value;
}

const ABORTED = Symbol('aborted');

/** Waits for a command, or for the signal, whichever comes first. */
function untilAborted<T>(pending: Promise<T>, signal: AbortSignal | undefined): Promise<T | typeof ABORTED> {
  if (!signal) return pending;
  if (signal.aborted) {
    // The command was already sent; keep its rejection from going unhandled.
    pending.catch(() => undefined);
    return Promise.resolve(ABORTED);
  }
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      pending.catch(() => undefined);
      resolve(ABORTED);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    pending.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

/** Sends one command; a client failure becomes a TransportError, as for FCALL. */
async function send(transport: Transport, name: string, args: readonly (string | number)[]): Promise<unknown> {
  try {
    return await transport.command(name, args);
  } catch (error) {
    throw classifyWith(transport, error);
  }
}

async function* run(transport: Transport, plan: Plan, signal: AbortSignal | undefined): AsyncGenerator<StreamFrame, TailEnd, undefined> {
  let last = plan.after;
  for (;;) {
    if (signal?.aborted) return {};
    const reply = await untilAborted(
      send(transport, 'XREAD', ['COUNT', plan.count, 'BLOCK', plan.blockMs, 'STREAMS', plan.streamKey, last]),
      signal,
    );
    if (reply === ABORTED) return {};
    for (const frame of parseXreadReply(reply, plan.streamKey)) {
      last = frame.id;
      yield frame;
    }
    if (signal?.aborted) return {};
    const markers = await untilAborted(send(transport, 'HMGET', [plan.metaKey, 'closed_at', 'closed_reason']), signal);
    if (markers === ABORTED) return {};
    const end = parseMarkers(markers);
    if (end === undefined) continue;
    // Closed: nothing can be appended any more, so drain what the XREAD did not return.
    for (;;) {
      const page = await untilAborted(send(transport, 'XRANGE', [plan.streamKey, `(${last}`, '+', 'COUNT', plan.count]), signal);
      if (page === ABORTED) return {};
      const frames = parseEntries(page, 'XRANGE');
      for (const frame of frames) {
        last = frame.id;
        yield frame;
      }
      if (frames.length < plan.count) return end;
    }
  }
}

/** The close marker from `HMGET meta closed_at closed_reason`, or undefined while open. */
function parseMarkers(reply: unknown): TailEnd | undefined {
  if (!Array.isArray(reply)) throw new ReplyParseError(FN, 'HMGET', 'expected an array');
  const closedAtText = replyText(reply[0]);
  if (closedAtText === undefined || closedAtText === '') return undefined;
  const closedAt = Number(closedAtText);
  const closedReason = replyText(reply[1]);
  return {
    ...(Number.isSafeInteger(closedAt) ? { closedAt } : {}),
    ...(closedReason ? { closedReason } : {}),
  };
}

/**
 * Reads an XREAD reply and returns the frames of `streamKey` (entries of other streams are
 * ignored). Accepts nil (nothing new), the RESP2 form `[[key, [[id, [f, v, …]], …]], …]`
 * and the RESP3 form, a map from key to entries, where the entries are an array of
 * `[id, fields]` or a map from id to fields, and fields are flat pairs or a map. A map may
 * arrive as a Map, a plain object or, as ioredis 6 hands it over, flattened into
 * `[key, value, key, value, …]`.
 */
export function parseXreadReply(reply: unknown, streamKey: string): StreamFrame[] {
  if (reply === null || reply === undefined) return [];
  if (Array.isArray(reply)) {
    if (isFlatMap(reply)) {
      for (const [key, entries] of flatPairs(reply, 'XREAD')) {
        if (replyText(key) === streamKey) return parseEntries(entries, 'XREAD');
      }
      return [];
    }
    for (const item of reply) {
      if (!Array.isArray(item) || item.length !== 2) throw new ReplyParseError(FN, 'XREAD', 'expected [stream, entries] pairs');
      if (replyText(item[0]) === streamKey) return parseEntries(item[1], 'XREAD');
    }
    return [];
  }
  for (const [key, entries] of mapEntries(reply, 'XREAD')) {
    if (replyText(key) === streamKey) return parseEntries(entries, 'XREAD');
  }
  return [];
}

function parseEntries(raw: unknown, command: string): StreamFrame[] {
  if (raw === null || raw === undefined) return [];
  const pairs: [unknown, unknown][] = Array.isArray(raw) && isFlatMap(raw)
    ? flatPairs(raw, command)
    : Array.isArray(raw)
    ? raw.map((entry: unknown) => {
        if (!Array.isArray(entry) || entry.length !== 2) throw new ReplyParseError(FN, command, 'expected [id, fields] entries');
        return [entry[0], entry[1]];
      })
    : mapEntries(raw, command);
  return pairs.map(([rawId, rawFields]) => {
    const id = replyText(rawId);
    if (id === undefined) throw new ReplyParseError(FN, command, 'entry id is not text');
    return { id, fields: parseFields(rawFields, command) };
  });
}

function parseFields(raw: unknown, command: string): Record<string, string> {
  const fields: Record<string, string> = {};
  if (raw === null || raw === undefined) return fields;
  const pairs: [unknown, unknown][] = [];
  if (Array.isArray(raw)) {
    if (raw.length % 2 !== 0) throw new ReplyParseError(FN, command, 'odd number of field/value items');
    for (let i = 0; i < raw.length; i += 2) pairs.push([raw[i], raw[i + 1]]);
  } else pairs.push(...mapEntries(raw, command));
  for (const [name, value] of pairs) {
    const key = replyText(name);
    if (key === undefined) throw new ReplyParseError(FN, command, 'field name is not text');
    fields[key] = replyText(value) ?? '';
  }
  return fields;
}

/**
 * A RESP3 map that the client flattened into `[key, value, key, value, …]` (ioredis 6 does
 * this). Told apart from the RESP2 list of `[key, value]` pairs by its scalar first item.
 */
function isFlatMap(raw: readonly unknown[]): boolean {
  return raw.length > 0 && replyText(raw[0]) !== undefined;
}

function flatPairs(raw: readonly unknown[], command: string): [unknown, unknown][] {
  if (raw.length % 2 !== 0) throw new ReplyParseError(FN, command, 'odd number of map items');
  const pairs: [unknown, unknown][] = [];
  for (let i = 0; i < raw.length; i += 2) pairs.push([raw[i], raw[i + 1]]);
  return pairs;
}

/** The entries of a RESP3 map as a client hands it over: a Map or a plain object. */
function mapEntries(raw: unknown, command: string): [unknown, unknown][] {
  if (raw instanceof Map) return [...(raw as Map<unknown, unknown>).entries()];
  if (typeof raw === 'object' && raw !== null && !(raw instanceof Uint8Array)) return Object.entries(raw);
  throw new ReplyParseError(FN, command, 'unexpected reply shape');
}
