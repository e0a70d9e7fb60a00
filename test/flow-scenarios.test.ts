// Flows end to end: members created on the flow's partition, edges staged and applied,
// members claimed and finished through the generated wrappers, and each finished
// upstream's edges resolved as the engine's completion listener does (resolveOutgoing).
import { describe, expect, inject, it } from 'vitest';
import { failExecution } from '../generated/execution.js';
import { addExecutionToFlow, cancelFlow, evaluateFlowEligibility, stageDependencyEdge } from '../generated/flow.js';
import { ExecKeys, FlowKeys } from '../generated/keys.js';
import { issueClaimGrant } from '../generated/scheduling.js';
import { isScriptError } from '../runtime/errors.js';
import { readFlowOutcome, readGraphRevision, replay, resolveOutgoing, type EdgeResolution } from '../operations/flows.js';
import { newEdgeId, type ExecutionId } from '../runtime/ids.js';
import { executionIdForFlow } from '../runtime/partition.js';
import { useServer } from './support/client.js';
import { cancel, holderArgs, listenCompletions } from './support/exec-ops.js';
import { addMember, complete, link, newTestFlow, type TestFlow } from './support/flow.js';
import { checkExecutionInvariants } from './support/invariants.js';
import { claim, createWaiting, type Claimed } from './support/lifecycle.js';
import { keyStates } from './support/raw.js';

