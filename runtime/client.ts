// FlowFabricClient: the FunctionCaller that generated wrappers use. It sends a request,
// turns client failures into typed errors, optionally reloads a missing library, parses
// the reply and reports each call to an optional hook.
import { classifyWith, isFunctionMissing } from './classify.js';
import { FlowFabricError, LibraryError, ScriptError, type ErrorCode } from './errors.js';
import { IoredisTransport, type IoredisLike } from './ioredis.js';
import { ensureLibrary, type EnsureLibraryOptions, type LibraryStatus } from './loader.js';
import { DEFAULT_PARTITION_CONFIG, validatePartitionConfig, type PartitionConfig } from './partition.js';
import type { BatchReply, FcallRequest, FunctionCaller, Transport } from './transport.js';

/** What the call hook hears about each FCALL. */
export interface CallEvent {
  readonly fn: string;
  /** When the call was sent, in epoch ms (fractional). */
  readonly startTime: number;
  readonly durationMs: number;
  readonly outcome: 'ok' | 'error' | 'transport_error';
  /** The engine error code, for outcome 'error' with a structured reply. */
  readonly code?: ErrorCode;
  readonly error?: FlowFabricError;
}

export interface ClientOptions {
  /** Partition counts of the deployment (default 256 / 32 / 32). */
  readonly partitions?: PartitionConfig;
  /**
   * When a call finds the library missing (server restarted without persistence, FUNCTION
   * FLUSH), load it and retry the call once. Safe because a missing function never ran.
   */
  readonly autoLoad?: boolean;
  /** Options for loading, when autoLoad or ensureLibrary loads. */
  readonly load?: EnsureLibraryOptions;
  /** Called after every FCALL; must not throw. */
  readonly onCall?: (event: CallEvent) => void;
}

/** One prepared call for a batch: a built request and the parser of its reply. */
export interface Call<R> {
  readonly request: FcallRequest;
  readonly parse: (reply: unknown) => R;
}

/** Pairs a generated builder's request with its parser, e.g. `call(buildRenewLease(args, client.partitions), parseRenewLease)`. */
export function call<R>(request: FcallRequest, parse: (reply: unknown) => R): Call<R> {
  return { request, parse };
}

/** The outcome of one call of a batch. */
export type Settled<R> = { readonly ok: true; readonly value: R } | { readonly ok: false; readonly error: FlowFabricError };

/** Maps a tuple of calls to the tuple of their settled results. */
export type SettledAll<T extends readonly Call<unknown>[]> = { -readonly [K in keyof T]: T[K] extends Call<infer R> ? Settled<R> : never };

export class FlowFabricClient implements FunctionCaller {
  readonly partitions: PartitionConfig;
  private readonly autoLoad: boolean;
  private readonly loadOptions: EnsureLibraryOptions;
  private readonly onCall: ((event: CallEvent) => void) | undefined;

  constructor(
    readonly transport: Transport,
    options: ClientOptions = {},
  ) {
    this.partitions = validatePartitionConfig(options.partitions ?? DEFAULT_PARTITION_CONFIG);
    this.autoLoad = options.autoLoad ?? false;
    this.loadOptions = options.load ?? {};
    this.onCall = options.onCall;
  }

  /** A client over an ioredis (or iovalkey) `Redis` or `Cluster` connection. */
  static fromIoredis(connection: IoredisLike | import('ioredis').Redis | import('ioredis').Cluster, options?: ClientOptions): FlowFabricClient {
    return new FlowFabricClient(new IoredisTransport(connection), options);
  }

  /** Loads the library where it is missing or of another version (every primary on a cluster). */
  ensureLibrary(options?: EnsureLibraryOptions): Promise<LibraryStatus[]> {
    return ensureLibrary(this.transport, { ...this.loadOptions, ...options });
  }

