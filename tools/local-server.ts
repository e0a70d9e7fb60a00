// Starts a throwaway redis-server (or valkey-server) on a free loopback port, with
// persistence off, in a temp dir. Used by the test global setup, the demo and the bench.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RunningServer {
  readonly url: string;
  readonly port: number;
  readonly binary: string;
  stop(): Promise<void>;
  /** Stops the server and starts a fresh one on the same port: with persistence off, all data (and the function library) is gone. */
  restart(): Promise<void>;
}

const INSTALL_HINT =
  'No redis-server (or valkey-server) on PATH. Install it, e.g. `apt-get install -y redis-server` on Debian/Ubuntu, or set FF_TEST_REDIS_URL to a running server.';

export function findServerBinary(): string {
  for (const candidate of [process.env.FF_REDIS_SERVER, 'redis-server', 'valkey-server']) {
    if (!candidate) continue;
    const probe = spawnSync(candidate, ['--version'], { encoding: 'utf8' });
    if (probe.status === 0) return candidate;
  }
  throw new Error(INSTALL_HINT);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export async function startServer(extraArgs: readonly string[] = []): Promise<RunningServer> {
  const binary = findServerBinary();
  const dir = mkdtempSync(join(tmpdir(), 'ff-redis-'));
  // The port is free when probed but may be taken before the server binds it (another test
  // file starting its own server at the same moment): then try another one.
  let port = await freePort();
  let child: ChildProcess;
  for (let attempt = 1; ; attempt++) {
    try {
      child = await launch(binary, port, dir, extraArgs);
      break;
    } catch (error) {
      if (attempt >= 5 || !(error instanceof Error) || !/Address already in use/i.test(error.message)) throw error;
      port = await freePort();
    }
  }
  const stopChild = async () => {
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    binary,
    async stop() {
      await stopChild();
      rmSync(dir, { recursive: true, force: true });
    },
    async restart() {
      await stopChild();
      child = await launch(binary, port, dir, extraArgs);
    },
  };
}

/** Servers this process started and has not stopped: ended with it, whatever the exit path. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

async function launch(binary: string, port: number, dir: string, extraArgs: readonly string[]): Promise<ChildProcess> {
  const child: ChildProcess = spawn(
    binary,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', ...extraArgs],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  running.add(child);
  child.once('exit', () => running.delete(child));
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${binary} did not start in 10 s:\n${output}`)), 10_000);
    const check = () => {
      if (/Ready to accept connections/.test(output)) {
        clearTimeout(timer);
        resolve();
      } else if (child.exitCode !== null) {
        clearTimeout(timer);
        reject(new Error(`${binary} exited with ${child.exitCode}:\n${output}`));
      } else setTimeout(check, 20);
    };
    check();
  });
  return child;
}