describe('flow scenarios', () => {
  const { client, redis } = useServer();

  const publicState = (id: ExecutionId) => redis.hget(new ExecKeys(id).core(), 'public_state');
  const claimMember = (flow: TestFlow, executionId: ExecutionId, attemptIndex = 0) => claim(client, { executionId, laneId: flow.laneId }, { attemptIndex });
  const failMember = (c: Claimed) => failExecution(client, { ...holderArgs(c), failureReason: 'boom' });
  /** What each resolution did, as `<downstream>:<status>[:<marker>]`. */
  const summary = (resolutions: readonly EdgeResolution[], names: ReadonlyMap<ExecutionId, string>) =>
    resolutions.map((r) => [names.get(r.downstreamExecutionId), r.result?.status ?? 'not_resolved', ...(r.result && 'marker' in r.result && r.result.marker ? [r.result.marker] : [])].join(':'));
  async function expectConsistent(ids: readonly ExecutionId[]): Promise<void> {
    for (const id of ids) expect(await checkExecutionInvariants(redis, id), id).toEqual([]);
  }

  it('runs a diamond A → B, A → C, B + C → D in dependency order', async () => {
    const flow = await newTestFlow(client);
    const [a, b, c, d] = await Promise.all([0, 1, 2, 3].map(async () => (await addMember(client, flow)).executionId)) as [ExecutionId, ExecutionId, ExecutionId, ExecutionId];
    const names = new Map([[a, 'A'], [b, 'B'], [c, 'C'], [d, 'D']]);
    await link(client, flow, a, b);
    await link(client, flow, a, c);
    await link(client, flow, b, d);
    await link(client, flow, c, d);
    expect([await publicState(a), await publicState(b), await publicState(c), await publicState(d)]).toEqual(['waiting', 'waiting_children', 'waiting_children', 'waiting_children']);
    expect((await readFlowOutcome(client, flow.flowId)).derived).toBe('blocked');
    // Only A can be granted.
    for (const blocked of [b, c, d]) {
      const refused = await issueClaimGrant(client, { executionId: blocked, laneId: flow.laneId, workerId: 'w', workerInstanceId: 'w-1', grantTtlMs: 5000 }).catch((e: unknown) => e);
      expect(isScriptError(refused, 'execution_not_eligible')).toBe(true);
    }

    const runningA = await claimMember(flow, a);
    expect((await readFlowOutcome(client, flow.flowId)).derived).toBe('running');
    await complete(client, runningA, 'a-out');
    expect(summary(await resolveOutgoing(client, flow.flowId, a), names).sort()).toEqual(['B:satisfied', 'C:satisfied']);
    expect([await publicState(b), await publicState(c), await publicState(d)]).toEqual(['waiting', 'waiting', 'waiting_children']);

    await complete(client, await claimMember(flow, b));
    expect(summary(await resolveOutgoing(client, flow.flowId, b), names)).toEqual(['D:satisfied']);
    expect(await publicState(d)).toBe('waiting_children');
    await expect(evaluateFlowEligibility(client, { executionId: d })).resolves.toMatchObject({ eligibility: 'blocked_by_dependencies' });
    expect(await redis.hget(new ExecKeys(d).depsMeta(), 'unsatisfied_required_count')).toBe('1');

    await complete(client, await claimMember(flow, c));
    expect(summary(await resolveOutgoing(client, flow.flowId, c), names)).toEqual(['D:satisfied']);
    await expect(evaluateFlowEligibility(client, { executionId: d })).resolves.toMatchObject({ eligibility: 'eligible' });
    await complete(client, await claimMember(flow, d));

    const outcome = await readFlowOutcome(client, flow.flowId);
    expect(outcome).toEqual({ publicFlowState: 'open', members: { [a]: 'completed', [b]: 'completed', [c]: 'completed', [d]: 'completed' }, derived: 'completed' });
    await expectConsistent([a, b, c, d]);
  });

  it('rejects an edge that would close a cycle and leaves the graph unchanged', async () => {
    const flow = await newTestFlow(client);
    const [a, b, c] = [(await addMember(client, flow)).executionId, (await addMember(client, flow)).executionId, (await addMember(client, flow)).executionId];
    await link(client, flow, a, b);
    await link(client, flow, b, c);
    const keys = FlowKeys.for(flow.flowId, client.partitions);
    const graph = [keys.core(), keys.members(), ...[a, b, c].flatMap((id) => [keys.outgoing(id), keys.incoming(id), new ExecKeys(id).core(), new ExecKeys(id).depsMeta()])];
    const before = await keyStates(redis, graph);
    const revision = await readGraphRevision(client, flow.flowId);
    const refused = await stageDependencyEdge(client, { flowId: flow.flowId, edgeId: newEdgeId(), upstreamExecutionId: c, downstreamExecutionId: a, expectedGraphRevision: revision }).catch((e: unknown) => e);
    expect(isScriptError(refused, 'cycle_detected')).toBe(true);
    expect(await keyStates(redis, graph)).toEqual(before);
    // The flow still runs to completion.
    for (const id of [a, b, c]) {
      await complete(client, await claimMember(flow, id));
      await resolveOutgoing(client, flow.flowId, id);
    }
    expect((await readFlowOutcome(client, flow.flowId)).derived).toBe('completed');
  });

  it('skips the dependents of a failed upstream, transitively, and the flow ends failed', async () => {
    const flow = await newTestFlow(client);
    const [a, b, c, x] = [(await addMember(client, flow)).executionId, (await addMember(client, flow)).executionId, (await addMember(client, flow)).executionId, (await addMember(client, flow)).executionId];
    const names = new Map([[a, 'A'], [b, 'B'], [c, 'C'], [x, 'X']]);
    await link(client, flow, a, b);
    await link(client, flow, b, c);
    await link(client, flow, x, c);
    const completions = await listenCompletions(inject('redisUrl'));
    try {
      const failed = await failMember(await claimMember(flow, a));
      expect(failed).toEqual({ status: 'terminal_failed' });
      // The engine hears the failure and resolves A's edges, cascading through skipped children.
      await completions.waitFor(1, [a]);
      expect(completions.of([a])).toEqual([{ execution_id: a, flow_id: flow.flowId, outcome: 'failed' }]);
      const resolutions = await resolveOutgoing(client, flow.flowId, a);
      expect(summary(resolutions, names)).toEqual(['B:impossible:child_skipped', 'C:impossible:child_skipped']);
      // Each skip publishes its own completion (an extension), so a listener releases the
      // skipped child's downstream at once.
      await completions.waitFor(3, [a, b, c, x]);
      expect(completions.of([a, b, c, x])).toEqual([
        { execution_id: a, flow_id: flow.flowId, outcome: 'failed' },
        { execution_id: b, flow_id: flow.flowId, outcome: 'skipped' },
        { execution_id: c, flow_id: flow.flowId, outcome: 'skipped' },
      ]);
    } finally {
      completions.close();
    }
    expect([await publicState(b), await publicState(c)]).toEqual(['skipped', 'skipped']);
    expect(await redis.hmget(new ExecKeys(c).depsMeta(), 'unsatisfied_required_count', 'impossible_required_count')).toEqual(['1', '1']);
    // X still waits for a worker, so the flow is not finished yet.
    expect((await readFlowOutcome(client, flow.flowId)).derived).toBe('open');
    // X still runs; its edge to the skipped C resolves without reviving it.
    await complete(client, await claimMember(flow, x));
    expect(summary(await resolveOutgoing(client, flow.flowId, x), names)).toEqual(['C:satisfied']);
    expect(await publicState(c)).toBe('skipped');
    // The flow core never records the outcome; the projector derives it from the members.
    const outcome = await readFlowOutcome(client, flow.flowId);
    expect(outcome).toEqual({ publicFlowState: 'open', members: { [a]: 'failed', [b]: 'skipped', [c]: 'skipped', [x]: 'completed' }, derived: 'failed' });
    await expectConsistent([a, b, c, x]);
  });

  it('cancels a running flow: the flow is closed and every member cancelled', async () => {
    const flow = await newTestFlow(client);
    const [a, b, c] = [(await addMember(client, flow)).executionId, (await addMember(client, flow)).executionId, (await addMember(client, flow)).executionId];
    await link(client, flow, a, b);
    await link(client, flow, a, c);
    await claimMember(flow, a);
    expect((await readFlowOutcome(client, flow.flowId)).derived).toBe('running');

    const result = await cancelFlow(client, { flowId: flow.flowId, reason: 'user abort', cancellationPolicy: 'cancel_all' });
    expect([...result.memberExecutionIds].sort()).toEqual([a, b, c].sort());
    // cancel_all: the caller cancels each member as an operator (the lease is bypassed).
    for (const member of result.memberExecutionIds) {
      await expect(cancel(client, member, { reason: 'user abort', source: 'operator_override' })).resolves.toMatchObject({ status: 'cancelled' });
    }
    expect([await publicState(a), await publicState(b), await publicState(c)]).toEqual(['cancelled', 'cancelled', 'cancelled']);
    // A's cancel is a completion too: its edges resolve impossible, but the children are already terminal.
    const names = new Map([[b, 'B'], [c, 'C']]);
    expect(summary(await resolveOutgoing(client, flow.flowId, a), names).sort()).toEqual(['B:impossible', 'C:impossible']);

    expect(await redis.hmget(FlowKeys.for(flow.flowId, client.partitions).core(), 'public_flow_state', 'cancel_reason', 'cancellation_policy')).toEqual(['cancelled', 'user abort', 'cancel_all']);
    const late = await createWaiting(client, { executionId: executionIdForFlow(flow.flowId, client.partitions), laneId: flow.laneId });
    expect(isScriptError(await addExecutionToFlow(client, { flowId: flow.flowId, executionId: late.executionId }).catch((e: unknown) => e), 'flow_already_terminal')).toBe(true);
    const revision = await readGraphRevision(client, flow.flowId);
    expect(isScriptError(await stageDependencyEdge(client, { flowId: flow.flowId, edgeId: newEdgeId(), upstreamExecutionId: b, downstreamExecutionId: c, expectedGraphRevision: revision }).catch((e: unknown) => e), 'flow_already_terminal')).toBe(true);
    expect(isScriptError(await cancelFlow(client, { flowId: flow.flowId }).catch((e: unknown) => e), 'flow_already_terminal')).toBe(true);
    expect(await readFlowOutcome(client, flow.flowId)).toMatchObject({ publicFlowState: 'cancelled', derived: 'failed' });
    await expectConsistent([a, b, c]);
  });

  it('replays a failed upstream and its skipped child, and the flow completes', async () => {
    const flow = await newTestFlow(client);
    const [a, b] = [(await addMember(client, flow)).executionId, (await addMember(client, flow)).executionId];
    const names = new Map([[b, 'B']]);
    await link(client, flow, a, b);
    await failMember(await claimMember(flow, a));
    expect(summary(await resolveOutgoing(client, flow.flowId, a), names)).toEqual(['B:impossible:child_skipped']);

    // A replays straight to eligible and succeeds on its second attempt.
    await expect(replay(client, a)).resolves.toEqual({ status: 'OK', unsatisfiedCount: 0 });
    const second = await claimMember(flow, a, 1);
    expect(second.claim).toMatchObject({ attemptIndex: 1, attemptType: 'replay' });
    await complete(client, second, 'a-out');
    // A replayed upstream does not re-trigger an edge already resolved.
    expect(summary(await resolveOutgoing(client, flow.flowId, a), names)).toEqual(['B:already_resolved']);
    expect(await publicState(b)).toBe('skipped');

    // Replaying the skipped B resets its impossible edge; A's success then releases it.
    await expect(replay(client, b)).resolves.toEqual({ status: 'OK', unsatisfiedCount: 1 });
    expect(await publicState(b)).toBe('waiting_children');
    expect(summary(await resolveOutgoing(client, flow.flowId, a), names)).toEqual(['B:satisfied']);
    expect(await publicState(b)).toBe('waiting');
    const runB = await claimMember(flow, b);
    expect(runB.claim).toMatchObject({ attemptIndex: 0, attemptType: 'replay' });
    await complete(client, runB);

    expect(await readFlowOutcome(client, flow.flowId)).toMatchObject({ derived: 'completed', members: { [a]: 'completed', [b]: 'completed' } });
    expect(await redis.hmget(new ExecKeys(a).core(), 'replay_count', 'total_attempt_count')).toEqual(['1', '2']);
    await expectConsistent([a, b]);
  });

  it('stops replaying at the policy limit', async () => {
    const flow: TestFlow = await newTestFlow(client);
    const a = (await addMember(client, flow, { policyJson: { max_replay_count: 2 } })).executionId;
    await failMember(await claimMember(flow, a, 0));
    for (const attempt of [1, 2]) {
      await expect(replay(client, a)).resolves.toEqual({ status: 'OK', unsatisfiedCount: 0 });
      await failMember(await claimMember(flow, a, attempt));
    }
    const core = new ExecKeys(a).core();
    const before = await redis.hgetall(core);
    const refused = await replay(client, a).catch((e: unknown) => e);
    expect(isScriptError(refused, 'max_replays_exhausted')).toBe(true);
    expect(await redis.hgetall(core)).toEqual(before);
    expect(before).toMatchObject({ public_state: 'failed', replay_count: '2', total_attempt_count: '3' });
    await expectConsistent([a]);
  });
});
