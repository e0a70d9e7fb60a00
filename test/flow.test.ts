// The flow functions one by one: happy path with state read back, every error code, and the
// Lua's own defences against malformed ARGV and KEYS.
import { describe, expect, it } from 'vitest';
import {
  addExecutionToFlow, applyDependencyToChild, buildAddExecutionToFlow, buildApplyDependencyToChild, buildCancelFlow, buildCreateFlow,
  buildEvaluateFlowEligibility, buildPromoteBlockedToEligible, buildReplayExecution, buildResolveDependency, buildStageDependencyEdge,
  cancelFlow, createFlow, evaluateFlowEligibility, promoteBlockedToEligible, replayExecution, resolveDependency, stageDependencyEdge,
} from '../generated/flow.js';
import { createExecution } from '../generated/execution.js';
import { ExecKeys, FlowKeys, PartitionKeys } from '../generated/keys.js';
import type { ExecutionPolicyJson } from '../generated/shapes.js';
import { ArgumentError, ScriptError } from '../runtime/errors.js';
import { applyOutcome, deriveFlowState, promoteBlocked, readGraphRevision, readLane, replay, resolveEdge, stageEdge } from '../operations/flows.js';
import { newEdgeId, newFlowId, type EdgeId, type ExecutionId, type LaneId } from '../runtime/ids.js';
import { DEFAULT_PARTITION_CONFIG, executionIdForFlow } from '../runtime/partition.js';
import { useServer } from './support/client.js';
import { addMember, complete, flowIdOnSamePartition, link, newTestFlow, type TestFlow } from './support/flow.js';
import { newExecutionId } from './support/ids.js';
import { claim, createClaimed, createWaiting } from './support/lifecycle.js';
import { fcallPatched, keyStates } from './support/raw.js';

const P = DEFAULT_PARTITION_CONFIG;
/** ARGV slot (0-based) → replacement text. */
type Patch = Record<number, string>;

/** The error a promise rejects with (fails the test if it resolves). */
async function failure(promise: Promise<unknown>): Promise<ScriptError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(ScriptError);
  return error as ScriptError;
}

describe('ff_create_flow', () => {
  const { client, redis } = useServer();

  it('creates an open flow and indexes it', async () => {
    const flowId = newFlowId();
    await expect(createFlow(client, { flowId, flowKind: 'agent_run', namespace: 'ns', nowMs: 1 })).resolves.toEqual({ status: 'OK', flowId });
    const keys = FlowKeys.for(flowId, P);
    const core = await redis.hgetall(keys.core());
    expect(core).toMatchObject({
      flow_id: flowId, flow_kind: 'agent_run', namespace: 'ns', graph_revision: '0', node_count: '0', edge_count: '0', public_flow_state: 'open',
    });
    // Server time, not the caller's now_ms.
    expect(Number(core.created_at)).toBeGreaterThan(1_000_000);
    expect(core.last_mutation_at).toBe(core.created_at);
    expect(await redis.sismember(new PartitionKeys(keys.tag).flowIndex(), flowId)).toBe(1);
    expect(await redis.exists(keys.members())).toBe(0);
  });

  it('answers ALREADY_SATISFIED for an existing flow, even a cancelled one, and re-indexes it', async () => {
    const flowId = newFlowId();
    await createFlow(client, { flowId, flowKind: 'a', namespace: 'ns' });
    const keys = FlowKeys.for(flowId, P);
    const before = await redis.hgetall(keys.core());
    await expect(createFlow(client, { flowId, flowKind: 'other', namespace: 'other' })).resolves.toEqual({ status: 'ALREADY_SATISFIED', flowId });
    expect(await redis.hgetall(keys.core())).toEqual(before);
    await cancelFlow(client, { flowId });
    await redis.srem(new PartitionKeys(keys.tag).flowIndex(), flowId);
    await expect(createFlow(client, { flowId, flowKind: 'a', namespace: 'ns' })).resolves.toMatchObject({ status: 'ALREADY_SATISFIED' });
    expect(await redis.hget(keys.core(), 'public_flow_state')).toBe('cancelled');
    expect(await redis.sismember(new PartitionKeys(keys.tag).flowIndex(), flowId)).toBe(1);
  });

  it('answers malformed ARGV with invalid_input and writes nothing (deviations)', async () => {
    const flowId = newFlowId();
    const request = buildCreateFlow({ flowId, flowKind: 'k', namespace: 'ns' }, P);
    const keys = FlowKeys.for(flowId, P);
    const index = new PartitionKeys(keys.tag).flowIndex();
    const before = await keyStates(redis, [keys.core(), index]);
    for (const patch of [{ 3: 'soon' }, { 0: newFlowId() }, { 0: '' }] as Patch[]) {
      expect(await fcallPatched(redis, request, patch)).toEqual([0, 'invalid_input', expect.any(String)]);
    }
    expect(await keyStates(redis, [keys.core(), index])).toEqual(before);
  });
});

