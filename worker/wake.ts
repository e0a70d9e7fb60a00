// Wake-ups for idle workers (issue 16). The library PUBLISHes a partition's hash tag on
// `ff:wake:<lane>` whenever it makes an execution of that lane eligible (create, delayed
// promotion, unblock, resume, a flow member's last dependency, replay): a worker
// subscribed to its lanes' channels claims at once instead of at its next poll. Pub/sub
// names no key, so it works on any node of a cluster (PUBLISH reaches every node). A
// missed message costs only latency: the worker's back-off poll stays the fallback (a
// producer or server whose library does not publish, a dropped subscriber connection).
import type { FlowFabricClient } from '../runtime/client.js';
import type { LaneId } from '../runtime/ids.js';
import { IoredisTransport } from '../runtime/ioredis.js';
import { GlobalKeys } from '../generated/keys.js';

/** Told the lane and, when the message names one, the partition where work became eligible. */
export type OnWake = (laneId: LaneId, partition: number | undefined) => void;

/**
 * Where wake-ups come from: subscribes to the lanes' channels until closed. `onGap` is told
 * when messages may have been missed (the subscription was lost and made again), so the
 * worker looks for work it was not told about.
 */
export interface WakeSource {
  listen(lanes: readonly LaneId[], onWake: OnWake, onError: (error: unknown) => void, onGap?: () => void): Promise<WakeListener>;
}

export interface WakeListener {
  close(): Promise<void>;
}

/** The channel the library publishes a lane's wake-ups on (spec/keys.yaml: global lane_wake). */
export function wakeChannel(laneId: LaneId): string {
  return GlobalKeys.laneWake(laneId);
}

/** The partition in a wake-up message (a hash tag `{fp:N}`), or undefined. */
export function wakePartition(message: string): number | undefined {
  const match = /^\{fp:(\d+)\}$/.exec(message);
  return match ? Number(match[1]) : undefined;
}

/** The part of an ioredis (or iovalkey) subscriber connection used here. */
interface SubscriberLike {
  subscribe(...channels: string[]): Promise<unknown>;
  on(event: 'message', listener: (channel: string, message: string) => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  on(event: 'ready', listener: () => void): unknown;
  quit(): Promise<unknown>;
  disconnect(): void;
}

interface Duplicable {
  duplicate(): SubscriberLike;
}

/** Wake-ups over a connection of its own, duplicated from an ioredis `Redis` or `Cluster` connection. */
export function ioredisWakeSource(connection: Duplicable): WakeSource {
  return {
    async listen(lanes, onWake, onError, onGap) {
      const subscriber = connection.duplicate();
      const byChannel = new Map(lanes.map((laneId) => [wakeChannel(laneId), laneId]));
      subscriber.on('error', (error) => onError(error));
      // ioredis subscribes again on every reconnect ('ready'); what was published while the
      // connection was down is lost, so each 'ready' after the first is a gap.
      let connections = 0;
      subscriber.on('ready', () => {
        connections += 1;
        if (connections > 1) onGap?.();
      });
      subscriber.on('message', (channel, message) => {
        const laneId = byChannel.get(channel);
        if (laneId !== undefined) onWake(laneId, wakePartition(message));
      });
      try {
        await subscriber.subscribe(...byChannel.keys());
      } catch (error) {
        subscriber.disconnect();
        throw error;
      }
      return {
        async close() {
          await subscriber.quit().catch(() => subscriber.disconnect());
        },
      };
    },
  };
}

/** The client's own connection duplicated, when it is an ioredis one; otherwise none (the worker polls). */
export function defaultWakeSource(client: FlowFabricClient): WakeSource | undefined {
  const transport = client.transport;
  if (!(transport instanceof IoredisTransport)) return undefined;
  const connection = transport.client as unknown as Partial<Duplicable>;
  return typeof connection.duplicate === 'function' ? ioredisWakeSource(connection as Duplicable) : undefined;
}
