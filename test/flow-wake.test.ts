// Wake-ups from the flow functions (issue 16): a child made eligible by its last dependency,
// by ff_promote_blocked_to_eligible or by a replay publishes its partition on ff:wake:<lane>,
// as create and delayed promotion do; a call that leaves the child blocked publishes nothing.
// End to end, an idle Worker on the child's lane claims it as soon as its parent completes.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveDependency } from '../generated/flow.js';
import { ExecKeys } from '../generated/keys.js';
import { promoteBlocked, replay, resolveEdge } from '../operations/flows.js';
import { addDependency, createFlowFor, submitExecution } from '../operations/executions.js';
import type { ExecutionId, LaneId } from '../runtime/ids.js';
import { ioredisWakeSource, wakeChannel, Worker } from '../worker/index.js';
import { useServer } from './support/client.js';
import { addMember, complete, link, newTestFlow, type TestFlow } from './support/flow.js';
import { uniqueLane } from './support/ids.js';
import { claim } from './support/lifecycle.js';

/** Collects the wake-ups of one lane; `take` answers those that arrived before now. */
async function listenToWakes(redis: Redis, lane: LaneId): Promise<{ take: () => Promise<string[]>; close: () => void }> {
  const subscriber = redis.duplicate();
  const channel = wakeChannel(lane);
  const messages: string[] = [];
  let marker: { text: string; reached: () => void } | undefined;
  subscriber.on('message', (from: string, message: string) => {
    if (from !== channel) return;
    if (message === marker?.text) marker.reached();
    else messages.push(message);
  });
  await subscriber.subscribe(channel);
  let round = 0;
  return {
    // A marker published after the call under test arrives after anything the call published
    // (one server, one channel, in order), so "nothing" is exact rather than a timed guess.
    async take() {
      const text = `marker-${++round}`;
      const reached = new Promise<void>((resolve) => (marker = { text, reached: resolve }));
      await redis.publish(channel, text);
      await reached;
      return messages.splice(0);
    },
    close: () => subscriber.disconnect(),
  };
}

describe('flow functions wake the lane when they make an execution eligible', () => {
  const { client, redis } = useServer();
  const closers: (() => void)[] = [];
  afterEach(() => closers.splice(0).forEach((close) => close()));

  async function listen(flow: TestFlow) {
    const wakes = await listenToWakes(redis, flow.laneId);
    closers.push(wakes.close);
    return wakes;
  }

  /** The upstream claimed and completed, as its worker would. */
  async function finish(flow: TestFlow, executionId: ExecutionId): Promise<void> {
    await complete(client, await claim(client, { executionId, laneId: flow.laneId }));
  }

  it('ff_resolve_dependency publishes once the last dependency is satisfied, not before', async () => {
    const flow = await newTestFlow(client);
    const a1 = (await addMember(client, flow)).executionId;
    const a2 = (await addMember(client, flow)).executionId;
    const b = (await addMember(client, flow)).executionId;
    const e1 = await link(client, flow, a1, b);
    const e2 = await link(client, flow, a2, b);
    const wakes = await listen(flow);
    await finish(flow, a1);
    await expect(resolveEdge(client, flow.flowId, e1)).resolves.toMatchObject({ result: { status: 'satisfied' } });
    expect(await wakes.take()).toEqual([]); // b still waits for a2
    expect(await redis.hget(new ExecKeys(b).core(), 'eligibility_state')).toBe('blocked_by_dependencies');
    await finish(flow, a2);
    await expect(resolveEdge(client, flow.flowId, e2)).resolves.toMatchObject({ result: { status: 'satisfied' } });
    expect(await wakes.take()).toEqual([new ExecKeys(b).tag]);
    // Resolving again changes nothing and wakes nobody.
    await expect(resolveEdge(client, flow.flowId, e2)).resolves.toMatchObject({ result: { status: 'already_resolved' } });
    expect(await wakes.take()).toEqual([]);
  });

  it('ff_resolve_dependency publishes nothing when it skips the child', async () => {
    const flow = await newTestFlow(client);
    const a = (await addMember(client, flow)).executionId;
    const b = (await addMember(client, flow)).executionId;
    const edgeId = await link(client, flow, a, b);
    const wakes = await listen(flow);
    await expect(resolveDependency(client, { downstreamExecutionId: b, upstreamExecutionId: a, laneId: flow.laneId, attemptIndex: 0, edgeId, upstreamOutcome: 'failed' }))
      .resolves.toEqual({ status: 'impossible', marker: 'child_skipped' });
    expect(await wakes.take()).toEqual([]);
  });

  it('ff_promote_blocked_to_eligible publishes when it promotes, not when it refuses', async () => {
    const flow = await newTestFlow(client);
    const a = (await addMember(client, flow)).executionId;
    const b = (await addMember(client, flow)).executionId;
    const edgeId = await link(client, flow, a, b);
    const wakes = await listen(flow);
    await expect(promoteBlocked(client, b)).rejects.toMatchObject({ code: 'deps_not_satisfied' });
    expect(await wakes.take()).toEqual([]);
    // A counter gap (the edge gone from both count and set) is what the promotion repairs.
    const exec = new ExecKeys(b);
    await redis.hset(exec.depsMeta(), 'unsatisfied_required_count', '0');
    await redis.srem(exec.depsUnresolved(), edgeId);
    await expect(promoteBlocked(client, b)).resolves.toEqual({ status: 'OK' });
    expect(await wakes.take()).toEqual([exec.tag]);
  });

  it('ff_replay_execution publishes when the replay is eligible at once, not when it waits for dependencies', async () => {
    const flow = await newTestFlow(client);
    const a = (await addMember(client, flow)).executionId;
    const b = (await addMember(client, flow)).executionId;
    const edgeId = await link(client, flow, a, b);
    await finish(flow, a);
    await resolveDependency(client, { downstreamExecutionId: b, upstreamExecutionId: a, laneId: flow.laneId, attemptIndex: 0, edgeId, upstreamOutcome: 'failed' });
    const wakes = await listen(flow);
    // a finished: replayed straight to eligible.
    await expect(replay(client, a)).resolves.toEqual({ status: 'OK', unsatisfiedCount: 0 });
    expect(await wakes.take()).toEqual([new ExecKeys(a).tag]);
    // b was skipped: its impossible edge is reset, so it goes back to waiting for a.
    await expect(replay(client, b)).resolves.toEqual({ status: 'OK', unsatisfiedCount: 1 });
    expect(await redis.hget(new ExecKeys(b).core(), 'eligibility_state')).toBe('blocked_by_dependencies');
    expect(await wakes.take()).toEqual([]);
  });
});