describe('ff_add_execution_to_flow', () => {
  const { client, redis } = useServer();

  it('adds members, stamps flow_id and bumps the counters', async () => {
    const flow = await newTestFlow(client);
    const keys = FlowKeys.for(flow.flowId, P);
    const a = await addMember(client, flow);
    const exec = executionIdForFlow(flow.flowId, P);
    await createExecution(client, { executionId: exec, laneId: flow.laneId, namespace: 'n', executionKind: 'k' });
    await expect(addExecutionToFlow(client, { flowId: flow.flowId, executionId: exec })).resolves.toEqual({ status: 'OK', executionId: exec, newNodeCount: 2 });
    expect((await redis.smembers(keys.members())).sort()).toEqual([a.executionId, exec].sort());
    expect(await redis.hget(new ExecKeys(exec).core(), 'flow_id')).toBe(flow.flowId);
    expect(await redis.hmget(keys.core(), 'node_count', 'graph_revision', 'edge_count')).toEqual(['2', '2', '0']);
    // Membership does not gate the execution.
    expect(await redis.hget(new ExecKeys(exec).core(), 'public_state')).toBe('waiting');
  });

  it('answers ALREADY_SATISFIED for a member, changing no counter, and heals its flow_id', async () => {
    const flow = await newTestFlow(client);
    const keys = FlowKeys.for(flow.flowId, P);
    const a = await addMember(client, flow);
    const mutated = await redis.hget(keys.core(), 'last_mutation_at');
    await redis.hset(new ExecKeys(a.executionId).core(), 'flow_id', '');
    await expect(addExecutionToFlow(client, { flowId: flow.flowId, executionId: a.executionId })).resolves.toEqual({ status: 'ALREADY_SATISFIED', executionId: a.executionId, nodeCount: 1 });
    expect(await redis.hget(new ExecKeys(a.executionId).core(), 'flow_id')).toBe(flow.flowId);
    expect(await redis.hmget(keys.core(), 'node_count', 'graph_revision', 'last_mutation_at')).toEqual(['1', '1', mutated]);
  });

  it('refuses a missing or finished flow and a missing execution', async () => {
    const missing = newFlowId();
    const executionId = executionIdForFlow(missing, P);
    expect((await failure(addExecutionToFlow(client, { flowId: missing, executionId }))).code).toBe('flow_not_found');
    const flow = await newTestFlow(client);
    expect((await failure(addExecutionToFlow(client, { flowId: flow.flowId, executionId: executionIdForFlow(flow.flowId, P) }))).code).toBe('execution_not_found');
    await redis.hset(FlowKeys.for(flow.flowId, P).core(), 'public_flow_state', 'completed');
    const member = await createWaiting(client, { executionId: executionIdForFlow(flow.flowId, P), laneId: flow.laneId });
    expect((await failure(addExecutionToFlow(client, { flowId: flow.flowId, executionId: member.executionId }))).code).toBe('flow_already_terminal');
    expect(await redis.hget(new ExecKeys(member.executionId).core(), 'flow_id')).toBe('');
  });

  it('refuses a member of another flow with the flow id glued to the code, writing nothing', async () => {
    const first = await newTestFlow(client);
    const second = await newTestFlow(client, flowIdOnSamePartition(client, first.flowId));
    const a = await addMember(client, first);
    const secondKeys = FlowKeys.for(second.flowId, P);
    const index = new PartitionKeys(secondKeys.tag).flowIndex();
    await redis.srem(index, second.flowId);
    const watched = [secondKeys.core(), secondKeys.members(), index, new ExecKeys(a.executionId).core()];
    const before = await keyStates(redis, watched);
    const error = await failure(addExecutionToFlow(client, { flowId: second.flowId, executionId: a.executionId }));
    expect(error).toMatchObject({ code: 'already_member_of_different_flow', detail: first.flowId });
    // The wire form keeps the reference's `code:flow_id` status element.
    const raw = await fcallPatched(redis, buildAddExecutionToFlow({ flowId: second.flowId, executionId: a.executionId }, P));
    expect(raw).toEqual([0, `already_member_of_different_flow:${first.flowId}`]);
    // Also when the other flow's members set lists it but its flow_id names the first flow.
    await redis.sadd(secondKeys.members(), a.executionId);
    expect(await failure(addExecutionToFlow(client, { flowId: second.flowId, executionId: a.executionId }))).toMatchObject({ code: 'already_member_of_different_flow', detail: first.flowId });
    await redis.srem(secondKeys.members(), a.executionId);
    expect(await keyStates(redis, watched)).toEqual(before);
  });

  it('refuses, before sending, an execution that is not on the flow partition', async () => {
    const flowId = newFlowId();
    const other = newExecutionId((Number(FlowKeys.for(flowId, P).tag.slice(4, -1)) + 1) % 256);
    expect(() => buildAddExecutionToFlow({ flowId, executionId: other }, P)).toThrow(ArgumentError);
  });

  it('answers the reference wrapper\'s 3-KEYS call and malformed ARGV with invalid_input, writing nothing (deviations)', async () => {
    const flow = await newTestFlow(client);
    const created = await createWaiting(client, { executionId: executionIdForFlow(flow.flowId, P), laneId: flow.laneId });
    const request = buildAddExecutionToFlow({ flowId: flow.flowId, executionId: created.executionId }, P);
    const keys = FlowKeys.for(flow.flowId, P);
    const watched = [keys.core(), keys.members(), new ExecKeys(created.executionId).core()];
    const before = await keyStates(redis, watched);
    expect(await fcallPatched(redis, request, {}, request.keys.slice(0, 3))).toEqual([0, 'invalid_input', 'ff_add_execution_to_flow needs 4 KEYS, got 3']);
    for (const patch of [{ 2: 'now' }, { 1: executionIdForFlow(flow.flowId, P) }, { 1: '' }, { 0: newFlowId() }] as Patch[]) {
      expect(await fcallPatched(redis, request, patch)).toEqual([0, 'invalid_input', expect.any(String)]);
    }
    expect(await keyStates(redis, watched)).toEqual(before);
  });
});

describe('ff_cancel_flow', () => {
  const { client, redis } = useServer();

  it('cancels an open flow and hands back every member', async () => {
    const flow = await newTestFlow(client);
    const a = await addMember(client, flow);
    const b = await addMember(client, flow);
    const result = await cancelFlow(client, { flowId: flow.flowId, reason: 'operator', cancellationPolicy: 'cancel_all' });
    expect(result.cancellationPolicy).toBe('cancel_all');
    expect([...result.memberExecutionIds].sort()).toEqual([a.executionId, b.executionId].sort());
    const keys = FlowKeys.for(flow.flowId, P);
    const core = await redis.hgetall(keys.core());
    expect(core).toMatchObject({ public_flow_state: 'cancelled', cancel_reason: 'operator', cancellation_policy: 'cancel_all' });
    expect(core.last_mutation_at).toBe(core.cancelled_at);
    // The Lua cancels no member and keeps the flow indexed.
    expect(await redis.hget(new ExecKeys(a.executionId).core(), 'public_state')).toBe('waiting');
    expect(await redis.sismember(new PartitionKeys(keys.tag).flowIndex(), flow.flowId)).toBe(1);
  });

  it('answers a flow without members with an empty list, and refuses a second cancel and a missing flow', async () => {
    const flow = await newTestFlow(client);
    await expect(cancelFlow(client, { flowId: flow.flowId, cancellationPolicy: 'let_active_finish' })).resolves.toEqual({ status: 'OK', cancellationPolicy: 'let_active_finish', memberExecutionIds: [] });
    expect((await failure(cancelFlow(client, { flowId: flow.flowId }))).code).toBe('flow_already_terminal');
    expect(await redis.hget(FlowKeys.for(flow.flowId, P).core(), 'cancellation_policy')).toBe('let_active_finish');
    expect((await failure(cancelFlow(client, { flowId: newFlowId() }))).code).toBe('flow_not_found');
  });

  it('answers a non-integer now_ms with invalid_input and writes nothing', async () => {
    const flow = await newTestFlow(client);
    const keys = FlowKeys.for(flow.flowId, P);
    const before = await keyStates(redis, [keys.core()]);
    expect(await fcallPatched(redis, buildCancelFlow({ flowId: flow.flowId }, P), { 3: 'x' })).toEqual([0, 'invalid_input', expect.any(String)]);
    expect(await keyStates(redis, [keys.core()])).toEqual(before);
  });
});

