// What idle workers cost the server: on a server of their own, idle workers (no work in
// their lane) run for a few seconds after warming up, and the server's command count and CPU
// time are read before and after (INFO commandstats / INFO cpu). Prints the figures; the
// assertion only bounds them, so a change that starts busy-polling fails.
// FF_WORKER_IDLE=1 measures each claim path for longer.
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { FlowFabricClient } from '../runtime/client.js';
import { startServer } from '../tools/local-server.js';
import { Worker, type ClaimPath } from '../worker/index.js';

const LONG = Boolean(process.env.FF_WORKER_IDLE);

async function serverLoad(redis: Redis): Promise<{ calls: number; cpuMs: number }> {
  const stats = await redis.info('commandstats');
  const calls = [...stats.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)].filter(([, name]) => name !== 'info').reduce((sum, m) => sum + Number(m[2]), 0);
  const cpu = await redis.info('cpu');
  const cpuMs = ['used_cpu_sys', 'used_cpu_user'].reduce((sum, field) => sum + Number(new RegExp(`^${field}:([0-9.]+)`, 'm').exec(cpu)?.[1] ?? 0) * 1000, 0);
  return { calls, cpuMs };
}

describe('idle workers', () => {
  it('back off instead of polling: bounded commands per second per idle worker', { timeout: 120_000 }, async () => {
    const server = await startServer();
    const redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
    try {
      const paths: ClaimPath[] = LONG ? ['admission', 'direct', 'fast'] : ['admission'];
      for (const claimPath of paths) {
        const connections = Array.from({ length: 2 }, () => new Redis(server.url, { maxRetriesPerRequest: 1 }));
        const clients = connections.map((connection) => FlowFabricClient.fromIoredis(connection));
        await clients[0]!.ensureLibrary();
        const workers = clients.map((client, i) => new Worker({ client, lanes: `idle-${claimPath}`, claimPath, concurrency: 16, workerInstanceId: `idle-${claimPath}-${i}`, handler: () => undefined }));
        await Promise.all(workers.map((w) => w.start()));
        await sleep(2500); // Past the back-off ramp (50 ms doubling to 1 s).
        const before = await serverLoad(redis);
        const seconds = LONG ? 10 : 3;
        await sleep(seconds * 1000);
        const after = await serverLoad(redis);
        await Promise.all(workers.map((w) => w.close()));
        for (const connection of connections) connection.disconnect();
        const perWorker = { commandsPerSecond: (after.calls - before.calls) / seconds / workers.length, cpuMsPerSecond: (after.cpuMs - before.cpuMs) / seconds / workers.length };
        console.log(`idle ${claimPath} worker (256 partitions, 1 lane, concurrency 16): ${perWorker.commandsPerSecond.toFixed(0)} commands/s, ${perWorker.cpuMsPerSecond.toFixed(2)} ms server CPU/s`);
        // The sweep reads about 2.2 indexes per partition per second (≈ 563 for 256); an idle
        // round reads one chunk of 32 partitions, whatever the free slots (before: every
        // partition once per free slot, ≈ 3,800 per second at concurrency 16).
        expect(perWorker.commandsPerSecond).toBeLessThan(750);
        expect(workers.every((w) => w.counters.claimed === 0 && w.counters.errors === 0)).toBe(true);
      }
    } finally {
      redis.disconnect();
      await server.stop();
    }
  });
});
