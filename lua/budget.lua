-- Budget functions and admission blocking. KEYS, ARGV and replies: spec/budget.yaml.
local Budget = {}

-- Usage beyond this loses precision in Lua numbers.
Budget.MAX_USAGE = 9007199254740991
Budget.DEDUP_TTL_MS = 86400000

-- Admission block reasons → { eligibility_state, blocked set of the lane }. paused_by_policy
-- has no set of its own in the reference; it goes to the operator set, which no scanner lifts.
Budget.BLOCK = {
  waiting_for_budget = { 'blocked_by_budget', 'budget' },
  waiting_for_quota = { 'blocked_by_quota', 'quota' },
  waiting_for_capable_worker = { 'blocked_by_route', 'route' },
  paused_by_operator = { 'blocked_by_operator', 'operator' },
  paused_by_policy = { 'blocked_by_lane_state', 'operator' },
}
-- States an execution may be blocked from: eligible, or already blocked for admission.
Budget.BLOCKABLE = {
  eligible_now = true, blocked_by_budget = true, blocked_by_quota = true,
  blocked_by_route = true, blocked_by_operator = true, blocked_by_lane_state = true,
}
Budget.UNBLOCKABLE = {
  blocked_by_budget = true, blocked_by_quota = true, blocked_by_route = true, blocked_by_operator = true,
}

-- A budget exists once create has run; a hash without created_at is a stub another
-- implementation left behind and counts as absent.
function Budget.exists(def_key)
  return redis.call('HEXISTS', def_key, 'created_at') == 1
end

-- budget_id must be the budget the caller's definition key names.
function Budget.check_id(def_key, budget_id)
  local tag = tag_of(def_key)
  if not is_set(budget_id) or not tag or def_key ~= KEY.budget_definition(tag, budget_id) then
    return err('invalid_input', 'budget_id must be the budget of the definition key, got: ' .. tostring(budget_id))
  end
  return nil
end

-- A stored limit: nil when unset or empty, else its number (the invalid_input reply when it
-- is not a number, so the caller stops before writing).
function Budget.stored_limit(limits_key, field)
  local raw = redis.call('HGET', limits_key, field)
  if not is_set(raw) then return nil, nil, nil end
  local value = parse_number(raw)
  if value == nil then
    return nil, nil, err('invalid_input', 'stored ' .. field .. ' is not a number, got: ' .. raw)
  end
  return value, raw, nil
end

