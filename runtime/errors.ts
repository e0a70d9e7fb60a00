// Every error this library throws is a FlowFabricError. Subclasses say where it came from:
// the engine's structured reply (ScriptError), a reply we could not read (ReplyParseError),
// an argument refused before the round trip (ArgumentError), the connection (TransportError)
// or the library's presence on the server (LibraryError).
import { ERROR_CATALOGUE, type ErrorClass, type ErrorCode } from '../contract/errors.js';

export type { ErrorClass, ErrorCode };

export abstract class FlowFabricError extends Error {
  /** How a caller should react: the engine's error classes, shared by every subclass. */
  abstract readonly errorClass: ErrorClass;
  get retryable(): boolean {
    return this.errorClass === 'retryable';
  }
}

/** A structured failure reply `[0, code, detail…]` from a library function. */
export class ScriptError<C extends ErrorCode = ErrorCode> extends FlowFabricError {
  override readonly name = 'ScriptError';
  readonly errorClass: ErrorClass;
  constructor(
    readonly functionName: string,
    readonly code: C,
    /** Every reply field after the code, as text (e.g. terminal_outcome and epoch for execution_not_active). */
    readonly details: readonly string[],
  ) {
    super(`${functionName}: ${code}${details.length > 0 ? ` (${details.join(', ')})` : ''}`);
    this.errorClass = ERROR_CATALOGUE[code].class;
  }
  /** The first detail field, for the codes whose catalogue entry carries a detail. */
  get detail(): string | undefined {
    return this.details[0];
  }
}

export function isScriptError<C extends ErrorCode>(error: unknown, ...codes: C[]): error is ScriptError<C> {
  return error instanceof ScriptError && (codes.length === 0 || codes.includes(error.code as C));
}

export function isErrorCode(code: string): code is ErrorCode {
  return Object.prototype.hasOwnProperty.call(ERROR_CATALOGUE, code);
}

/** The server replied with something that does not fit the function's declared reply. */
export class ReplyParseError extends FlowFabricError {
  override readonly name = 'ReplyParseError';
  readonly errorClass = 'terminal' as const;
  constructor(
    readonly functionName: string,
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${functionName}: cannot read reply field '${field}': ${reason}`);
  }
}

/** An argument was refused before anything was sent. */
export class ArgumentError extends FlowFabricError {
  override readonly name = 'ArgumentError';
  readonly errorClass = 'terminal' as const;
  constructor(
    readonly functionName: string,
    readonly argument: string,
    readonly reason: string,
  ) {
    super(`${functionName}: invalid argument '${argument}': ${reason}`);
  }
}

/** Stable names for transport failure kinds (the reference's `kind_to_stable_str`). */
export type TransportErrorKind =
  | 'io_error'
  | 'fatal_send'
  | 'fatal_receive'
  | 'try_again'
  | 'busy_loading'
  | 'cluster_down'
  | 'no_script'
  | 'response_error'
  | 'authentication_failed'
  | 'permission_denied'
  | 'moved'
  | 'ask'
  | 'cross_slot'
  | 'master_down'
  | 'read_only'
  | 'exec_abort'
  | 'extension_error'
  | 'client_error'
  | 'timeout'
  | 'unknown';

/** Kinds where the request provably did not run, or the server asked for a retry. */
const RETRYABLE_KINDS: ReadonlySet<TransportErrorKind> = new Set([
  'io_error',
  'fatal_send',
  'try_again',
  'busy_loading',
  'cluster_down',
]);

/** The connection or the server failed the command; `cause` is what the client threw. */
export class TransportError extends FlowFabricError {
  override readonly name = 'TransportError';
  readonly errorClass: ErrorClass;
  constructor(
    readonly kind: TransportErrorKind,
    message: string,
    /** True only when the command is known not to have reached the server. */
    readonly notSent: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.errorClass = RETRYABLE_KINDS.has(kind) ? 'retryable' : 'terminal';
  }
}

export type LibraryErrorKind = 'missing' | 'version_mismatch' | 'compile' | 'load_failed';

/** The function library is absent, of another version, or could not be loaded. */
export class LibraryError extends FlowFabricError {
  override readonly name = 'LibraryError';
  readonly errorClass: ErrorClass;
  constructor(
    readonly kind: LibraryErrorKind,
    message: string,
    readonly expectedVersion?: string,
    readonly actualVersion?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.errorClass = kind === 'missing' || kind === 'version_mismatch' ? 'cooperative' : 'terminal';
  }
}