describe('ff_stage_dependency_edge', () => {
  const { client, redis } = useServer();

  async function twoMembers(): Promise<{ flow: TestFlow; a: ExecutionId; b: ExecutionId; keys: FlowKeys }> {
    const flow = await newTestFlow(client);
    const a = (await addMember(client, flow)).executionId;
    const b = (await addMember(client, flow)).executionId;
    return { flow, a, b, keys: FlowKeys.for(flow.flowId, P) };
  }

  function graphKeys(keys: FlowKeys, ids: readonly ExecutionId[]): string[] {
    return [keys.core(), ...ids.flatMap((id) => [keys.outgoing(id), keys.incoming(id)])];
  }

  it('records the edge, the adjacency sets and bumps the revision', async () => {
    const { flow, a, b, keys } = await twoMembers();
    const edgeId = newEdgeId();
    expect(await readGraphRevision(client, flow.flowId)).toBe(2);
    const result = await stageDependencyEdge(client, { flowId: flow.flowId, edgeId, upstreamExecutionId: a, downstreamExecutionId: b, dataPassingRef: 'result', expectedGraphRevision: 2, nowMs: 5 });
    expect(result).toEqual({ status: 'OK', edgeId, newGraphRevision: 3 });
    const edge = await redis.hgetall(keys.edge(edgeId));
    expect(edge).toEqual({
      edge_id: edgeId, flow_id: flow.flowId, upstream_execution_id: a, downstream_execution_id: b, dependency_kind: 'success_only',
      satisfaction_condition: 'all_required', data_passing_ref: 'result', edge_state: 'pending', created_at: expect.any(String), created_by: 'engine',
    });
    // The caller's now_ms, as the reference stores it.
    expect(edge.created_at).toBe('5');
    expect(await redis.smembers(keys.outgoing(a))).toEqual([edgeId]);
    expect(await redis.smembers(keys.incoming(b))).toEqual([edgeId]);
    expect(await redis.hmget(keys.core(), 'graph_revision', 'edge_count', 'last_mutation_at')).toEqual(['3', '1', edge.created_at]);
    expect(await redis.exists(keys.grant(edgeId))).toBe(0);
    // The child is not gated until the edge is applied.
    expect(await redis.hget(new ExecKeys(b).core(), 'public_state')).toBe('waiting');
  });

  it('refuses a self edge, a stale revision, non-members and a duplicate edge', async () => {
    const { flow, a, b, keys } = await twoMembers();
    const base = { flowId: flow.flowId, upstreamExecutionId: a, downstreamExecutionId: b, expectedGraphRevision: 2 };
    expect((await failure(stageDependencyEdge(client, { ...base, edgeId: newEdgeId(), downstreamExecutionId: a }))).code).toBe('self_referencing_edge');
    const stale = await failure(stageDependencyEdge(client, { ...base, edgeId: newEdgeId(), expectedGraphRevision: 1 }));
    expect(stale).toMatchObject({ code: 'stale_graph_revision', retryable: true });
    // Compared as text, like the reference: "02" is not "2".
    expect(await fcallPatched(redis, buildStageDependencyEdge({ ...base, edgeId: newEdgeId() }, P), { 6: '02' })).toEqual([0, 'stale_graph_revision']);
    const outsider = executionIdForFlow(flow.flowId, P);
    expect((await failure(stageDependencyEdge(client, { ...base, edgeId: newEdgeId(), upstreamExecutionId: outsider }))).code).toBe('execution_not_in_flow');
    expect((await failure(stageDependencyEdge(client, { ...base, edgeId: newEdgeId(), downstreamExecutionId: outsider }))).code).toBe('execution_not_in_flow');
    const edgeId = newEdgeId();
    await stageDependencyEdge(client, { ...base, edgeId });
    const before = await keyStates(redis, [...graphKeys(keys, [a, b]), keys.edge(edgeId)]);
    expect((await failure(stageDependencyEdge(client, { ...base, edgeId, expectedGraphRevision: 3 }))).code).toBe('dependency_already_exists');
    expect(await keyStates(redis, [...graphKeys(keys, [a, b]), keys.edge(edgeId)])).toEqual(before);
  });

  it('refuses a missing or finished flow', async () => {
    const missing = newFlowId();
    const ids = { upstreamExecutionId: executionIdForFlow(missing, P), downstreamExecutionId: executionIdForFlow(missing, P) };
    expect((await failure(stageDependencyEdge(client, { flowId: missing, edgeId: newEdgeId(), ...ids, expectedGraphRevision: 0 }))).code).toBe('flow_not_found');
    const { flow, a, b } = await twoMembers();
    await cancelFlow(client, { flowId: flow.flowId });
    expect((await failure(stageDependencyEdge(client, { flowId: flow.flowId, edgeId: newEdgeId(), upstreamExecutionId: a, downstreamExecutionId: b, expectedGraphRevision: 2 }))).code).toBe('flow_already_terminal');
  });

  it('refuses an edge that closes a cycle, leaving the graph unchanged', async () => {
    const flow = await newTestFlow(client);
    const [a, b, c] = [(await addMember(client, flow)).executionId, (await addMember(client, flow)).executionId, (await addMember(client, flow)).executionId];
    const keys = FlowKeys.for(flow.flowId, P);
    await stageDependencyEdge(client, { flowId: flow.flowId, edgeId: newEdgeId(), upstreamExecutionId: a, downstreamExecutionId: b, expectedGraphRevision: 3 });
    await stageDependencyEdge(client, { flowId: flow.flowId, edgeId: newEdgeId(), upstreamExecutionId: b, downstreamExecutionId: c, expectedGraphRevision: 4 });
    const before = await keyStates(redis, graphKeys(keys, [a, b, c]));
    for (const [up, down] of [[b, a], [c, a], [c, b]] as const) {
      const edgeId = newEdgeId();
      expect((await failure(stageDependencyEdge(client, { flowId: flow.flowId, edgeId, upstreamExecutionId: up, downstreamExecutionId: down, expectedGraphRevision: 5 }))).code).toBe('cycle_detected');
      expect(await redis.exists(keys.edge(edgeId))).toBe(0);
    }
    expect(await keyStates(redis, graphKeys(keys, [a, b, c]))).toEqual(before);
    // A shortcut in the same direction is no cycle.
    await expect(stageDependencyEdge(client, { flowId: flow.flowId, edgeId: newEdgeId(), upstreamExecutionId: a, downstreamExecutionId: c, expectedGraphRevision: 5 })).resolves.toMatchObject({ newGraphRevision: 6 });
  });

  it('conservatively refuses an edge whose downstream reaches more than 1000 nodes', async () => {
    const flow = await newTestFlow(client);
    const keys = FlowKeys.for(flow.flowId, P);
    const up = (await addMember(client, flow)).executionId;
    const down = (await addMember(client, flow)).executionId;
    // A hand-built chain of 1001 nodes below `down` (the cycle check only reads the graph).
    const chain = Array.from({ length: 1001 }, () => executionIdForFlow(flow.flowId, P));
    const pipeline = redis.pipeline();
    [down, ...chain].forEach((node, i) => {
      const next = chain[i];
      if (!next) return;
      const edgeId = newEdgeId();
      pipeline.sadd(keys.outgoing(node), edgeId);
      pipeline.hset(keys.edge(edgeId), 'downstream_execution_id', next);
    });
    await pipeline.exec();
    const request = { flowId: flow.flowId, upstreamExecutionId: up, downstreamExecutionId: down, expectedGraphRevision: 2 };
    expect((await failure(stageDependencyEdge(client, { ...request, edgeId: newEdgeId() }))).code).toBe('cycle_detected');
    // Cutting the chain to 999 nodes below `down` lets the same edge through.
    await redis.del(keys.outgoing(chain[998]!));
    await expect(stageDependencyEdge(client, { ...request, edgeId: newEdgeId() })).resolves.toMatchObject({ newGraphRevision: 3 });
  });

  it('answers malformed ARGV with invalid_input and writes nothing (deviations)', async () => {
    const { flow, a, b, keys } = await twoMembers();
    const request = buildStageDependencyEdge({ flowId: flow.flowId, edgeId: newEdgeId(), upstreamExecutionId: a, downstreamExecutionId: b, expectedGraphRevision: 2 }, P);
    const before = await keyStates(redis, graphKeys(keys, [a, b]));
    for (const patch of [{ 6: 'two' }, { 6: '-1' }, { 6: '' }, { 7: 'now' }, { 0: newFlowId() }, { 1: '' }, { 2: '' }] as Patch[]) {
      expect(await fcallPatched(redis, request, patch)).toEqual([0, 'invalid_input', expect.any(String)]);
    }
    expect(await keyStates(redis, graphKeys(keys, [a, b]))).toEqual(before);
    expect(() => buildStageDependencyEdge({ flowId: flow.flowId, edgeId: newEdgeId(), upstreamExecutionId: a, downstreamExecutionId: b, expectedGraphRevision: -1 }, P)).toThrow(ArgumentError);
  });
});