-- The create's check phase: the id (the guard has checked every dimension's name and
-- limits, A.dimensions). Returns the limits as HSET pairs, or nil and the refusal. Writes nothing.
function Budget.create_check(K, A)
  local bad = Budget.check_id(K.definition, A.budget_id)
  if bad then return nil, bad end
  local limits = {}
  for _, d in ipairs(A.dimensions) do
    limits[#limits + 1] = 'hard:' .. d.dimension
    limits[#limits + 1] = to_text(d.hard_limit)
    limits[#limits + 1] = 'soft:' .. d.dimension
    limits[#limits + 1] = to_text(d.soft_limit)
  end
  return limits, nil
end

-- The create's write phase (limits from Budget.create_check).
function Budget.create(K, A, limits)
  local now = A.now_ms or server_now()
  -- Indexing comes before the existence check, so a replay heals a missing index entry.
  redis.call('SADD', K.budget_policies, A.budget_id)
  if Budget.exists(K.definition) then
    return ok_status('ALREADY_SATISFIED', A.budget_id)
  end
  hset_table(K.definition, {
    budget_id = A.budget_id,
    scope_type = A.scope_type,
    scope_id = A.scope_id,
    enforcement_mode = A.enforcement_mode,
    on_hard_limit = A.on_hard_limit,
    on_soft_limit = A.on_soft_limit,
    reset_interval_ms = A.reset_interval_ms,
    breach_count = 0,
    soft_breach_count = 0,
    created_at = now,
    last_updated_at = now,
  })
  if #limits > 0 then
    redis.call('HSET', K.limits, unpack(limits))
  end
  if A.reset_interval_ms > 0 then
    local next_reset = now + A.reset_interval_ms
    redis.call('HSET', K.definition, 'next_reset_at', to_text(next_reset))
    redis.call('ZADD', K.budget_resets, next_reset, A.budget_id)
  end
  return ok(A.budget_id)
end

redis.register_function('ff_create_budget', guard('ff_create_budget', function(keys, args)
  local K = {
    definition = keys[1],
    limits = keys[2],
    usage = keys[3],
    budget_resets = keys[4],
    budget_policies = keys[5],
  }
  local A = {
    budget_id = args[1],
    scope_type = args[2],
    scope_id = args[3],
    enforcement_mode = args[4],
    on_hard_limit = args[5],
    on_soft_limit = args[6],
    reset_interval_ms = args[7],
    now_ms = args[8],
    dimensions = args.dimensions,
  }
  local limits, bad = Budget.create_check(K, A)
  if not limits then return bad end
  -- write phase
  return Budget.create(K, A, limits)
end))

-- Checks a usage report against the budget and reads what it needs (the guard has checked
-- every dimension, delta and now_ms: A.usage, A.now_ms). Returns the entries (A.usage's
-- rows, each given its stored usage and limits), or nil and the reply to send (an error, or
-- ALREADY_APPLIED). Writes nothing.
function Budget.prepare_report(K, A)
  local tag = tag_of(K.definition)
  if not tag then
    return nil, err('invalid_input', 'the budget keys carry no hash tag')
  end
  if is_set(A.dedup_key) then
    local prefix = KEY.budget_partition_usage_dedup(tag, '')
    if #A.dedup_key <= #prefix or string.sub(A.dedup_key, 1, #prefix) ~= prefix then
      return nil, err('invalid_input', 'dedup_key must be ' .. prefix .. '<dedup_id>, got: ' .. A.dedup_key)
    end
  end
  local entries = A.usage
  if not Budget.exists(K.definition) then
    return nil, err('budget_not_found')
  end
  if is_set(A.dedup_key) and redis.call('EXISTS', A.dedup_key) == 1 then
    return nil, ok_status('ALREADY_APPLIED')
  end
  -- Stored values are checked here, before any write, for every dimension.
  for _, e in ipairs(entries) do
    local raw = redis.call('HGET', K.usage, e.dimension)
    e.current = 0
    if is_set(raw) then
      e.current = parse_int(raw)
      if e.current == nil then
        return nil, err('invalid_input', 'stored usage of ' .. e.dimension .. ' is not an integer, got: ' .. raw)
      end
    end
    local hard, hard_raw, hard_err = Budget.stored_limit(K.limits, 'hard:' .. e.dimension)
    if hard_err then return nil, hard_err end
    local soft, _, soft_err = Budget.stored_limit(K.limits, 'soft:' .. e.dimension)
    if soft_err then return nil, soft_err end
    e.hard, e.hard_raw, e.soft = hard, hard_raw, soft
  end
  return entries, nil
end

-- The report's last check: the running total per dimension, in entry order, up to the
-- first hard breach (which adds nothing). Returns the breached entry or false, or nil and
-- the refusal. Writes nothing.
function Budget.report_check(entries)
  local totals = {}
  for _, e in ipairs(entries) do
    local total = (totals[e.dimension] or e.current) + e.delta
    if total > Budget.MAX_USAGE then
      return nil, err('invalid_input', 'usage of ' .. e.dimension .. ' would exceed 2^53-1')
    end
    totals[e.dimension] = total
    if e.hard and e.hard > 0 and total > e.hard then
      return e, nil
    end
  end
  return false, nil
end

-- The report's write phase (entries from Budget.prepare_report, breach from Budget.report_check).
function Budget.report(K, A, entries, breach)
  local now = A.now_ms or server_now()
  -- Hard limits first: a breach adds nothing.
  if breach then
    redis.call('HINCRBY', K.definition, 'breach_count', 1)
    redis.call('HSET', K.definition, 'last_breach_at', to_text(now), 'last_breach_dim', breach.dimension,
      'last_updated_at', to_text(now))
    return ok_status('HARD_BREACH', breach.dimension, to_text(breach.current), breach.hard_raw)
  end

  local soft_dim, soft_value, soft_limit
  for _, e in ipairs(entries) do
    local value = redis.call('HINCRBY', K.usage, e.dimension, e.delta)
    if not soft_dim and e.soft and e.soft > 0 and value > e.soft then
      soft_dim, soft_value, soft_limit = e.dimension, value, e.soft
    end
  end
  redis.call('HSET', K.definition, 'last_updated_at', to_text(now))
  if is_set(A.dedup_key) then
    redis.call('SET', A.dedup_key, '1', 'PX', Budget.DEDUP_TTL_MS)
  end
  if soft_dim then
    redis.call('HINCRBY', K.definition, 'soft_breach_count', 1)
    return ok_status('SOFT_BREACH', soft_dim, to_text(soft_value), to_text(soft_limit))
  end
  return ok()
end

redis.register_function('ff_report_usage_and_check', guard('ff_report_usage_and_check', function(keys, args)
  local K = {
    usage = keys[1],
    limits = keys[2],
    definition = keys[3],
  }
  -- ARGV: N, N dimensions, N deltas, now_ms, [dedup_key]: placed and checked by the guard.
  local A = {
    usage = args.usage,
    now_ms = args.now_ms,
    dedup_key = args.dedup_key,
  }
  local entries, reply = Budget.prepare_report(K, A)
  if not entries then return reply end
  local breach, bad = Budget.report_check(entries)
  if breach == nil then return bad end
  -- write phase
  return Budget.report(K, A, entries, breach)
end))

redis.register_function('ff_reset_budget', guard('ff_reset_budget', function(keys, args)
  local K, A, interval, now = Budget.reset_check(keys, args)
  if not K then return A end
  -- write phase
  return ok(to_text(Budget.reset(K, A.budget_id, interval, now)))
end))

-- The check phase both resets share (ff_reset_budget, ff_reset_budget_if_due): KEYS and
-- ARGV read and checked, the budget present (a dangling schedule entry is dropped so the
-- scanner stops retrying), the stored interval valid. Returns K, A, interval (0 when
-- none), now; or nil and the reply.
function Budget.reset_check(keys, args)
  local K = {
    definition = keys[1],
    usage = keys[2],
    budget_resets = keys[3],
  }
  local A = {
    budget_id = args[1],
    now_ms = args[2],
  }
  local bad = Budget.check_id(K.definition, A.budget_id)
  if bad then return nil, bad end
  if not Budget.exists(K.definition) then
    redis.call('ZREM', K.budget_resets, A.budget_id)
    return nil, err('budget_not_found')
  end
  local raw = redis.call('HGET', K.definition, 'reset_interval_ms')
  local interval = 0
  if is_set(raw) then
    interval = parse_number(raw)
    if interval == nil then
      return nil, err('invalid_input', 'stored reset_interval_ms is not a number, got: ' .. raw)
    end
  end
  return K, A, interval, A.now_ms or server_now()
end

-- The reset (write phase only; K: definition, usage, budget_resets): usage zeroed, the
-- reset counted and stamped, the next one scheduled or the schedule entry dropped.
-- Returns the next reset time, 0 when none.
function Budget.reset(K, budget_id, interval, now)
  local fields = redis.call('HKEYS', K.usage)
  if #fields > 0 then
    local flat = {}
    for _, field in ipairs(fields) do
      flat[#flat + 1] = field
      flat[#flat + 1] = '0'
    end
    redis.call('HSET', K.usage, unpack(flat))
  end
  redis.call('HINCRBY', K.definition, 'reset_count', 1)
  redis.call('HSET', K.definition, 'last_reset_at', to_text(now), 'last_updated_at', to_text(now),
    'last_breach_at', '', 'last_breach_dim', '')
  if interval > 0 then
    local next_reset = now + interval
    redis.call('HSET', K.definition, 'next_reset_at', to_text(next_reset))
    redis.call('ZADD', K.budget_resets, next_reset, budget_id)
    return next_reset
  end
  redis.call('ZREM', K.budget_resets, budget_id)
  return 0
end

-- The caller's lane index keys must be the execution's own lane's: its eligible index, and
-- one of `sets` among its blocked indexes. A core without lane_id (hand-built) is not checked.
function Budget.check_lane_keys(tag, lane, eligible_key, blocked_key, sets)
  if not is_set(lane) then return nil end
  if eligible_key ~= KEY.partition_lane_eligible(tag, lane) then
    return err('invalid_input', 'eligible key is not the eligible index of lane ' .. lane)
  end
  for _, set in ipairs(sets) do
    if blocked_key == KEY.partition_lane_blocked(tag, lane, set) then return nil end
  end
  return err('invalid_input', 'blocked key is not the ' .. table.concat(sets, '/') .. ' blocked index of lane ' .. lane)
end

-- Removes the execution from every admission blocked index of its lane except `keep`.
function Budget.leave_blocked_sets(tag, lane, eid, keep)
  if not is_set(lane) then return end
  for _, set in ipairs(ENUMS.blocked_set) do
    local key = KEY.partition_lane_blocked(tag, lane, set)
    if key ~= keep then
      redis.call('ZREM', key, eid)
    end
  end
end

redis.register_function('ff_block_execution_for_admission', guard('ff_block_execution_for_admission', function(keys, args)
  local K = {
    core = keys[1],
    eligible = keys[2],
    blocked = keys[3],
  }
  local A = {
    execution_id = args[1],
    blocking_reason = args[2],
    blocking_detail = args[3],
    now_ms = args[4],
  }
  local bad = check_core_key(K.core, A.execution_id)
  if bad then return bad end
  local core, missing = read_core(K.core)
  if not core then return missing end
  if core.lifecycle_phase == 'terminal' then
    return err('execution_not_active', core.terminal_outcome or '', core.current_lease_epoch or '')
  end
  if core.lifecycle_phase ~= 'runnable' then
    return err('execution_not_eligible')
  end
  local mapped = Budget.BLOCK[A.blocking_reason or '']
  if not mapped then
    return err('invalid_blocking_reason')
  end
  if not Budget.BLOCKABLE[core.eligibility_state or ''] then
    return err('execution_not_eligible')
  end
  local tag = tag_of(K.core)
  bad = Budget.check_lane_keys(tag, core.lane_id, K.eligible, K.blocked, { mapped[2] })
  if bad then return bad end
  local now = A.now_ms or server_now()

  -- write phase
  write_state(K.core, now, {
    lifecycle_phase = 'runnable',
    ownership_state = 'unowned',
    eligibility_state = mapped[1],
    blocking_reason = A.blocking_reason,
    blocking_detail = A.blocking_detail or '',
    terminal_outcome = 'none',
    attempt_state = is_set(core.attempt_state) and core.attempt_state or 'pending_first_attempt',
    -- The reference writes rate_limited for every reason (budget.md §12.9).
    public_state = 'rate_limited',
  })
  redis.call('ZREM', K.eligible, A.execution_id)
  Budget.leave_blocked_sets(tag, core.lane_id, A.execution_id, K.blocked)
  redis.call('ZADD', K.blocked, now, A.execution_id)
  return ok('blocked')
end))

redis.register_function('ff_unblock_execution', guard('ff_unblock_execution', function(keys, args)
  local K = {
    core = keys[1],
    blocked = keys[2],
    eligible = keys[3],
  }
  local A = {
    execution_id = args[1],
    now_ms = args[2],
    expected_blocking_reason = args[3],
  }
  local bad = check_core_key(K.core, A.execution_id)
  if bad then return bad end
  local core, missing = read_core(K.core)
  if not core then return missing end
  if core.lifecycle_phase ~= 'runnable' or not Budget.UNBLOCKABLE[core.eligibility_state or ''] then
    return err('execution_not_eligible')
  end
  if is_set(A.expected_blocking_reason) and A.expected_blocking_reason ~= core.blocking_reason then
    return err('execution_not_eligible')
  end
  local tag = tag_of(K.core)
  bad = Budget.check_lane_keys(tag, core.lane_id, K.eligible, K.blocked, ENUMS.blocked_set)
  if bad then return bad end
  local now = A.now_ms or server_now()

  -- write phase
  write_state(K.core, now, {
    lifecycle_phase = 'runnable',
    ownership_state = 'unowned',
    eligibility_state = 'eligible_now',
    blocking_reason = 'waiting_for_worker',
    blocking_detail = '',
    terminal_outcome = 'none',
    attempt_state = is_set(core.attempt_state) and core.attempt_state or 'pending_first_attempt',
    public_state = 'waiting',
  })
  redis.call('ZREM', K.blocked, A.execution_id)
  Budget.leave_blocked_sets(tag, core.lane_id, A.execution_id, K.blocked)
  local score = eligible_score(parse_number(core.priority) or 0, parse_number(core.created_at) or 0)
  redis.call('ZADD', K.eligible, score, A.execution_id)
  wake_lane(tag, core_lane(core))
  return ok('unblocked')
end))
