-- Execution lifecycle functions. KEYS, ARGV and replies: spec/execution.yaml.
-- Module-local helpers live in the one table Exec, to keep the chunk's locals few.
local Exec = {}

local CAPS_MAX_TOKENS = 256
local CAPS_MAX_BYTES = 4096

-- Validates a policy's routing requirements (execution.md §3.1 check 5). Returns the
-- sorted required-capability list, or nil and the error reply.
function Exec.required_capabilities(policy_json)
  if not is_set(policy_json) or policy_json == '{}' then
    return {}
  end
  local decoded_ok, policy = pcall(cjson.decode, policy_json)
  if not decoded_ok then
    return nil, err('invalid_policy_json', 'malformed')
  end
  if type(policy) ~= 'table' then
    return {}
  end
  local routing = policy.routing_requirements
  if routing == nil then
    return {}
  end
  if type(routing) ~= 'table' then
    return nil, err('invalid_policy_json', 'routing_requirements:not_object')
  end
  local required = routing.required_capabilities
  if required == nil then
    return {}
  end
  if type(required) ~= 'table' then
    return nil, err('invalid_capabilities', 'required:not_array')
  end
  local tokens = {}
  for i = 1, #required do
    local token = required[i]
    if type(token) ~= 'string' then
      return nil, err('invalid_capabilities', 'required:non_string_token')
    end
    if token == '' then
      return nil, err('invalid_capabilities', 'required:empty_token')
    end
    if string.find(token, ',', 1, true) then
      return nil, err('invalid_capabilities', 'required:comma_in_token')
    end
    if string.find(token, '[%z\1-\32\127]') then
      return nil, err('invalid_capabilities', 'required:control_or_whitespace')
    end
    tokens[#tokens + 1] = token
  end
  if #tokens > CAPS_MAX_TOKENS then
    return nil, err('invalid_capabilities', 'required:too_many_tokens')
  end
  table.sort(tokens)
  if #table.concat(tokens, ',') > CAPS_MAX_BYTES then
    return nil, err('invalid_capabilities', 'required:too_many_bytes')
  end
  return tokens
end

redis.register_function('ff_create_execution', guard(function(keys, args)
  local K = {
    core = keys[1],
    payload = keys[2],
    policy = keys[3],
    tags = keys[4],
    scheduling_zset = keys[5],
    idempotency = keys[6],
    execution_deadline = keys[7],
    all_executions = keys[8],
  }
  local A = {
    execution_id = args[1],
    namespace = args[2],
    lane_id = args[3],
    execution_kind = args[4],
    priority = args[5],
    creator_identity = args[6],
    policy_json = args[7],
    input_payload = args[8],
    delay_until = args[9],
    dedup_ttl_ms = args[10],
    tags_json = args[11],
    execution_deadline_at = args[12],
    partition_id = args[13],
  }
  local delay_text = A.delay_until
  local bad = check_args(A, {
    { 'priority', 'number' },
    { 'delay_until', 'int?' },
    { 'dedup_ttl_ms', 'int?' },
    { 'execution_deadline_at', 'int?' },
    { 'tags_json', 'json?' },
    { 'execution_id', 'nonempty' },
  })
  if bad then return bad end

  local now = server_now()
  local priority = clamp_priority(A.priority)

  local has_idempotency = is_set(K.idempotency) and not string.find(K.idempotency, 'ff:noop:', 1, true)
  if has_idempotency then
    local existing = redis.call('GET', K.idempotency)
    if existing then
      return ok_status('DUPLICATE', existing)
    end
  end
  if redis.call('EXISTS', K.core) == 1 then
    return ok_status('DUPLICATE', A.execution_id)
  end

  local capabilities, policy_error = Exec.required_capabilities(A.policy_json)
  if policy_error then return policy_error end
  local tags = A.tags_json_json
  if tags ~= nil and type(tags) ~= 'table' then
    return err('invalid_input', 'tags_json must be a JSON object')
  end

  local delayed = A.delay_until ~= nil and A.delay_until > now
  local lane = A.lane_id
  local fields = {
    execution_id = A.execution_id,
    namespace = A.namespace,
    lane_id = lane,
    execution_kind = A.execution_kind,
    partition_id = A.partition_id,
    priority = priority,
    creator_identity = A.creator_identity,
    total_attempt_count = 0,
    retry_count = 0,
    replay_count = 0,
    lease_reclaim_count = 0,
    current_lease_epoch = 0,
    current_attempt_index = '',
    current_attempt_id = '',
    current_lease_id = '',
    current_worker_id = '',
    current_worker_instance_id = '',
    current_lane = lane,
    created_at = now,
    started_at = '',
    completed_at = '',
    lease_acquired_at = '',
    lease_expires_at = '',
    lease_last_renewed_at = '',
    lease_renewal_deadline = '',
    lease_expired_at = '',
    lease_revoked_at = '',
    lease_revoke_reason = '',
    delay_until = delayed and delay_text or '',
    current_suspension_id = '',
    current_waitpoint_id = '',
    pending_retry_reason = '',
    pending_replay_reason = '',
    pending_replay_requested_by = '',
    pending_previous_attempt_index = '',
    progress_pct = '',
    progress_message = '',
    progress_updated_at = '',
    flow_id = '',
  }
  write_state(K.core, now, {
    lifecycle_phase = 'runnable',
    ownership_state = 'unowned',
    eligibility_state = delayed and 'not_eligible_until_time' or 'eligible_now',
    blocking_reason = delayed and 'waiting_for_delay' or 'waiting_for_worker',
    blocking_detail = delayed and ('delayed until ' .. delay_text) or '',
    terminal_outcome = 'none',
    attempt_state = 'pending_first_attempt',
    public_state = delayed and 'delayed' or 'waiting',
  }, fields)
  if #capabilities > 0 then
    redis.call('HSET', K.core, 'required_capabilities', table.concat(capabilities, ','))
  end
  if is_set(A.input_payload) then
    redis.call('SET', K.payload, A.input_payload)
  end
  if is_set(A.policy_json) then
    redis.call('SET', K.policy, A.policy_json)
  end
  if tags ~= nil and next(tags) ~= nil then
    local flat = {}
    for name, value in pairs(tags) do
      flat[#flat + 1] = name
      flat[#flat + 1] = type(value) == 'string' and value or cjson.encode(value)
    end
    redis.call('HSET', K.tags, unpack(flat))
  end

  if delayed then
    redis.call('ZADD', K.scheduling_zset, A.delay_until, A.execution_id)
  else
    -- A past delay_until still makes the execution eligible: index it where claims look.
    local eligible_key = K.scheduling_zset
    if string.sub(eligible_key, -#':delayed') == ':delayed' then
      eligible_key = lane_key(tag_of(K.core), lane, 'eligible')
    end
    redis.call('ZADD', eligible_key, eligible_score(priority, now), A.execution_id)
  end
  redis.call('SADD', K.all_executions, A.execution_id)
  if A.execution_deadline_at ~= nil then
    redis.call('ZADD', K.execution_deadline, A.execution_deadline_at, A.execution_id)
  end
  if has_idempotency and A.dedup_ttl_ms ~= nil and A.dedup_ttl_ms > 0 then
    redis.call('SET', K.idempotency, A.execution_id, 'PX', A.dedup_ttl_ms)
  end
  return ok(A.execution_id, delayed and 'delayed' or 'waiting')
end))
