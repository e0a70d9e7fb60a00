// The rules every client shares for turning a failed command into a TransportError, by the
// engine's retry table: only failures where the command provably never reached the server
// (or the server asked for a retry) are retryable. A lost reply is not: the call may have
// run. What a particular client library throws is read by its transport (`Transport.classify`
// in ioredis.ts, glide.ts); this module knows only what the server and Node's sockets say.
import { FlowFabricError, TransportError, type TransportErrorKind } from './errors.js';
import type { FcallRequest } from './transport.js';

/** The server's error prefixes (the first word of an error reply) and what each means. */
const PREFIX_KINDS: Readonly<Record<string, TransportErrorKind>> = {
  ERR: 'response_error',
  NOSCRIPT: 'no_script',
  LOADING: 'busy_loading',
  TRYAGAIN: 'try_again',
  CLUSTERDOWN: 'cluster_down',
  MOVED: 'moved',
  ASK: 'ask',
  CROSSSLOT: 'cross_slot',
  MASTERDOWN: 'master_down',
  READONLY: 'read_only',
  NOPERM: 'permission_denied',
  NOAUTH: 'authentication_failed',
  WRONGPASS: 'authentication_failed',
  EXECABORT: 'exec_abort',
};

/** Socket errors raised while connecting: nothing was written. */
const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/** True when a server error says the called function does not exist. */
export function isFunctionMissing(error: unknown): boolean {
  const message = error instanceof Error ? error.message : '';
  return /^ERR Function not found|^NOSCRIPT|No matching function|Function not loaded/i.test(message);
}

/** Looks like an error reply: an upper-case prefix word, then text (`ERR …`, `MOVED …`). */
export function looksLikeServerError(message: string): boolean {
  return /^[A-Z]+ /.test(message);
}

/** An error reply from the server, classified by its prefix. The message is the server's own. */
export function serverError(message: string, cause: unknown): TransportError {
  const prefix = message.split(' ', 1)[0] ?? '';
  const kind = PREFIX_KINDS[prefix] ?? 'extension_error';
  // The server refused these before running anything.
  const notSent = kind === 'try_again' || kind === 'busy_loading' || kind === 'cluster_down';
  return new TransportError(kind, message, notSent, { cause });
}

/**
 * A failure of the connection rather than of the command, in a message that says where
 * (`host:port`) and whether the command ran: "never sent" is safe to retry, a lost reply
 * or a timeout is not (the command may have run).
 */
export function connectionError(kind: TransportErrorKind, message: string, notSent: boolean, where: string | undefined, cause: unknown): TransportError {
  const place = where && !message.includes(where) ? ` (${where})` : '';
  const fate = notSent ? 'never sent, safe to retry' : 'the command may have run: check before retrying';
  return new TransportError(kind, `${message}${place} — ${fate}`, notSent, { cause });
}

/** The connect-time socket codes (refused, unknown host, unreachable): never sent. */
export function isConnectFailure(error: Error): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && CONNECT_CODES.has(code);
}

/**
 * The classification of a transport that does not bring its own: error replies by their
 * prefix, connect-time socket errors as never sent, anything else as unknown (may have run).
 */
export function classifyTransportError(error: unknown, where?: string): FlowFabricError {
  if (error instanceof FlowFabricError) return error;
  const err = error instanceof Error ? error : new Error(String(error));
  if (err.name === 'ReplyError' || looksLikeServerError(err.message)) return serverError(err.message, error);
  if (isConnectFailure(err)) return connectionError('io_error', err.message, true, where, error);
  return connectionError('unknown', err.message, false, where, error);
}

/** What can classify a failure: a transport with its own `classify`, or the shared rules. */
interface Classifying {
  classify?(error: unknown, request?: FcallRequest): FlowFabricError;
}

/** The transport's classification of what its client threw, or the shared rules. */
export function classifyWith(transport: object, error: unknown, request?: FcallRequest): FlowFabricError {
  if (error instanceof FlowFabricError) return error;
  const { classify } = transport as Classifying;
  return classify ? classify.call(transport, error, request) : classifyTransportError(error);
}

/** Sends a plain command through a transport, turning client failures into typed errors. */
export async function sendCommand(
  transport: Classifying & { command(name: string, args: readonly (string | number)[]): Promise<unknown> },
  name: string,
  args: readonly (string | number)[],
): Promise<unknown> {
  try {
    return await transport.command(name, args);
  } catch (error) {
    throw classifyWith(transport, error);
  }
}
