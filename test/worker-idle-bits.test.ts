// The last commands an idle Worker sent for nothing (issue 16 follow-up): a worker without
// capabilities cleared its capability record and index entry at every presence refresh, and
// the admission path read the server's TIME at nearly every idle probe. Counted with
// INFO commandstats on a server of the test's own; the server clock estimate
// (worker/clock-estimate.ts) is driven by injected local clocks against a real TIME.
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createExecution } from '../generated/execution.js';
import { GlobalKeys } from '../generated/keys.js';
import { serverTimeMs } from '../operations/server-clock.js';
import { FlowFabricClient } from '../runtime/client.js';
import { soloExecutionId } from '../runtime/partition.js';
import { startServer, type RunningServer } from '../tools/local-server.js';
import { LOCAL_JUMP_MS, ServerClockEstimate, type LocalClocks } from '../worker/clock-estimate.js';
import { sweepTurnKey } from '../worker/sweep-turn.js';
import { Worker } from '../worker/index.js';
import { uniqueLane } from './support/ids.js';

let server: RunningServer;
let connection: Redis;
let admin: Redis;
let client: FlowFabricClient;

beforeAll(async () => {
  server = await startServer();
  connection = new Redis(server.url, { maxRetriesPerRequest: 1 });
  admin = new Redis(server.url, { maxRetriesPerRequest: 1 });
  client = FlowFabricClient.fromIoredis(connection);
  await client.ensureLibrary();
});

afterAll(async () => {
  connection?.disconnect();
  admin?.disconnect();
  await server?.stop();
});

/** Calls per command name since the server started (INFO commandstats). */
async function calls(): Promise<Map<string, number>> {
  const stats = await admin.info('commandstats');
  return new Map([...stats.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)].map((m) => [m[1]!, Number(m[2])]));
}

function delta(before: Map<string, number>, after: Map<string, number>, command: string): number {
  return (after.get(command) ?? 0) - (before.get(command) ?? 0);
}

/** Local clocks the test moves by hand; the wall clock starts `skewMs` off the real one. */
function manualClocks(skewMs = 0): LocalClocks & { advance(ms: number, wallMs?: number): void } {
  let monotonic = 1000;
  let wall = Date.now() + skewMs;
  return {
    monotonic: () => monotonic,
    wall: () => wall,
    advance(ms, wallMs = ms) {
      monotonic += ms;
      wall += wallMs;
    },
  };
}

describe('server clock estimate', () => {
  it('is the server clock whatever the client wall clock says, advanced by the monotonic clock', async () => {
    const clocks = manualClocks(-3 * 3_600_000); // the client's wall clock three hours behind
    const estimate = new ServerClockEstimate(client, clocks);
    const before = await serverTimeMs(client);
    const first = await estimate.now(5000);
    const after = await serverTimeMs(client);
    expect(first).toBeGreaterThanOrEqual(before);
    expect(first).toBeLessThanOrEqual(after);
    clocks.advance(2500);
    expect(await estimate.now(5000)).toBe(first + 2500);
  });

  it('reads TIME once per max age, again past it or when the local clocks jump apart; concurrent reads share one', async () => {
    const clocks = manualClocks();
    const estimate = new ServerClockEstimate(client, clocks);
    const start = await calls();
    await Promise.all([estimate.now(60_000), estimate.now(60_000), estimate.now(5000)]);
    const shared = await calls();
    expect(delta(start, shared, 'time')).toBe(1);
    // An idle worker's probes every 5 s for most of a minute: no TIME.
    for (let i = 0; i < 11; i++) {
      clocks.advance(5000);
      await estimate.now(60_000);
    }
    const idle = await calls();
    expect(delta(shared, idle, 'time')).toBe(0);
    // The same age is too old for a busy worker's 5 s; a minute on, for an idle one too.
    await estimate.now(5000);
    clocks.advance(60_000);
    await estimate.now(60_000);
    const stale = await calls();
    expect(delta(idle, stale, 'time')).toBe(2);
    // The machine slept (the wall clock moved on, the monotonic one did not): read again.
    clocks.advance(0, LOCAL_JUMP_MS + 1);
    await estimate.now(60_000);
    expect(delta(stale, await calls(), 'time')).toBe(1);
  });
});

describe('an idle default Worker', () => {
  it('sends no TIME per idle probe and, without capabilities, no DEL/SREM per presence refresh', { timeout: 30_000 }, async () => {
    const lane = uniqueLane('idlebits');
    // One execution an hour away: the lane lives on its partition, so the worker probes and sweeps it.
    await createExecution(client, { executionId: soloExecutionId(lane, client.partitions), laneId: lane, namespace: 'default', executionKind: 'k', delayUntil: Date.now() + 3_600_000 });
    const ids = [`${lane}-a`, `${lane}-b`];
    // Left by an earlier run that had capabilities: cleared at start.
    await admin.set(GlobalKeys.workerCaps(ids[0]!), 'gpu');
    await admin.sadd(GlobalKeys.workersIndex(), ids[0]!);
    // Presence refreshed every 500 ms, probes every 200 ms: the old code sent a DEL + SREM per
    // refresh and a TIME every 5 s per worker.
    const workers = ids.map((workerInstanceId) => new Worker({ client, lanes: lane, workerInstanceId, leaseTtlMs: 1500, idleBackoff: { minMs: 50, maxMs: 200 }, handler: () => undefined, installWaitpointSecrets: false }));
    try {
      await Promise.all(workers.map((w) => w.start()));
      expect(await admin.exists(GlobalKeys.workerCaps(ids[0]!))).toBe(0);
      expect(await admin.sismember(GlobalKeys.workersIndex(), ids[0]!)).toBe(0);
      await sleep(1000);
      const before = await calls();
      await sleep(6000);
      const after = await calls();
      expect(delta(before, after, 'time')).toBe(0);
      expect(delta(before, after, 'del')).toBe(0);
      expect(delta(before, after, 'srem')).toBe(0);
      // The alive keys are still refreshed (SET XX PX).
      expect(delta(before, after, 'set')).toBeGreaterThanOrEqual(2 * 6);
      for (const id of ids) expect(await admin.pttl(GlobalKeys.workerAlive(id))).toBeGreaterThan(1500);
      expect(workers.every((w) => w.counters.claimed === 0 && w.counters.errors === 0)).toBe(true);
    } finally {
      await Promise.all(workers.map((w) => w.close({ timeoutMs: 1000 })));
    }
  });
});

describe('the sweep-turn key', () => {
  it('is the spec-declared global key, ff:ext:sweep_turn:<lane>', () => {
    const lane = uniqueLane('turn');
    expect(GlobalKeys.sweepTurn(lane)).toBe(`ff:ext:sweep_turn:${lane}`);
    expect(sweepTurnKey(lane)).toBe(GlobalKeys.sweepTurn(lane));
  });
});
