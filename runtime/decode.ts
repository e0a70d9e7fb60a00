// Typed readers for reply fields. Each names the function and the field when a value does
// not fit, so a reply that drifted from its spec fails loudly and precisely.
import { ReplyParseError } from './errors.js';
import { replyText } from './reply.js';

export function fieldText(fn: string, field: string, fields: readonly unknown[], index: number): string {
  if (index >= fields.length) throw new ReplyParseError(fn, field, `missing (reply has ${fields.length} fields)`);
  const text = replyText(fields[index]);
  if (text === undefined) throw new ReplyParseError(fn, field, 'not a scalar');
  return text;
}

const INTEGER = /^-?(0|[1-9][0-9]*)$/;

export function textToInteger(fn: string, field: string, text: string): number {
  if (!INTEGER.test(text)) throw new ReplyParseError(fn, field, `not an integer: ${JSON.stringify(text)}`);
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new ReplyParseError(fn, field, `integer out of range: ${text}`);
  return value;
}

export function fieldInteger(fn: string, field: string, fields: readonly unknown[], index: number): number {
  const raw = fields[index];
  if (typeof raw === 'number' && Number.isSafeInteger(raw)) return raw;
  return textToInteger(fn, field, fieldText(fn, field, fields, index));
}

/** A field where the empty string means "not set". */
export function fieldOptional<T>(
  fn: string,
  field: string,
  fields: readonly unknown[],
  index: number,
  read: (fn: string, field: string, fields: readonly unknown[], index: number) => T,
): T | undefined {
  if (index >= fields.length) return undefined;
  const raw = fields[index];
  if (raw === null || raw === undefined || replyText(raw) === '') return undefined;
  return read(fn, field, fields, index);
}

export function fieldEnum<const V extends string>(
  fn: string,
  field: string,
  fields: readonly unknown[],
  index: number,
  values: readonly V[],
): V {
  const text = fieldText(fn, field, fields, index);
  if (!(values as readonly string[]).includes(text)) {
    throw new ReplyParseError(fn, field, `unexpected value ${JSON.stringify(text)} (expected ${values.join(' | ')})`);
  }
  return text as V;
}

export function fieldJson(fn: string, field: string, fields: readonly unknown[], index: number): unknown {
  const text = fieldText(fn, field, fields, index);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ReplyParseError(fn, field, 'not valid JSON');
  }
}

/** A field parsed by an id parser; the parser's own error becomes a ReplyParseError. */
export function fieldParsed<T>(
  fn: string,
  field: string,
  fields: readonly unknown[],
  index: number,
  parse: (text: string) => T,
): T {
  const text = fieldText(fn, field, fields, index);
  try {
    return parse(text);
  } catch (error) {
    throw new ReplyParseError(fn, field, error instanceof Error ? error.message : String(error));
  }
}

/** One entry of a stream read: its id and its field/value pairs. */
export interface StreamEntry {
  readonly id: string;
  readonly fields: Readonly<Record<string, string>>;
}

/** Reads an XRANGE-shaped array `[[id, [f, v, …]], …]` (RESP3 maps accepted for the pairs). */
export function fieldStreamEntries(fn: string, field: string, fields: readonly unknown[], index: number): StreamEntry[] {
  const raw = fields[index];
  if (!Array.isArray(raw)) throw new ReplyParseError(fn, field, 'expected an array of stream entries');
  return raw.map((entry: unknown, position) => {
    if (!Array.isArray(entry) || entry.length !== 2) {
      throw new ReplyParseError(fn, `${field}[${position}]`, 'expected [id, fields]');
    }
    const id = replyText(entry[0]);
    if (id === undefined) throw new ReplyParseError(fn, `${field}[${position}].id`, 'not text');
    return { id, fields: pairsToRecord(fn, `${field}[${position}]`, entry[1]) };
  });
}

function pairsToRecord(fn: string, field: string, raw: unknown): Record<string, string> {
  const record: Record<string, string> = {};
  if (raw instanceof Map) {
    for (const [key, value] of raw) record[replyText(key) ?? ''] = replyText(value) ?? '';
    return record;
  }
  if (!Array.isArray(raw) || raw.length % 2 !== 0) throw new ReplyParseError(fn, field, 'expected field/value pairs');
  for (let i = 0; i < raw.length; i += 2) record[replyText(raw[i]) ?? ''] = replyText(raw[i + 1]) ?? '';
  return record;
}

/** The reply of a function that answers with a bare string instead of an envelope. */
export function bareText(fn: string, reply: unknown): string {
  const text = replyText(reply);
  if (text === undefined) throw new ReplyParseError(fn, 'reply', 'expected a bare string');
  return text;
}

/** The signature every field reader shares, so optional, list and group readers compose. */
export type FieldReader<T> = (fn: string, field: string, fields: readonly unknown[], index: number) => T;

export function parsedReader<T>(parse: (text: string) => T): FieldReader<T> {
  return (fn, field, fields, index) => fieldParsed(fn, field, fields, index, parse);
}

export function enumReader<const V extends string>(values: readonly V[]): FieldReader<V> {
  return (fn, field, fields, index) => fieldEnum(fn, field, fields, index, values);
}

export function fieldFlag(fn: string, field: string, fields: readonly unknown[], index: number): boolean {
  const text = fieldText(fn, field, fields, index);
  if (text !== '1' && text !== '0' && text !== '') throw new ReplyParseError(fn, field, `not a flag: ${JSON.stringify(text)}`);
  return text === '1';
}

/** Reads every remaining field from `start` with one reader. */
export function readList<T>(fn: string, field: string, fields: readonly unknown[], start: number, read: FieldReader<T>): T[] {
  const out: T[] = [];
  for (let i = start; i < fields.length; i++) out.push(read(fn, `${field}[${i - start}]`, fields, i));
  return out;
}

/** Reads `count` groups of `width` fields from `start` (all remaining ones when count is undefined). */
export function readGroups<T>(
  fn: string,
  field: string,
  fields: readonly unknown[],
  start: number,
  width: number,
  count: number | undefined,
  read: (at: number, label: string) => T,
): T[] {
  const available = Math.floor((fields.length - start) / width);
  const total = count ?? available;
  if (total > available || (count === undefined && (fields.length - start) % width !== 0)) {
    throw new ReplyParseError(fn, field, `expected ${count ?? 'whole'} groups of ${width} fields, found ${fields.length - start} fields`);
  }
  const out: T[] = [];
  for (let i = 0; i < total; i++) out.push(read(start + i * width, `${field}[${i}]`));
  return out;
}
