// FlowFabricClient: the FunctionCaller that generated wrappers use. It sends a request,
// turns client failures into typed errors, optionally reloads a missing library, parses
// the reply and reports each call to an optional hook.
import { classifyTransportError, isFunctionMissing } from './classify.js';
import { FlowFabricError, LibraryError, ScriptError, type ErrorCode } from './errors.js';
import { IoredisTransport, type IoredisLike } from './ioredis.js';
import { ensureLibrary, type EnsureLibraryOptions, type LibraryStatus } from './loader.js';
import { DEFAULT_PARTITION_CONFIG, validatePartitionConfig, type PartitionConfig } from './partition.js';
import type { FcallRequest, FunctionCaller, Transport } from './transport.js';

/** What the call hook hears about each FCALL. */
export interface CallEvent {
  readonly fn: string;
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

  async call<R>(request: FcallRequest, parse: (reply: unknown) => R): Promise<R> {
    const started = performance.now();
    let reply: unknown;
    try {
      reply = await this.send(request);
    } catch (error) {
      this.report(request.fn, started, 'transport_error', error as FlowFabricError);
      throw error;
    }
    try {
      const result = parse(reply);
      this.report(request.fn, started, 'ok');
      return result;
    } catch (error) {
      this.report(request.fn, started, 'error', error instanceof FlowFabricError ? error : undefined);
      throw error;
    }
  }

  private async send(request: FcallRequest): Promise<unknown> {
    try {
      return await this.transport.fcall(request);
    } catch (error) {
      if (!isFunctionMissing(error)) throw classifyTransportError(error);
      if (!this.autoLoad) {
        throw new LibraryError('missing', `function ${request.fn} is not loaded; call ensureLibrary() first`, undefined, undefined, {
          cause: error,
        });
      }
    }
    await this.ensureLibrary();
    try {
      return await this.transport.fcall(request);
    } catch (error) {
      throw classifyTransportError(error);
    }
  }

  private report(fn: string, started: number, outcome: CallEvent['outcome'], error?: FlowFabricError): void {
    if (!this.onCall) return;
    const event: CallEvent = {
      fn,
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
