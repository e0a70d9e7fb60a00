-- Quota policies and admission. KEYS, ARGV and replies: spec/quota.yaml.
local Quota = {}

-- The admitted guard key ends with `:admitted:<execution_id>`; the id must be the caller's.
function Quota.check_guard(guard_key, eid)
  local suffix = ':admitted:' .. tostring(eid)
  if not is_set(eid) or #guard_key <= #suffix or string.sub(guard_key, -#suffix) ~= suffix then
    return err('invalid_input', 'execution_id must be the execution of the admitted key, got: ' .. tostring(eid))
  end
  return nil
end

-- The quota policy id named by a key of the policy (`ff:quota:<tag>:<id><suffix>`), or nil.
function Quota.policy_of(key, suffix)
  local tag = tag_of(key)
  if not tag then return nil end
  local prefix = KEY.quota_definition(tag, '')
  if #key <= #prefix + #suffix or string.sub(key, 1, #prefix) ~= prefix then return nil end
  if suffix ~= '' and string.sub(key, -#suffix) ~= suffix then return nil end
  return string.sub(key, #prefix + 1, #key - #suffix)
end

-- The concurrency counter (missing = 0), or nil and the invalid_input reply.
function Quota.counter(key)
  local raw = redis.call('GET', key)
  if not is_set(raw) then return 0, nil end
  local value = parse_int(raw)
  if value == nil then
    return nil, err('invalid_input', 'stored concurrency counter is not an integer, got: ' .. raw)
  end
  return value, nil
end

redis.register_function('ff_create_quota_policy', guard('ff_create_quota_policy', function(keys, args)
  local K = {
    definition = keys[1],
    window = keys[2],
    concurrency = keys[3],
    admitted_set = keys[4],
    quota_policies = keys[5],
  }
  local A = {
    quota_policy_id = args[1],
    window_seconds = args[2],
    max_requests_per_window = args[3],
    max_concurrent = args[4],
    now_ms = args[5],
  }
  local tag = tag_of(K.definition)
  if not tag or K.definition ~= KEY.quota_definition(tag, A.quota_policy_id) then
    return err('invalid_input', 'quota_policy_id must be the policy of the definition key, got: ' .. A.quota_policy_id)
  end
  local bad = check_keys('ff_create_quota_policy', keys, { tag = tag, quota_policy_id = A.quota_policy_id })
  if bad then return bad end
  local now = A.now_ms or server_now()

  if redis.call('EXISTS', K.definition) == 1 then
    return ok_status('ALREADY_SATISFIED', A.quota_policy_id)
  end
  -- write phase
  hset_table(K.definition, {
    quota_policy_id = A.quota_policy_id,
    requests_per_window_seconds = A.window_seconds,
    max_requests_per_window = A.max_requests_per_window,
    active_concurrency_cap = A.max_concurrent,
    created_at = now,
  })
  redis.call('SET', K.concurrency, '0')
  redis.call('SADD', K.quota_policies, A.quota_policy_id)
  return ok(A.quota_policy_id)
end))

-- Replies of this function carry no leading status integer (budget.md §9), except the
-- standard invalid_input failure.
redis.register_function('ff_check_admission_and_record', guard('ff_check_admission_and_record', function(keys, args)
  local K = {
    window = keys[1],
    concurrency = keys[2],
    definition = keys[3],
    admitted = keys[4],
    admitted_set = keys[5],
  }
  local A = {
    now_ms = args[1],
    window_seconds = args[2],
    rate_limit = args[3],
    concurrency_cap = args[4],
    execution_id = args[5],
    jitter_ms = args[6],
  }
  local bad = Quota.check_guard(K.admitted, A.execution_id)
  if bad then return bad end
  local jitter = A.jitter_ms or 0
  -- The policy is the one of the definition key (declared for routing): every other key
  -- must be that policy's and the admitted execution's.
  local policy_id = Quota.policy_of(K.definition, '') or ''
  bad = check_keys('ff_check_admission_and_record', keys, {
    tag = tag_of(K.definition), quota_policy_id = policy_id, execution_id = A.execution_id,
  })
  if bad then return bad end
  -- The window's dimension is the caller's; its policy must be this one.
  if policy_id == '' or Quota.policy_of(K.window, '') == nil
    or string.sub(K.window, 1, #K.definition + #':window:') ~= K.definition .. ':window:' then
    return err('invalid_input', 'KEYS[1] (window) must be a window of ' .. K.definition .. ', got: ' .. K.window)
  end
  local now = A.now_ms or server_now()
  local window_ms = A.window_seconds * 1000

  if redis.call('EXISTS', K.admitted) == 1 then
    return { 'ALREADY_ADMITTED' }
  end
  local held, counter_err = Quota.counter(K.concurrency)
  if counter_err then return counter_err end

  -- write phase
  redis.call('ZREMRANGEBYSCORE', K.window, '-inf', now - window_ms)
  if A.rate_limit > 0 and redis.call('ZCARD', K.window) >= A.rate_limit then
    local oldest = redis.call('ZRANGE', K.window, 0, 0, 'WITHSCORES')
    local retry = math.max(0, (parse_number(oldest[2]) or now) + window_ms - now)
    if jitter > 0 then
      retry = retry + math.random(0, jitter)
    end
    return { 'RATE_EXCEEDED', to_text(retry) }
  end
  if A.concurrency_cap > 0 and held >= A.concurrency_cap then
    return { 'CONCURRENCY_EXCEEDED' }
  end

  redis.call('ZADD', K.window, now, A.execution_id)
  redis.call('SET', K.admitted, '1', 'PX', window_ms, 'NX')
  -- Count the slot once per holder: an execution still in the set already holds one.
  local added = redis.call('SADD', K.admitted_set, A.execution_id)
  if A.concurrency_cap > 0 and added == 1 then
    redis.call('INCR', K.concurrency)
  end
  return { 'ADMITTED' }
end))

redis.register_function('ff_release_admission', guard('ff_release_admission', function(keys, args)
  local K = {
    admitted = keys[1],
    admitted_set = keys[2],
    concurrency = keys[3],
  }
  local A = {
    execution_id = args[1],
  }
  local bad = Quota.check_guard(K.admitted, A.execution_id)
    or check_keys('ff_release_admission', keys, {
      tag = tag_of(K.admitted), execution_id = A.execution_id,
      quota_policy_id = Quota.policy_of(K.admitted, ':admitted:' .. A.execution_id) or '',
    })
  if bad then return bad end
  local held, counter_err = Quota.counter(K.concurrency)
  if counter_err then return counter_err end

  -- write phase
  redis.call('DEL', K.admitted)
  -- Only a holder gives a slot back: a second release finds it gone from the set.
  local removed = redis.call('SREM', K.admitted_set, A.execution_id)
  if removed == 1 and held > 0 then
    redis.call('DECR', K.concurrency)
  end
  return ok('released')
end))
