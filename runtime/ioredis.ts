// Transport over ioredis (and iovalkey, its Valkey fork with the same API): works with a
// single `Redis` connection and with a `Cluster`, where FCALL is routed by its first key.
import type { Cluster, Redis } from 'ioredis';
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

/** A cluster knows its primaries only once it has loaded the slot map. */
function clusterReady(cluster: ClusterLike): Promise<void> {
  if (cluster.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    cluster.once('ready', () => resolve());
    cluster.once('error', (error) => reject(error instanceof Error ? error : new Error(String(error))));
  });
}

function isCluster(client: IoredisLike): client is ClusterLike {
  return typeof (client as Partial<ClusterLike>).nodes === 'function' && (client as { isCluster?: boolean }).isCluster === true;
}

function fcallArgs(request: FcallRequest): (string | number)[] {
  return [request.fn, request.keys.length, ...request.keys, ...request.argv];
}

export class IoredisTransport implements Transport {
  /** Rejecters of calls sent and not yet answered. */
  private readonly inFlight = new Set<(error: Error) => void>();

  constructor(readonly client: IoredisLike | Redis | Cluster) {
    // ioredis leaves commands that were on a dropped connection pending forever when it is
    // told not to resend them (autoResendUnfulfilledCommands: false). Settle them here: the
    // reply is lost and the call may or may not have run.
    const events = client as unknown as { on?: (event: string, listener: () => void) => unknown; isCluster?: boolean };
    if (typeof events.on === 'function' && !events.isCluster) {
      events.on('close', () => {
        const lost = new Error('Connection is closed.');
        for (const reject of [...this.inFlight]) reject(lost);
      });
    }
  }

  private get api(): IoredisLike {
    return this.client as unknown as IoredisLike;
  }

  fcall(request: FcallRequest): Promise<unknown> {
    const sent = this.api.call(request.readOnly ? 'FCALL_RO' : 'FCALL', ...fcallArgs(request));
    return this.tracking ? this.track(sent) : sent;
  }

  /** Only a client that will not resend lost commands leaves them pending: track those. */
  private get tracking(): boolean {
    return (this.client as { options?: { autoResendUnfulfilledCommands?: boolean } }).options?.autoResendUnfulfilledCommands === false;
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

  async fcallBatch(requests: readonly FcallRequest[]): Promise<BatchReply[]> {
    const pipeline = this.api.pipeline();
    for (const request of requests) pipeline.call(request.readOnly ? 'FCALL_RO' : 'FCALL', ...fcallArgs(request));
    const exec = pipeline.exec();
    const results = (await (this.tracking ? this.track(exec) : exec)) ?? [];
    return results.map(([error, reply]): BatchReply => (error ? { ok: false, error } : { ok: true, reply }));
  }

  command(name: string, args: readonly (string | number)[]): Promise<unknown> {
    const sent = this.api.call(name, ...args);
    return this.tracking ? this.track(sent) : sent;
  }

  async primaries(): Promise<Transport[]> {
    const api = this.api;
    if (isCluster(api)) {
      await clusterReady(api);
      const primaries = api.nodes('master');
      if (primaries.length === 0) throw new Error('the cluster reports no primaries');
      return primaries.map((node) => new IoredisTransport(node));
    }
    return [this];
  }
}
