// The operator commands, run as a user would: `doctor` against servers of its own (one
// deliberately misconfigured, one correct), `inspect` and `lanes` against real engine states
// on the test server (active, suspended with a signal, terminal with output, flow member),
// and the typed reads behind them (inspectExecution, readLaneStats).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { appendFrame } from '../generated/stream.js';
import { LIBRARY_SOURCE, LIBRARY_VERSION } from '../generated/library.js';
import { FlowFabricClient } from '../runtime/client.js';
import { executionPartition, type ExecutionId } from '../runtime/ids.js';
import { soloPartition } from '../runtime/partition.js';
import { inspectExecution } from '../operations/inspect.js';
import { readLaneStats } from '../operations/lanes.js';
import { startCluster, type RunningCluster } from '../tools/local-cluster.js';
import { startServer, type RunningServer } from '../tools/local-server.js';
import { useServer } from './support/client.js';
import { addMember, complete, link, newTestFlow } from './support/flow.js';
import { newExecutionId, uniqueLane } from './support/ids.js';
import { createClaimed, createWaiting } from './support/lifecycle.js';
import { deliver, ensureKeyring, suspendClaimed } from './support/suspension.js';

const root = join(import.meta.dirname, '..');

function cli(url: string, ...args: string[]): { code: number | null; out: string; err: string } {
  const result = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'cli', 'main.ts'), ...args, '--url', url], { cwd: root, encoding: 'utf8' });
  return { code: result.status, out: result.stdout, err: result.stderr };
}