describe('ff_apply_dependency_to_child', () => {
  const { client, redis } = useServer();

  async function staged(): Promise<{ flow: TestFlow; a: ExecutionId; b: ExecutionId; edgeId: EdgeId; revision: number }> {
    const flow = await newTestFlow(client);
    const a = (await addMember(client, flow)).executionId;
    const b = (await addMember(client, flow)).executionId;
    const edgeId = newEdgeId();
    const { newGraphRevision } = await stageDependencyEdge(client, { flowId: flow.flowId, edgeId, upstreamExecutionId: a, downstreamExecutionId: b, expectedGraphRevision: 2 });
    return { flow, a, b, edgeId, revision: newGraphRevision };
  }

  it('records the dependency and blocks a waiting child', async () => {
    const { flow, a, b, edgeId, revision } = await staged();
    const result = await applyDependencyToChild(client, { flowId: flow.flowId, edgeId, downstreamExecutionId: b, upstreamExecutionId: a, laneId: flow.laneId, graphRevision: revision, dataPassingRef: 'ref', nowMs: 1 });
    expect(result).toEqual({ status: 'OK', outcome: '1' });
    expect(applyOutcome(result)).toEqual({ applied: true, unsatisfiedCount: 1 });
    const exec = new ExecKeys(b);
    const index = new PartitionKeys(exec.tag);
    expect(await redis.hgetall(exec.depEdge(edgeId))).toEqual({
      edge_id: edgeId, flow_id: flow.flowId, upstream_execution_id: a, downstream_execution_id: b, dependency_kind: 'success_only',
      state: 'unsatisfied', data_passing_ref: 'ref', last_resolved_at: '',
    });
    expect(await redis.smembers(exec.depsUnresolved())).toEqual([edgeId]);
    expect(await redis.smembers(exec.depsAllEdges())).toEqual([edgeId]);
    const meta = await redis.hgetall(exec.depsMeta());
    expect(meta).toMatchObject({ flow_id: flow.flowId, unsatisfied_required_count: '1', last_flow_graph_revision: String(revision) });
    const core = await redis.hgetall(exec.core());
    expect(core).toMatchObject({
      lifecycle_phase: 'runnable', ownership_state: 'unowned', eligibility_state: 'blocked_by_dependencies', blocking_reason: 'waiting_for_children',
      blocking_detail: `1 dep(s) unresolved incl ${edgeId}`, terminal_outcome: 'none', attempt_state: 'pending_first_attempt', public_state: 'waiting_children',
    });
    expect(core.last_transition_at).toBe(meta.last_dependency_update_at);
    // The caller's now_ms, as the reference uses it.
    expect(meta.last_dependency_update_at).toBe('1');
    expect(await redis.zscore(index.laneEligible(flow.laneId), b)).toBeNull();
    expect(Number(await redis.zscore(index.laneBlockedDependencies(flow.laneId), b))).toBe(Number(core.created_at));
  });

  it('counts a second edge and answers already_applied for a repeat, changing nothing', async () => {
    const { flow, a, b, edgeId, revision } = await staged();
    const c = (await addMember(client, flow)).executionId;
    const second = newEdgeId();
    await stageDependencyEdge(client, { flowId: flow.flowId, edgeId: second, upstreamExecutionId: c, downstreamExecutionId: b, expectedGraphRevision: revision + 1 });
    const base = { flowId: flow.flowId, downstreamExecutionId: b, laneId: flow.laneId, graphRevision: revision + 2 };
    await applyDependencyToChild(client, { ...base, edgeId, upstreamExecutionId: a });
    await expect(applyDependencyToChild(client, { ...base, edgeId: second, upstreamExecutionId: c })).resolves.toEqual({ status: 'OK', outcome: '2' });
    const exec = new ExecKeys(b);
    expect(await redis.hget(exec.core(), 'blocking_detail')).toBe(`2 dep(s) unresolved incl ${second}`);
    const watched = [exec.core(), exec.depsMeta(), exec.depsUnresolved(), exec.depEdge(edgeId)];
    const before = await keyStates(redis, watched);
    const again = await applyDependencyToChild(client, { ...base, edgeId, upstreamExecutionId: a });
    expect(again).toEqual({ status: 'OK', outcome: 'already_applied' });
    expect(applyOutcome(again)).toEqual({ applied: false });
    expect(await keyStates(redis, watched)).toEqual(before);
  });

  it('records the dependency of an active child without changing its state', async () => {
    const { flow, a, edgeId, revision } = await staged();
    const child = await createClaimed(client, { executionId: executionIdForFlow(flow.flowId, P), laneId: flow.laneId });
    await addExecutionToFlow(client, { flowId: flow.flowId, executionId: child.executionId });
    await applyDependencyToChild(client, { flowId: flow.flowId, edgeId, downstreamExecutionId: child.executionId, upstreamExecutionId: a, laneId: flow.laneId, graphRevision: revision });
    const exec = new ExecKeys(child.executionId);
    expect(await redis.hmget(exec.core(), 'lifecycle_phase', 'public_state')).toEqual(['active', 'active']);
    expect(await redis.hget(exec.depsMeta(), 'unsatisfied_required_count')).toBe('1');
    expect(await redis.zscore(new PartitionKeys(exec.tag).laneBlockedDependencies(flow.laneId), child.executionId)).toBeNull();
  });

  it('refuses a missing child and a child of another flow', async () => {
    const { flow, a, edgeId, revision } = await staged();
    const base = { flowId: flow.flowId, edgeId, upstreamExecutionId: a, laneId: flow.laneId, graphRevision: revision };
    const ghost = executionIdForFlow(flow.flowId, P);
    expect((await failure(applyDependencyToChild(client, { ...base, downstreamExecutionId: ghost }))).code).toBe('execution_not_found');
    expect(await redis.exists(new ExecKeys(ghost).depEdge(edgeId))).toBe(0);
    const other = await newTestFlow(client, flowIdOnSamePartition(client, flow.flowId));
    const stranger = (await addMember(client, other)).executionId;
    expect((await failure(applyDependencyToChild(client, { ...base, downstreamExecutionId: stranger }))).code).toBe('execution_already_in_flow');
    expect(await redis.exists(new ExecKeys(stranger).depEdge(edgeId))).toBe(0);
  });

  it('refuses, before sending, a child that is not on the flow partition', () => {
    const flowId = newFlowId();
    const other = newExecutionId((Number(FlowKeys.for(flowId, P).tag.slice(4, -1)) + 1) % 256);
    const args = { flowId, edgeId: newEdgeId(), downstreamExecutionId: other, upstreamExecutionId: executionIdForFlow(flowId, P), laneId: 'l' as LaneId, graphRevision: 1 };
    expect(() => buildApplyDependencyToChild(args, P)).toThrow(ArgumentError);
  });

  it('answers malformed ARGV with invalid_input and writes nothing (deviation)', async () => {
    const { flow, a, b, edgeId, revision } = await staged();
    const request = buildApplyDependencyToChild({ flowId: flow.flowId, edgeId, downstreamExecutionId: b, upstreamExecutionId: a, laneId: flow.laneId, graphRevision: revision }, P);
    const exec = new ExecKeys(b);
    const watched = [exec.core(), exec.depsMeta(), exec.depsUnresolved(), exec.depEdge(edgeId)];
    const before = await keyStates(redis, watched);
    for (const patch of [{ 3: 'rev' }, { 3: '-2' }, { 6: 'now' }, { 1: '' }, { 0: '' }] as Patch[]) {
      expect(await fcallPatched(redis, request, patch)).toEqual([0, 'invalid_input', expect.any(String)]);
    }
    expect(await keyStates(redis, watched)).toEqual(before);
  });
});

