// Transport over ioredis (and iovalkey, its Valkey fork with the same API): works with a
// single `Redis` connection and with a `Cluster`, where FCALL is routed by its first key.
// It reads ioredis's own errors onto the contract's retry classes (classifyIoredisError).
import type { Cluster, Redis } from 'ioredis';
import { connectionError, isConnectFailure, looksLikeServerError, serverError } from './classify.js';
import { FlowFabricError } from './errors.js';
import { clusterSlot } from './partition.js';
import type { BatchReply, FcallRequest, Transport } from './transport.js';

/** The part of the ioredis API we use; iovalkey's classes satisfy it too. */
export interface IoredisLike {
  call(command: string, ...args: (string | number)[]): Promise<unknown>;
  pipeline(): { call(command: string, ...args: (string | number)[]): unknown; exec(): Promise<[Error | null, unknown][] | null> };
}

interface ClusterLike extends IoredisLike {
  nodes(role: 'master'): IoredisLike[];
  readonly status: string;
  once(event: 'ready' | 'error', listener: (arg?: unknown) => void): unknown;
}

/** What a connection tells about itself, read only to classify failures and name the server. */
interface Introspectable {
  readonly status?: string;
  readonly isCluster?: boolean;
  readonly options?: { host?: string; port?: number; path?: string; autoResendUnfulfilledCommands?: boolean };
  readonly slots?: readonly (readonly string[] | undefined)[];
  readonly startupNodes?: readonly unknown[];
  on?(event: string, listener: () => void): unknown;
}

/** ioredis's own failures that prove the command never left the client. */
const UNSENT =
  /enableOfflineQueue options is false|Connection is closed before|Cluster isn't ready|None of startup nodes is available|Cluster is disconnect|Cluster is ended|Node is disconnected|Failed to refresh slots cache/;

/**
 * What ioredis threw, as a typed error. Without the transport's knowledge of when the
 * command was issued, "Connection is closed." reads as a lost reply (it may have run); the
 * transport itself reports commands that were still queued when the connection failed as
 * never sent.
 */
export function classifyIoredisError(error: unknown, where?: string): FlowFabricError {
  if (error instanceof FlowFabricError) return error;
  const err = error instanceof Error ? error : new Error(String(error));
  if (err.name === 'ReplyError' || looksLikeServerError(err.message)) return serverError(err.message, error);
  // A Cluster gives up after redirections (MOVED, ASK, TRYAGAIN, CLUSTERDOWN): the last reply decides.
  const redirected = /^Too many Cluster redirections\. Last error: (?:ReplyError: )?([\s\S]*)$/.exec(err.message)?.[1];
  if (redirected && looksLikeServerError(redirected)) return serverError(redirected, error);
  // Flushed from the offline queue after the reconnect attempts ran out.
  if (err.name === 'MaxRetriesPerRequestError') return connectionError('fatal_send', err.message, true, where, error);
  if (UNSENT.test(err.message)) return connectionError('fatal_send', err.message, true, where, error);
  if (err.message === 'Command timed out') return connectionError('timeout', err.message, false, where, error);
  if (isConnectFailure(err)) return connectionError('io_error', err.message, true, where, error);
  if (/Connection is closed|ECONNRESET|EPIPE|socket/i.test(err.message)) return connectionError('fatal_receive', err.message, false, where, error);
  return connectionError('unknown', err.message, false, where, error);
}

function isCluster(client: IoredisLike): client is ClusterLike {
  return typeof (client as Partial<ClusterLike>).nodes === 'function' && (client as Introspectable).isCluster === true;
}

/** A cluster knows its primaries only once it has loaded the slot map. */
function clusterReady(cluster: ClusterLike): Promise<void> {
  if (cluster.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    cluster.once('ready', () => resolve());
    cluster.once('error', (error) => reject(error instanceof Error ? error : new Error(String(error))));
  });
}

function fcallArgs(request: FcallRequest): (string | number)[] {
  return [request.fn, request.keys.length, ...request.keys, ...request.argv];
}

function nodeAddress(node: unknown): string | undefined {
  if (typeof node === 'string') return node;
  const { host, port } = (node ?? {}) as { host?: string; port?: number };
  return host === undefined ? undefined : `${host}:${port ?? 6379}`;
}

export class IoredisTransport implements Transport {
  /** Rejecters of calls sent and not yet answered. */
  private readonly inFlight = new Set<(error: Error) => void>();
  /** Times the connection became ready: a command issued before it, failing with no ready since, never left the client. */
  private readies = 0;
  /** One transport per cluster node, kept so that listeners are added once per node. */
  private readonly nodeTransports = new WeakMap<object, IoredisTransport>();

