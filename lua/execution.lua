-- Execution lifecycle functions. KEYS, ARGV and replies: spec/execution.yaml.
-- Module-local helpers live in the one table Exec, to keep the chunk's locals few.
local Exec = {}

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

-- Flattens an attempt policy object into hash fields: nested values as JSON, scalars as
-- text (execution.md §1.10).
function Exec.flatten_policy(policy)
  local flat = {}
  for name, value in pairs(policy) do
    flat[#flat + 1] = name
    if type(value) == 'table' then
      flat[#flat + 1] = cjson.encode(value)
    else
      flat[#flat + 1] = tostring(value)
    end
  end
  return flat
end

redis.register_function('ff_claim_execution', guard(function(keys, args)
  local K = {
    core = keys[1],
    claim_grant = keys[2],
    eligible = keys[3],
    lease_expiry = keys[4],
    worker_leases = keys[5],
    attempt_hash = keys[6],
    attempt_usage = keys[7],
    attempt_policy = keys[8],
    attempts = keys[9],
    lease_current = keys[10],
    lease_history = keys[11],
    active = keys[12],
    attempt_timeout = keys[13],
    execution_deadline = keys[14],
  }
  local A = {
    execution_id = args[1],
    worker_id = args[2],
    worker_instance_id = args[3],
    lane_id = args[4],
    capability_snapshot_hash = args[5],
    lease_id = args[6],
    lease_ttl_ms = args[7],
    renew_before_ms = args[8],
    attempt_id = args[9],
    attempt_policy_json = args[10],
    attempt_timeout_ms = args[11],
    execution_deadline_at = args[12],
  }
  local bad = check_args(A, {
    { 'lease_ttl_ms', 'number' },
    { 'renew_before_ms', 'number' },
    { 'attempt_timeout_ms', 'int?' },
    { 'execution_deadline_at', 'int?' },
    { 'attempt_policy_json', 'json?' },
    { 'execution_id', 'nonempty' },
  })
  if bad then return bad end
  if A.attempt_policy_json_json ~= nil and type(A.attempt_policy_json_json) ~= 'table' then
    return err('invalid_input', 'attempt_policy_json must be a JSON object')
  end
  if eid_of_exec_key(K.core) ~= A.execution_id then
    return err('invalid_input', 'execution_id does not match the core key')
  end
  local now = server_now()
  local core = hgetall(K.core)
  if next(core) == nil then
    return err('execution_not_found')
  end
  if core.lifecycle_phase ~= 'runnable' then return err('execution_not_leaseable') end
  if core.ownership_state ~= 'unowned' then return err('lease_conflict') end
  if core.eligibility_state ~= 'eligible_now' then return err('execution_not_leaseable') end
  if core.terminal_outcome ~= 'none' then return err('execution_not_leaseable') end
  if core.attempt_state == 'running_attempt' then return err('active_attempt_exists') end
  if core.attempt_state == 'attempt_interrupted' then return err('use_claim_resumed_execution') end
  local grant = hgetall(K.claim_grant)
  if next(grant) == nil or grant.worker_id ~= A.worker_id then
    return err('invalid_claim_grant')
  end
  if is_set(grant.grant_expires_at) and (parse_number(grant.grant_expires_at) or 0) < now then
    return err('claim_grant_expired')
  end

  redis.call('DEL', K.claim_grant)
  local epoch = (parse_number(core.current_lease_epoch) or 0) + 1
  local expires_at = now + A.lease_ttl_ms
  local renewal_deadline = now + A.renew_before_ms
  local index = parse_number(core.total_attempt_count) or 0
  local attempt_type = 'initial'
  local attempt = {
    attempt_id = A.attempt_id,
    execution_id = A.execution_id,
    attempt_index = index,
    attempt_state = 'started',
    created_at = now,
    started_at = now,
    lease_id = A.lease_id,
    lease_epoch = epoch,
    worker_id = A.worker_id,
    worker_instance_id = A.worker_instance_id,
  }
  if core.attempt_state == 'pending_retry_attempt' then
    attempt_type = 'retry'
    attempt.retry_reason = core.pending_retry_reason or ''
    attempt.previous_attempt_index = core.pending_previous_attempt_index or ''
  elseif core.attempt_state == 'pending_replay_attempt' then
    attempt_type = 'replay'
    attempt.replay_reason = core.pending_replay_reason or ''
    attempt.replay_requested_by = core.pending_replay_requested_by or ''
    attempt.replayed_from_attempt_index = core.pending_previous_attempt_index or ''
  end
  attempt.attempt_type = attempt_type
  local tag = tag_of(K.core)
  local attempt_hash = attempt_key(tag, A.execution_id, index)
  hset_table(attempt_hash, attempt)
  redis.call('ZADD', K.attempts, now, index)
  redis.call('HSET', attempt_hash .. ':usage', 'last_usage_report_seq', '0')
  local policy = A.attempt_policy_json_json
  if policy ~= nil and next(policy) ~= nil then
    redis.call('HSET', attempt_hash .. ':policy', unpack(Exec.flatten_policy(policy)))
  end

  redis.call('DEL', K.lease_current)
  redis.call('HSET', K.lease_current,
    'lease_id', A.lease_id, 'lease_epoch', epoch, 'execution_id', A.execution_id,
    'attempt_id', A.attempt_id, 'worker_id', A.worker_id, 'worker_instance_id', A.worker_instance_id,
    'acquired_at', now, 'expires_at', expires_at, 'last_renewed_at', now,
    'renewal_deadline', renewal_deadline)

  write_state(K.core, now, {
    lifecycle_phase = 'active',
    ownership_state = 'leased',
    eligibility_state = 'not_applicable',
    blocking_reason = 'none',
    terminal_outcome = 'none',
    attempt_state = 'running_attempt',
    public_state = 'active',
  }, {
    current_attempt_index = index,
    total_attempt_count = index + 1,
    current_attempt_id = A.attempt_id,
    current_lease_id = A.lease_id,
    current_lease_epoch = epoch,
    current_worker_id = A.worker_id,
    current_worker_instance_id = A.worker_instance_id,
    current_lane = A.lane_id,
    lease_acquired_at = now,
    lease_last_renewed_at = now,
    lease_expires_at = expires_at,
    lease_renewal_deadline = renewal_deadline,
    started_at = is_set(core.started_at) and core.started_at or now,
    pending_retry_reason = '',
    pending_replay_reason = '',
    pending_replay_requested_by = '',
    pending_previous_attempt_index = '',
  })

  redis.call('ZREM', K.eligible, A.execution_id)
  redis.call('ZADD', K.lease_expiry, expires_at, A.execution_id)
  redis.call('SADD', K.worker_leases, A.execution_id)
  redis.call('ZADD', K.active, expires_at, A.execution_id)
  if A.attempt_timeout_ms ~= nil and A.attempt_timeout_ms ~= 0 then
    redis.call('ZADD', K.attempt_timeout, now + A.attempt_timeout_ms, A.execution_id)
  end
  if A.execution_deadline_at ~= nil and A.execution_deadline_at ~= 0 then
    redis.call('ZADD', K.execution_deadline, A.execution_deadline_at, A.execution_id)
  end
  history_add(K.lease_history, {
    'event', 'acquired', 'lease_id', A.lease_id, 'lease_epoch', epoch, 'attempt_id', A.attempt_id,
    'attempt_index', index, 'worker_id', A.worker_id, 'ts', now,
  })
  return ok(A.lease_id, to_text(epoch), to_text(expires_at), A.attempt_id, to_text(index), attempt_type)
end))

redis.register_function('ff_complete_execution', guard(function(keys, args)
  local K = {
    core = keys[1],
    attempt_hash = keys[2],
    lease_expiry = keys[3],
    worker_leases = keys[4],
    terminal = keys[5],
    lease_current = keys[6],
    lease_history = keys[7],
    active = keys[8],
    stream_meta = keys[9],
    result = keys[10],
    attempt_timeout = keys[11],
    execution_deadline = keys[12],
  }
  local A = {
    execution_id = args[1],
    lease_id = args[2],
    lease_epoch = args[3],
    attempt_id = args[4],
    result_payload = args[5],
  }
  local now = server_now()
  local core = hgetall(K.core)
  if next(core) == nil then
    return err('execution_not_found')
  end
  local rejected = validate_lease(K.core, K.lease_history, core, A.lease_id, A.lease_epoch, A.attempt_id, now)
  if rejected then return rejected end

  redis.call('HSET', K.attempt_hash, 'attempt_state', 'ended_success', 'ended_at', now)
  if redis.call('EXISTS', K.stream_meta) == 1 then
    redis.call('HSET', K.stream_meta, 'closed_at', now, 'closed_reason', 'attempt_success')
  end
  if is_set(A.result_payload) then
    redis.call('SET', K.result, A.result_payload)
  end
  write_state(K.core, now, {
    lifecycle_phase = 'terminal',
    ownership_state = 'unowned',
    eligibility_state = 'not_applicable',
    blocking_reason = 'none',
    terminal_outcome = 'success',
    attempt_state = 'attempt_terminal',
    public_state = 'completed',
  }, {
    completed_at = now,
    current_lease_id = '',
    current_worker_id = '',
    current_worker_instance_id = '',
    lease_expires_at = '',
    lease_last_renewed_at = '',
    lease_renewal_deadline = '',
    lease_expired_at = '',
    lease_revoked_at = '',
    lease_revoke_reason = '',
  })
  redis.call('ZREM', K.lease_expiry, A.execution_id)
  redis.call('SREM', K.worker_leases, A.execution_id)
  redis.call('ZADD', K.terminal, now, A.execution_id)
  redis.call('ZREM', K.active, A.execution_id)
  redis.call('ZREM', K.attempt_timeout, A.execution_id)
  redis.call('ZREM', K.execution_deadline, A.execution_id)
  redis.call('DEL', K.lease_current)
  history_add(K.lease_history, {
    'event', 'released', 'lease_id', A.lease_id, 'lease_epoch', A.lease_epoch,
    'attempt_index', core.current_attempt_index, 'reason', 'completed', 'ts', now,
  })
  publish_completion(core, A.execution_id, 'success')
  return ok('completed')
end))
