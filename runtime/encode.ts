// Encoders for ARGV slots. Generated request builders call one per slot, so every encoding
// rule (how an integer, a flag, an optional value or JSON is written) lives here once, and
// bad values are refused with an ArgumentError before anything is sent.
import { ArgumentError } from './errors.js';
import type { PartitionConfig } from './partition.js';
import type { FcallRequest } from './transport.js';

/**
 * A generated request builder. Any request is built the same way, `buildX(args, partitions)`;
 * a builder whose keys do not depend on the partition counts just does not declare them.
 */
export type RequestBuilder<A> = (args: A, partitions: PartitionConfig) => FcallRequest;

/** The builder of a function that takes no arguments. */
export type ArglessRequestBuilder = (partitions: PartitionConfig) => FcallRequest;

export function encodeText(fn: string, name: string, value: unknown, options?: TextRules): string {
  if (typeof value !== 'string') throw new ArgumentError(fn, name, `expected a string, got ${describe(value)}`);
  if (options?.nonEmpty && value.length === 0) throw new ArgumentError(fn, name, 'must not be empty');
  if (options?.maxBytes !== undefined && Buffer.byteLength(value) > options.maxBytes) {
    throw new ArgumentError(fn, name, `longer than ${options.maxBytes} bytes`);
  }
  if (options?.keySafe && (value.includes('{') || value.includes('}'))) {
    // A brace inside a key would change the key's hash tag and so its cluster slot.
    throw new ArgumentError(fn, name, "must not contain '{' or '}'");
  }
  return value;
}

export interface TextRules {
  readonly nonEmpty?: boolean;
  readonly maxBytes?: number;
  readonly keySafe?: boolean;
}

export function encodeInteger(fn: string, name: string, value: unknown, min?: number, max?: number): string {
  return String(checkInteger(fn, name, value, min, max));
}

/** Checks an integer argument that the builder also needs as a number (for a key or another default). */
export function checkInteger(fn: string, name: string, value: unknown, min?: number, max?: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw new ArgumentError(fn, name, `expected a safe integer, got ${describe(value)}`);
  }
  if (min !== undefined && value < min) throw new ArgumentError(fn, name, `must be >= ${min}, got ${value}`);
  if (max !== undefined && value > max) throw new ArgumentError(fn, name, `must be <= ${max}, got ${value}`);
  return value;
}

export function encodeFlag(fn: string, name: string, value: unknown): string {
  if (typeof value !== 'boolean') throw new ArgumentError(fn, name, `expected a boolean, got ${describe(value)}`);
  return value ? '1' : '';
}

/**
 * JSON text of a value. `object`: the value must be an object (not an array, null or a
 * string: a JSON text passed as a string would be sent as a JSON string, which the library
 * refuses); the text is the same JSON.stringify gives either way.
 */
export function encodeJson(fn: string, name: string, value: unknown, object = false): string {
  if (object && (typeof value !== 'object' || value === null || Array.isArray(value))) {
    const hint = typeof value === 'string' ? ' (pass the object itself; the wrapper serialises it)' : '';
    throw new ArgumentError(fn, name, `expected an object, got ${describe(value)}${hint}`);
  }
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw new ArgumentError(fn, name, `cannot be serialised as JSON: ${(error as Error).message}`);
  }
  if (text === undefined) throw new ArgumentError(fn, name, 'cannot be serialised as JSON');
  return text;
}

/** Validates a value with an id parser and sends the parser's canonical form. */
export function encodeId<T extends string>(fn: string, name: string, value: unknown, parse: (text: string) => T): T {
  if (typeof value !== 'string') throw new ArgumentError(fn, name, `expected a string id, got ${describe(value)}`);
  try {
    return parse(value);
  } catch (error) {
    throw new ArgumentError(fn, name, error instanceof Error ? error.message : String(error));
  }
}

export function encodeEnum<const V extends string>(fn: string, name: string, value: unknown, values: readonly V[]): V {
  if (typeof value !== 'string' || !(values as readonly string[]).includes(value)) {
    throw new ArgumentError(fn, name, `expected one of ${values.join(' | ')}, got ${describe(value)}`);
  }
  return value as V;
}

/** Lists and repeated groups must be real arrays; their elements are checked one by one. */
export function expectArray(fn: string, name: string, value: unknown, maxItems?: number): readonly unknown[] {
  if (!Array.isArray(value)) throw new ArgumentError(fn, name, `expected an array, got ${describe(value)}`);
  if (maxItems !== undefined && value.length > maxItems) {
    throw new ArgumentError(fn, name, `has ${value.length} items, at most ${maxItems} allowed`);
  }
  return value;
}

/** The arguments object itself must be an object. */
export function expectArgs(fn: string, value: unknown): void {
  if (typeof value !== 'object' || value === null) throw new ArgumentError(fn, 'args', `expected an object, got ${describe(value)}`);
}

/** Two-thirds of a lease TTL, the reference's default renewal point. */
export function twoThirds(value: number): number {
  return Math.floor((value * 2) / 3);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  return typeof value;
}

/** Keys of one call must share one hash tag; an id from another partition would CROSSSLOT. */
export function requireSameTag(fn: string, name: string, actual: string, expected: string): void {
  if (actual !== expected) throw new ArgumentError(fn, name, `is on partition ${actual}, but this call's keys are on ${expected}`);
}

const CAPS_MAX_TOKENS = 256;
const CAPS_MAX_BYTES = 4096;

/**
 * A worker's capability set as the engine wants it: tokens without commas, whitespace or
 * control characters, sorted and de-duplicated, joined with commas, within 256 tokens and
 * 4096 bytes.
 */
export function encodeCapabilities(fn: string, name: string, value: unknown): string {
  const list = expectArray(fn, name, value);
  const tokens = new Set<string>();
  for (const token of list) {
    if (typeof token !== 'string' || token.length === 0) throw new ArgumentError(fn, name, 'capabilities must be non-empty strings');
    // Bytes <= 0x20 and 0x7f are refused by the engine; UTF-8 above 0x7f is allowed.
    if (/[\u0000-\u0020\u007f,]/.test(token)) throw new ArgumentError(fn, name, `capability ${JSON.stringify(token)} contains a comma, whitespace or a control character`);
    tokens.add(token);
  }
  if (tokens.size > CAPS_MAX_TOKENS) throw new ArgumentError(fn, name, `more than ${CAPS_MAX_TOKENS} capabilities`);
  const csv = [...tokens].sort(compareBytes).join(',');
  if (Buffer.byteLength(csv) > CAPS_MAX_BYTES) throw new ArgumentError(fn, name, `capability list longer than ${CAPS_MAX_BYTES} bytes`);
  return csv;
}

/** Byte-order comparison, as Lua compares strings. */
function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** A repeated group: an array whose every element is an object of named members. */
export function expectObjects(fn: string, name: string, value: unknown, maxItems?: number): readonly Record<string, unknown>[] {
  const list = expectArray(fn, name, value, maxItems);
  list.forEach((item, index) => {
    if (typeof item !== 'object' || item === null) throw new ArgumentError(fn, `${name}[${index}]`, `expected an object, got ${describe(item)}`);
  });
  return list as readonly Record<string, unknown>[];
}
