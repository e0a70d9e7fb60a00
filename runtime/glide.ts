// Transport over Valkey GLIDE (`@valkey/valkey-glide`, an optional peer dependency): a
// `GlideClient` for one server or a `GlideClusterClient`, where GLIDE routes FCALL by its
// first key. Batches go through GLIDE's own non-atomic Batch / ClusterBatch; the loader
// reaches every primary by routing to each address. Published as `ff-script/glide`, so that
// only programs that use GLIDE load it.
//
// Two things differ from ioredis and are taken care of here: GLIDE speaks RESP3 and hands
// maps back as `{ key, value }[]` records, which plain commands turn back into the RESP2
// shapes the library reads; and GLIDE words server errors its own way ("An error was
// signalled by the server: - ResponseError: …", "WRONGTYPE: …"), which are read back into the
// server's `PREFIX message` form before classification.
import { Batch, ClosingError, ClusterBatch, ConfigurationError, ConnectionError, ExecAbortError, RequestError, TimeoutError, type GlideClient, type GlideClusterClient, type GlideReturnType, type GlideString, type Routes } from '@valkey/valkey-glide';
import { FlowFabricClient, type ClientOptions } from './client.js';
import { connectionError, serverError } from './classify.js';
import { FlowFabricError, TransportError, type TransportErrorKind } from './errors.js';
import type { BatchReply, FcallRequest, Transport } from './transport.js';

/** GLIDE's (redis-rs) error kind names for server errors, and the prefix the server sent. */
const SERVER_PREFIXES: Readonly<Record<string, string>> = {
  ResponseError: 'ERR',
  TypeError: 'WRONGTYPE',
  ExecAbortError: 'EXECABORT',
  BusyLoadingError: 'LOADING',
  NoScriptError: 'NOSCRIPT',
  Moved: 'MOVED',
  Ask: 'ASK',
  TryAgain: 'TRYAGAIN',
  ClusterDown: 'CLUSTERDOWN',
  CrossSlot: 'CROSSSLOT',
  MasterDown: 'MASTERDOWN',
  ReadOnly: 'READONLY',
  NotBusy: 'NOTBUSY',
  AuthenticationFailed: 'WRONGPASS',
};

/** GLIDE's client-side error kinds that say what happened to the command. */
const CLIENT_KINDS: Readonly<Record<string, { kind: TransportErrorKind; notSent: boolean }>> = {
  IoError: { kind: 'io_error', notSent: true },
  FatalSendError: { kind: 'fatal_send', notSent: true },
  FatalReceiveError: { kind: 'fatal_receive', notSent: false },
  AllConnectionsUnavailable: { kind: 'fatal_send', notSent: true },
  ConnectionNotFoundForRoute: { kind: 'fatal_send', notSent: true },
  NotAllSlotsCovered: { kind: 'cluster_down', notSent: true },
};

const SIGNALLED = /^An error was signalled by the server:\s*-?\s*(\w+):?\s*([\s\S]*)$/;

/**
 * The server's own `PREFIX message` for a GLIDE error, or undefined when GLIDE raised it
 * itself. "An error was signalled by the server: - ResponseError: Function not found" is
 * `ERR Function not found`; "WRONGTYPE: Operation against…" is `WRONGTYPE Operation against…`.
 */
export function glideServerMessage(message: string): string | undefined {
  const signalled = SIGNALLED.exec(message);
  if (signalled) {
    const [, kind = '', text = ''] = signalled;
    const prefix = SERVER_PREFIXES[kind];
    if (prefix) return `${prefix} ${text}`.trim();
    if (CLIENT_KINDS[kind]) return undefined;
    // An error code GLIDE does not know by name ("ExtensionError") keeps the text's own code.
    return /^[A-Z]+ /.test(text) ? text : `ERR ${text}`;
  }
  const coded = /^([A-Z][A-Z_]+): ([\s\S]*)$/.exec(message);
  return coded ? `${coded[1]} ${coded[2]}` : undefined;
}

/** A server error reply as ioredis would raise it: `ReplyError` with the server's text. */
function replyError(message: string, cause: unknown): Error {
  return Object.assign(new Error(message, { cause }), { name: 'ReplyError' });
}

/** GLIDE errors with the server's text restored, so that shared checks (a missing function) read them. */
function normalizeError(error: unknown): unknown {
  if (!(error instanceof RequestError) || error instanceof TimeoutError || error instanceof ConnectionError || error instanceof ExecAbortError || error instanceof ConfigurationError) return error;
  const message = glideServerMessage(error.message);
  return message === undefined ? error : replyError(message, error);
}

