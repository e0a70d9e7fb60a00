-- Flow and dependency functions. KEYS, ARGV and replies: spec/flow.yaml.
-- Module-local helpers live in the one table Flow, to keep the chunk's locals few.
local Flow = {}

-- The cycle check gives up (and refuses the edge) past this many distinct nodes.
Flow.MAX_CYCLE_CHECK_NODES = 1000
Flow.DEFAULT_MAX_REPLAYS = 10

-- The flow of a core key, { tag, flow_id }, when the key is flow_id's core key, else nil: the
-- functions that derive other flow keys (or store the flow id) refuse another flow's core key.
function Flow.of_core(core_key, flow_id)
  local tag = tag_of(core_key)
  if not tag or not is_set(flow_id) then
    return nil
  end
  if core_key ~= KEY.flow_core(tag, flow_id) then
    return nil
  end
  return { tag = tag, flow_id = flow_id }
end

-- The argument checks every flow-side call shares: a non-empty flow id that names the
-- flow of the core key, and an optional integer now_ms (ignored: server time is used).
-- name, keys: the call's, whose other flow and partition KEYS are checked against the flow
-- (c: more context, such as execution_id or edge_id).
function Flow.check_flow_args(A, core_key, name, keys, c)
  local flow = Flow.of_core(core_key, A.flow_id)
  if not flow then
    return nil, err('invalid_input', 'flow_id does not match the flow core key')
  end
  c = c or {}
  c.tag, c.flow_id = tag_of(core_key), A.flow_id
  local bad = check_keys(name, keys, c)
  if bad then return nil, bad end
  return flow
end


-- Decrements the unsatisfied count, never below 0; returns what remains.
function Flow.decrement_unsatisfied(deps_meta_key)
  local remaining = redis.call('HINCRBY', deps_meta_key, 'unsatisfied_required_count', -1)
  if remaining < 0 then
    redis.call('HSET', deps_meta_key, 'unsatisfied_required_count', '0')
    remaining = 0
  end
  return remaining
end

