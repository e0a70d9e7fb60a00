// The transport is the only thing that talks to the server. Generated wrappers build an
// FcallRequest and hand it to a FunctionCaller (normally FlowFabricClient), which sends it
// through a Transport. Another client library can be plugged in by implementing Transport;
// docs/transports.md says what each method must do.
import type { FlowFabricError } from './errors.js';

/** One function call: the function's name and its KEYS and ARGV, already encoded. */
export interface FcallRequest {
  readonly fn: string;
  readonly keys: readonly string[];
  readonly argv: readonly string[];
  /** Sent with FCALL_RO: the function is registered with the `no-writes` flag. */
  readonly readOnly?: boolean;
}

/** The outcome of one call inside a batch: a raw reply, or the error the client raised. */
export type BatchReply = { readonly ok: true; readonly reply: unknown } | { readonly ok: false; readonly error: unknown };

export interface Transport {
  /** Sends `FCALL fn numkeys keys… argv…` and resolves with the raw reply. */
  fcall(request: FcallRequest): Promise<unknown>;
  /** Sends many calls in one pipeline (not a transaction); replies in order. */
  fcallBatch(requests: readonly FcallRequest[]): Promise<BatchReply[]>;
  /** Sends an arbitrary command (used by the loader and helpers: FUNCTION LOAD, HGET…). */
  command(name: string, args: readonly (string | number)[]): Promise<unknown>;
  /** One transport per primary: itself on a single server, every primary on a cluster. */
  primaries(): Promise<Transport[]>;
  /**
   * Maps what this transport's client threw onto a typed error with the contract's retry
   * class: an error reply by its prefix; a command that provably never reached the server
   * (refused connection, not yet connected, offline queue off) as retryable; a lost reply
   * or a timeout as not (it may have run), naming the server. Without it, the client uses
   * the shared rules of classify.ts, which know only server replies and socket codes.
   */
  classify?(error: unknown, request?: FcallRequest): FlowFabricError;
  /** Where this transport sends commands (`host:port`, or a cluster's seeds), for messages. */
  describe?(): string;
}

/** What generated wrappers need: the partition configuration and a way to send a call. */
export interface FunctionCaller {
  readonly partitions: import('./partition.js').PartitionConfig;
  call<R>(request: FcallRequest, parse: (reply: unknown) => R): Promise<R>;
}
