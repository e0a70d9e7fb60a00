// The ff-script command line, run as a user would, against a server of its own.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIBRARY_VERSION } from '../generated/library.js';
import { startServer, type RunningServer } from '../tools/local-server.js';

const root = join(import.meta.dirname, '..');
let server: RunningServer;

function cli(...args: string[]): { code: number | null; out: string; err: string } {
  const result = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'cli', 'main.ts'), ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, REDIS_URL: server.url } });
  return { code: result.status, out: result.stdout, err: result.stderr };
}

beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server.stop();
});

describe('ff-script CLI', () => {
  it('prints help, and a usage error for unknown commands and options', () => {
    expect(cli('--help')).toMatchObject({ code: 0, out: expect.stringContaining('rotate-secret') });
    expect(cli('frobnicate')).toMatchObject({ code: 2, err: expect.stringContaining("unknown command 'frobnicate'") });
    expect(cli('load', '--bogus')).toMatchObject({ code: 2, err: expect.stringContaining("Unknown option '--bogus'") });
    expect(cli('load', '--help')).toMatchObject({ code: 0, out: expect.stringContaining('--cluster') });
  });

  it('loads the library, then reports versions and functions', () => {
    expect(cli('version')).toMatchObject({ code: 1, out: expect.stringContaining('(not loaded)') });
    expect(cli('load')).toMatchObject({ code: 0, out: expect.stringContaining(`(absent) → ${LIBRARY_VERSION} (loaded)`) });
    expect(cli('load')).toMatchObject({ code: 0, out: expect.stringContaining('already current') });
    expect(cli('version')).toMatchObject({ code: 0, out: expect.stringContaining(`server 1: ${LIBRARY_VERSION}`) });
    const functions = cli('functions');
    expect(functions.out).toContain('ok      ff_create_execution');
    expect(functions.code).toBe(0);
  });

  it('fails clearly when the server is unreachable', () => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'cli', 'main.ts'), 'version', '--url', 'redis://127.0.0.1:1'], { cwd: root, encoding: 'utf8' });
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/ff-script version: .*(ECONNREFUSED|connect|max retries)/i);
    // The client's error events are the CLI's to report, once, with the server and the fate.
    expect(result.stderr).not.toContain('Unhandled error event');
    expect(result.stderr).toContain('127.0.0.1:1');
    expect(result.stderr).toContain('never sent');
    const cluster = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'cli', 'main.ts'), 'version', '--cluster', '--url', 'redis://127.0.0.1:1'], { cwd: root, encoding: 'utf8' });
    expect(cluster.status).toBe(1);
    expect(cluster.stderr).not.toContain('Unhandled error event');
    expect(cluster.stderr).toContain('127.0.0.1:1');
  });

  it('rotates the waitpoint secret on every partition, and refuses bad input', () => {
    expect(cli('rotate-secret', '--kid', 'k2', '--secret-hex', '00ff', '--partitions', '4')).toMatchObject({ code: 0, out: expect.stringContaining('rotated on 4') });
    expect(cli('rotate-secret', '--kid', 'k2', '--secret-hex', '00ff', '--partitions', '4')).toMatchObject({ code: 0, out: expect.stringContaining('already current on 4') });
    const conflict = cli('rotate-secret', '--kid', 'k2', '--secret-hex', 'aabb', '--partitions', '4');
    expect(conflict.code).toBe(1);
    expect(conflict.out + conflict.err).not.toContain('aabb');
    expect(cli('rotate-secret', '--kid', 'k3')).toMatchObject({ code: 2 });
  });

  it('checks spec against Lua', () => {
    const result = cli('check');
    expect(result.err + result.out).toMatch(/ok: \d+ functions|stale|not registered/);
  });
});
