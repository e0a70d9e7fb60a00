// Flow dependencies through the engine: the completion listener releases children as
// soon as their upstream finishes (completion, expiry, suspension timeout), comes back
// after its connection is killed and then runs the reconciler for the gap; the
// dependency reconciler alone releases children whose completion was never heard.
import { describe, expect, it } from 'vitest';
import { PartitionKeys } from '../generated/keys.js';
import type { ExecutionId } from '../runtime/ids.js';
import { useEngineServer } from './support/engine-server.js';
import { core, expire, sleep, suspendClaimed, waitFor } from './support/exec-ops.js';
import { addMember, complete, link, newTestFlow } from './support/flow.js';
import { claim } from './support/lifecycle.js';
import { expireSuspensionOf } from '../operations/waitpoints.js';

const env = useEngineServer();

const eligible = async (executionId: ExecutionId) => (await core(env.redis(), executionId)).eligibility_state === 'eligible_now';

/** A flow whose members all land on the private server's few partitions. */
async function chain() {
  const client = env.client();
  const flow = await newTestFlow(client);
  const upstream = await addMember(client, flow);
  const child = await addMember(client, flow);
  await link(client, flow, upstream.executionId, child.executionId);
  expect((await core(env.redis(), child.executionId)).eligibility_state).toBe('blocked_by_dependencies');
  return { client, flow, upstream, child };
}

describe('completion listener', () => {
  it('releases a child when its upstream completes, expires or times out, without waiting for the reconciler', async () => {
    const engine = env.engine({ completionListener: true, scanners: ['dependency_reconciler'], intervals: { dependency_reconciler: 600_000 } });
    await engine.start();
    // completed
    const a = await chain();
    await complete(a.client, await claim(a.client, a.upstream));
    await waitFor(() => eligible(a.child.executionId), 2000, 'release after completion');
    // expired (attempt timeout / deadline path)
    const b = await chain();
    await claim(b.client, b.upstream);
    await expire(b.client, b.upstream.executionId, 'execution_deadline');
    await waitFor(async () => (await core(env.redis(), b.child.executionId)).lifecycle_phase === 'terminal', 2000, 'skip after expiry');
    // suspension timeout with a terminal behaviour
    const c = await chain();
    await suspendClaimed(c.client, await claim(c.client, c.upstream), 1);
    await sleep(5);
    await expireSuspensionOf(c.client, c.upstream.executionId);
    await waitFor(async () => (await core(env.redis(), c.child.executionId)).lifecycle_phase === 'terminal', 2000, 'skip after suspension timeout');
    const stats = engine.stats();
    expect(stats.completionListener!.messages).toBeGreaterThanOrEqual(3);
    expect(stats.scanners.find((s) => s.name === 'dependency_reconciler')!.processed).toBe(0);
    await engine.stop();
  });

  it('reconnects after CLIENT KILL, runs the reconciler for the gap, and keeps listening', async () => {
    const engine = env.engine({ completionListener: true, scanners: ['dependency_reconciler'], intervals: { dependency_reconciler: 600_000 } });
    await engine.start();
    await waitFor(async () => engine.stats().scanners[0]!.cycles >= 1, 2000, 'first reconciler cycle');
    const cycles = engine.stats().scanners[0]!.cycles;
    await env.redis().call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    await waitFor(async () => engine.stats().completionListener!.reconnects >= 1, 3000, 'listener reconnect');
    await waitFor(async () => engine.stats().scanners[0]!.cycles > cycles, 3000, 'reconciler kicked after the gap');
    const a = await chain();
    await complete(a.client, await claim(a.client, a.upstream));
    await waitFor(() => eligible(a.child.executionId), 2000, 'release after reconnect');
    await engine.stop();
  });
});

describe('dependency_reconciler', () => {
  it('releases children whose upstream finished while nobody listened', async () => {
    const a = await chain();
    await complete(a.client, await claim(a.client, a.upstream));
    await sleep(20);
    expect(await eligible(a.child.executionId)).toBe(false);
    const engine = env.engine({ boot: false, scanners: ['dependency_reconciler'] });
    const stats = await engine.runOnce('dependency_reconciler');
    expect(await eligible(a.child.executionId)).toBe(true);
    expect(stats.processed).toBeGreaterThanOrEqual(1);
    expect(await env.redis().zscore(PartitionKeys.forPartition(Number(/\{fp:(\d+)\}/.exec(a.child.executionId)![1])).laneBlockedDependencies(a.flow.laneId), a.child.executionId)).toBeNull();
  });

  it('reports the age of the oldest child still blocked', async () => {
    const a = await chain();
    await sleep(250);
    const engine = env.engine({ boot: false, scanners: ['dependency_reconciler'], lanes: [a.flow.laneId] });
    expect((await engine.runOnce('dependency_reconciler')).lagMs).toBeGreaterThanOrEqual(200);
  });

  it('leaves children whose upstream is still running', async () => {
    const a = await chain();
    await claim(a.client, a.upstream);
    const engine = env.engine({ boot: false, scanners: ['dependency_reconciler'] });
    await engine.runOnce('dependency_reconciler');
    expect((await core(env.redis(), a.child.executionId)).eligibility_state).toBe('blocked_by_dependencies');
  });
});
