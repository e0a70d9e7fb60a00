// `ff-script engine` run as an operator would: it boots, scans, and exits 0 after a clean
// stop on SIGTERM; --help lists its options; bad options are usage errors.
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createExecution } from '../generated/execution.js';
import { FlowFabricClient } from '../runtime/client.js';
import { startServer, type RunningServer } from '../tools/local-server.js';
import { newExecutionId, uniqueLane } from './support/ids.js';
import { sleep } from './support/exec-ops.js';

const root = join(import.meta.dirname, '..');
const main = join(root, 'cli', 'main.ts');
let server: RunningServer;

beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server.stop();
});

describe('ff-script engine', () => {
  it('--help lists intervals, retention, partitions and log level', () => {
    const help = spawnSync(process.execPath, ['--import', 'tsx', main, 'engine', '--help'], { cwd: root, encoding: 'utf8' });
    expect(help.status).toBe(0);
    for (const option of ['--interval', 'lease_expiry=1500', '--retention-ms', '--lane-retention', '--flow-partitions', '--log-level', '--cluster']) {
      expect(help.stdout).toContain(option);
    }
  });

  it('refuses a bad option value with a usage error', () => {
    const bad = spawnSync(process.execPath, ['--import', 'tsx', main, 'engine', '--url', server.url, '--interval', 'nonsense=5'], { cwd: root, encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('unknown scanner nonsense');
  });

  for (const transport of ['ioredis', 'glide'] as const) it(`starts, promotes a delayed execution, and exits 0 on SIGTERM (${transport})`, async () => {
    const glide = transport === 'glide' ? ['--glide'] : [];
    const child = spawn(process.execPath, ['--import', 'tsx', main, 'engine', ...glide, '--url', server.url, '--flow-partitions', '8', '--budget-partitions', '2', '--quota-partitions', '2', '--interval', 'delayed_promoter=100'], { cwd: root });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const redis = new Redis(server.url);
    try {
      const deadline = Date.now() + 15_000;
      while (!stderr.includes('engine: started') && Date.now() < deadline) await sleep(50);
      expect(stderr).toContain('engine: started');
      const client = FlowFabricClient.fromIoredis(redis, { partitions: { numFlowPartitions: 8, numBudgetPartitions: 2, numQuotaPartitions: 2 } });
      const executionId = newExecutionId(3);
      await createExecution(client, { executionId, laneId: uniqueLane('cli'), namespace: 'test', executionKind: 'test', delayUntil: Date.now() + 50 });
      const until = Date.now() + 5_000;
      while ((await redis.hget(`ff:exec:{fp:3}:${executionId}:core`, 'eligibility_state')) !== 'eligible_now' && Date.now() < until) await sleep(50);
      expect(await redis.hget(`ff:exec:{fp:3}:${executionId}:core`, 'eligibility_state')).toBe('eligible_now');
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(stderr).toContain('engine: stopped');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      redis.disconnect();
    }
  }, 30_000);
});