const rethrow = (error: unknown): never => {
  throw normalizeError(error);
};

/** What GLIDE threw, as a typed error with the contract's retry class and the server named. */
export function classifyGlideError(error: unknown, where?: string): FlowFabricError {
  if (error instanceof FlowFabricError) return error;
  const err = normalizeError(error);
  if (err instanceof Error && err.name === 'ReplyError') return serverError(err.message, error);
  const message = err instanceof Error ? err.message : String(err);
  // The client was closed: nothing is sent, and retrying on it cannot help.
  if (error instanceof ClosingError) return connectionError('client_error', message, true, where, error);
  if (error instanceof TimeoutError) return connectionError('timeout', message, false, where, error);
  if (error instanceof ExecAbortError) return new TransportError('exec_abort', message, false, { cause: error });
  if (error instanceof ConfigurationError) return connectionError('client_error', message, true, where, error);
  const named = Object.entries(CLIENT_KINDS).find(([name]) => message.includes(name));
  if (named) return connectionError(named[1].kind, message, named[1].notSent, where, error);
  // A disconnect while the request was out: GLIDE reconnects, the reply is lost.
  if (error instanceof ConnectionError) return connectionError('fatal_receive', message, false, where, error);
  return connectionError('unknown', message, false, where, error);
}

/** A GLIDE `{ key, value }[]` record (a RESP3 map). */
function isRecord(value: unknown): value is { key: GlideString; value: unknown }[] {
  return Array.isArray(value) && value.length > 0 && value.every((item) => item !== null && typeof item === 'object' && !Array.isArray(item) && !(item instanceof Uint8Array) && 'key' in item && 'value' in item);
}

/** RESP3 maps (records, Maps, objects) as RESP2's flat `[key, value, …]` arrays, recursively. */
function flatten(value: unknown): unknown {
  if (isRecord(value)) return value.flatMap(({ key, value: v }) => [key, flatten(v)]);
  if (value instanceof Map) return [...value].flatMap(([k, v]) => [k, flatten(v)]);
  if (value instanceof Set) return [...value].map(flatten);
  if (Array.isArray(value)) return value.map(flatten);
  return value;
}

/** Stream entries `{ key: id, value: [[field, value], …] }[]` as RESP2's `[[id, [field, value, …]], …]`. */
function streamEntries(value: unknown): unknown {
  if (!isRecord(value)) return flatten(value);
  return value.map(({ key, value: fields }) => [key, Array.isArray(fields) ? fields.flatMap((pair) => (Array.isArray(pair) ? pair.map(flatten) : [flatten(pair)])) : flatten(fields)]);
}

/** A plain command's reply in the shape ioredis (RESP2) gives: what the library's readers expect. */
export function resp2Reply(command: string, reply: unknown): unknown {
  const name = command.toUpperCase();
  if (name === 'XRANGE' || name === 'XREVRANGE') return streamEntries(reply);
  if (name === 'XREAD' || name === 'XREADGROUP') {
    if (reply === null || !isRecord(reply)) return flatten(reply);
    return reply.map(({ key, value }) => [key, streamEntries(value)]);
  }
  return flatten(reply);
}

type AnyGlideClient = GlideClient | GlideClusterClient;

function isClusterClient(client: AnyGlideClient): client is GlideClusterClient {
  return typeof (client as Partial<GlideClusterClient>).fcallWithRoute === 'function';
}

export interface GlideTransportOptions {
  /** `host:port` (or seeds) for error messages; read from the client's configuration when absent. */
  readonly where?: string;
}

/** The addresses the client was created with, for messages (read defensively: not public API). */
function configuredAddresses(client: AnyGlideClient): string | undefined {
  const addresses = (client as unknown as { config?: { addresses?: { host?: string; port?: number }[] } }).config?.addresses;
  if (!Array.isArray(addresses) || addresses.length === 0) return undefined;
  return addresses.map((a) => `${a.host ?? 'localhost'}:${a.port ?? 6379}`).join(', ');
}

const fcallArgs = (request: FcallRequest): string[] => ['FCALL', request.fn, String(request.keys.length), ...request.keys, ...request.argv];

export class GlideTransport implements Transport {
  private readonly where: string | undefined;

