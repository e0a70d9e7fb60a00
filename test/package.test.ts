// The package as a user meets it: `npm pack`, install the tarball once, and use it from two
// fresh projects beside each other — an ES module project and a CommonJS one (what `npm init`
// makes) — each type-checking its TypeScript and running a short scenario (single calls, then
// a Worker with a producer waiting for its outcome) against the test
// server with no access to this repository's sources. The tarball is also checked by
// publint and by @arethetypeswrong/cli (types for every entry point, from ESM and from CJS).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const work = mkdtempSync(join(tmpdir(), 'ff-consumer-'));
const bin = (name: string) => join(root, 'node_modules', '.bin', name);
const run = (file: string, args: readonly string[], cwd: string): string =>
  execFileSync(file, args, { cwd, encoding: 'utf8', stdio: 'pipe', maxBuffer: 64 * 1024 * 1024, env: { ...process.env, REDIS_URL: inject('redisUrl') } });

let tarball = '';

beforeAll(() => {
  run('npm', ['pack', '--pack-destination', work, '--silent'], root);
  tarball = join(work, readdirSync(work).find((f) => f.endsWith('.tgz'))!);
  writeFileSync(join(work, 'package.json'), JSON.stringify({ name: 'consumers', private: true }));
  // A TypeScript project on Node has @types/node; ioredis's own types need it.
  // GLIDE is an optional peer: a user who picks it installs it beside the package.
  run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball, '@types/node@20', '@valkey/valkey-glide@2'], work);
}, 240_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The life of one execution, written once; each project imports the package its own way. */
const scenario = `
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
// A worker, as a user runs one: a handler per execution, a producer that waits for the outcome.
const worker = new Worker<{ n: number }>({ client, lanes: [laneId], handler: async (task) => ({ doubled: task.input.n * 2 }) });
await worker.start();
const submitted = await submitExecution(client, { lane: laneId, kind: 'double', input: { n: 21 } });
const outcome = await waitForOutcome(client, submitted.executionId, { timeoutMs: 10_000 });
await worker.close({ timeoutMs: 5_000 });
console.log(JSON.stringify({ status: done.status, publicState: done.publicState, refused, worker: outcome.resultJson }));
redis.disconnect();
`;

const imports = `import { Redis } from 'ioredis';
import {
  FlowFabricClient, createExecution, issueClaimGrant, claimExecution, completeExecution,
  isScriptError, newAttemptId, newLeaseId, parseLaneId, soloExecutionId, type ExecutionId,
  Worker, submitExecution, waitForOutcome,
} from 'ff-script';
`;

/** A project folder: its package.json, a tsconfig as `tsc --init` would have it, main.ts. */
function project(name: string, type: 'module' | 'commonjs', main: string): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true, type }));
  // skipLibCheck as `tsc --init` sets it: ioredis's own .d.ts files import untyped redis-errors.
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, skipLibCheck: true, outDir: 'out', types: ['node'] }, files: ['main.ts'] }),
  );
  writeFileSync(join(dir, 'main.ts'), main);
  run(bin('tsc'), ['-p', dir], dir);
  return dir;
}

const expected = { status: 'OK', publicState: 'completed', refused: 'execution_not_active', worker: { doubled: 42 } };
const lastLine = (out: string): unknown => JSON.parse(out.trim().split('\n').at(-1)!);

describe('the packed package', () => {
  it('ships the library in both formats, the CLI, the reference docs, and no dev dependency', () => {
    const files = run('tar', ['tzf', tarball], work).split('\n');
    for (const file of ['dist/esm/index.js', 'dist/esm/index.d.ts', 'dist/cjs/index.js', 'dist/cjs/index.d.ts', 'dist/cjs/package.json', 'dist/esm/cli/main.js', 'docs/reference/README.md', 'docs/reference/execution.md', 'README.md']) {
      expect(files).toContain(`package/${file}`);
    }
    const installed = readdirSync(join(work, 'node_modules'));
    for (const dev of ['ts-morph', 'ajv', 'luaparse', 'vitest', 'bullmq', 'publint', '@arethetypeswrong', 'iovalkey']) expect(installed).not.toContain(dev);
  });

  it('passes publint and @arethetypeswrong/cli', () => {
    // Both exit non-zero on a problem; execFileSync throws with their report.
    const unpacked = join(work, 'unpacked');
    mkdirSync(unpacked, { recursive: true });
    run('tar', ['xzf', tarball, '-C', unpacked], work);
    run(bin('publint'), ['--strict', join(unpacked, 'package')], work);
    run(bin('attw'), [tarball, '--format', 'table-flipped'], work);
  });

  it('type-checks and runs in an ES module project', () => {
    const dir = project('esm', 'module', `${imports}${scenario}`);
    expect(lastLine(run(process.execPath, ['out/main.js'], dir))).toEqual(expected);
  });

  it('type-checks and runs in a CommonJS project, and loads with a plain require()', () => {
    // TypeScript in a CommonJS project compiles imports to require() and has no top-level await.
    const dir = project('cjs', 'commonjs', `${imports}\nasync function main(): Promise<void> {${scenario}}\nvoid main();\n`);
    expect(lastLine(run(process.execPath, ['out/main.js'], dir))).toEqual(expected);
    writeFileSync(
      join(dir, 'plain.js'),
      `const ff = require('ff-script');
const otel = require('ff-script/otel');
const { fromGlide } = require('ff-script/glide');
const { GlideClient } = require('@valkey/valkey-glide');
async function main() {
  const url = new URL(process.env.REDIS_URL);
  const glide = await GlideClient.createClient({ addresses: [{ host: url.hostname, port: Number(url.port) }] });
  const client = fromGlide(glide);
  await client.ensureLibrary();
  const v = await ff.version(client);
  glide.close();
  console.log(JSON.stringify({ client: typeof ff.FlowFabricClient, hook: typeof otel.openTelemetryHook, version: v.version === ff.LIBRARY_VERSION }));
}
main();
`,
    );
    expect(lastLine(run(process.execPath, ['plain.js'], dir))).toEqual({ client: 'function', hook: 'function', version: true });
  });

  it('runs over Valkey GLIDE from an ES module project (ff-script/glide)', () => {
    const dir = project(
      'esm-glide',
      'module',
      `import { GlideClient } from '@valkey/valkey-glide';
import { fromGlide } from 'ff-script/glide';
import { version, LIBRARY_VERSION } from 'ff-script';
const url = new URL(process.env.REDIS_URL!);
const glide = await GlideClient.createClient({ addresses: [{ host: url.hostname, port: Number(url.port) }] });
const client = fromGlide(glide);
await client.ensureLibrary();
const v = await version(client);
glide.close();
console.log(JSON.stringify({ version: v.version === LIBRARY_VERSION }));
`,
    );
    expect(lastLine(run(process.execPath, ['out/main.js'], dir))).toEqual({ version: true });
  });

  it('brings the operator CLI', () => {
    const version = run(join(work, 'node_modules', '.bin', 'ff-script'), ['version', '--url', inject('redisUrl')], work);
    expect(version).toMatch(/package: \S+\nserver 1: \S+/);
  });
});