describe('ff-script doctor', () => {
  let bad: RunningServer;
  let good: RunningServer;
  const connections: Redis[] = [];
  const clientFor = (server: RunningServer, partitions = 4) => {
    const redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
    connections.push(redis);
    return { redis, client: FlowFabricClient.fromIoredis(redis, { partitions: { numFlowPartitions: partitions, numBudgetPartitions: 32, numQuotaPartitions: 32 } }) };
  };

  beforeAll(async () => {
    [bad, good] = await Promise.all([startServer(['--maxmemory-policy', 'allkeys-lru']), startServer(['--stream-node-max-bytes', '512'])]);
    // The bad one: an evicting policy, a library of another version, no secrets, counts recorded as 8.
    const b = clientFor(bad);
    const foreign = LIBRARY_SOURCE.replace(`return '${LIBRARY_VERSION}'`, "return 'other-1'");
    await b.client.ensureLibrary({ source: foreign, version: 'other-1' });
    await b.redis.hset('ff:config:partitions', { num_flow_partitions: '8', num_budget_partitions: '32', num_quota_partitions: '32' });
    // The good one: library loaded, a secret on each of its 4 partitions, counts recorded as 4.
    const g = clientFor(good);
    await g.client.ensureLibrary();
    await g.redis.hset('ff:config:partitions', { num_flow_partitions: '4', num_budget_partitions: '32', num_quota_partitions: '32' });
    expect(cli(good.url, 'rotate-secret', '--kid', 'k1', '--secret-hex', '00ff', '--partitions', '4').code).toBe(0);
  }, 30_000);

  afterAll(async () => {
    connections.forEach((c) => c.disconnect());
    await Promise.all([bad?.stop(), good?.stop()]);
  });

  it('reports a misconfigured server with exit 1 and says what to do', async () => {
    const { redis } = clientFor(bad);
    const keysBefore = await redis.dbsize();
    const result = cli(bad.url, 'doctor', '--partitions', '4');
    expect(result.code).toBe(1);
    expect(result.out).toMatch(/FAIL\s+maxmemory\s+maxmemory-policy is not noeviction \(127\.0\.0\.1:\d+: allkeys-lru\)/);
    expect(result.out).toContain('→ CONFIG SET maxmemory-policy noeviction');
    expect(result.out).toMatch(new RegExp(`FAIL\\s+library\\s+this package needs flowfabric ${LIBRARY_VERSION}: 127\\.0\\.0\\.1:\\d+: version other-1`));
    expect(result.out).toMatch(/FAIL\s+partitions\s+the deployment records 8 flow/);
    // Secrets are looked for on the recorded 8 partitions.
    expect(result.out).toMatch(/FAIL\s+secrets\s+no waitpoint secret on 8 of 8 flow partitions/);
    expect(result.out).toMatch(/warn\s+persistence/);
    expect(result.out).toMatch(/warn\s+memory\s+a fresh execution's lease-history stream takes \d+ bytes with stream-node-max-bytes 4096, \d+ bytes with 512/);
    expect(result.out).toMatch(/4 problem\(s\), 2 warning\(s\)/);
    // The probes are gone and the setting is back.
    expect(await redis.dbsize()).toBe(keysBefore);
    expect(await redis.config('GET', 'stream-node-max-bytes')).toEqual(['stream-node-max-bytes', '4096']);
  });

  it('measures the lease-history stream larger at the default node size than at 512', () => {
    const result = cli(bad.url, 'doctor', '--json');
    expect(result.code).toBe(1);
    const { findings } = JSON.parse(result.out) as { findings: { check: string; status: string; summary: string }[] };
    const memory = findings.find((f) => f.check === 'memory')!;
    const [, atDefault, at512] = /takes (\d+) bytes with stream-node-max-bytes 4096, (\d+) bytes with 512/.exec(memory.summary)!;
    expect(Number(atDefault)).toBeGreaterThan(Number(at512) + 2048);
    expect(findings.filter((f) => f.status === 'fail').map((f) => f.check).sort()).toEqual(['library', 'maxmemory', 'partitions', 'secrets']);
  });

  it('passes a correctly configured server with exit 0', () => {
    const result = cli(good.url, 'doctor', '--partitions', '4');
    expect(result.err).toBe('');
    expect(result.code).toBe(0);
    expect(result.out).toMatch(new RegExp(`ok\\s+library\\s+flowfabric ${LIBRARY_VERSION} with all \\d+ functions`));
    expect(result.out).toMatch(/ok\s+secrets\s+a waitpoint secret is installed on all 4 flow partitions/);
    expect(result.out).toMatch(/ok\s+partitions/);
    expect(result.out).toMatch(/ok\s+memory\s+a fresh execution's lease-history stream takes \d+ bytes \(stream-node-max-bytes 512/);
    expect(result.out).not.toContain('FAIL');
    expect(result.out).toMatch(/no problems, 1 warning\(s\)/);
  });

  it('fails with the server named when there is none', () => {
    const result = cli('redis://127.0.0.1:1', 'doctor');
    expect(result.code).toBe(1);
    expect(result.err).toContain('127.0.0.1:1');
    expect(result.err).not.toContain('Unhandled error event');
  });
});

describe('ff-script doctor --cluster', () => {
  let cluster: RunningCluster;
  let url: string;
  const clusterCli = (...args: string[]) => cli(url, ...args, '--cluster');
  beforeAll(async () => {
    cluster = await startCluster();
    url = `redis://127.0.0.1:${cluster.seeds[0]!.port}`;
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('checks every primary and the slot coverage', () => {
    const fresh = clusterCli('doctor', '--partitions', '4', '--no-measure');
    expect(fresh.code).toBe(1);
    expect(fresh.out).toMatch(/FAIL\s+library\s+.*(127\.0\.0\.1:\d+: not loaded.*){3}/);
    expect(fresh.out).toMatch(/ok\s+cluster\s+all 16384 slots are covered; 3 primaries report cluster_state ok/);
    expect(clusterCli('load').code).toBe(0);
    expect(clusterCli('rotate-secret', '--kid', 'k1', '--secret-hex', '00ff', '--partitions', '4').code).toBe(0);
    const ready = clusterCli('doctor', '--partitions', '4');
    expect(ready.out).toMatch(/ok\s+library\s+flowfabric \S+ with all \d+ functions on all 3 primaries/);
    expect(ready.out).toMatch(/warn\s+memory\s+a fresh execution's lease-history stream takes \d+ bytes with stream-node-max-bytes 4096, \d+ bytes with 512/);
    expect(ready.code).toBe(0);
    // One slot taken away from its owner: the cluster no longer covers every partition.
    // The node that owns slot 0 by its own account (DELSLOTS on another node only drops its
    // view of the slot, and giving it back there would claim the slot twice).
    const ownsSlotZero = (port: number) => {
      const nodes = spawnSync('redis-cli', ['-p', String(port), 'CLUSTER', 'NODES'], { encoding: 'utf8' }).stdout;
      const myself = nodes.split('\n').find((line) => line.includes('myself')) ?? '';
      return myself.split(' ').slice(8).some((range) => range.split('-')[0] === '0');
    };
    const owner = cluster.seeds.find((s) => ownsSlotZero(s.port));
    expect(owner).toBeDefined();
    expect(spawnSync('redis-cli', ['-p', String(owner!.port), 'CLUSTER', 'COUNTKEYSINSLOT', '0'], { encoding: 'utf8' }).stdout.trim()).toBe('0');
    expect(spawnSync('redis-cli', ['-p', String(owner!.port), 'CLUSTER', 'DELSLOTS', '0'], { encoding: 'utf8' }).stdout.trim()).toBe('OK');
    const broken = clusterCli('doctor', '--partitions', '4', '--no-measure');
    expect(broken.code).toBe(1);
    expect(broken.out).toMatch(/FAIL\s+cluster\s+.*16383 of 16384 slots assigned/);
    // Given back, so the cluster serves the next test.
    expect(spawnSync('redis-cli', ['-p', String(owner!.port), 'CLUSTER', 'ADDSLOTS', '0'], { encoding: 'utf8' }).stdout.trim()).toBe('OK');
  }, 60_000);

  it('inspects an execution and counts its lane on the cluster', async () => {
    const connection = new Cluster([...cluster.seeds], { redisOptions: { maxRetriesPerRequest: 1 } });
    try {
      const client = FlowFabricClient.fromIoredis(connection);
      // The slot given back needs a moment before the whole cluster says ok again.
      await expect.poll(() => client.ensureLibrary().then(() => true, () => false), { timeout: 10_000, interval: 200 }).toBe(true);
      // Partition 77 ({fp:77}, slot 3838) is on a slot every primary set keeps assigned.
      const c = await createClaimed(client, { executionId: newExecutionId(77) });
      const inspected = clusterCli('inspect', c.executionId);
      expect(inspected.code).toBe(0);
      expect(inspected.out).toMatch(/state\s+active/);
      const lanes = clusterCli('lanes', '--lane', c.laneId, '--partition', '77');
      expect(lanes.out).toContain(`lane ${c.laneId}: active 1`);
    } finally {
      connection.disconnect();
    }
  }, 30_000);
});

describe('ff-script inspect and lanes on real states', () => {
  const { client } = useServer();
  const url = inject('redisUrl');
  const laneId = uniqueLane('ops');
  const partition = () => soloPartition(laneId, client.partitions);
  let active: ExecutionId;
  let suspended: ExecutionId;
  let terminal: ExecutionId;
  let waiting: ExecutionId;

  beforeAll(async () => {
    const onLane = () => ({ laneId, executionId: newExecutionId(partition()) });
    waiting = (await createWaiting(client, onLane())).executionId;
    active = (await createClaimed(client, onLane())).executionId;
    // Suspended until two signals arrive; one has.
    const toSuspend = await createClaimed(client, onLane());
    await ensureKeyring(client, toSuspend.executionId);
    const s = await suspendClaimed(client, toSuspend, {
      resumeConditionJson: { condition_type: 'signal_set', required_signal_names: ['approve', 'review'], signal_match_mode: 'all', minimum_signal_count: 2 },
      timeoutMs: 600_000,
    });
    await expect(deliver(client, s, 'approve')).resolves.toMatchObject({ effect: 'appended_to_waitpoint' });
    suspended = s.executionId;
    // Terminal, with three output frames.
    const done = await createClaimed(client, onLane());
    for (const payload of ['first', 'second', 'third']) {
      await appendFrame(client, { executionId: done.executionId, attemptIndex: done.lease.attemptIndex, leaseId: done.lease.leaseId, leaseEpoch: done.lease.leaseEpoch, frameType: 'text_chunk', payload });
    }
    await complete(client, done, '{"ok":true}');
    terminal = done.executionId;
  });

  it('inspects an active execution: state vector, attempt, lease', async () => {
    const result = cli(url, 'inspect', active);
    expect(result.code).toBe(0);
    expect(result.out).toContain(`execution ${active}`);
    expect(result.out).toMatch(/state\s+active/);
    expect(result.out).toContain('lifecycle    active · ownership leased · eligibility not_applicable');
    expect(result.out).toContain('#0 initial · started · worker worker-a-1 · epoch 1');
    expect(result.out).toMatch(/lease\n {2}[0-9a-f-]{36} · epoch 1 · worker worker-a-1\n {2}acquired .*\n {2}expires {2}.*\(in /);
    const details = await inspectExecution(client, active);
    expect(details?.execution.publicState).toBe('active');
    expect(details?.lease).toMatchObject({ leaseEpoch: 1, workerInstanceId: 'worker-a-1' });
    expect(details?.attempts).toEqual([expect.objectContaining({ index: 0, type: 'initial', state: 'started' })]);
  });

  it('inspects a suspended execution with its waitpoint, matchers and the signal it got', async () => {
    const result = cli(url, 'inspect', suspended);
    expect(result.code).toBe(0);
    expect(result.out).toMatch(/state\s+suspended/);
    expect(result.out).toMatch(/suspension \(open\)/);
    expect(result.out).toMatch(/ · active · key wpk:[0-9a-f-]+ · signals 1 \(matched 1\)/);
    expect(result.out).toContain('match all 1/2: approve ✓, review ·');
    expect(result.out).toMatch(/signals \(1 of 1\)\n {2}.* · approve · appended_to_waitpoint · from external_api test/);
    expect(result.out).toMatch(/lease\n {2}none/);
    const details = await inspectExecution(client, suspended);
    expect(details?.suspension).toMatchObject({ open: true, reasonCode: expect.any(String) });
    expect(details?.waitpoints[0]?.condition?.matchers).toEqual([expect.objectContaining({ name: 'approve', satisfied: true }), { name: 'review', satisfied: false }]);
    // The waitpoint token is a credential: never read, never shown.
    expect(JSON.stringify(details)).not.toMatch(/k1:[0-9a-f]{40}/);
  });

  it('inspects a terminal execution with its output frames, and prints JSON for scripts', () => {
    const result = cli(url, 'inspect', terminal);
    expect(result.code).toBe(0);
    expect(result.out).toMatch(/state\s+completed/);
    expect(result.out).toContain('result       {"ok":true}');
    expect(result.out).toMatch(/output of attempt 0 \(3 frames, \d+ bytes, closed: attempt_success\)/);
    expect(result.out).toMatch(/text_chunk · first\n.*text_chunk · second\n.*text_chunk · third/);
    const json = cli(url, 'inspect', terminal, '--json', '--frames', '2');
    const details = JSON.parse(json.out) as { execution: { publicState: string }; attempts: { state: string }[]; output: { frames: { payload: string }[] } };
    expect(details.execution.publicState).toBe('completed');
    expect(details.attempts[0]?.state).toBe('ended_success');
    expect(details.output.frames.map((f) => f.payload)).toEqual(['second', 'third']);
  });

  it('inspects flow members: the edge each waits on and feeds', async () => {
    const flow = await newTestFlow(client);
    const upstream = await addMember(client, flow);
    const downstream = await addMember(client, flow);
    await link(client, flow, upstream.executionId, downstream.executionId);
    const down = cli(url, 'inspect', downstream.executionId);
    expect(down.code).toBe(0);
    expect(down.out).toMatch(/state\s+waiting_children/);
    expect(down.out).toMatch(new RegExp(`flow ${flow.flowId} \\(state open · kind test · nodes 2 · edges 1\\)`));
    expect(down.out).toContain('dependencies: 1 unsatisfied, 0 impossible');
    expect(down.out).toContain(`waits on ${upstream.executionId} (unsatisfied, success_only)`);
    const up = await inspectExecution(client, upstream.executionId);
    expect(up?.flow?.outgoing).toEqual([expect.objectContaining({ executionId: downstream.executionId, state: 'unsatisfied' })]);
  });

  it('reads the same through Valkey GLIDE with --glide', () => {
    const ioredis = cli(url, 'inspect', terminal, '--json');
    const glide = cli(url, 'inspect', terminal, '--json', '--glide');
    expect(glide.err).toBe('');
    expect(glide.code).toBe(0);
    expect(JSON.parse(glide.out)).toEqual(JSON.parse(ioredis.out));
    expect(cli('redis://127.0.0.1:1', 'inspect', terminal, '--glide')).toMatchObject({ code: 1, err: expect.stringMatching(/127\.0\.0\.1:1[\s\S]*never sent/) });
  });

  it('says so for an unknown execution, and refuses a malformed id', () => {
    expect(cli(url, 'inspect', newExecutionId())).toMatchObject({ code: 1, err: expect.stringContaining('no execution') });
    expect(cli(url, 'inspect', 'not-an-id')).toMatchObject({ code: 2 });
    expect(cli(url, 'inspect')).toMatchObject({ code: 2, err: expect.stringContaining('exactly one execution id') });
  });

  it('counts a lane by index with each head, from --lane and from the lane registry', async () => {
    const result = cli(url, 'lanes', '--lane', laneId);
    expect(result).toMatchObject({ code: 0, err: '' });
    expect(result.out).toContain(`lane ${laneId}: eligible 1 · active 1 · suspended 1 · terminal 1`);
    expect(result.out).toContain(`active 1 (head ${active}, `);
    expect(result.out).toContain(`eligible 1 (head ${waiting})`);
    expect(result.out).toContain(`suspended 1 (head ${suspended}, `);
    // No --lane: the partition's registry names the lane.
    const json = cli(url, 'lanes', '--partition', String(partition()), '--json');
    const report = JSON.parse(json.out) as { lanes: { laneId: string; totals: Record<string, number> }[]; timers: { partition: number; indexes: Record<string, { count: number }> }[] };
    expect(report.lanes.find((l) => l.laneId === laneId)?.totals).toMatchObject({ eligible: 1, active: 1, suspended: 1, terminal: 1, delayed: 0 });
    const timers = report.timers.find((t) => t.partition === partition());
    expect(timers?.indexes.lease_expiry?.count).toBeGreaterThanOrEqual(1);
    expect(timers?.indexes.suspension_timeout?.count).toBeGreaterThanOrEqual(1);
    // The typed read agrees.
    const stats = await readLaneStats(client, { lanes: [laneId] });
    expect(stats.lanes[0]?.partitions.map((p) => p.partition)).toEqual([executionPartition(active)]);
    expect(stats.lanes[0]?.partitions[0]?.indexes.terminal.head?.executionId).toBe(terminal);
  });

  it('has --help for each operator command', () => {
    for (const command of ['doctor', 'inspect', 'lanes']) {
      const result = cli(url, command, '--help');
      expect(result.code).toBe(0);
      expect(result.out).toContain(`usage: ff-script ${command}`);
    }
  });
});
