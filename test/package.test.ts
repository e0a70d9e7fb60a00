// The package as a user meets it: `npm pack`, install the tarball into a fresh TypeScript
// project, type-check it there, and run a short scenario against the test server — with
// no access to this repository's sources.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'ff-consumer-'));

afterAll(() => rmSync(work, { recursive: true, force: true }));

const consumer = `
import { Redis } from 'ioredis';
import {
  FlowFabricClient, createExecution, issueClaimGrant, claimExecution, completeExecution,
  isScriptError, newAttemptId, newLeaseId, parseLaneId, soloExecutionId, type ExecutionId,
} from 'ff-script';

const redis = new Redis(process.env.REDIS_URL!, { maxRetriesPerRequest: 1 });
const client = FlowFabricClient.fromIoredis(redis);
await client.ensureLibrary();
const laneId = parseLaneId('consumer-' + process.pid);
const executionId: ExecutionId = soloExecutionId(laneId, client.partitions);
await createExecution(client, { executionId, laneId, namespace: 'consumer', executionKind: 'k' });
await issueClaimGrant(client, { executionId, laneId, workerId: 'w', workerInstanceId: 'w-1', grantTtlMs: 5000 });
const claim = await claimExecution(client, { executionId, laneId, workerId: 'w', workerInstanceId: 'w-1', leaseId: newLeaseId(), attemptId: newAttemptId(), leaseTtlMs: 10000 });
const lease = { leaseId: claim.leaseId, leaseEpoch: claim.leaseEpoch, attemptId: claim.attemptId, attemptIndex: claim.attemptIndex };
const done = await completeExecution(client, { executionId, laneId, workerInstanceId: 'w-1', ...lease });
let refused = '';
try {
  await completeExecution(client, { executionId, laneId, workerInstanceId: 'w-1', ...lease });
} catch (error) {
  if (isScriptError(error, 'execution_not_active')) refused = error.code;
}
console.log(JSON.stringify({ status: done.status, publicState: done.publicState, refused }));
redis.disconnect();
`;

describe('the packed package in a separate project', () => {
  it('installs, type-checks and runs', { timeout: 240_000 }, () => {
    execFileSync('npm', ['pack', '--pack-destination', work, '--silent'], { cwd: root, stdio: 'pipe', maxBuffer: 64 * 1024 * 1024 });
    const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'))!;
    writeFileSync(join(work, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    // skipLibCheck as `tsc --init` sets it: ioredis's own .d.ts files import untyped redis-errors.
    writeFileSync(
      join(work, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, skipLibCheck: true, outDir: 'out', types: ['node'] }, files: ['main.ts'] }),
    );
    writeFileSync(join(work, 'main.ts'), consumer);
    // A TypeScript project on Node has @types/node; ioredis's own types need it.
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', `./${tarball}`, '@types/node@20'], { cwd: work, stdio: 'pipe', maxBuffer: 64 * 1024 * 1024 });
    // No dev dependency of ff-script may have come along as a runtime dependency.
    const installed = readdirSync(join(work, 'node_modules'));
    for (const dev of ['ts-morph', 'ajv', 'luaparse', 'vitest', 'bullmq']) expect(installed).not.toContain(dev);
    execFileSync(join(root, 'node_modules', '.bin', 'tsc'), ['-p', work], { cwd: work, stdio: 'pipe', maxBuffer: 64 * 1024 * 1024 });
    const out = execFileSync(process.execPath, ['out/main.js'], {
      cwd: work,
      env: { ...process.env, REDIS_URL: inject('redisUrl') },
      encoding: 'utf8',
    });
    expect(JSON.parse(out.trim().split('\n').at(-1)!)).toEqual({ status: 'OK', publicState: 'completed', refused: 'execution_not_active' });
    // The operator CLI comes with the package.
    const version = execFileSync(join(work, 'node_modules', '.bin', 'ff-script'), ['version', '--url', inject('redisUrl')], { cwd: work, encoding: 'utf8' });
    expect(version).toMatch(/package: \S+\nserver 1: \S+/);
  });
});