  constructor(
    readonly client: AnyGlideClient,
    options: GlideTransportOptions = {},
  ) {
    const seeds = configuredAddresses(client);
    this.where = options.where ?? (seeds && isClusterClient(client) ? `cluster seeds ${seeds}` : seeds);
  }

  describe(): string {
    return this.where ?? 'GLIDE client';
  }

  classify(error: unknown): FlowFabricError {
    return classifyGlideError(error, this.where);
  }

  fcall(request: FcallRequest): Promise<unknown> {
    const keys = request.keys as string[];
    const argv = request.argv as string[];
    const sent = request.readOnly ? this.client.fcallReadonly(request.fn, keys, argv) : this.client.fcall(request.fn, keys, argv);
    return sent.then(undefined, rethrow);
  }

  async fcallBatch(requests: readonly FcallRequest[]): Promise<BatchReply[]> {
    const cluster = isClusterClient(this.client);
    const batch = cluster ? new ClusterBatch(false) : new Batch(false);
    for (const request of requests) {
      if (request.readOnly) batch.fcallReadonly(request.fn, request.keys as string[], request.argv as string[]);
      else batch.fcall(request.fn, request.keys as string[], request.argv as string[]);
    }
    // raiseOnError false: each failed call comes back in its place as a RequestError.
    const replies = cluster ? await (this.client as GlideClusterClient).exec(batch as ClusterBatch, false).then(undefined, rethrow) : await (this.client as GlideClient).exec(batch as Batch, false).then(undefined, rethrow);
    return requests.map((_, i): BatchReply => {
      const reply = replies?.[i];
      return reply instanceof Error ? { ok: false, error: normalizeError(reply) } : { ok: true, reply };
    });
  }

  command(name: string, args: readonly (string | number)[]): Promise<unknown> {
    return this.client.customCommand([name, ...args.map(String)]).then((reply) => resp2Reply(name, reply), rethrow);
  }

  async primaries(): Promise<Transport[]> {
    if (!isClusterClient(this.client)) return [this];
    // ROLE sent to every primary answers with a record keyed by each primary's address
    // (PING would not: GLIDE folds its answers into one).
    const replies = await this.client.customCommand(['ROLE'], { route: 'allPrimaries' }).then(undefined, rethrow);
    const addresses = (isRecord(replies) ? replies.map((r) => String(r.key)) : replies && typeof replies === 'object' ? Object.keys(replies) : []).sort();
    if (addresses.length === 0) throw new Error('the cluster reports no primaries');
    return addresses.map((address) => new GlideNodeTransport(this.client as GlideClusterClient, address));
  }
}

/** One primary of a cluster, reached by routing every command to its address. */
class GlideNodeTransport implements Transport {
  private readonly route: Routes;

  constructor(
    private readonly client: GlideClusterClient,
    private readonly address: string,
  ) {
    const colon = address.lastIndexOf(':');
    this.route = { type: 'routeByAddress', host: address.slice(0, colon), port: Number(address.slice(colon + 1)) };
  }

  describe(): string {
    return this.address;
  }

  classify(error: unknown): FlowFabricError {
    return classifyGlideError(error, this.address);
  }

  fcall(request: FcallRequest): Promise<unknown> {
    const args = fcallArgs(request);
    if (request.readOnly) args[0] = 'FCALL_RO';
    return this.client.customCommand(args, { route: this.route }).then(undefined, rethrow);
  }

  async fcallBatch(requests: readonly FcallRequest[]): Promise<BatchReply[]> {
    // Only the loader uses a primary's transport, one call at a time; a batch here is rare.
    return Promise.all(requests.map((request) => this.fcall(request).then((reply): BatchReply => ({ ok: true, reply }), (error: unknown): BatchReply => ({ ok: false, error }))));
  }

  command(name: string, args: readonly (string | number)[]): Promise<unknown> {
    return this.client.customCommand([name, ...args.map(String)], { route: this.route }).then((reply: GlideReturnType) => resp2Reply(name, reply), rethrow);
  }

  async primaries(): Promise<Transport[]> {
    return [this];
  }
}

/** A FlowFabricClient over a GLIDE `GlideClient` or `GlideClusterClient`. */
export function fromGlide(client: GlideClient | GlideClusterClient, options?: ClientOptions & GlideTransportOptions): FlowFabricClient {
  return new FlowFabricClient(new GlideTransport(client, options), options);
}