describe('an idle Worker and a flow child', () => {
  const { client, redis } = useServer();
  const open: Worker[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((w) => w.close({ timeoutMs: 1000 })));
  });

  function worker(lane: LaneId, idleMs: number): Worker {
    const w = new Worker({
      client, lanes: lane, handler: () => 'done', concurrency: 2, idleBackoff: { minMs: idleMs, maxMs: idleMs },
      housekeepingIntervalMs: false, installWaitpointSecrets: false, wakeUp: ioredisWakeSource(redis),
    });
    open.push(w);
    return w;
  }

  it('claims the child within a second of its parent completing, though it polls only every 5 s', async () => {
    const childLane = uniqueLane('child');
    const parentLane = uniqueLane('parent');
    const flowId = await createFlowFor(client, { kind: 'wake' });
    const parent = (await submitExecution(client, { lane: parentLane, kind: 'parent', flowId })).executionId;
    const child = (await submitExecution(client, { lane: childLane, kind: 'child', flowId })).executionId;
    await addDependency(client, { flowId, upstream: parent, downstream: child });

    const idle = worker(childLane, 5000);
    const childClaimed = new Promise<{ executionId: ExecutionId; at: number }>((resolve) =>
      idle.once('claimed', (event) => resolve({ executionId: event.executionId, at: performance.now() })));
    await idle.start();
    await sleep(300); // its first round found the child blocked: asleep for 5 s
    expect(idle.counters.claimMisses).toBeGreaterThan(0);

    // The parent's own worker completes it and resolves its outgoing edge (the default).
    const runner = worker(parentLane, 50);
    const parentDone = new Promise<number>((resolve) => runner.once('completed', () => resolve(performance.now())));
    await runner.start();
    const doneAt = await parentDone;
    const claimed = await childClaimed;
    expect(claimed.executionId).toBe(child);
    const latency = claimed.at - doneAt;
    console.log(`parent completed → child claimed by an idle worker: ${latency.toFixed(0)} ms`);
    expect(latency).toBeLessThan(1000); // not the 5 s poll
  });
});
