// Starts a throwaway local Redis cluster of three primaries (no replicas) on free loopback
// ports, persistence off: for the cluster tests and for trying the CLI against a cluster.
import { spawnSync } from 'node:child_process';
import { startServer, type RunningServer } from './local-server.js';

export interface RunningCluster {
  readonly nodes: readonly RunningServer[];
  /** `host:port` seeds for ioredis Cluster. */
  readonly seeds: readonly { host: string; port: number }[];
  stop(): Promise<void>;
}

export async function startCluster(primaries = 3): Promise<RunningCluster> {
  const nodes: RunningServer[] = [];
  try {
    for (let i = 0; i < primaries; i++) {
      nodes.push(await startServer(['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000']));
    }
    const create = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8' });
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed:\n${create.stdout}\n${create.stderr}`);
    await waitForClusterOk(nodes);
  } catch (error) {
    await Promise.all(nodes.map((n) => n.stop()));
    throw error;
  }
  return {
    nodes,
    seeds: nodes.map((n) => ({ host: '127.0.0.1', port: n.port })),
    async stop() {
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
}

async function waitForClusterOk(nodes: readonly RunningServer[]): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const states = nodes.map((n) => spawnSync('redis-cli', ['-p', String(n.port), 'cluster', 'info'], { encoding: 'utf8' }).stdout);
    if (states.every((s) => s.includes('cluster_state:ok'))) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('the local cluster did not reach cluster_state:ok within 15 s');
}