  constructor(readonly client: IoredisLike | Redis | Cluster) {
    const events = client as unknown as Introspectable;
    if (typeof events.on !== 'function') return;
    events.on('ready', () => {
      this.readies++;
    });
    // ioredis leaves commands that were on a dropped connection pending forever when it is
    // told not to resend them (autoResendUnfulfilledCommands: false). Settle them here: the
    // reply is lost and the call may or may not have run.
    if (!events.isCluster) {
      events.on('close', () => {
        const lost = new Error('Connection is closed.');
        for (const reject of [...this.inFlight]) reject(lost);
      });
    }
  }

  private get api(): IoredisLike {
    return this.client as unknown as IoredisLike;
  }

  private get state(): Introspectable {
    return this.client as unknown as Introspectable;
  }

  /** `host:port` of the server (of the owner of the request's slot, on a cluster). */
  where(request?: FcallRequest): string | undefined {
    const { options, slots, startupNodes, isCluster: cluster } = this.state;
    if (cluster) {
      const key = request?.keys[0];
      const owner = key === undefined ? undefined : slots?.[clusterSlot(key)]?.[0];
      return owner ? `cluster node ${owner}` : `cluster seeds ${(startupNodes ?? []).map(nodeAddress).join(', ')}`;
    }
    if (!options) return undefined;
    return options.path ?? `${options.host ?? '127.0.0.1'}:${options.port ?? 6379}`;
  }

  describe(): string {
    return this.where() ?? 'ioredis connection';
  }

  classify(error: unknown, request?: FcallRequest): FlowFabricError {
    return classifyIoredisError(error, this.where(request));
  }

  fcall(request: FcallRequest): Promise<unknown> {
    const ready = this.state.status === 'ready';
    const sent = this.api.call(request.readOnly ? 'FCALL_RO' : 'FCALL', ...fcallArgs(request));
    const tracked = this.tracking ? this.track(sent) : sent;
    return ready ? tracked : this.unsentUnlessReady(tracked, request);
  }

  /** Only a client that will not resend lost commands leaves them pending: track those. */
  private get tracking(): boolean {
    return this.state.options?.autoResendUnfulfilledCommands === false;
  }

  private track<T>(sent: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const settle = (error: Error) => {
        this.inFlight.delete(settle);
        reject(error);
      };
      this.inFlight.add(settle);
      sent.then(
        (value) => {
          this.inFlight.delete(settle);
          resolve(value);
        },
        (error: unknown) => settle(error instanceof Error ? error : new Error(String(error))),
      );
    });
  }

  /**
   * A command issued while the connection was not ready waits in ioredis's offline queue.
   * If it fails before the connection ever became ready, it was never written: whatever
   * ioredis says ("Connection is closed.", a refused connect), it is reported as never sent.
   */
  private unsentUnlessReady<T>(sent: Promise<T>, request?: FcallRequest): Promise<T> {
    const readies = this.readies;
    return sent.catch((error: unknown) => {
      if (this.readies !== readies || error instanceof FlowFabricError) throw error;
      const err = error instanceof Error ? error : new Error(String(error));
      if (err.name === 'ReplyError') throw error;
      throw connectionError(isConnectFailure(err) ? 'io_error' : 'fatal_send', err.message, true, this.where(request), error);
    });
  }

  async fcallBatch(requests: readonly FcallRequest[]): Promise<BatchReply[]> {
    const ready = this.state.status === 'ready';
    const pipeline = this.api.pipeline();
    for (const request of requests) pipeline.call(request.readOnly ? 'FCALL_RO' : 'FCALL', ...fcallArgs(request));
    const exec = pipeline.exec();
    const tracked = this.tracking ? this.track(exec) : exec;
    const results = (await (ready ? tracked : this.unsentUnlessReady(tracked, requests[0]))) ?? [];
    return results.map(([error, reply]): BatchReply => (error ? { ok: false, error } : { ok: true, reply }));
  }

  command(name: string, args: readonly (string | number)[]): Promise<unknown> {
    const ready = this.state.status === 'ready';
    const sent = this.api.call(name, ...args);
    const tracked = this.tracking ? this.track(sent) : sent;
    return ready ? tracked : this.unsentUnlessReady(tracked);
  }

  async primaries(): Promise<Transport[]> {
    const api = this.api;
    if (isCluster(api)) {
      await clusterReady(api).catch((error: unknown) => {
        throw this.classify(error);
      });
      const primaries = api.nodes('master');
      if (primaries.length === 0) throw new Error('the cluster reports no primaries');
      return primaries.map((node) => {
        let transport = this.nodeTransports.get(node);
        if (!transport) this.nodeTransports.set(node, (transport = new IoredisTransport(node)));
        return transport;
      });
    }
    return [this];
  }
}
