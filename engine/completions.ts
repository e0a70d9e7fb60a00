// The completion listener (engine.md §5): a dedicated subscriber connection on
// ff:dag:completions; each message resolves the finished execution's outgoing edges, and
// cascades through children that this skipped (operations/flows resolveOutgoing). Pub/sub
// delivers at most once: after the subscriber reconnects, the dependency reconciler is
// run at once to pick up whatever was published during the gap.
import { resolveOutgoing } from '../operations/flows.js';
import type { FlowFabricClient } from '../runtime/client.js';
import { parseExecutionId, parseFlowId } from '../runtime/ids.js';
import type { Logger } from './log.js';

export const COMPLETIONS_CHANNEL = 'ff:dag:completions';

/** The part of an ioredis connection the listener uses. */
export interface Subscriber {
  subscribe(channel: string): Promise<unknown>;
  on(event: 'message', listener: (channel: string, message: string) => void): unknown;
  on(event: 'ready' | 'close' | 'end', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  disconnect(): void;
}

export interface ListenerStats {
  readonly name: 'completion_listener';
  messages: number;
  /** Edges resolved from messages. */
  processed: number;
  errors: number;
  /** Times the subscriber came back after losing its connection. */
  reconnects: number;
  connected: boolean;
}

export class CompletionListener {
  readonly stats: ListenerStats = { name: 'completion_listener', messages: 0, processed: 0, errors: 0, reconnects: 0, connected: false };
  private subscriber: Subscriber | undefined;
  private inFlight = new Set<Promise<void>>();
  private readonly queue: string[] = [];
  private stopped = false;

  constructor(
    private readonly client: FlowFabricClient,
    private readonly connect: () => Subscriber,
    private readonly log: Logger,
    /** Called after a reconnect (the gap's messages are lost). */
    private readonly onGap: () => void,
    private readonly maxInFlight = 16,
  ) {}

  async start(): Promise<void> {
    const subscriber = this.connect();
    this.subscriber = subscriber;
    let readyOnce = false;
    subscriber.on('error', (error) => this.log.debug(`completion listener connection: ${error.message}`));
    subscriber.on('close', () => {
      if (this.stats.connected && !this.stopped) this.log.warn('completion listener disconnected; reconnecting');
      this.stats.connected = false;
    });
    subscriber.on('ready', () => {
      this.stats.connected = true;
      if (readyOnce && !this.stopped) {
        this.stats.reconnects++;
        this.log.info('completion listener reconnected; running the dependency reconciler for the gap');
        this.onGap();
      }
      readyOnce = true;
    });
    subscriber.on('message', (channel, message) => {
      if (channel !== COMPLETIONS_CHANNEL) return;
      this.stats.messages++;
      this.queue.push(message);
      this.pump();
    });
    await subscriber.subscribe(COMPLETIONS_CHANNEL);
    this.stats.connected = true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.queue.length = 0;
    await Promise.allSettled([...this.inFlight]);
    this.subscriber?.disconnect();
  }

  private pump(): void {
    while (!this.stopped && this.inFlight.size < this.maxInFlight && this.queue.length > 0) {
      const message = this.queue.shift()!;
      const task = this.dispatch(message).finally(() => {
        this.inFlight.delete(task);
        this.pump();
      });
      this.inFlight.add(task);
    }
  }

  private async dispatch(message: string): Promise<void> {
    let executionText: unknown;
    let flowText: unknown;
    try {
      ({ execution_id: executionText, flow_id: flowText } = JSON.parse(message) as Record<string, unknown>);
    } catch {
      this.log.warn('completion listener: message is not JSON; dropped (the reconciler is the fallback)');
      return;
    }
    if (typeof executionText !== 'string' || typeof flowText !== 'string' || flowText === '') return;
    try {
      const resolutions = await resolveOutgoing(this.client, parseFlowId(flowText), parseExecutionId(executionText));
      const resolved = resolutions.filter((r) => r.result && r.result.status !== 'already_resolved').length;
      this.stats.processed += resolved;
      if (resolved > 0) this.log.debug('dependencies resolved', { upstream: executionText, edges: resolved });
    } catch (error) {
      this.stats.errors++;
      this.log.warn(`completion listener: resolving ${executionText} failed: ${error instanceof Error ? error.message : String(error)} (the reconciler will retry)`);
    }
  }
}
