// The engine's reply convention, read in one place: `[1, status, field…]` on success and
// `[0, code, detail…]` on failure. Accepts RESP2 and RESP3 shapes (bulk strings arrive as
// string or Buffer, integers as number or bigint) so the per-function parsers never see them.
import { ReplyParseError, ScriptError, isErrorCode } from './errors.js';

/** A successful reply: its status and the positional fields after it, as text where scalar. */
export interface Envelope {
  readonly status: string;
  readonly fields: readonly unknown[];
}

export function replyText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  return undefined;
}

function statusInteger(value: unknown): 0 | 1 | undefined {
  if (value === 1 || value === 1n) return 1;
  if (value === 0 || value === 0n) return 0;
  if (typeof value === 'number' || typeof value === 'bigint') return undefined;
  // Some transports hand integers back as text; accept only the exact forms.
  const text = replyText(value);
  return text === '1' ? 1 : text === '0' ? 0 : undefined;
}

/** A hash as the clients return it (HGETALL, CONFIG GET): a RESP2 flat `[field, value, …]` list, a RESP3 map, or an object; as a record of texts. */
export function hashReply(reply: unknown): Record<string, string> {
  const fields: Record<string, string> = {};
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) fields[replyText(reply[i]) ?? ''] = replyText(reply[i + 1]) ?? '';
  } else if (reply instanceof Map) {
    for (const [key, value] of reply) fields[replyText(key) ?? ''] = replyText(value) ?? '';
  } else if (reply && typeof reply === 'object') {
    for (const [key, value] of Object.entries(reply)) fields[key] = replyText(value) ?? '';
  }
  return fields;
}

/**
 * Reads a standard envelope. Failure replies become a ScriptError; a code the catalogue
 * does not know is a ReplyParseError. A code with an embedded detail (`code:detail`, as
 * `already_member_of_different_flow:<flow_id>`) is split at the first colon.
 */
export function readEnvelope(functionName: string, reply: unknown): Envelope {
  if (!Array.isArray(reply) || reply.length < 2) {
    throw new ReplyParseError(functionName, 'status', 'expected an array of at least two elements');
  }
  const ok = statusInteger(reply[0]);
  const status = replyText(reply[1]);
  if (ok === undefined) throw new ReplyParseError(functionName, 'status', 'first element is not 0 or 1');
  if (status === undefined) throw new ReplyParseError(functionName, 'status', 'status is not text');
  if (ok === 1) return { status, fields: reply.slice(2) };
  throw scriptError(functionName, status, reply.slice(2));
}

/** Reads a reply without the leading integer: `[status, field…]`. */
export function readUntaggedEnvelope(functionName: string, reply: unknown): Envelope {
  if (Array.isArray(reply) && reply.length >= 1 && statusInteger(reply[0]) === 0 && reply.length >= 2) {
    // The untagged functions still report argument errors with the standard failure shape.
    return readEnvelope(functionName, reply);
  }
  if (!Array.isArray(reply) || reply.length < 1) {
    throw new ReplyParseError(functionName, 'status', 'expected a non-empty array');
  }
  const status = replyText(reply[0]);
  if (status === undefined) throw new ReplyParseError(functionName, 'status', 'status is not text');
  return { status, fields: reply.slice(1) };
}

function scriptError(functionName: string, rawCode: string, rest: readonly unknown[]): Error {
  const details = rest.map((value) => replyText(value) ?? '');
  if (isErrorCode(rawCode)) return new ScriptError(functionName, rawCode, details);
  const colon = rawCode.indexOf(':');
  const code = colon > 0 ? rawCode.slice(0, colon) : rawCode;
  if (colon > 0 && isErrorCode(code)) return new ScriptError(functionName, code, [rawCode.slice(colon + 1), ...details]);
  return new ReplyParseError(functionName, 'status', `unknown error code: ${rawCode}`);
}