describe('ff_resolve_dependency', () => {
  const { client, redis } = useServer();

  /** a → b applied (b blocked), plus optionally more upstreams of b. */
  async function chain(extraUpstreams = 0, dataPassingRef?: string): Promise<{ flow: TestFlow; a: ExecutionId; b: ExecutionId; edgeId: EdgeId; others: { id: ExecutionId; edgeId: EdgeId }[] }> {
    const flow = await newTestFlow(client);
    const a = (await addMember(client, flow)).executionId;
    const b = (await addMember(client, flow)).executionId;
    const edgeId = await link(client, flow, a, b, dataPassingRef);
    const others: { id: ExecutionId; edgeId: EdgeId }[] = [];
    for (let i = 0; i < extraUpstreams; i++) {
      const id = (await addMember(client, flow)).executionId;
      others.push({ id, edgeId: await link(client, flow, id, b) });
    }
    return { flow, a, b, edgeId, others };
  }

  function resolveArgs(flow: TestFlow, a: ExecutionId, b: ExecutionId, edgeId: EdgeId, upstreamOutcome: 'success' | 'failed' | 'cancelled' | 'expired' | 'skipped') {
    return { downstreamExecutionId: b, upstreamExecutionId: a, laneId: flow.laneId, attemptIndex: 0, edgeId, upstreamOutcome };
  }

  it('satisfies the last edge and makes the blocked child eligible', async () => {
    const { flow, a, b, edgeId } = await chain();
    await expect(resolveDependency(client, { ...resolveArgs(flow, a, b, edgeId, 'success'), nowMs: 1 })).resolves.toEqual({ status: 'satisfied' });
    const exec = new ExecKeys(b);
    const index = new PartitionKeys(exec.tag);
    const dep = await redis.hgetall(exec.depEdge(edgeId));
    expect(dep.state).toBe('satisfied');
    expect(dep.last_resolved_at).toBe('1');
    expect(await redis.scard(exec.depsUnresolved())).toBe(0);
    expect(await redis.hmget(exec.depsMeta(), 'unsatisfied_required_count', 'last_dependency_update_at')).toEqual(['0', dep.last_resolved_at]);
    const core = await redis.hgetall(exec.core());
    expect(core).toMatchObject({
      lifecycle_phase: 'runnable', ownership_state: 'unowned', eligibility_state: 'eligible_now', blocking_reason: 'waiting_for_worker',
      blocking_detail: '', terminal_outcome: 'none', attempt_state: 'pending_first_attempt', public_state: 'waiting', last_transition_at: dep.last_resolved_at,
    });
    expect(await redis.zscore(index.laneBlockedDependencies(flow.laneId), b)).toBeNull();
    expect(Number(await redis.zscore(index.laneEligible(flow.laneId), b))).toBe(Number(core.created_at));
    await expect(evaluateFlowEligibility(client, { executionId: b })).resolves.toEqual({ status: 'OK', eligibility: 'eligible' });
  });

  it('keeps the child blocked while another edge is unsatisfied', async () => {
    const { flow, a, b, edgeId } = await chain(1);
    await expect(resolveDependency(client, resolveArgs(flow, a, b, edgeId, 'success'))).resolves.toEqual({ status: 'satisfied' });
    const exec = new ExecKeys(b);
    expect(await redis.hget(exec.depsMeta(), 'unsatisfied_required_count')).toBe('1');
    expect(await redis.hget(exec.core(), 'eligibility_state')).toBe('blocked_by_dependencies');
    await expect(evaluateFlowEligibility(client, { executionId: b })).resolves.toMatchObject({ eligibility: 'blocked_by_dependencies' });
  });

  it('copies the upstream result over the child payload when data passing is on', async () => {
    const withResult = await chain(0, 'result');
    const upstream = await claim(client, { executionId: withResult.a, laneId: withResult.flow.laneId });
    await complete(client, upstream, 'upstream-output');
    await expect(resolveDependency(client, resolveArgs(withResult.flow, withResult.a, withResult.b, withResult.edgeId, 'success'))).resolves.toEqual({ status: 'satisfied', marker: 'data_injected' });
    expect(await redis.get(new ExecKeys(withResult.b).payload())).toBe('upstream-output');
    // No upstream result: nothing copied, the child's own payload stays.
    const flow = await newTestFlow(client);
    const a = (await addMember(client, flow)).executionId;
    const b = (await addMember(client, flow, { inputPayload: 'own' })).executionId;
    const edgeId = await link(client, flow, a, b, 'result');
    await expect(resolveDependency(client, resolveArgs(flow, a, b, edgeId, 'success'))).resolves.toEqual({ status: 'satisfied' });
    expect(await redis.get(new ExecKeys(b).payload())).toBe('own');
  });

  it.each(['failed', 'cancelled', 'expired', 'skipped'] as const)('skips the child when the upstream %s', async (outcome) => {
    const { flow, a, b, edgeId, others } = await chain(1);
    await expect(resolveDependency(client, resolveArgs(flow, a, b, edgeId, outcome))).resolves.toEqual({ status: 'impossible', marker: 'child_skipped' });
    const exec = new ExecKeys(b);
    const index = new PartitionKeys(exec.tag);
    const dep = await redis.hgetall(exec.depEdge(edgeId));
    expect(dep.state).toBe('impossible');
    expect(await redis.smembers(exec.depsUnresolved())).toEqual([others[0]!.edgeId]);
    expect(await redis.hmget(exec.depsMeta(), 'unsatisfied_required_count', 'impossible_required_count')).toEqual(['1', '1']);
    const core = await redis.hgetall(exec.core());
    expect(core).toMatchObject({
      lifecycle_phase: 'terminal', ownership_state: 'unowned', eligibility_state: 'not_applicable', blocking_reason: 'none', blocking_detail: '',
      terminal_outcome: 'skipped', attempt_state: 'none', public_state: 'skipped', completed_at: dep.last_resolved_at,
    });
    expect(await redis.zscore(index.laneBlockedDependencies(flow.laneId), b)).toBeNull();
    expect(Number(await redis.zscore(index.laneTerminal(flow.laneId), b))).toBe(Number(dep.last_resolved_at));
    // The other edge still resolves, without a second transition.
    await expect(resolveDependency(client, resolveArgs(flow, others[0]!.id, b, others[0]!.edgeId, 'success'))).resolves.toEqual({ status: 'satisfied' });
    expect(await redis.hget(exec.core(), 'public_state')).toBe('skipped');
    await expect(resolveDependency(client, resolveArgs(flow, a, b, edgeId, 'success'))).resolves.toEqual({ status: 'already_resolved' });
  });

  it('skips a running child and ends its current attempt, whatever attempt index it was sent (deviation)', async () => {
    const { flow, a } = await chain();
    const child = await createClaimed(client, { executionId: executionIdForFlow(flow.flowId, P), laneId: flow.laneId });
    await addExecutionToFlow(client, { flowId: flow.flowId, executionId: child.executionId });
    const edgeId = await link(client, flow, a, child.executionId);
    const exec = new ExecKeys(child.executionId);
    await redis.hset(exec.streamMeta(0), 'created_at', '1');
    const result = await resolveDependency(client, { ...resolveArgs(flow, a, child.executionId, edgeId, 'failed'), attemptIndex: 7 });
    expect(result).toEqual({ status: 'impossible', marker: 'child_skipped' });
    const attempt = await redis.hgetall(exec.attemptHash(0));
    expect(attempt).toMatchObject({ attempt_state: 'ended_cancelled', failure_reason: 'dependency_impossible' });
    expect(await redis.hgetall(exec.streamMeta(0))).toMatchObject({ closed_at: attempt.ended_at, closed_reason: 'dependency_impossible' });
    expect(await redis.exists(exec.attemptHash(7))).toBe(0);
    expect(await redis.hmget(exec.core(), 'terminal_outcome', 'attempt_state', 'public_state')).toEqual(['skipped', 'attempt_terminal', 'skipped']);
  });

  it('also takes a skipped child out of the eligible index (deviation)', async () => {
    const { flow, a, b, edgeId } = await chain();
    const index = new PartitionKeys(new ExecKeys(b).tag);
    await redis.zadd(index.laneEligible(flow.laneId), 1, b);
    await expect(resolveDependency(client, resolveArgs(flow, a, b, edgeId, 'failed'))).resolves.toEqual({ status: 'impossible', marker: 'child_skipped' });
    expect(await redis.zscore(index.laneEligible(flow.laneId), b)).toBeNull();
  });

  it('marks the edge impossible without a transition when the child is already terminal', async () => {
    const { flow, a, b, edgeId } = await chain();
    await redis.hset(new ExecKeys(b).core(), 'lifecycle_phase', 'terminal', 'terminal_outcome', 'cancelled', 'public_state', 'cancelled');
    await expect(resolveDependency(client, resolveArgs(flow, a, b, edgeId, 'failed'))).resolves.toEqual({ status: 'impossible' });
    expect(await redis.hget(new ExecKeys(b).depEdge(edgeId), 'state')).toBe('impossible');
    expect(await redis.hget(new ExecKeys(b).core(), 'public_state')).toBe('cancelled');
  });

  it('answers already_resolved for a resolved edge, whatever the outcome, and changes nothing', async () => {
    const { flow, a, b, edgeId } = await chain();
    await resolveDependency(client, resolveArgs(flow, a, b, edgeId, 'success'));
    const exec = new ExecKeys(b);
    const watched = [exec.core(), exec.depsMeta(), exec.depEdge(edgeId)];
    const before = await keyStates(redis, watched);
    await expect(resolveDependency(client, resolveArgs(flow, a, b, edgeId, 'failed'))).resolves.toEqual({ status: 'already_resolved' });
    expect(await keyStates(redis, watched)).toEqual(before);
  });

  it('refuses an edge never applied to the child', async () => {
    const { flow, a, b } = await chain();
    expect((await failure(resolveDependency(client, resolveArgs(flow, a, b, newEdgeId(), 'success')))).code).toBe('invalid_dependency');
  });

  it('never lets the unsatisfied count go below zero (deviation)', async () => {
    const { flow, a, b, edgeId } = await chain();
    await redis.hset(new ExecKeys(b).depsMeta(), 'unsatisfied_required_count', '0');
    await resolveDependency(client, resolveArgs(flow, a, b, edgeId, 'success'));
    expect(await redis.hget(new ExecKeys(b).depsMeta(), 'unsatisfied_required_count')).toBe('0');
  });

  it('answers satisfied without a transition when the child core is gone', async () => {
    const { flow, a, b, edgeId } = await chain();
    await redis.del(new ExecKeys(b).core());
    await expect(resolveDependency(client, resolveArgs(flow, a, b, edgeId, 'success'))).resolves.toEqual({ status: 'satisfied' });
    expect(await redis.exists(new ExecKeys(b).core())).toBe(0);
  });

  it('pre-reads everything for one edge (resolveEdge), sending nothing while the upstream runs', async () => {
    const { flow, a, b, edgeId } = await chain();
    await expect(resolveEdge(client, flow.flowId, edgeId)).resolves.toEqual({ edgeId, upstreamExecutionId: a, downstreamExecutionId: b });
    await complete(client, await claim(client, { executionId: a, laneId: flow.laneId }));
    await expect(resolveEdge(client, flow.flowId, edgeId)).resolves.toEqual({ edgeId, upstreamExecutionId: a, downstreamExecutionId: b, result: { status: 'satisfied' } });
  });

  it('refuses, before sending, an upstream on another partition', () => {
    const b = newExecutionId(5);
    const args = { downstreamExecutionId: b, upstreamExecutionId: newExecutionId(6), laneId: 'l' as LaneId, attemptIndex: 0, edgeId: newEdgeId(), upstreamOutcome: 'success' as const };
    expect(() => buildResolveDependency(args, P)).toThrow(ArgumentError);
    expect(() => buildResolveDependency({ ...args, upstreamExecutionId: newExecutionId(5), upstreamOutcome: 'none' as never }, P)).toThrow(ArgumentError);
  });

  it('answers malformed ARGV with invalid_input and writes nothing (deviation)', async () => {
    const { flow, a, b, edgeId } = await chain();
    const request = buildResolveDependency(resolveArgs(flow, a, b, edgeId, 'failed'), P);
    const exec = new ExecKeys(b);
    const watched = [exec.core(), exec.depsMeta(), exec.depsUnresolved(), exec.depEdge(edgeId)];
    const before = await keyStates(redis, watched);
    for (const patch of [{ 1: '' }, { 1: 'none' }, { 2: 'now' }, { 0: '' }] as Patch[]) {
      expect(await fcallPatched(redis, request, patch)).toEqual([0, 'invalid_input', expect.any(String)]);
    }
    expect(await keyStates(redis, watched)).toEqual(before);
  });
});

