-- Engine extensions: calls the background engine makes where the reference used plain
-- commands that are unsafe with several engine processes. KEYS, ARGV and replies:
-- spec/engine.yaml. Subordinate keys are built from the caller's hash tag (same slot).
local Engine = {}

-- DEL in chunks: unpack has a stack limit, and one huge DEL blocks no less than several.
function Engine.delete_keys(list)
  local deleted = 0
  for first = 1, #list, 500 do
    deleted = deleted + redis.call('DEL', unpack(list, first, math.min(first + 499, #list)))
  end
  return deleted
end

-- The policy's stream_policy.retention_ttl_ms, when it is a non-negative integer.
function Engine.policy_retention(policy_key)
  local raw = redis.call('GET', policy_key)
  if not is_set(raw) then return nil end
  local decoded_ok, policy = pcall(cjson.decode, raw)
  if not decoded_ok or type(policy) ~= 'table' or type(policy.stream_policy) ~= 'table' then return nil end
  local ttl = policy.stream_policy.retention_ttl_ms
  if type(ttl) ~= 'number' or ttl < 0 or ttl ~= math.floor(ttl) then return nil end
  return ttl
end

-- Every key an execution owns besides core and policy (engine.md §6.2 step 4), read from
-- its member sets before they are deleted with the rest.
function Engine.owned_keys(tag, eid, core)
  local keys = {
    KEY.exec_payload(tag, eid), KEY.exec_result(tag, eid), KEY.exec_tags(tag, eid),
    KEY.exec_lease_current(tag, eid), KEY.exec_lease_history(tag, eid), KEY.exec_claim_grant(tag, eid),
    KEY.exec_attempts(tag, eid), KEY.exec_suspension_current(tag, eid), KEY.exec_deps_meta(tag, eid),
    KEY.exec_deps_unresolved(tag, eid), KEY.exec_deps_all_edges(tag, eid), KEY.exec_waitpoints(tag, eid),
    KEY.exec_exec_signals(tag, eid),
  }
  local attempts = parse_int(core.total_attempt_count or '') or 0
  for i = 0, attempts - 1 do
    keys[#keys + 1] = KEY.exec_attempt_hash(tag, eid, i)
    keys[#keys + 1] = KEY.exec_attempt_usage(tag, eid, i)
    keys[#keys + 1] = KEY.exec_attempt_policy(tag, eid, i)
    keys[#keys + 1] = KEY.exec_stream(tag, eid, i)
    keys[#keys + 1] = KEY.exec_stream_meta(tag, eid, i)
  end
  for _, edge in ipairs(redis.call('SMEMBERS', KEY.exec_deps_all_edges(tag, eid))) do
    keys[#keys + 1] = KEY.exec_dep_edge(tag, eid, edge)
  end
  local waitpoints = redis.call('SMEMBERS', KEY.exec_waitpoints(tag, eid))
  for _, wp in ipairs(waitpoints) do
    keys[#keys + 1] = KEY.partition_waitpoint(tag, wp)
    keys[#keys + 1] = KEY.partition_waitpoint_signals(tag, wp)
    keys[#keys + 1] = KEY.partition_waitpoint_condition(tag, wp)
  end
  for _, signal in ipairs(redis.call('ZRANGE', KEY.exec_exec_signals(tag, eid), 0, -1)) do
    keys[#keys + 1] = KEY.partition_signal(tag, signal)
    keys[#keys + 1] = KEY.partition_signal_payload(tag, signal)
  end
  return keys, waitpoints
end

redis.register_function('ff_purge_execution', guard('ff_purge_execution', function(keys, args)
  local K = {
    core = keys[1],
    policy = keys[2],
    terminal = keys[3],
    all_executions = keys[4],
    pending_waitpoint_expiry = keys[5],
  }
  local A = {
    execution_id = args[1],
    retention_ms = args[2],
    now_ms = args[3],
  }
  local bad = check_core_key(K.core, A.execution_id)
  if bad then return bad end
  local tag = tag_of(K.core)
  local eid = A.execution_id
  if K.policy ~= KEY.exec_policy(tag, eid) then
    return err('invalid_input', 'policy key is not the execution\'s')
  end
  local core = hmget_map(K.core, { 'lifecycle_phase', 'completed_at', 'total_attempt_count', 'lane_id' })
  if core.lifecycle_phase == nil then
    -- write phase
    redis.call('ZREM', K.terminal, eid)
    redis.call('SREM', K.all_executions, eid)
    return ok('not_found_cleaned')
  end
  if core.lane_id and K.terminal ~= KEY.partition_lane_terminal(tag, core.lane_id) then
    return err('invalid_input', 'terminal key is not the terminal index of lane ' .. core.lane_id)
  end
  if core.lifecycle_phase ~= 'terminal' then
    -- Replayed (or otherwise live again): never deleted, only its stale entry goes.
    -- write phase
    redis.call('ZREM', K.terminal, eid)
    return ok('not_terminal_cleaned')
  end
  local completed_at = parse_number(core.completed_at or '')
  if completed_at == nil or completed_at <= 0 then
    -- write phase
    redis.call('ZREM', K.terminal, eid)
    return ok('not_found_cleaned')
  end
  local now = A.now_ms or server_now()
  local due_at = completed_at + (Engine.policy_retention(K.policy) or A.retention_ms)
  if now < due_at then
    return ok('not_due', to_text(due_at))
  end

  local owned, waitpoints = Engine.owned_keys(tag, eid, core)
  -- write phase
  local deleted = Engine.delete_keys(owned)
  for _, wp in ipairs(waitpoints) do
    redis.call('ZREM', K.pending_waitpoint_expiry, wp)
  end
  -- The record itself last: its absence is what every reader takes as "gone".
  deleted = deleted + redis.call('DEL', K.policy, K.core)
  redis.call('ZREM', K.terminal, eid)
  redis.call('SREM', K.all_executions, eid)
  return ok('purged', to_text(deleted))
end))

redis.register_function('ff_reset_budget_if_due', guard('ff_reset_budget_if_due', function(keys, args)
  local K, A, interval, now = Budget.reset_check(keys, args)
  if not K then return A end
  local scheduled = parse_number(redis.call('ZSCORE', K.budget_resets, A.budget_id) or '')
  if scheduled == nil or scheduled > now then
    return ok('not_due', to_text(scheduled or 0))
  end
  -- write phase
  -- The reset itself, as ff_reset_budget does it (spec/budget.yaml).
  return ok('reset', to_text(Budget.reset(K, A.budget_id, interval, now)))
end))

redis.register_function('ff_reconcile_quota', guard('ff_reconcile_quota', function(keys, args)
  local K = {
    definition = keys[1],
    window = keys[2],
    concurrency = keys[3],
    admitted_set = keys[4],
  }
  local A = {
    quota_policy_id = args[1],
    now_ms = args[2],
  }
  local tag = tag_of(K.definition)
  local prefix = tag and KEY.quota_definition(tag, A.quota_policy_id)
  if not tag or K.definition ~= prefix or string.sub(K.admitted_set, 1, #prefix + 1) ~= prefix .. ':'
    or string.sub(K.concurrency, 1, #prefix + 1) ~= prefix .. ':' or string.sub(K.window, 1, #prefix + 1) ~= prefix .. ':' then
    return err('invalid_input', 'quota_policy_id must be the policy of the quota keys, got: ' .. A.quota_policy_id)
  end
  local previous, counter_err = Quota.counter(K.concurrency)
  if counter_err then return counter_err end
  local limits = hmget_map(K.definition, { 'requests_per_window_seconds', 'active_concurrency_cap' })
  if next(limits) == nil then
    return ok('not_found')
  end
  local now = A.now_ms or server_now()
  local window_s = parse_int(limits.requests_per_window_seconds or '') or 0
  local cap = parse_int(limits.active_concurrency_cap or '') or 0
  -- Every read before the first write.
  local held, gone = 0, {}
  if cap > 0 then
    for _, member in ipairs(redis.call('SMEMBERS', K.admitted_set)) do
      if redis.call('EXISTS', prefix .. ':admitted:' .. member) == 1 then
        held = held + 1
      else
        gone[#gone + 1] = member
      end
    end
  end
  -- write phase
  if window_s > 0 then
    redis.call('ZREMRANGEBYSCORE', K.window, '-inf', now - window_s * 1000)
  end
  if cap <= 0 then
    return ok('reconciled', '0', to_text(previous), '0')
  end
  local lapsed = #gone
  for first = 1, lapsed, 500 do
    redis.call('SREM', K.admitted_set, unpack(gone, first, math.min(first + 499, lapsed)))
  end
  if held ~= previous then
    redis.call('SET', K.concurrency, to_text(held))
  end
  return ok('reconciled', to_text(held), to_text(previous), to_text(lapsed))
end))
