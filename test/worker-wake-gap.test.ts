// Wake-ups lost while the subscription was down (a reconnect, a server restart): the wake
// source says so (`onGap`), and a Worker with the default partitions checks its lanes'
// partitions again at once, so work no message announced is not left to the slow re-check.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { createExecution } from '../generated/execution.js';
import type { LaneId } from '../runtime/ids.js';
import { soloPartition } from '../runtime/partition.js';
import { ioredisWakeSource, wakeChannel, Worker, type WakeSource } from '../worker/index.js';
import { useServer } from './support/client.js';
import { newExecutionId, uniqueLane } from './support/ids.js';

describe('wake-ups lost while the subscription was down', () => {
  const { client, redis } = useServer();
  const closers: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    await Promise.all(closers.splice(0).map((close) => close()));
  });

  it('the ioredis wake source reports a gap when its connection comes back, and hears the lane again', async () => {
    const lane = uniqueLane();
    const connection = redis.duplicate();
    closers.push(() => connection.quit());
    const gaps: number[] = [];
    const heard: (number | undefined)[] = [];
    const name = `wake-gap-${lane}`;
    const listener = await ioredisWakeSource({
      duplicate: () => connection.duplicate({ connectionName: name }),
    }).listen([lane], (_, partition) => heard.push(partition), () => undefined, () => gaps.push(Date.now()));
    closers.push(() => listener.close());
    expect(gaps).toEqual([]);
    // Only this test's subscriber is dropped (found by its name): the server is shared.
    const clients = String(await redis.client('LIST')).split('\n');
    const id = clients.find((line) => line.includes(` name=${name} `))?.match(/^id=(\d+)/)?.[1];
    expect(id).toBeDefined();
    expect(await redis.client('KILL', 'ID', id!)).toBe(1);
    const deadline = Date.now() + 5_000;
    while (gaps.length === 0 && Date.now() < deadline) await sleep(20);
    expect(gaps.length).toBe(1);
    // Subscribed again: a wake-up published now is heard.
    const until = Date.now() + 3_000;
    while (heard.length === 0 && Date.now() < until) {
      await redis.publish(wakeChannel(lane), '{fp:3}');
      await sleep(50);
    }
    expect(heard[0]).toBe(3);
  });

  it('a default Worker told of a gap finds work on a partition no wake-up named', async () => {
    const lane = uniqueLane();
    // A wake source that delivers nothing (every message lost) and reports a gap on demand.
    let reportGap: (() => void) | undefined;
    const silent: WakeSource = {
      async listen(_lanes, _onWake, _onError, onGap) {
        reportGap = onGap;
        return { close: async () => undefined };
      },
    };
    const claimed: string[] = [];
    const worker = new Worker({
      client,
      lanes: [lane as LaneId],
      installWaitpointSecrets: false,
      wakeUp: silent,
      idleBackoff: { minMs: 20, maxMs: 100 },
      handler: (task) => {
        claimed.push(task.executionId);
        return 'done';
      },
    });
    closers.push(() => worker.close({ timeoutMs: 1000 }));
    await worker.start();
    const home = soloPartition(lane, client.partitions);
    const executionId = newExecutionId(home === 77 ? 78 : 77);
    await createExecution(client, { executionId, laneId: lane, namespace: 'default', executionKind: 'k' });
    await sleep(600); // polled several times: the partition is not one it knows of
    expect(claimed).toEqual([]);
    expect(reportGap).toBeTypeOf('function');
    reportGap!();
    const deadline = Date.now() + 2_000;
    while (claimed.length === 0 && Date.now() < deadline) await sleep(20);
    expect(claimed).toEqual([executionId]);
  });
});