describe('ff_evaluate_flow_eligibility', () => {
  const { client, redis } = useServer();

  it('classifies in the contract order', async () => {
    const flow = await newTestFlow(client);
    const evaluate = async (executionId: ExecutionId) => (await evaluateFlowEligibility(client, { executionId })).eligibility;
    expect(await evaluate(executionIdForFlow(flow.flowId, P))).toBe('not_found');
    const a = (await addMember(client, flow)).executionId;
    expect(await evaluate(a)).toBe('eligible');
    const b = (await addMember(client, flow)).executionId;
    await link(client, flow, a, b);
    expect(await evaluate(b)).toBe('blocked_by_dependencies');
    await redis.hset(new ExecKeys(b).depsMeta(), 'impossible_required_count', '1');
    expect(await evaluate(b)).toBe('impossible');
    await redis.hset(new ExecKeys(b).depsMeta(), 'impossible_required_count', '0', 'unsatisfied_required_count', '0');
    expect(await evaluate(b)).toBe('eligible');
    await redis.hset(new ExecKeys(b).core(), 'ownership_state', 'leased');
    expect(await evaluate(b)).toBe('owned');
    await redis.hset(new ExecKeys(b).core(), 'ownership_state', 'unowned', 'terminal_outcome', 'failed');
    expect(await evaluate(b)).toBe('terminal');
    const active = await createClaimed(client, { executionId: executionIdForFlow(flow.flowId, P), laneId: flow.laneId });
    expect(await evaluate(active.executionId)).toBe('not_runnable');
  });

  it('is read-only: sent with FCALL_RO and registered with no-writes (deviation)', async () => {
    const executionId = newExecutionId();
    const request = buildEvaluateFlowEligibility({ executionId }, P);
    expect(request.readOnly).toBe(true);
    expect(request.argv).toEqual([]);
    expect(await redis.call('FCALL_RO', request.fn, request.keys.length, ...request.keys)).toEqual([1, 'OK', 'not_found']);
    const listing = (await redis.call('FUNCTION', 'LIST', 'LIBRARYNAME', 'flowfabric')) as unknown[][];
    const functions = listing[0]![listing[0]!.indexOf('functions') + 1] as unknown[][];
    const entry = functions.find((f) => f[f.indexOf('name') + 1] === 'ff_evaluate_flow_eligibility')!;
    expect(entry[entry.indexOf('flags') + 1]).toEqual(['no-writes']);
  });
});