  call<R>(request: FcallRequest, parse: (reply: unknown) => R): Promise<R> {
    // Written with then() rather than async/await: this is every wrapper's hot path, and each
    // extra await is another trip through the microtask queue. Without a hook, the parser
    // itself is the continuation: no closure per call.
    if (!this.onCall) {
      return this.transport.fcall(request).then(parse, (error: unknown) => this.recover(request, error).then(parse));
    }
    const started = performance.now();
    const finish = (reply: unknown): R => {
      try {
        const result = parse(reply);
        this.report(request.fn, started, 'ok');
        return result;
      } catch (error) {
        this.report(request.fn, started, 'error', error instanceof FlowFabricError ? error : undefined);
        throw error;
      }
    };
    return this.transport.fcall(request).then(finish, (error: unknown) =>
      this.recover(request, error).then(finish, (failure: FlowFabricError) => {
        this.report(request.fn, started, 'transport_error', failure);
        throw failure;
      }),
    );
  }


  /**
   * Sends many calls in one pipeline (one round trip; not a transaction: each call is
   * atomic on its own) and returns each one's typed outcome, in order. With autoLoad, calls
   * that found the library missing are sent again once after loading it.
   */
  async batch<const T extends readonly Call<unknown>[]>(calls: T): Promise<SettledAll<T>> {
    const started = performance.now();
    let replies = await this.sendBatch(calls.map((c) => c.request));
    const missing = replies.flatMap((reply, i) => (!reply.ok && isFunctionMissing(reply.error) ? [i] : []));
    if (missing.length > 0 && this.autoLoad) {
      await this.ensureLibrary();
      const retried = await this.sendBatch(missing.map((i) => calls[i]!.request));
      replies = replies.map((reply, i) => (missing.includes(i) ? retried[missing.indexOf(i)]! : reply));
    }
    const settled = calls.map((c, i): Settled<unknown> => {
      const reply = replies[i]!;
      if (!reply.ok) {
        const error = isFunctionMissing(reply.error)
          ? new LibraryError('missing', `function ${c.request.fn} is not loaded; call ensureLibrary() first`, undefined, undefined, { cause: reply.error })
          : classifyWith(this.transport, reply.error, c.request);
        this.report(c.request.fn, started, 'transport_error', error);
        return { ok: false, error };
      }
      try {
        const value = c.parse(reply.reply);
        this.report(c.request.fn, started, 'ok');
        return { ok: true, value };
      } catch (error) {
        const failure = error instanceof FlowFabricError ? error : classifyWith(this.transport, error, c.request);
        this.report(c.request.fn, started, 'error', failure);
        return { ok: false, error: failure };
      }
    });
    return settled as SettledAll<T>;
  }

  private async sendBatch(requests: readonly FcallRequest[]): Promise<BatchReply[]> {
    try {
      return await this.transport.fcallBatch(requests);
    } catch (error) {
      const failure = classifyWith(this.transport, error, requests[0]);
      return requests.map(() => ({ ok: false, error: failure }));
    }
  }

  /**
   * After a failed send: a missing library is loaded (with autoLoad) and the call sent once
   * more — it never ran — resolving with that reply; anything else becomes a typed error.
   */
  private async recover(request: FcallRequest, error: unknown): Promise<unknown> {
    if (!isFunctionMissing(error)) throw classifyWith(this.transport, error, request);
    if (!this.autoLoad) {
      throw new LibraryError('missing', `function ${request.fn} is not loaded; call ensureLibrary() first`, undefined, undefined, {
        cause: error,
      });
    }
    await this.ensureLibrary();
    try {
      return await this.transport.fcall(request);
    } catch (retryError) {
      throw classifyWith(this.transport, retryError, request);
    }
  }

  private report(fn: string, started: number, outcome: CallEvent['outcome'], error?: FlowFabricError): void {
    if (!this.onCall) return;
    const event: CallEvent = {
      fn,
      startTime: performance.timeOrigin + started,
      durationMs: performance.now() - started,
      outcome,
      ...(error instanceof ScriptError ? { code: error.code } : {}),
      ...(error ? { error } : {}),
    };
    try {
      this.onCall(event);
    } catch {
      // A failing hook must not change the outcome of the call it observes.
    }
  }
}
