// Maps what a client library throws onto TransportError kinds, following the engine's retry
// table: only failures where the command provably never reached the server (or the server
// asked for a retry) are retryable. A lost reply is not: the call may have run.
import { FlowFabricError, TransportError, type TransportErrorKind } from './errors.js';

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

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/** True when a server error says the called function does not exist. */
export function isFunctionMissing(error: unknown): boolean {
  const message = error instanceof Error ? error.message : '';
  return /^ERR Function not found|^NOSCRIPT|No matching function|Function not loaded/i.test(message);
}

export function classifyTransportError(error: unknown): FlowFabricError {
  if (error instanceof FlowFabricError) return error;
  const err = error instanceof Error ? error : new Error(String(error));
  const { kind, notSent } = kindOf(err);
  return new TransportError(kind, err.message, notSent, { cause: error });
}

function kindOf(err: Error): { kind: TransportErrorKind; notSent: boolean } {
  if (err.name === 'ReplyError' || /^[A-Z]+ /.test(err.message)) {
    const prefix = err.message.split(' ', 1)[0] ?? '';
    const kind = PREFIX_KINDS[prefix] ?? 'extension_error';
    // The server refused these before running anything.
    const notSent = kind === 'try_again' || kind === 'busy_loading' || kind === 'cluster_down';
    return { kind, notSent };
  }
  if (err.name === 'MaxRetriesPerRequestError') return { kind: 'fatal_send', notSent: true };
  if (/enableOfflineQueue options is false|Connection is closed before/.test(err.message)) {
    return { kind: 'fatal_send', notSent: true };
  }
  if (err.message === 'Command timed out') return { kind: 'timeout', notSent: false };
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return { kind: 'io_error', notSent: true };
  if (/Connection is closed|ECONNRESET|EPIPE|socket/i.test(err.message)) return { kind: 'fatal_receive', notSent: false };
  return { kind: 'unknown', notSent: false };
}

/** Sends a plain command through a transport, turning client failures into typed errors. */
export async function sendCommand(transport: { command(name: string, args: readonly (string | number)[]): Promise<unknown> }, name: string, args: readonly (string | number)[]): Promise<unknown> {
  try {
    return await transport.command(name, args);
  } catch (error) {
    throw classifyTransportError(error);
  }
}