describe('ff_promote_blocked_to_eligible', () => {
  const { client, redis } = useServer();

  async function blocked(): Promise<{ flow: TestFlow; b: ExecutionId; edgeId: EdgeId }> {
    const flow = await newTestFlow(client);
    const a = (await addMember(client, flow)).executionId;
    const b = (await addMember(client, flow)).executionId;
    return { flow, b, edgeId: await link(client, flow, a, b) };
  }

  it('promotes a blocked child with no outstanding dependency, once', async () => {
    const { flow, b, edgeId } = await blocked();
    const exec = new ExecKeys(b);
    const index = new PartitionKeys(exec.tag);
    // A counter gap: the edge is gone from both the count and the set.
    await redis.hset(exec.depsMeta(), 'unsatisfied_required_count', '0');
    await redis.srem(exec.depsUnresolved(), edgeId);
    await expect(promoteBlockedToEligible(client, { executionId: b, laneId: flow.laneId, nowMs: 1 })).resolves.toEqual({ status: 'OK' });
    const core = await redis.hgetall(exec.core());
    expect(core.last_transition_at).toBe('1');
    expect(core).toMatchObject({ eligibility_state: 'eligible_now', blocking_reason: 'waiting_for_worker', blocking_detail: '', attempt_state: 'pending_first_attempt', public_state: 'waiting' });
    expect(await redis.zscore(index.laneBlockedDependencies(flow.laneId), b)).toBeNull();
    expect(Number(await redis.zscore(index.laneEligible(flow.laneId), b))).toBe(Number(core.created_at));
    expect((await failure(promoteBlocked(client, b))).code).toBe('not_blocked_by_deps');
  });

  it('refuses while dependencies are outstanding, with the count and set size', async () => {
    const { flow, b, edgeId } = await blocked();
    expect(await failure(promoteBlockedToEligible(client, { executionId: b, laneId: flow.laneId }))).toMatchObject({ code: 'deps_not_satisfied', details: ['1', '1'] });
    await redis.hset(new ExecKeys(b).depsMeta(), 'unsatisfied_required_count', '0');
    expect(await failure(promoteBlocked(client, b))).toMatchObject({ code: 'deps_not_satisfied', details: ['0', '1'] });
    await redis.srem(new ExecKeys(b).depsUnresolved(), edgeId);
    await redis.hset(new ExecKeys(b).depsMeta(), 'unsatisfied_required_count', '2');
    expect(await failure(promoteBlocked(client, b))).toMatchObject({ code: 'deps_not_satisfied', details: ['2', '0'] });
    expect(await redis.hget(new ExecKeys(b).core(), 'eligibility_state')).toBe('blocked_by_dependencies');
  });

  it('refuses a missing, non-runnable, unblocked or terminal execution', async () => {
    const flow = await newTestFlow(client);
    expect((await failure(promoteBlocked(client, executionIdForFlow(flow.flowId, P)))).code).toBe('execution_not_found');
    const active = await createClaimed(client, { executionId: executionIdForFlow(flow.flowId, P), laneId: flow.laneId });
    expect((await failure(promoteBlocked(client, active.executionId))).code).toBe('not_runnable');
    const waiting = (await addMember(client, flow)).executionId;
    expect((await failure(promoteBlocked(client, waiting))).code).toBe('not_blocked_by_deps');
    const { b } = await blocked();
    await redis.hset(new ExecKeys(b).core(), 'terminal_outcome', 'failed');
    expect((await failure(promoteBlocked(client, b))).code).toBe('terminal');
  });

  it('answers malformed ARGV with invalid_input and writes nothing (deviation)', async () => {
    const { flow, b, edgeId } = await blocked();
    const exec = new ExecKeys(b);
    await redis.hset(exec.depsMeta(), 'unsatisfied_required_count', '0');
    await redis.srem(exec.depsUnresolved(), edgeId);
    const request = buildPromoteBlockedToEligible({ executionId: b, laneId: flow.laneId }, P);
    const before = await keyStates(redis, [exec.core()]);
    for (const patch of [{ 1: 'now' }, { 0: executionIdForFlow(flow.flowId, P) }, { 0: '' }] as Patch[]) {
      expect(await fcallPatched(redis, request, patch)).toEqual([0, 'invalid_input', expect.any(String)]);
    }
    expect(await keyStates(redis, [exec.core()])).toEqual(before);
  });
});