-- True if `target` is reachable from `start` over the flow's staged edges (breadth first),
-- or if the graph is too large to tell (the caller then refuses the edge).
function Flow.reaches(flow, start, target)
  local visited = { [start] = true }
  local count = 1
  local frontier = { start }
  while #frontier > 0 do
    local next_frontier = {}
    for i = 1, #frontier do
      local edges = redis.call('SMEMBERS', KEY.flow_outgoing(flow.tag, flow.flow_id, frontier[i]))
      for j = 1, #edges do
        local down = redis.call('HGET', KEY.flow_edge(flow.tag, flow.flow_id, edges[j]), 'downstream_execution_id')
        if down == target then
          return true
        end
        if is_set(down) and not visited[down] then
          visited[down] = true
          count = count + 1
          if count > Flow.MAX_CYCLE_CHECK_NODES then
            return true
          end
          next_frontier[#next_frontier + 1] = down
        end
      end
    end
    frontier = next_frontier
  end
  return false
end

-- Runnable, blocked child → eligible_now (model.md §4.3 "last dependency satisfied").
-- attempt_state is kept, except empty or `none` → pending_first_attempt, so an interrupted
-- attempt still routes the claim to the resumed path. Write phase only: it also wakes the
-- lane's idle workers (issue 16), as every other path that makes an execution eligible.
function Flow.promote(core_key, core, blocked_key, eligible_key, eid, now)
  local attempt_state = core.attempt_state
  if not is_set(attempt_state) or attempt_state == 'none' then
    attempt_state = 'pending_first_attempt'
  end
  write_state(core_key, now, {
    lifecycle_phase = core.lifecycle_phase or 'runnable',
    ownership_state = core.ownership_state or 'unowned',
    eligibility_state = 'eligible_now',
    blocking_reason = 'waiting_for_worker',
    blocking_detail = '',
    terminal_outcome = 'none',
    attempt_state = attempt_state,
    public_state = 'waiting',
  })
  redis.call('ZREM', blocked_key, eid)
  redis.call('ZADD', eligible_key,
    eligible_score(parse_number(core.priority) or 0, parse_number(core.created_at) or 0), eid)
  wake_lane(tag_of(core_key), core_lane(core))
end

-- An impossible dependency makes a non-terminal child terminal/skipped. A running or
-- interrupted attempt ends as cancelled; its records are the current attempt's, derived
-- from the core (the KEYS slots are the fallback when no attempt index is recorded).
function Flow.skip_child(K, core, eid, now)
  local attempt_state = core.attempt_state
  local new_attempt_state
  if attempt_state == 'running_attempt' or attempt_state == 'attempt_interrupted' then
    new_attempt_state = 'attempt_terminal'
    local attempt_hash, stream_meta = K.attempt_hash, K.stream_meta
    if is_set(core.current_attempt_index) then
      local tag = tag_of(K.exec_core)
      attempt_hash = KEY.exec_attempt_hash(tag, eid, core.current_attempt_index)
      stream_meta = KEY.exec_stream_meta(tag, eid, core.current_attempt_index)
    end
    redis.call('HSET', attempt_hash, 'attempt_state', 'ended_cancelled', 'ended_at', now,
      'failure_reason', 'dependency_impossible')
    if redis.call('EXISTS', stream_meta) == 1 then
      redis.call('HSET', stream_meta, 'closed_at', now, 'closed_reason', 'dependency_impossible')
    end
  elseif attempt_state == nil then
    new_attempt_state = 'none'
  elseif attempt_state == '' then
    new_attempt_state = ''
  else
    new_attempt_state = 'none'
  end
  write_state(K.exec_core, now, {
    lifecycle_phase = 'terminal',
    ownership_state = 'unowned',
    eligibility_state = 'not_applicable',
    blocking_reason = 'none',
    blocking_detail = '',
    terminal_outcome = 'skipped',
    attempt_state = new_attempt_state,
    public_state = 'skipped',
  }, { completed_at = now })
  redis.call('ZREM', K.blocked_deps_zset, eid)
  redis.call('ZREM', K.eligible_zset, eid)
  redis.call('ZADD', K.terminal_zset, now, eid)
end

-- The replay limit: the policy's top-level max_replay_count when it is a number, else 10.
function Flow.max_replays(core_key)
  local policy_key = string.gsub(core_key, ':core$', ':policy')
  local raw = redis.call('GET', policy_key)
  if raw then
    local decoded_ok, policy = pcall(cjson.decode, raw)
    if decoded_ok and type(policy) == 'table' and type(policy.max_replay_count) == 'number' then
      return policy.max_replay_count
    end
  end
  return Flow.DEFAULT_MAX_REPLAYS
end

-- A skipped member's counts are rebuilt from the edges the caller lists, so the list must
-- cover every edge applied to it (deps:all_edges, derived from the core key, same slot).
-- Returns the first applied edge id missing from edge_ids, or nil.
function Flow.missing_applied_edge(core_key, edge_ids)
  local listed = {}
  for i = 1, #edge_ids do
    listed[edge_ids[i]] = true
  end
  local all_edges_key = string.gsub(core_key, ':core$', ':deps:all_edges')
  local applied = redis.call('SMEMBERS', all_edges_key)
  for i = 1, #applied do
    if not listed[applied[i]] then
      return applied[i]
    end
  end
  return nil
end

redis.register_function('ff_create_flow', guard('ff_create_flow', function(keys, args)
  local K = {
    flow_core = keys[1],
    members_set = keys[2],
    flow_index = keys[3],
  }
  local A = {
    flow_id = args[1],
    flow_kind = args[2],
    namespace = args[3],
    now_ms = args[4],
  }
  local _, bad = Flow.check_flow_args(A, K.flow_core, 'ff_create_flow', keys)
  if bad then return bad end

  -- write phase
  redis.call('SADD', K.flow_index, A.flow_id)
  if redis.call('EXISTS', K.flow_core) == 1 then
    return ok_status('ALREADY_SATISFIED', A.flow_id)
  end
  local now = server_now()
  hset_table(K.flow_core, {
    flow_id = A.flow_id,
    flow_kind = A.flow_kind or '',
    namespace = A.namespace or '',
    graph_revision = 0,
    node_count = 0,
    edge_count = 0,
    public_flow_state = 'open',
    created_at = now,
    last_mutation_at = now,
  })
  return ok(A.flow_id)
end))

redis.register_function('ff_add_execution_to_flow', guard('ff_add_execution_to_flow', function(keys, args)
  local K = {
    flow_core = keys[1],
    members_set = keys[2],
    flow_index = keys[3],
    exec_core = keys[4],
  }
  local A = {
    flow_id = args[1],
    execution_id = args[2],
    now_ms = args[3],
  }
  local _, bad = Flow.check_flow_args(A, K.flow_core, 'ff_add_execution_to_flow', keys, { execution_id = A.execution_id })
  if bad then return bad end
  bad = check_core_key(K.exec_core, A.execution_id)
  if bad then return bad end

  local flow = hgetall(K.flow_core)
  if next(flow) == nil then
    return err('flow_not_found')
  end
  if ENUMS.terminal_flow_state[flow.public_flow_state] then
    return err('flow_already_terminal')
  end
  if redis.call('EXISTS', K.exec_core) == 0 then
    return err('execution_not_found')
  end
  local current = redis.call('HGET', K.exec_core, 'flow_id')
  if is_set(current) and current ~= A.flow_id then
    return err('already_member_of_different_flow:' .. current)
  end

  -- write phase
  redis.call('SADD', K.flow_index, A.flow_id)
  redis.call('HSET', K.exec_core, 'flow_id', A.flow_id)
  if redis.call('SISMEMBER', K.members_set, A.execution_id) == 1 then
    return ok_status('ALREADY_SATISFIED', A.execution_id, flow.node_count or '0')
  end
  redis.call('SADD', K.members_set, A.execution_id)
  local node_count = redis.call('HINCRBY', K.flow_core, 'node_count', 1)
  redis.call('HINCRBY', K.flow_core, 'graph_revision', 1)
  redis.call('HSET', K.flow_core, 'last_mutation_at', server_now())
  return ok(A.execution_id, to_text(node_count))
end))

redis.register_function('ff_cancel_flow', guard('ff_cancel_flow', function(keys, args)
  local K = {
    flow_core = keys[1],
    members_set = keys[2],
    flow_index = keys[3],
  }
  local A = {
    flow_id = args[1],
    reason = args[2],
    cancellation_policy = args[3],
    now_ms = args[4],
  }
  local bad = check_keys('ff_cancel_flow', keys, { tag = tag_of(K.flow_core), flow_id = set_or_nil(A.flow_id) })
  if bad then return bad end

  local state = redis.call('HGET', K.flow_core, 'public_flow_state')
  if redis.call('EXISTS', K.flow_core) == 0 then
    return err('flow_not_found')
  end
  if ENUMS.terminal_flow_state[state] then
    return err('flow_already_terminal')
  end
  local members = redis.call('SMEMBERS', K.members_set)
  local now = server_now()
  local policy = A.cancellation_policy or ''
  -- write phase
  redis.call('HSET', K.flow_core,
    'public_flow_state', 'cancelled',
    'cancelled_at', now,
    'cancel_reason', A.reason or '',
    'cancellation_policy', policy,
    'last_mutation_at', now)
  -- Built element by element: unpack would overflow the Lua stack on a large flow.
  local reply = ok(policy)
  for i = 1, #members do
    reply[#reply + 1] = members[i]
  end
  return reply
end))

redis.register_function('ff_stage_dependency_edge', guard('ff_stage_dependency_edge', function(keys, args)
  local K = {
    flow_core = keys[1],
    members_set = keys[2],
    edge_hash = keys[3],
    out_adj_set = keys[4],
    in_adj_set = keys[5],
    grant_hash = keys[6],
  }
  local A = {
    flow_id = args[1],
    edge_id = args[2],
    upstream_execution_id = args[3],
    downstream_execution_id = args[4],
    dependency_kind = args[5],
    data_passing_ref = args[6],
    expected_graph_revision = args[7],
    now_ms = args[8],
  }
  local flow_ref, bad = Flow.check_flow_args(A, K.flow_core, 'ff_stage_dependency_edge', keys, {
    edge_id = set_or_nil(A.edge_id), upstream_execution_id = set_or_nil(A.upstream_execution_id),
    downstream_execution_id = set_or_nil(A.downstream_execution_id),
  })
  if bad then return bad end

  if A.upstream_execution_id == A.downstream_execution_id then
    return err('self_referencing_edge')
  end
  local flow = hgetall(K.flow_core)
  if next(flow) == nil then
    return err('flow_not_found')
  end
  if ENUMS.terminal_flow_state[flow.public_flow_state] then
    return err('flow_already_terminal')
  end
  if (flow.graph_revision or '0') ~= A.expected_graph_revision then
    return err('stale_graph_revision')
  end
  if redis.call('SISMEMBER', K.members_set, A.upstream_execution_id) == 0
    or redis.call('SISMEMBER', K.members_set, A.downstream_execution_id) == 0 then
    return err('execution_not_in_flow')
  end
  -- The new edge closes a loop iff the upstream is already reachable from the downstream.
  if Flow.reaches(flow_ref, A.downstream_execution_id, A.upstream_execution_id) then
    return err('cycle_detected')
  end
  if redis.call('EXISTS', K.edge_hash) == 1 then
    return err('dependency_already_exists')
  end

  -- The caller's clock, as the reference uses it; the server's when the caller sends none.
  local now = A.now_ms or server_now()
  -- write phase
  hset_table(K.edge_hash, {
    edge_id = A.edge_id,
    flow_id = A.flow_id,
    upstream_execution_id = A.upstream_execution_id,
    downstream_execution_id = A.downstream_execution_id,
    dependency_kind = A.dependency_kind or 'success_only',
    satisfaction_condition = 'all_required',
    data_passing_ref = A.data_passing_ref or '',
    edge_state = 'pending',
    created_at = now,
    created_by = 'engine',
  })
  redis.call('SADD', K.out_adj_set, A.edge_id)
  redis.call('SADD', K.in_adj_set, A.edge_id)
  local revision = redis.call('HINCRBY', K.flow_core, 'graph_revision', 1)
  redis.call('HINCRBY', K.flow_core, 'edge_count', 1)
  redis.call('HSET', K.flow_core, 'last_mutation_at', now)
  return ok(A.edge_id, to_text(revision))
end))

redis.register_function('ff_apply_dependency_to_child', guard('ff_apply_dependency_to_child', function(keys, args)
  local K = {
    exec_core = keys[1],
    deps_meta = keys[2],
    unresolved_set = keys[3],
    dep_hash = keys[4],
    eligible_zset = keys[5],
    blocked_deps_zset = keys[6],
    deps_all_edges = keys[7],
  }
  local A = {
    flow_id = args[1],
    edge_id = args[2],
    upstream_execution_id = args[3],
    graph_revision = args[4],
    dependency_kind = args[5],
    data_passing_ref = args[6],
    now_ms = args[7],
  }

  local core, missing = read_core(K.exec_core)
  if not core then return missing end
  if is_set(core.flow_id) and core.flow_id ~= A.flow_id then
    return err('execution_already_in_flow')
  end
  -- Every other key must be the child's (named by its core key) and the edge's.
  local bad = check_keys('ff_apply_dependency_to_child', keys, {
    tag = tag_of(K.exec_core), downstream_execution_id = eid_of_exec_key(K.exec_core), edge_id = A.edge_id,
    lane_id = core_lane(core),
  })
  if bad then return bad end
  if redis.call('EXISTS', K.dep_hash) == 1 then
    return ok('already_applied')
  end

  -- The caller's clock, as the reference uses it; the server's when the caller sends none.
  local now = A.now_ms or server_now()
  local eid = core.execution_id or eid_of_exec_key(K.exec_core)
  -- write phase
  hset_table(K.dep_hash, {
    edge_id = A.edge_id,
    flow_id = A.flow_id,
    upstream_execution_id = A.upstream_execution_id,
    downstream_execution_id = core.execution_id or '',
    dependency_kind = A.dependency_kind or 'success_only',
    state = 'unsatisfied',
    data_passing_ref = A.data_passing_ref or '',
    last_resolved_at = '',
  })
  redis.call('SADD', K.unresolved_set, A.edge_id)
  redis.call('SADD', K.deps_all_edges, A.edge_id)
  local unsatisfied = redis.call('HINCRBY', K.deps_meta, 'unsatisfied_required_count', 1)
  redis.call('HSET', K.deps_meta,
    'flow_id', A.flow_id,
    'last_flow_graph_revision', A.graph_revision,
    'last_dependency_update_at', now)
  if core.lifecycle_phase == 'runnable' and core.terminal_outcome == 'none' then
    write_state(K.exec_core, now, {
      lifecycle_phase = core.lifecycle_phase,
      ownership_state = core.ownership_state or 'unowned',
      eligibility_state = 'blocked_by_dependencies',
      blocking_reason = 'waiting_for_children',
      blocking_detail = to_text(unsatisfied) .. ' dep(s) unresolved incl ' .. A.edge_id,
      terminal_outcome = 'none',
      attempt_state = core.attempt_state or 'pending_first_attempt',
      public_state = 'waiting_children',
    })
    redis.call('ZREM', K.eligible_zset, eid)
    redis.call('ZADD', K.blocked_deps_zset, parse_number(core.created_at) or 0, eid)
  end
  return ok(to_text(unsatisfied))
end))

redis.register_function('ff_resolve_dependency', guard('ff_resolve_dependency', function(keys, args)
  local K = {
    exec_core = keys[1],
    deps_meta = keys[2],
    unresolved_set = keys[3],
    dep_hash = keys[4],
    eligible_zset = keys[5],
    terminal_zset = keys[6],
    blocked_deps_zset = keys[7],
    attempt_hash = keys[8],
    stream_meta = keys[9],
    downstream_payload = keys[10],
    upstream_result = keys[11],
  }
  local A = {
    edge_id = args[1],
    upstream_outcome = args[2],
    now_ms = args[3],
  }

  local dep = hgetall(K.dep_hash)
  if next(dep) == nil then
    return err('invalid_dependency')
  end
  if dep.state == 'satisfied' or dep.state == 'impossible' then
    return ok('already_resolved')
  end

  -- The caller's clock, as the reference uses it; the server's when the caller sends none.
  local now = A.now_ms or server_now()
  local core = hgetall(K.exec_core)
  local eid = core.execution_id or eid_of_exec_key(K.exec_core)
  -- Every other key must be the child's (named by its core key), the edge's and the
  -- upstream's of the edge record, in the child's lane.
  local exists = next(core) ~= nil
  local bad = check_keys('ff_resolve_dependency', keys, {
    tag = tag_of(K.exec_core), downstream_execution_id = eid_of_exec_key(K.exec_core), edge_id = A.edge_id,
    upstream_execution_id = set_or_nil(dep.upstream_execution_id), lane_id = exists and core_lane(core) or nil,
    -- With a current attempt its keys are derived (Flow.skip_child); without, slot 8/9 are used.
    attempt_index = exists and not is_set(core.current_attempt_index) and '0' or nil,
  })
  if bad then return bad end
  if A.upstream_outcome == 'success' then
    -- write phase
    redis.call('HSET', K.dep_hash, 'state', 'satisfied', 'last_resolved_at', now)
    redis.call('SREM', K.unresolved_set, A.edge_id)
    local remaining = Flow.decrement_unsatisfied(K.deps_meta)
    redis.call('HSET', K.deps_meta, 'last_dependency_update_at', now)
    if next(core) == nil then
      return ok('satisfied', '')
    end
    local marker = ''
    if is_set(dep.data_passing_ref) and core.terminal_outcome == 'none' then
      if redis.call('COPY', K.upstream_result, K.downstream_payload, 'REPLACE') == 1 then
        marker = 'data_injected'
      end
    end
    if remaining == 0 and core.lifecycle_phase == 'runnable' and core.ownership_state == 'unowned'
      and core.terminal_outcome == 'none' and core.eligibility_state == 'blocked_by_dependencies' then
      Flow.promote(K.exec_core, core, K.blocked_deps_zset, K.eligible_zset, eid, now)
    end
    return ok('satisfied', marker)
  end

  -- write phase
  redis.call('HSET', K.dep_hash, 'state', 'impossible', 'last_resolved_at', now)
  redis.call('SREM', K.unresolved_set, A.edge_id)
  Flow.decrement_unsatisfied(K.deps_meta)
  redis.call('HINCRBY', K.deps_meta, 'impossible_required_count', 1)
  redis.call('HSET', K.deps_meta, 'last_dependency_update_at', now)
  if next(core) == nil then
    return ok('impossible', '')
  end
  if core.terminal_outcome ~= 'none' then
    return ok('impossible', '')
  end
  Flow.skip_child(K, core, eid, now)
  -- Published like every other terminal transition, so the child's own downstream is
  -- released at once (an extension: the reference publishes nothing here).
  publish_completion(core, eid, 'skipped')
  return ok('impossible', 'child_skipped')
end))

redis.register_function{
  function_name = 'ff_evaluate_flow_eligibility',
  callback = guard('ff_evaluate_flow_eligibility', function(keys, args)
    local K = {
      exec_core = keys[1],
      deps_meta = keys[2],
    }
    local core = hgetall(K.exec_core)
    if next(core) == nil then return ok('not_found') end
    if core.lifecycle_phase ~= 'runnable' then return ok('not_runnable') end
    if core.ownership_state ~= 'unowned' then return ok('owned') end
    if core.terminal_outcome ~= 'none' then return ok('terminal') end
    local meta = hgetall(K.deps_meta)
    if next(meta) == nil then return ok('eligible') end
    if (parse_number(meta.impossible_required_count) or 0) > 0 then return ok('impossible') end
    if (parse_number(meta.unsatisfied_required_count) or 0) > 0 then return ok('blocked_by_dependencies') end
    return ok('eligible')
  end),
  flags = { 'no-writes' },
}

redis.register_function('ff_promote_blocked_to_eligible', guard('ff_promote_blocked_to_eligible', function(keys, args)
  local K = {
    exec_core = keys[1],
    blocked_deps_zset = keys[2],
    eligible_zset = keys[3],
    deps_meta = keys[4],
    deps_unresolved = keys[5],
  }
  local A = {
    execution_id = args[1],
    now_ms = args[2],
  }
  local bad = check_core_key(K.exec_core, A.execution_id)
  if bad then return bad end

  local core, missing = read_core(K.exec_core)
  if not core then return missing end
  bad = check_keys('ff_promote_blocked_to_eligible', keys, {
    tag = tag_of(K.exec_core), execution_id = A.execution_id, lane_id = core_lane(core),
  })
  if bad then return bad end
  if core.lifecycle_phase ~= 'runnable' then return err('not_runnable') end
  if core.eligibility_state ~= 'blocked_by_dependencies' then return err('not_blocked_by_deps') end
  if core.terminal_outcome ~= 'none' then return err('terminal') end
  local unsatisfied = parse_number(redis.call('HGET', K.deps_meta, 'unsatisfied_required_count')) or 0
  local unresolved = redis.call('SCARD', K.deps_unresolved)
  if unsatisfied > 0 or unresolved > 0 then
    return err('deps_not_satisfied', to_text(unsatisfied), to_text(unresolved))
  end
  -- write phase
  Flow.promote(K.exec_core, core, K.blocked_deps_zset, K.eligible_zset, A.execution_id, A.now_ms or server_now())
  return ok()
end))

redis.register_function('ff_replay_execution', guard('ff_replay_execution', function(keys, args)
  local K = {
    exec_core = keys[1],
    terminal_zset = keys[2],
    eligible_zset = keys[3],
    lease_history = keys[4],
    blocked_deps_zset = keys[5],
    deps_meta = keys[6],
    deps_unresolved = keys[7],
  }
  local A = {
    execution_id = args[1],
    now_ms = args[2],
    edge_ids = args.edge_ids,
  }
  local bad = check_core_key(K.exec_core, A.execution_id)
  if bad then return bad end
  -- The edge ids (checked by the guard) have their dep keys after the seven fixed KEYS.
  local edge_ids = A.edge_ids
  local edge_count = #edge_ids
  if edge_count > 0 and #keys ~= 7 + edge_count then
    return err('invalid_input', 'expected ' .. (7 + edge_count) .. ' KEYS for ' .. edge_count .. ' edge ids, got ' .. #keys)
  end

  local core, missing = read_core(K.exec_core)
  if not core then return missing end
  local tag = tag_of(K.exec_core)
  bad = check_keys('ff_replay_execution', keys, { tag = tag, execution_id = A.execution_id, lane_id = core_lane(core) })
  if bad then return bad end
  for i = 1, edge_count do
    local dep_key = KEY.exec_dep_edge(tag, A.execution_id, edge_ids[i])
    if keys[7 + i] ~= dep_key then
      return err('invalid_input', 'KEYS[' .. (7 + i) .. '] (dep_edge) must be ' .. dep_key .. ', got: ' .. keys[7 + i])
    end
  end
  if core.lifecycle_phase ~= 'terminal' then return err('execution_not_terminal') end
  local replays = parse_number(core.replay_count) or 0
  if replays >= Flow.max_replays(K.exec_core) then return err('max_replays_exhausted') end
  local skipped_member = core.terminal_outcome == 'skipped' and is_set(core.flow_id)
  if skipped_member and not (K.blocked_deps_zset and K.deps_meta and K.deps_unresolved) then
    return err('invalid_input', 'replaying a skipped flow member needs the 7 dependency KEYS')
  end

  if skipped_member then
    local missing = Flow.missing_applied_edge(K.exec_core, edge_ids)
    if missing then
      return err('invalid_input', 'edge_ids must list every applied inbound edge, missing: ' .. missing)
    end
  end

  local now = server_now()
  local extra = { pending_replay_attempt = '1', replay_count = replays + 1, completed_at = '' }
  local unsatisfied = 0
  -- write phase
  if skipped_member then
    for i = 1, edge_count do
      local dep_key = keys[7 + i]
      local state = redis.call('HGET', dep_key, 'state')
      if state == 'impossible' then
        redis.call('HSET', dep_key, 'state', 'unsatisfied', 'last_resolved_at', '')
        redis.call('SADD', K.deps_unresolved, edge_ids[i])
        unsatisfied = unsatisfied + 1
      elseif state == 'unsatisfied' then
        unsatisfied = unsatisfied + 1
      end
    end
    redis.call('HSET', K.deps_meta,
      'unsatisfied_required_count', unsatisfied,
      'impossible_required_count', 0,
      'last_dependency_update_at', now)
  end
  redis.call('ZREM', K.terminal_zset, A.execution_id)
  if unsatisfied > 0 then
    write_state(K.exec_core, now, {
      lifecycle_phase = 'runnable',
      ownership_state = 'unowned',
      eligibility_state = 'blocked_by_dependencies',
      blocking_reason = 'waiting_for_children',
      blocking_detail = to_text(unsatisfied) .. ' dep(s) unsatisfied after replay',
      terminal_outcome = 'none',
      attempt_state = 'pending_replay_attempt',
      public_state = 'waiting_children',
    }, extra)
    redis.call('ZADD', K.blocked_deps_zset, parse_number(core.created_at) or 0, A.execution_id)
  else
    -- Nothing to wait for (also a skipped member whose edges are all satisfied): eligible.
    write_state(K.exec_core, now, {
      lifecycle_phase = 'runnable',
      ownership_state = 'unowned',
      eligibility_state = 'eligible_now',
      blocking_reason = 'waiting_for_worker',
      blocking_detail = '',
      terminal_outcome = 'none',
      attempt_state = 'pending_replay_attempt',
      public_state = 'waiting',
    }, extra)
    if skipped_member then
      redis.call('ZREM', K.blocked_deps_zset, A.execution_id)
    end
    redis.call('ZADD', K.eligible_zset,
      eligible_score(parse_number(core.priority) or 0, parse_number(core.created_at) or 0), A.execution_id)
    wake_lane(tag, core_lane(core))
  end
  history_add(K.lease_history, {
    'event', 'replay_initiated', 'replay_count', replays + 1,
    'replay_type', skipped_member and 'skipped_flow_member' or 'normal', 'ts', now,
  })
  return ok(to_text(unsatisfied))
end))