describe('ff_replay_execution', () => {
  const { client, redis } = useServer();

  async function completed(policyJson?: ExecutionPolicyJson): Promise<{ executionId: ExecutionId; laneId: LaneId }> {
    const flow = await newTestFlow(client);
    const c = await createClaimed(client, { executionId: executionIdForFlow(flow.flowId, P), laneId: flow.laneId, ...(policyJson ? { policyJson } : {}) });
    await complete(client, c);
    return { executionId: c.executionId, laneId: c.laneId };
  }

  /** a → b with b skipped (the edge resolved as failed). */
  async function skippedMember(): Promise<{ flow: TestFlow; a: ExecutionId; b: ExecutionId; edgeId: EdgeId }> {
    const flow = await newTestFlow(client);
    const a = (await addMember(client, flow)).executionId;
    const b = (await addMember(client, flow)).executionId;
    const edgeId = await link(client, flow, a, b);
    await resolveDependency(client, { downstreamExecutionId: b, upstreamExecutionId: a, laneId: flow.laneId, attemptIndex: 0, edgeId, upstreamOutcome: 'failed' });
    return { flow, a, b, edgeId };
  }

  it('makes a finished execution eligible again for a replay attempt', async () => {
    const { executionId, laneId } = await completed();
    const exec = new ExecKeys(executionId);
    const index = new PartitionKeys(exec.tag);
    await expect(replayExecution(client, { executionId, laneId, edgeIds: [] })).resolves.toEqual({ status: 'OK', unsatisfiedCount: 0 });
    const core = await redis.hgetall(exec.core());
    expect(core).toMatchObject({
      lifecycle_phase: 'runnable', ownership_state: 'unowned', eligibility_state: 'eligible_now', blocking_reason: 'waiting_for_worker', blocking_detail: '',
      terminal_outcome: 'none', attempt_state: 'pending_replay_attempt', public_state: 'waiting', pending_replay_attempt: '1', replay_count: '1', completed_at: '',
    });
    expect(await redis.zscore(index.laneTerminal(laneId), executionId)).toBeNull();
    expect(Number(await redis.zscore(index.laneEligible(laneId), executionId))).toBe(Number(core.created_at));
    const history = await redis.xrange(exec.leaseHistory(), '-', '+');
    expect(history.at(-1)![1]).toEqual(['event', 'replay_initiated', 'replay_count', '1', 'replay_type', 'normal', 'ts', core.last_transition_at]);
    const again = await claim(client, { executionId, laneId }, { attemptIndex: 1 });
    expect(again.claim).toMatchObject({ attemptIndex: 1, attemptType: 'replay' });
    // The replay attempt's record: the common fields, where the replay comes from, its type last (HGETALL order).
    const attempt = await redis.hgetall(exec.attemptHash(1));
    expect(Object.keys(attempt)).toEqual([
      'attempt_id', 'execution_id', 'attempt_index', 'attempt_state', 'created_at', 'started_at', 'lease_id', 'lease_epoch', 'worker_id', 'worker_instance_id',
      'replay_reason', 'replay_requested_by', 'replayed_from_attempt_index', 'attempt_type',
    ]);
    expect(attempt).toMatchObject({ attempt_type: 'replay', attempt_state: 'started' });
  });

  it('refuses a missing or non-terminal execution', async () => {
    const flow = await newTestFlow(client);
    expect((await failure(replayExecution(client, { executionId: executionIdForFlow(flow.flowId, P), laneId: flow.laneId, edgeIds: [] }))).code).toBe('execution_not_found');
    const waiting = (await addMember(client, flow)).executionId;
    expect((await failure(replay(client, waiting))).code).toBe('execution_not_terminal');
  });

  it('stops at the policy max_replay_count, and at 10 by default', async () => {
    const limited = await completed({ max_replay_count: 1 });
    await replay(client, limited.executionId);
    await complete(client, await claim(client, limited, { attemptIndex: 1 }));
    const core = new ExecKeys(limited.executionId).core();
    const before = await redis.hgetall(core);
    expect((await failure(replay(client, limited.executionId))).code).toBe('max_replays_exhausted');
    expect(await redis.hgetall(core)).toEqual(before);
    const plain = await completed({ max_replay_count: 'many' });
    await redis.hset(new ExecKeys(plain.executionId).core(), 'replay_count', '10');
    expect((await failure(replay(client, plain.executionId))).code).toBe('max_replays_exhausted');
    await redis.hset(new ExecKeys(plain.executionId).core(), 'replay_count', '9');
    await expect(replay(client, plain.executionId)).resolves.toEqual({ status: 'OK', unsatisfiedCount: 0 });
  });

  it('sends a skipped member back to wait on its impossible edges', async () => {
    const { flow, b, edgeId } = await skippedMember();
    const exec = new ExecKeys(b);
    const index = new PartitionKeys(exec.tag);
    await expect(replay(client, b)).resolves.toEqual({ status: 'OK', unsatisfiedCount: 1 });
    expect(await redis.hmget(exec.depEdge(edgeId), 'state', 'last_resolved_at')).toEqual(['unsatisfied', '']);
    expect(await redis.smembers(exec.depsUnresolved())).toEqual([edgeId]);
    expect(await redis.hmget(exec.depsMeta(), 'unsatisfied_required_count', 'impossible_required_count')).toEqual(['1', '0']);
    const core = await redis.hgetall(exec.core());
    expect(core).toMatchObject({
      lifecycle_phase: 'runnable', ownership_state: 'unowned', eligibility_state: 'blocked_by_dependencies', blocking_reason: 'waiting_for_children',
      blocking_detail: '1 dep(s) unsatisfied after replay', terminal_outcome: 'none', attempt_state: 'pending_replay_attempt', public_state: 'waiting_children',
      replay_count: '1', pending_replay_attempt: '1', completed_at: '',
    });
    expect(await redis.zscore(index.laneTerminal(flow.laneId), b)).toBeNull();
    expect(Number(await redis.zscore(index.laneBlockedDependencies(flow.laneId), b))).toBe(Number(core.created_at));
    const history = await redis.xrange(exec.leaseHistory(), '-', '+');
    expect(history.at(-1)![1]).toEqual(['event', 'replay_initiated', 'replay_count', '1', 'replay_type', 'skipped_flow_member', 'ts', core.last_transition_at]);
  });

  it('makes a skipped member with nothing left to wait for eligible (deviation)', async () => {
    const flow = await newTestFlow(client);
    const b = (await addMember(client, flow)).executionId;
    const exec = new ExecKeys(b);
    await redis.hset(exec.core(), 'lifecycle_phase', 'terminal', 'eligibility_state', 'not_applicable', 'terminal_outcome', 'skipped', 'public_state', 'skipped');
    await redis.zrem(new PartitionKeys(exec.tag).laneEligible(flow.laneId), b);
    await expect(replay(client, b)).resolves.toEqual({ status: 'OK', unsatisfiedCount: 0 });
    expect(await redis.hmget(exec.core(), 'eligibility_state', 'public_state')).toEqual(['eligible_now', 'waiting']);
    expect(await redis.zscore(new PartitionKeys(exec.tag).laneEligible(flow.laneId), b)).not.toBeNull();
  });

  it('refuses a skipped member without its dependency KEYS or with an incomplete edge list, writing nothing (deviations)', async () => {
    const { flow, b, edgeId } = await skippedMember();
    const exec = new ExecKeys(b);
    const watched = [exec.core(), exec.depsMeta(), exec.depsUnresolved(), exec.depEdge(edgeId), exec.leaseHistory()];
    const before = await keyStates(redis, watched);
    const full = buildReplayExecution({ executionId: b, laneId: flow.laneId, edgeIds: [edgeId] }, P);
    // The reference's typed wrapper: 4 KEYS, 2 ARGV.
    expect(await fcallPatched(redis, full, { 2: null }, full.keys.slice(0, 4))).toEqual([0, 'invalid_input', expect.stringContaining('dependency KEYS')]);
    // Edge ids without their keys, or keys without their ids.
    expect(await fcallPatched(redis, full, {}, full.keys.slice(0, 7))).toEqual([0, 'invalid_input', expect.any(String)]);
    expect(await fcallPatched(redis, full, { 2: null })).toEqual([0, 'invalid_input', expect.stringContaining(edgeId)]);
    // The applied edge must be listed.
    const other = newEdgeId();
    const wrong = buildReplayExecution({ executionId: b, laneId: flow.laneId, edgeIds: [other] }, P);
    expect(await fcallPatched(redis, wrong)).toEqual([0, 'invalid_input', `edge_ids must list every applied inbound edge, missing: ${edgeId}`]);
    for (const patch of [{ 1: 'now' }, { 2: '' }, { 0: executionIdForFlow(flow.flowId, P) }] as Patch[]) {
      expect(await fcallPatched(redis, full, patch)).toEqual([0, 'invalid_input', expect.any(String)]);
    }
    // The edge ids after the fixed ARGV are checked by the guard (the fixed-slot text, named by position).
    const two = buildReplayExecution({ executionId: b, laneId: flow.laneId, edgeIds: [edgeId, other] }, P);
    expect(await fcallPatched(redis, two, { 2: '' })).toEqual([0, 'invalid_input', 'edge_ids[1] must not be empty']);
    expect(await fcallPatched(redis, two, { 3: '' })).toEqual([0, 'invalid_input', 'edge_ids[2] must not be empty']);
    expect(await keyStates(redis, watched)).toEqual(before);
  });

  it('replays any other execution from the reference wrapper\'s 4 KEYS', async () => {
    const { executionId, laneId } = await completed();
    const request = buildReplayExecution({ executionId, laneId, edgeIds: [] }, P);
    expect(await fcallPatched(redis, request, {}, request.keys.slice(0, 4))).toEqual([1, 'OK', '0']);
    expect(await redis.hget(new ExecKeys(executionId).core(), 'public_state')).toBe('waiting');
  });
});

describe('operations/flows helpers', () => {
  const { client } = useServer();

  it('stageEdge re-reads the graph revision after stale_graph_revision, within its attempts', async () => {
    const flow = await newTestFlow(client);
    const a = (await addMember(client, flow)).executionId;
    const b = (await addMember(client, flow)).executionId;
    const args = { flowId: flow.flowId, upstreamExecutionId: a, downstreamExecutionId: b };
    expect((await failure(stageEdge(client, { ...args, edgeId: newEdgeId(), expectedGraphRevision: 0, attempts: 1 }))).code).toBe('stale_graph_revision');
    await expect(stageEdge(client, { ...args, edgeId: newEdgeId(), expectedGraphRevision: 0 })).resolves.toMatchObject({ newGraphRevision: 3 });
    expect(await readGraphRevision(client, flow.flowId)).toBe(3);
    expect(await readGraphRevision(client, newFlowId())).toBe(0);
  });

  it('readLane falls back to the engine default for a missing lane', async () => {
    expect(await readLane(client, newExecutionId())).toBe('default');
  });

  it('applyOutcome refuses anything but a count or already_applied', () => {
    expect(() => applyOutcome({ status: 'OK', outcome: 'maybe' })).toThrow(/outcome/);
  });

  it('deriveFlowState follows the projector rule', () => {
    expect(deriveFlowState([])).toBe('open');
    expect(deriveFlowState(['completed', 'skipped'])).toBe('completed');
    expect(deriveFlowState(['completed', 'cancelled'])).toBe('failed');
    expect(deriveFlowState(['expired', 'skipped'])).toBe('failed');
    expect(deriveFlowState(['completed', 'active', 'waiting_children'])).toBe('running');
    expect(deriveFlowState(['completed', 'delayed', 'waiting'])).toBe('blocked');
    expect(deriveFlowState(['failed', 'waiting'])).toBe('open');
  });
});
