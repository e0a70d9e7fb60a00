-- Execution lifecycle functions. KEYS, ARGV and replies: spec/execution.yaml.
-- Module-local helpers live in the one table Exec, to keep the chunk's locals few.
local Exec = {}
Exec.NO_JSON = {} -- args.json when no JSON argument was given (never written to)

-- Validates a policy's routing requirements (execution.md §3.1 check 5), from the policy the
-- guard decoded (nil when none was given). Returns the sorted required-capability list, or
-- nil and the error reply.
function Exec.required_capabilities(policy)
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

-- Contexts of the hot functions' key checks: one table each, refilled (every field) on
-- every call instead of built anew (a table per call costs more than the checks it feeds).
Exec.CREATE_CTX = {}
Exec.CLAIM_CTX = {}
Exec.HOLDER_CTX = {}

-- The state vectors the lifecycle's hot paths write (model.md §4.3), made once: a table built
-- per call costs about 4k instructions. write_state only reads them.
Exec.CREATED_WAITING = {
  lifecycle_phase = 'runnable',
  ownership_state = 'unowned',
  eligibility_state = 'eligible_now',
  blocking_reason = 'waiting_for_worker',
  blocking_detail = '',
  terminal_outcome = 'none',
  attempt_state = 'pending_first_attempt',
  public_state = 'waiting',
}
Exec.CLAIMED = {
  lifecycle_phase = 'active',
  ownership_state = 'leased',
  eligibility_state = 'not_applicable',
  blocking_reason = 'none',
  terminal_outcome = 'none',
  attempt_state = 'running_attempt',
  public_state = 'active',
}
Exec.COMPLETED = {
  lifecycle_phase = 'terminal',
  ownership_state = 'unowned',
  eligibility_state = 'not_applicable',
  blocking_reason = 'none',
  terminal_outcome = 'success',
  attempt_state = 'attempt_terminal',
  public_state = 'completed',
}

-- The state vector of an execution waiting for its delay_until: a delayed create
-- ('pending_first_attempt') or a worker's delay of its attempt ('attempt_interrupted').
function Exec.delayed_vector(delay_text, attempt_state)
  return {
    lifecycle_phase = 'runnable',
    ownership_state = 'unowned',
    eligibility_state = 'not_eligible_until_time',
    blocking_reason = 'waiting_for_delay',
    blocking_detail = 'delayed until ' .. delay_text,
    terminal_outcome = 'none',
    attempt_state = attempt_state,
    public_state = 'delayed',
  }
end

-- Extension (engine.md §3.5, §3.6): budgets and a quota policy attached at create, read by
-- the scheduler's admission. Stored only when given, so a reference caller writes neither.
function Exec.attach_admission(core_key, budget_ids, quota_policy_id)
  if is_set(budget_ids) then redis.call('HSET', core_key, 'budget_ids', budget_ids) end
  if is_set(quota_policy_id) then redis.call('HSET', core_key, 'quota_policy_id', quota_policy_id) end
end

redis.register_function('ff_create_execution', guard('ff_create_execution', function(keys, args)
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
    budget_ids = args[14],
    quota_policy_id = args[15],
  }
  local json = args.json or Exec.NO_JSON
  local tag = tag_of(K.core)
  local c = Exec.CREATE_CTX
  c.tag, c.execution_id, c.lane_id, c.delay_until = tag, A.execution_id, A.lane_id, A.delay_until
  local bad = check_keys('ff_create_execution', keys, c)
  if bad then return bad end

  local now, now_s = server_clock()
  local priority = clamp_priority(A.priority)

  local has_idempotency = is_set(K.idempotency) and K.idempotency ~= KEY.partition_noop(tag)
  if has_idempotency then
    -- The dedup key's own name is the caller's: only its namespace prefix can be checked.
    -- (A placeholder ff:noop: key is never written, whichever it is.)
    local prefix = KEY.partition_idempotency(tag, A.namespace or '', '')
    if string.sub(K.idempotency, 1, #prefix) ~= prefix or #K.idempotency == #prefix then
      return err('invalid_input', 'KEYS[6] (idempotency) is not a dedup key of this namespace, got: ' .. K.idempotency)
    end
  end
  if has_idempotency then
    local existing = redis.call('GET', K.idempotency)
    if existing then
      return ok_status('DUPLICATE', existing)
    end
  end
  if redis.call('EXISTS', K.core) == 1 then
    return ok_status('DUPLICATE', A.execution_id)
  end

  local capabilities, policy_error = Exec.required_capabilities(json.policy_json)
  if policy_error then return policy_error end
  local tags = json.tags_json

  local delayed = A.delay_until ~= nil and A.delay_until > now
  local delay_text = delayed and to_text(A.delay_until) or ''
  local lane = A.lane_id
  -- The vector first, then some forty fields, in one HSET on every create (no list built).
  -- The record is a listpack, searched front to back on every read and write: the fields
  -- claim, renew and complete touch come first (after the state vector), the ones written
  -- once at create last.
  local vector = delayed and Exec.delayed_vector(delay_text, 'pending_first_attempt') or Exec.CREATED_WAITING
  local priority_s, partition_s = num_text(priority), int_text(A.partition_id) -- (the guard refuses an empty partition)

  -- write phase
  write_full_state(K.core, now_s, vector,
    'current_attempt_index', '',
    'total_attempt_count', '0',
    'current_attempt_id', '',
    'current_lease_id', '',
    'current_lease_epoch', '0',
    'current_worker_id', '',
    'current_worker_instance_id', '',
    'lease_expires_at', '',
    'lease_acquired_at', '',
    'lease_last_renewed_at', '',
    'lease_renewal_deadline', '',
    'current_lane', lane,
    'lane_id', lane, -- read by every call that checks its lane KEYS: early in the record
    'started_at', '',
    'pending_retry_reason', '',
    'pending_replay_reason', '',
    'pending_replay_requested_by', '',
    'pending_previous_attempt_index', '',
    'completed_at', '',
    'lease_expired_at', '',
    'lease_revoked_at', '',
    'lease_revoke_reason', '',
    'flow_id', '',
    'delay_until', delayed and delay_text or '',
    'retry_count', '0',
    'replay_count', '0',
    'lease_reclaim_count', '0',
    'current_suspension_id', '',
    'current_waitpoint_id', '',
    'progress_pct', '',
    'progress_message', '',
    'progress_updated_at', '',
    'priority', priority_s,
    'created_at', now_s,
    'execution_id', A.execution_id or '',
    'namespace', A.namespace or '',
    'execution_kind', A.execution_kind or '',
    'partition_id', partition_s,
    'creator_identity', A.creator_identity or '')
  if #capabilities > 0 then
    redis.call('HSET', K.core, 'required_capabilities', table.concat(capabilities, ','))
  end
  if (A.budget_ids or '') ~= '' or (A.quota_policy_id or '') ~= '' then -- (a reference caller sends neither)
    Exec.attach_admission(K.core, A.budget_ids, A.quota_policy_id)
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
      eligible_key = KEY.partition_lane_eligible(tag, lane)
    end
    redis.call('ZADD', eligible_key, num_text(eligible_score(priority, now)), A.execution_id)
    wake_lane(tag, lane)
  end
  redis.call('SADD', K.all_executions, A.execution_id)
  -- Extension: the partition's lane registry, so the engine finds every lane without a SCAN.
  redis.call('SADD', KEY.partition_lanes(tag), lane)
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

-- The exec_core fields a claim reads, and the grant fields it checks.
Exec.PENDING_FIELDS = {
  'pending_retry_reason', 'pending_replay_reason', 'pending_replay_requested_by', 'pending_previous_attempt_index',
}
Exec.CLAIM_FIELDS = field_list({
  {
    'lifecycle_phase', 'ownership_state', 'eligibility_state', 'terminal_outcome', 'attempt_state',
    'current_lease_epoch', 'total_attempt_count', 'started_at', 'lane_id',
  },
  Exec.PENDING_FIELDS,
})
Exec.GRANT_FIELDS = { 'worker_id', 'grant_expires_at' }
-- Maps the hot calls fill again on every read (hmget_into), instead of a new table per read:
-- a claim's core fields and its grant, and a lease holder's core fields (LEASE_FIELDS).
-- Each is read only by the call that filled it.
Exec.CLAIM_CORE, Exec.CLAIM_GRANT, Exec.HOLDER_CORE = {}, {}, {}

-- Why an execution cannot be claimed by a normal claim (execution.md §3.2 checks 4–9), or nil.
function Exec.claim_refusal(core)
  if core.lifecycle_phase ~= 'runnable' then return err('execution_not_leaseable') end
  if core.ownership_state ~= 'unowned' then return err('lease_conflict') end
  if core.eligibility_state ~= 'eligible_now' then return err('execution_not_leaseable') end
  if core.terminal_outcome ~= 'none' then return err('execution_not_leaseable') end
  if core.attempt_state == 'running_attempt' then return err('active_attempt_exists') end
  if core.attempt_state == 'attempt_interrupted' then return err('use_claim_resumed_execution') end
  return nil
end

-- A claim's writes of started_at (kept once set) and the cleared pending_* fields, as values
-- (field, value, …), leaving out those that already hold that value: each field written is
-- a search through the fifty-field record. core: Exec.CLAIM_FIELDS of the execution. The
-- usual claim has nothing pending: no list is built for it.
function Exec.pending_cleared(core, now_s)
  if core.pending_retry_reason == '' and core.pending_replay_reason == ''
    and core.pending_replay_requested_by == '' and core.pending_previous_attempt_index == '' then
    if is_set(core.started_at) then return end
    return 'started_at', now_s
  end
  local list = {}
  if not is_set(core.started_at) then
    list[1], list[2] = 'started_at', now_s
  end
  for i = 1, #Exec.PENDING_FIELDS do
    local field = Exec.PENDING_FIELDS[i]
    if core[field] ~= '' then
      list[#list + 1], list[#list + 2] = field, ''
    end
  end
  return unpack(list)
end

-- The attempt a claim starts, by the execution's attempt_state (anything else: 'initial').
Exec.ATTEMPT_TYPES = { pending_retry_attempt = 'retry', pending_replay_attempt = 'replay' }

-- The last fields of a new attempt's record, as values: where a retry or replay comes from,
-- then attempt_type. Values, not a list: they end the attempt's HSET arguments.
function Exec.attempt_origin(core, attempt_type)
  if attempt_type == 'retry' then
    return 'retry_reason', core.pending_retry_reason or '',
      'previous_attempt_index', core.pending_previous_attempt_index or '',
      'attempt_type', attempt_type
  elseif attempt_type == 'replay' then
    return 'replay_reason', core.pending_replay_reason or '',
      'replay_requested_by', core.pending_replay_requested_by or '',
      'replayed_from_attempt_index', core.pending_previous_attempt_index or '',
      'attempt_type', attempt_type
  end
  return 'attempt_type', attempt_type
end

-- Starts a new attempt under a new lease (the effects of a claim, execution.md §3.2): the
-- attempt, usage and policy records, the lease, the state vector, the indexes and the
-- history entry. K: core, attempts, lease_current, lease_history, eligible, lease_expiry,
-- worker_leases, active, attempt_timeout, execution_deadline. A: the claim's validated
-- arguments. core: Exec.CLAIM_FIELDS of the execution. tag: the partition's hash tag.
-- Returns the claim's six reply fields as values (no table: callers put them in their reply).
function Exec.start_attempt(K, A, core, now, tag)
  local epoch = (parse_number(core.current_lease_epoch) or 0) + 1
  local expires_at = now + A.lease_ttl_ms
  local renewal_deadline = now + A.renew_before_ms
  local index = parse_number(core.total_attempt_count) or 0
  -- Each number is turned into text once: the server would otherwise format it anew
  -- (as %.14g) at every place it is passed.
  local now_s, expires_s, renewal_s = num_text(now), num_text(expires_at), num_text(renewal_deadline)
  local epoch_s, index_s = num_text(epoch), num_text(index)
  local attempt_type = Exec.ATTEMPT_TYPES[core.attempt_state] or 'initial'
  local attempt_hash = KEY.exec_attempt_hash(tag, A.execution_id, index_s)
  redis.call('HSET', attempt_hash,
    'attempt_id', A.attempt_id,
    'execution_id', A.execution_id,
    'attempt_index', index_s,
    'attempt_state', 'started',
    'created_at', now_s,
    'started_at', now_s,
    'lease_id', A.lease_id,
    'lease_epoch', epoch_s,
    'worker_id', A.worker_id,
    'worker_instance_id', A.worker_instance_id,
    Exec.attempt_origin(core, attempt_type))
  redis.call('ZADD', K.attempts, now_s, index_s)
  redis.call('HSET', attempt_hash .. ':usage', 'last_usage_report_seq', '0')
  local policy = A.attempt_policy
  if policy ~= nil and next(policy) ~= nil then
    redis.call('HSET', attempt_hash .. ':policy', unpack(Exec.flatten_policy(policy)))
  end

  redis.call('DEL', K.lease_current)
  redis.call('HSET', K.lease_current,
    'lease_id', A.lease_id, 'lease_epoch', epoch_s, 'execution_id', A.execution_id,
    'attempt_id', A.attempt_id, 'worker_id', A.worker_id, 'worker_instance_id', A.worker_instance_id,
    'acquired_at', now_s, 'expires_at', expires_s, 'last_renewed_at', now_s,
    'renewal_deadline', renewal_s)

  write_full_state(K.core, now_s, Exec.CLAIMED,
    'current_attempt_index', index_s,
    'total_attempt_count', num_text(index + 1),
    'current_attempt_id', A.attempt_id or '',
    'current_lease_id', A.lease_id or '',
    'current_lease_epoch', epoch_s,
    'current_worker_id', A.worker_id or '',
    'current_worker_instance_id', A.worker_instance_id or '',
    'current_lane', A.lane_id or '',
    'lease_acquired_at', now_s,
    'lease_last_renewed_at', now_s,
    'lease_expires_at', expires_s,
    'lease_renewal_deadline', renewal_s,
    Exec.pending_cleared(core, now_s))

  redis.call('ZREM', K.eligible, A.execution_id)
  redis.call('ZADD', K.lease_expiry, expires_s, A.execution_id)
  redis.call('SADD', K.worker_leases, A.execution_id)
  redis.call('ZADD', K.active, expires_s, A.execution_id)
  if A.attempt_timeout_ms ~= nil and A.attempt_timeout_ms ~= 0 then
    redis.call('ZADD', K.attempt_timeout, now + A.attempt_timeout_ms, A.execution_id)
  end
  if A.execution_deadline_at ~= nil and A.execution_deadline_at ~= 0 then
    redis.call('ZADD', K.execution_deadline, A.execution_deadline_at, A.execution_id)
  end
  -- The claim's history entry goes straight to XADD (as history_add would write it, without
  -- its list): this runs on every claim and every fast-path job.
  redis.call('XADD', K.lease_history, 'MAXLEN', '~', '1000', '*', 'event', 'acquired', 'lease_id', A.lease_id or '',
    'lease_epoch', epoch_s, 'attempt_id', A.attempt_id or '', 'attempt_index', index_s, 'worker_id', A.worker_id or '', 'ts', now_s)
  return A.lease_id, epoch_s, expires_s, A.attempt_id, index_s, attempt_type
end

redis.register_function('ff_claim_execution', guard('ff_claim_execution', function(keys, args)
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
  A.attempt_policy = args.json and args.json.attempt_policy_json
  local mismatch, tag = check_core_key(K.core, A.execution_id)
  if mismatch then return mismatch end
  local now = server_now()
  local core, missing = read_core(K.core, Exec.CLAIM_FIELDS, Exec.CLAIM_CORE)
  if not core then return missing end
  -- The lane keys must be the execution's lane, the worker set the claimer's (the attempt
  -- keys are derived from total_attempt_count in start_attempt).
  local c = Exec.CLAIM_CTX
  c.tag, c.execution_id, c.lane_id, c.worker_instance_id, c.core_checked = tag, A.execution_id, core_lane(core), A.worker_instance_id, true
  local foreign = check_keys('ff_claim_execution', keys, c)
  if foreign then return foreign end
  local refused = Exec.claim_refusal(core)
  if refused then return refused end
  local grant = Exec.CLAIM_GRANT
  if not hmget_into(grant, K.claim_grant, Exec.GRANT_FIELDS) or grant.worker_id ~= A.worker_id then
    return err('invalid_claim_grant')
  end
  if is_set(grant.grant_expires_at) and (parse_number(grant.grant_expires_at) or 0) < now then
    return err('claim_grant_expired')
  end

  -- write phase
  redis.call('DEL', K.claim_grant)
  return ok(Exec.start_attempt(K, A, core, now, tag))
end))

-- Ends the lease holder's attempt successfully (the effects of a complete, execution.md
-- §3.3): attempt, stream meta, result, state vector, indexes, lease, history and the flow
-- notice. K: complete's keys. A: execution_id, lease_id, lease_epoch, result_payload.
-- core: LEASE_FIELDS of the execution, already validated.
function Exec.finish_success(K, A, core, now)
  local now_s = num_text(now) -- formatted once, not at every use
  redis.call('HSET', K.attempt_hash, 'attempt_state', 'ended_success', 'ended_at', now_s)
  if redis.call('EXISTS', K.stream_meta) == 1 then
    redis.call('HSET', K.stream_meta, 'closed_at', now_s, 'closed_reason', 'attempt_success')
  end
  if is_set(A.result_payload) then
    redis.call('SET', K.result, A.result_payload)
  end
  write_full_state(K.core, now_s, Exec.COMPLETED,
    'completed_at', now_s,
    'current_lease_id', '',
    'current_worker_id', '',
    'current_worker_instance_id', '',
    'lease_expires_at', '',
    'lease_last_renewed_at', '',
    'lease_renewal_deadline', '',
    'lease_expired_at', '',
    'lease_revoked_at', '',
    'lease_revoke_reason', '')
  redis.call('ZREM', K.lease_expiry, A.execution_id)
  redis.call('SREM', K.worker_leases, A.execution_id)
  redis.call('ZADD', K.terminal, now_s, A.execution_id)
  redis.call('ZREM', K.active, A.execution_id)
  redis.call('ZREM', K.attempt_timeout, A.execution_id)
  redis.call('ZREM', K.execution_deadline, A.execution_id)
  redis.call('DEL', K.lease_current)
  redis.call('XADD', K.lease_history, 'MAXLEN', '~', '1000', '*', 'event', 'released', 'lease_id', A.lease_id or '',
    'lease_epoch', A.lease_epoch or '', 'attempt_index', core.current_attempt_index or '', 'reason', 'completed', 'ts', now_s)
  publish_completion(core, A.execution_id, 'success')
end

-- The KEYS of a lease holder's call (complete, fail, delay, move to waiting children) must
-- be those of the record: its lane, its current attempt, the holder's worker instance.
-- core: at least LEASE_FIELDS; tag: the core key's, from check_core_key (which matched the
-- core key already). Returns nil or the invalid_input reply; call before any write.
function Exec.check_holder_keys(name, keys, K, A, core, tag)
  local c = Exec.HOLDER_CTX
  c.tag, c.execution_id, c.lane_id, c.core_checked = tag, A.execution_id, core_lane(core), true
  c.attempt_index, c.worker_instance_id = set_or_nil(core.current_attempt_index), core.current_worker_instance_id or ''
  return check_keys(name, keys, c)
end

redis.register_function('ff_complete_execution', guard('ff_complete_execution', function(keys, args)
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
  local mismatch, tag = check_core_key(K.core, A.execution_id)
  if mismatch then return mismatch end
  local now = server_now()
  local core, missing = read_core(K.core, LEASE_FIELDS, Exec.HOLDER_CORE)
  if not core then return missing end
  local rejected = validate_lease(K.core, K.lease_history, core, A.lease_id, A.lease_epoch, A.attempt_id, now)
    or Exec.check_holder_keys('ff_complete_execution', keys, K, A, core, tag)
  if rejected then return rejected end

  -- write phase
  Exec.finish_success(K, A, core, now)
  return ok('completed')
end))

---------------------------------------------------------------------------
-- Shared by cancel, delay, move_to_waiting_children, fail, reclaim and expire.
---------------------------------------------------------------------------

-- The lane the engine files an execution under (execution.md §1.12).
function Exec.lane_of(core)
  if is_set(core.lane_id) then return core.lane_id end
  if is_set(core.current_lane) then return core.current_lane end
  return DEFAULTS.lane_id
end

-- Closes an attempt's output stream if its meta exists. keep_earlier: leave an existing
-- close as it is (the closers of the reference overwrite; our added closes do not).
function Exec.close_stream(meta_key, now, reason, keep_earlier)
  if redis.call('EXISTS', meta_key) == 0 then return end
  if keep_earlier and is_set(redis.call('HGET', meta_key, 'closed_at')) then return end
  redis.call('HSET', meta_key, 'closed_at', to_text(now), 'closed_reason', reason)
end

-- Ends a paused (or still started) attempt that would otherwise stay open under a
-- terminal execution, and closes its stream if still open (Q8 and friends).
function Exec.end_open_attempt(attempt_hash, meta_key, now, state, failure_reason, stream_reason)
  local current = redis.call('HGET', attempt_hash, 'attempt_state')
  if current ~= 'suspended' and current ~= 'started' then return end
  redis.call('HSET', attempt_hash, 'attempt_state', state, 'ended_at', to_text(now), 'failure_reason', failure_reason)
  Exec.close_stream(meta_key, now, stream_reason, true)
end

-- exec_core fields cleared whenever the lease is let go; extra fields are merged in.
function Exec.lease_cleared(extra)
  local fields = extra or {}
  fields.current_lease_id = ''
  fields.current_worker_id = ''
  fields.current_worker_instance_id = ''
  fields.lease_expires_at = ''
  fields.lease_last_renewed_at = ''
  fields.lease_renewal_deadline = ''
  return fields
end

-- Drops the lease and its indexes (delay, move_to_waiting_children, fail).
function Exec.release_lease(K, eid)
  redis.call('DEL', K.lease_current)
  redis.call('ZREM', K.lease_expiry, eid)
  redis.call('SREM', K.worker_leases, eid)
  redis.call('ZREM', K.active, eid)
  redis.call('ZREM', K.attempt_timeout, eid)
end

-- Lease-holder checks shared by delay, move_to_waiting_children and fail: ARGV shape,
-- then the record, then the lease (§1.5). Returns core, or nil and the error reply.
function Exec.holder_core(name, keys, K, A, now)
  local mismatch, tag = check_core_key(K.core, A.execution_id)
  if mismatch then return nil, mismatch end
  local core, missing = read_core(K.core)
  if not core then return nil, missing end
  local rejected = validate_lease(K.core, K.lease_history, core, A.lease_id, A.lease_epoch, A.attempt_id, now)
    or Exec.check_holder_keys(name, keys, K, A, core, tag)
  if rejected then return nil, rejected end
  return core
end

redis.register_function('ff_cancel_execution', guard('ff_cancel_execution', function(keys, args)
  local K = {
    core = keys[1],
    attempt_hash = keys[2],
    stream_meta = keys[3],
    lease_current = keys[4],
    lease_history = keys[5],
    lease_expiry = keys[6],
    worker_leases = keys[7],
    suspension_current = keys[8],
    waitpoint = keys[9],
    waitpoint_condition = keys[10],
    suspension_timeout = keys[11],
    terminal = keys[12],
    attempt_timeout = keys[13],
    execution_deadline = keys[14],
    eligible = keys[15],
    delayed = keys[16],
    blocked_dependencies = keys[17],
    blocked_budget = keys[18],
    blocked_quota = keys[19],
    blocked_route = keys[20],
    blocked_operator = keys[21],
  }
  local A = {
    execution_id = args[1],
    reason = args[2],
    source = args[3],
    lease_id = args[4],
    lease_epoch = args[5],
  }
  local eid = A.execution_id
  local mismatch = check_core_key(K.core, eid)
  if mismatch then return mismatch end
  local reason = A.reason or ''
  local source = A.source or ''
  local now = server_now()
  local core, missing = read_core(K.core)
  if not core then return missing end
  local phase = core.lifecycle_phase or ''
  if phase == 'terminal' then
    return err('execution_not_active', core.terminal_outcome or '', core.current_lease_epoch or '')
  end
  if phase == 'active' and source ~= 'operator_override' then
    if core.ownership_state == 'lease_revoked' then
      return err('lease_revoked')
    end
    -- An empty lease id skips the identity check (reference behaviour, Q9).
    if is_set(A.lease_id) and (core.current_lease_id ~= A.lease_id or core.current_lease_epoch ~= (A.lease_epoch or '')) then
      return err('stale_lease')
    end
  end
  local tag = tag_of(K.core)
  local lane = core_lane(core)
  local foreign = check_keys('ff_cancel_execution', keys, {
    tag = tag, execution_id = eid, lane_id = lane, current_waitpoint_id = set_or_nil(core.current_waitpoint_id),
  })
  if foreign then return foreign end

  -- The current attempt's keys come from the record itself, not from the caller's pre-read.
  local has_attempt = is_set(core.current_attempt_index)
  local attempt_hash, stream_meta
  if has_attempt then
    attempt_hash = KEY.exec_attempt_hash(tag, eid, core.current_attempt_index)
    stream_meta = KEY.exec_stream_meta(tag, eid, core.current_attempt_index)
  end
  -- write phase
  if phase == 'active' or phase == 'suspended' then
    if has_attempt then
      redis.call('HSET', attempt_hash, 'attempt_state', 'ended_cancelled', 'ended_at', to_text(now), 'failure_reason', 'cancelled: ' .. reason)
      Exec.close_stream(stream_meta, now, 'attempt_cancelled', false)
    end
  elseif has_attempt and core.attempt_state == 'attempt_interrupted' then
    Exec.end_open_attempt(attempt_hash, stream_meta, now, 'ended_cancelled', 'cancelled: ' .. reason, 'attempt_cancelled')
  end
  if phase == 'suspended' then
    if redis.call('EXISTS', K.suspension_current) == 1 then
      redis.call('HSET', K.suspension_current, 'closed_at', to_text(now), 'close_reason', 'cancelled')
    end
    if is_set(core.current_waitpoint_id) then
      local waitpoint = KEY.partition_waitpoint(tag, core.current_waitpoint_id)
      if redis.call('EXISTS', waitpoint) == 1 then
        redis.call('HSET', waitpoint, 'state', 'closed', 'closed_at', to_text(now), 'close_reason', 'cancelled')
      end
      if redis.call('EXISTS', waitpoint .. ':condition') == 1 then
        redis.call('HSET', waitpoint .. ':condition', 'closed', '1', 'closed_at', to_text(now), 'closed_reason', 'cancelled')
      end
    end
  end
  if phase == 'active' then
    redis.call('DEL', K.lease_current)
    history_add(K.lease_history, {
      'event', 'released', 'lease_id', core.current_lease_id, 'lease_epoch', core.current_lease_epoch,
      'attempt_index', core.current_attempt_index, 'reason', 'cancelled', 'ts', now,
    })
  end

  write_state(K.core, now, {
    lifecycle_phase = 'terminal',
    ownership_state = 'unowned',
    eligibility_state = 'not_applicable',
    blocking_reason = 'none',
    terminal_outcome = 'cancelled',
    attempt_state = has_attempt and 'attempt_terminal' or (core.attempt_state or 'none'),
    public_state = 'cancelled',
  }, Exec.lease_cleared({
    cancellation_reason = reason,
    cancelled_by = is_set(source) and source or eid,
    completed_at = now,
    current_suspension_id = '',
    current_waitpoint_id = '',
  }))

  -- Defensive sweep (§1.9): out of every scheduling and timeout index.
  local sweep = {
    K.lease_expiry, K.suspension_timeout, K.attempt_timeout, K.execution_deadline, K.eligible, K.delayed,
    K.blocked_dependencies, K.blocked_budget, K.blocked_quota, K.blocked_route, K.blocked_operator,
    KEY.partition_lane_active(tag, lane), KEY.partition_lane_suspended(tag, lane),
  }
  for i = 1, #sweep do
    redis.call('ZREM', sweep[i], eid)
  end
  redis.call('SREM', K.worker_leases, eid)
  if is_set(core.current_worker_instance_id) then
    redis.call('SREM', KEY.partition_worker_leases(tag, core.current_worker_instance_id), eid)
  end
  redis.call('ZADD', K.terminal, now, eid)
  if source ~= 'flow_cascade' then
    publish_completion(core, eid, 'cancelled')
  end
  return ok('cancelled', phase)
end))

redis.register_function('ff_delay_execution', guard('ff_delay_execution', function(keys, args)
  local K = {
    core = keys[1],
    attempt_hash = keys[2],
    lease_current = keys[3],
    lease_history = keys[4],
    lease_expiry = keys[5],
    worker_leases = keys[6],
    active = keys[7],
    delayed = keys[8],
    attempt_timeout = keys[9],
  }
  local A = {
    execution_id = args[1],
    lease_id = args[2],
    lease_epoch = args[3],
    attempt_id = args[4],
    delay_until = args[5],
  }
  local delay_text = to_text(A.delay_until)
  local now = server_now()
  local core, rejected = Exec.holder_core('ff_delay_execution', keys, K, A, now)
  if not core then return rejected end

  local eid = A.execution_id
  -- write phase
  write_state(K.core, now, Exec.delayed_vector(delay_text, 'attempt_interrupted'), Exec.lease_cleared({ delay_until = delay_text }))
  redis.call('HSET', K.attempt_hash, 'attempt_state', 'suspended', 'suspended_at', to_text(now), 'suspension_id', 'worker_delay')
  Exec.release_lease(K, eid)
  redis.call('ZADD', K.delayed, A.delay_until, eid)
  history_add(K.lease_history, {
    'event', 'released', 'lease_id', A.lease_id, 'lease_epoch', A.lease_epoch, 'attempt_index', core.current_attempt_index,
    'attempt_id', A.attempt_id, 'reason', 'worker_delay', 'ts', now,
  })
  return ok(delay_text)
end))

redis.register_function('ff_move_to_waiting_children', guard('ff_move_to_waiting_children', function(keys, args)
  local K = {
    core = keys[1],
    attempt_hash = keys[2],
    lease_current = keys[3],
    lease_history = keys[4],
    lease_expiry = keys[5],
    worker_leases = keys[6],
    active = keys[7],
    blocked_dependencies = keys[8],
    attempt_timeout = keys[9],
  }
  local A = {
    execution_id = args[1],
    lease_id = args[2],
    lease_epoch = args[3],
    attempt_id = args[4],
  }
  local now = server_now()
  local core, rejected = Exec.holder_core('ff_move_to_waiting_children', keys, K, A, now)
  if not core then return rejected end

  local eid = A.execution_id
  -- write phase
  write_state(K.core, now, {
    lifecycle_phase = 'runnable',
    ownership_state = 'unowned',
    eligibility_state = 'blocked_by_dependencies',
    blocking_reason = 'waiting_for_children',
    blocking_detail = 'waiting for child executions to complete',
    terminal_outcome = 'none',
    attempt_state = 'attempt_interrupted',
    public_state = 'waiting_children',
  }, Exec.lease_cleared())
  redis.call('HSET', K.attempt_hash, 'attempt_state', 'suspended', 'suspended_at', to_text(now), 'suspension_id', 'waiting_children')
  Exec.release_lease(K, eid)
  history_add(K.lease_history, {
    'event', 'released', 'lease_id', A.lease_id, 'lease_epoch', A.lease_epoch, 'attempt_index', core.current_attempt_index,
    'attempt_id', A.attempt_id, 'reason', 'waiting_children', 'ts', now,
  })
  redis.call('ZADD', K.blocked_dependencies, parse_number(core.created_at) or 0, eid)
  return ok()
end))

-- Reads a decoded RetryPolicy (execution.md §3.7). Returns nil when it allows no retry
-- plan at all (not an object), a table { max_retries, backoff = function(retry_count) },
-- or nil and an invalid_input reply when a numeric member is present but not a number.
function Exec.retry_policy(policy)
  if type(policy) ~= 'table' then
    return nil
  end
  local bad
  local function number_or(t, name, fallback)
    local value = t[name]
    if value == nil or value == cjson.null then return fallback end
    local n = (type(value) == 'number') and parse_number(value) or nil
    if n == nil then
      bad = bad or err('invalid_input', 'retry_policy_json.' .. name .. ' must be a number')
      return fallback
    end
    return n
  end
  local plan = { max_retries = number_or(policy, 'max_retries', 0) }
  local backoff = policy.backoff
  if backoff == nil or backoff == cjson.null then
    backoff = {}
  elseif type(backoff) ~= 'table' then
    return nil, err('invalid_input', 'retry_policy_json.backoff must be an object')
  end
  if backoff.type == 'exponential' then
    local initial = number_or(backoff, 'initial_delay_ms', 1000)
    local max = number_or(backoff, 'max_delay_ms', 60000)
    local multiplier = number_or(backoff, 'multiplier', 2)
    plan.backoff = function(retry_count)
      local delay = math.min(initial * multiplier ^ retry_count, max)
      if delay ~= delay or delay == math.huge or delay == -math.huge then delay = max end
      return math.floor(delay)
    end
  elseif backoff.type == 'fixed' then
    local delay = number_or(backoff, 'delay_ms', 1000)
    plan.backoff = function() return math.floor(delay) end
  else
    plan.backoff = function() return 1000 end
  end
  if bad then return nil, bad end
  return plan
end

redis.register_function('ff_fail_execution', guard('ff_fail_execution', function(keys, args)
  local K = {
    core = keys[1],
    attempt_hash = keys[2],
    lease_expiry = keys[3],
    worker_leases = keys[4],
    terminal = keys[5],
    delayed = keys[6],
    lease_current = keys[7],
    lease_history = keys[8],
    active = keys[9],
    stream_meta = keys[10],
    attempt_timeout = keys[11],
    execution_deadline = keys[12],
  }
  local A = {
    execution_id = args[1],
    lease_id = args[2],
    lease_epoch = args[3],
    attempt_id = args[4],
    failure_reason = args[5],
    failure_category = args[6],
    retry_policy_json = args[7],
  }
  local plan, policy_error = Exec.retry_policy(args.json and args.json.retry_policy_json)
  if policy_error then return policy_error end
  local reason = A.failure_reason or ''
  local now = server_now()
  local core, rejected = Exec.holder_core('ff_fail_execution', keys, K, A, now)
  if not core then return rejected end

  local eid = A.execution_id
  -- write phase
  redis.call('HSET', K.attempt_hash, 'attempt_state', 'ended_failure', 'ended_at', to_text(now),
    'failure_reason', reason, 'failure_category', A.failure_category or '')
  Exec.close_stream(K.stream_meta, now, 'attempt_failure', false)
  redis.call('DEL', K.lease_current)
  redis.call('ZREM', K.lease_expiry, eid)
  redis.call('SREM', K.worker_leases, eid)
  redis.call('ZREM', K.active, eid)
  redis.call('ZREM', K.attempt_timeout, eid)

  local retry_count = parse_number(core.retry_count) or 0
  local attempt_index = is_set(core.current_attempt_index) and core.current_attempt_index or '0'
  if plan and retry_count < plan.max_retries then
    local delay_until = now + plan.backoff(retry_count)
    write_state(K.core, now, {
      lifecycle_phase = 'runnable',
      ownership_state = 'unowned',
      eligibility_state = 'not_eligible_until_time',
      blocking_reason = 'waiting_for_retry_backoff',
      blocking_detail = 'retry backoff until ' .. to_text(delay_until) .. ' (attempt ' .. attempt_index .. ' failed: ' .. reason .. ')',
      terminal_outcome = 'none',
      attempt_state = 'pending_retry_attempt',
      public_state = 'delayed',
    }, Exec.lease_cleared({
      pending_retry_reason = reason,
      pending_previous_attempt_index = attempt_index,
      retry_count = retry_count + 1,
      current_attempt_id = '',
      delay_until = delay_until,
      failure_reason = reason,
    }))
    redis.call('ZADD', K.delayed, delay_until, eid)
    history_add(K.lease_history, {
      'event', 'released', 'lease_id', A.lease_id, 'lease_epoch', A.lease_epoch,
      'attempt_index', core.current_attempt_index, 'reason', 'failed_retry_scheduled', 'ts', now,
    })
    return ok('retry_scheduled', to_text(delay_until))
  end

  write_state(K.core, now, {
    lifecycle_phase = 'terminal',
    ownership_state = 'unowned',
    eligibility_state = 'not_applicable',
    blocking_reason = 'none',
    terminal_outcome = 'failed',
    attempt_state = 'attempt_terminal',
    public_state = 'failed',
  }, Exec.lease_cleared({ failure_reason = reason, completed_at = now }))
  redis.call('ZREM', K.execution_deadline, eid)
  redis.call('ZADD', K.terminal, now, eid)
  history_add(K.lease_history, {
    'event', 'released', 'lease_id', A.lease_id, 'lease_epoch', A.lease_epoch,
    'attempt_index', core.current_attempt_index, 'reason', 'failed_terminal', 'ts', now,
  })
  publish_completion(core, eid, 'failed')
  return ok('terminal_failed')
end))

-- The reclaim limit: the policy's top-level max_reclaim_count, 100 by default.
function Exec.max_reclaims(core_key)
  local raw = redis.call('GET', string.sub(core_key, 1, -#':core' - 1) .. ':policy')
  if raw then
    local decoded_ok, policy = pcall(cjson.decode, raw)
    if decoded_ok and type(policy) == 'table' then
      return parse_number(policy.max_reclaim_count) or 100
    end
  end
  return 100
end

-- The terminal path once the reclaim limit is reached (execution.md §3.8); the caller
-- answers max_retries_exhausted after it.
function Exec.fail_max_reclaims(K, core, eid, now)
  local tag = tag_of(K.core)
  write_state(K.core, now, {
    lifecycle_phase = 'terminal',
    ownership_state = 'unowned',
    eligibility_state = 'not_applicable',
    blocking_reason = 'none',
    terminal_outcome = 'failed',
    attempt_state = 'attempt_terminal',
    public_state = 'failed',
  }, {
    failure_reason = 'max_reclaims_exceeded',
    completed_at = now,
    current_lease_id = '',
    current_worker_id = '',
    current_worker_instance_id = '',
  })
  if is_set(core.current_attempt_index) then
    Exec.end_open_attempt(KEY.exec_attempt_hash(tag, eid, core.current_attempt_index),
      KEY.exec_stream_meta(tag, eid, core.current_attempt_index), now, 'ended_failure', 'max_reclaims_exceeded', 'attempt_failure')
  end
  redis.call('DEL', K.lease_current)
  redis.call('ZREM', K.lease_expiry, eid)
  redis.call('SREM', K.worker_leases, eid)
  if is_set(core.current_worker_instance_id) then
    redis.call('SREM', KEY.partition_worker_leases(tag, core.current_worker_instance_id), eid)
  end
  redis.call('ZREM', K.active, eid)
  redis.call('ZREM', K.attempt_timeout, eid)
  redis.call('ZREM', K.execution_deadline, eid)
  redis.call('ZADD', KEY.partition_lane_terminal(tag, Exec.lane_of(core)), now, eid)
  publish_completion(core, eid, 'failed')
end

redis.register_function('ff_reclaim_execution', guard('ff_reclaim_execution', function(keys, args)
  local K = {
    core = keys[1],
    claim_grant = keys[2],
    old_attempt_hash = keys[3],
    old_stream_meta = keys[4],
    new_attempt_hash = keys[5],
    new_attempt_usage = keys[6],
    attempts = keys[7],
    lease_current = keys[8],
    lease_history = keys[9],
    lease_expiry = keys[10],
    worker_leases = keys[11],
    active = keys[12],
    attempt_timeout = keys[13],
    execution_deadline = keys[14],
  }
  local A = {
    execution_id = args[1],
    worker_id = args[2],
    worker_instance_id = args[3],
    lane_id = args[4],
    lease_id = args[5],
    lease_ttl_ms = args[6],
    attempt_id = args[7],
    attempt_policy_json = args[8],
  }
  local eid = A.execution_id
  local mismatch = check_core_key(K.core, eid)
  if mismatch then return mismatch end
  local worker_instance_id = A.worker_instance_id or ''
  local lane = A.lane_id or ''
  local now = server_now()
  local core, missing = read_core(K.core)
  if not core then return missing end
  -- The old attempt's keys are derived from the record and the new ones from
  -- total_attempt_count; the lane keys must be the execution's, the worker set the new holder's.
  local foreign = check_keys('ff_reclaim_execution', keys, {
    tag = tag_of(K.core), execution_id = eid, lane_id = core_lane(core), worker_instance_id = worker_instance_id,
  })
  if foreign then return foreign end
  if core.lifecycle_phase ~= 'active' then
    return err('execution_not_reclaimable')
  end
  local ownership = core.ownership_state
  if ownership ~= 'lease_expired_reclaimable' and ownership ~= 'lease_revoked' then
    return err('execution_not_reclaimable')
  end
  local reclaim_count = parse_number(core.lease_reclaim_count) or 0
  if reclaim_count >= Exec.max_reclaims(K.core) then
    Exec.fail_max_reclaims(K, core, eid, now)
    return err('max_retries_exhausted')
  end
  local grant = hgetall(K.claim_grant)
  if next(grant) == nil or grant.worker_id ~= A.worker_id then
    return err('invalid_claim_grant')
  end

  local tag = tag_of(K.core)
  local reclaim_reason = 'lease_' .. ownership
  local old_index = is_set(core.current_attempt_index) and core.current_attempt_index or nil
  -- write phase
  redis.call('DEL', K.claim_grant)
  if old_index then
    redis.call('HSET', KEY.exec_attempt_hash(tag, eid, old_index), 'attempt_state', 'interrupted_reclaimed',
      'ended_at', to_text(now), 'failure_reason', reclaim_reason)
    Exec.close_stream(KEY.exec_stream_meta(tag, eid, old_index), now, 'reclaimed', false)
  end

  local epoch = (parse_number(core.current_lease_epoch) or 0) + 1
  local index = parse_number(core.total_attempt_count) or 0
  local expires_at = now + A.lease_ttl_ms
  local renewal_deadline = now + math.floor(A.lease_ttl_ms * 2 / 3)
  local attempt_hash = KEY.exec_attempt_hash(tag, eid, index)
  hset_table(attempt_hash, {
    attempt_id = A.attempt_id,
    execution_id = eid,
    attempt_index = index,
    attempt_type = 'reclaim',
    attempt_state = 'started',
    created_at = now,
    started_at = now,
    lease_id = A.lease_id,
    lease_epoch = epoch,
    worker_id = A.worker_id,
    worker_instance_id = worker_instance_id,
    reclaim_reason = reclaim_reason,
    previous_attempt_index = old_index or '0',
  })
  redis.call('ZADD', K.attempts, now, index)
  redis.call('HSET', attempt_hash .. ':usage', 'last_usage_report_seq', '0')

  redis.call('DEL', K.lease_current)
  hset_table(K.lease_current, {
    lease_id = A.lease_id, lease_epoch = epoch, execution_id = eid, attempt_id = A.attempt_id,
    worker_id = A.worker_id, worker_instance_id = worker_instance_id, acquired_at = now,
    expires_at = expires_at, last_renewed_at = now, renewal_deadline = renewal_deadline,
  })
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
    current_worker_instance_id = worker_instance_id,
    current_lane = lane,
    lease_acquired_at = now,
    lease_last_renewed_at = now,
    lease_expires_at = expires_at,
    lease_renewal_deadline = renewal_deadline,
    lease_expired_at = '',
    lease_revoked_at = '',
    lease_revoke_reason = '',
    lease_reclaim_count = reclaim_count + 1,
  })

  redis.call('ZADD', K.lease_expiry, expires_at, eid)
  -- The old holder no longer leases it (Q6); SREM before SADD, the holder may be the same.
  if is_set(core.current_worker_instance_id) then
    redis.call('SREM', KEY.partition_worker_leases(tag, core.current_worker_instance_id), eid)
  end
  redis.call('SADD', K.worker_leases, eid)
  redis.call('ZADD', K.active, expires_at, eid)
  history_add(K.lease_history, {
    'event', 'reclaimed', 'old_lease_epoch', core.current_lease_epoch, 'new_lease_id', A.lease_id,
    'new_lease_epoch', epoch, 'new_attempt_id', A.attempt_id, 'new_attempt_index', index,
    'worker_id', A.worker_id, 'ts', now,
  })
  return ok(A.lease_id, to_text(epoch), to_text(expires_at), A.attempt_id, to_text(index), 'reclaim')
end))

-- The runnable index an execution sits in, by eligibility (execution.md §3.9).
Exec.RUNNABLE_INDEX = {
  eligible_now = KEY.partition_lane_eligible,
  not_eligible_until_time = KEY.partition_lane_delayed,
  blocked_by_dependencies = KEY.partition_lane_blocked_dependencies,
  blocked_by_budget = KEY.partition_lane_blocked_budget,
  blocked_by_quota = KEY.partition_lane_blocked_quota,
  blocked_by_route = KEY.partition_lane_blocked_route,
  blocked_by_operator = KEY.partition_lane_blocked_operator,
}

redis.register_function('ff_expire_execution', guard('ff_expire_execution', function(keys, args)
  local K = {
    core = keys[1],
    attempt_hash = keys[2],
    stream_meta = keys[3],
    lease_current = keys[4],
    lease_history = keys[5],
    lease_expiry = keys[6],
    worker_leases = keys[7],
    active = keys[8],
    terminal = keys[9],
    attempt_timeout = keys[10],
    execution_deadline = keys[11],
    suspended = keys[12],
    suspension_timeout = keys[13],
    suspension_current = keys[14],
  }
  local A = {
    execution_id = args[1],
    expire_reason = args[2],
  }
  local eid = A.execution_id
  local mismatch = check_core_key(K.core, eid)
  if mismatch then return mismatch end
  local reason = is_set(A.expire_reason) and A.expire_reason or 'attempt_timeout'
  local now = server_now()
  local core = hgetall(K.core)
  local exists = next(core) ~= nil
  local foreign = check_keys('ff_expire_execution', keys, {
    tag = tag_of(K.core), execution_id = eid, lane_id = exists and core_lane(core) or nil,
  })
  if foreign then return foreign end
  -- write phase
  if next(core) == nil or core.lifecycle_phase == 'terminal' then
    redis.call('ZREM', K.attempt_timeout, eid)
    redis.call('ZREM', K.execution_deadline, eid)
    return ok(next(core) == nil and 'not_found_cleaned' or 'already_terminal')
  end
  local tag = tag_of(K.core)
  local lane = Exec.lane_of(core)

  local phase = core.lifecycle_phase or ''
  local has_attempt = is_set(core.current_attempt_index)
  local attempt_hash, stream_meta
  if has_attempt then
    attempt_hash = KEY.exec_attempt_hash(tag, eid, core.current_attempt_index)
    stream_meta = KEY.exec_stream_meta(tag, eid, core.current_attempt_index)
  end
  if phase == 'active' or phase == 'suspended' then
    if has_attempt then
      redis.call('HSET', attempt_hash, 'attempt_state', 'ended_failure', 'ended_at', to_text(now), 'failure_reason', reason)
      Exec.close_stream(stream_meta, now, 'expired', false)
    end
  end
  if phase == 'active' then
    redis.call('DEL', K.lease_current)
    redis.call('ZREM', K.lease_expiry, eid)
    redis.call('SREM', K.worker_leases, eid)
    if is_set(core.current_worker_instance_id) then
      redis.call('SREM', KEY.partition_worker_leases(tag, core.current_worker_instance_id), eid)
    end
    redis.call('ZREM', K.active, eid)
    history_add(K.lease_history, {
      'event', 'released', 'lease_id', core.current_lease_id, 'lease_epoch', core.current_lease_epoch,
      'attempt_index', core.current_attempt_index, 'reason', 'expired:' .. reason, 'ts', now,
    })
  elseif phase == 'suspended' then
    if redis.call('EXISTS', K.suspension_current) == 1 then
      redis.call('HSET', K.suspension_current, 'closed_at', to_text(now), 'close_reason', 'expired:' .. reason)
    end
    redis.call('ZREM', K.suspended, eid)
    redis.call('ZREM', K.suspension_timeout, eid)
  else
    local index = Exec.RUNNABLE_INDEX[core.eligibility_state or '']
    if index then
      redis.call('ZREM', index(tag, lane), eid)
    else
      for _, build in pairs(Exec.RUNNABLE_INDEX) do
        redis.call('ZREM', build(tag, lane), eid)
      end
    end
    if has_attempt and core.attempt_state == 'attempt_interrupted' then
      Exec.end_open_attempt(attempt_hash, stream_meta, now, 'ended_failure', reason, 'expired')
    end
  end

  write_state(K.core, now, {
    lifecycle_phase = 'terminal',
    ownership_state = 'unowned',
    eligibility_state = 'not_applicable',
    blocking_reason = 'none',
    terminal_outcome = 'expired',
    attempt_state = has_attempt and 'attempt_terminal' or (core.attempt_state or 'none'),
    public_state = 'expired',
  }, {
    failure_reason = reason,
    completed_at = now,
    current_lease_id = '',
    current_worker_id = '',
    current_worker_instance_id = '',
    lease_expires_at = '',
    current_suspension_id = '',
    current_waitpoint_id = '',
  })
  redis.call('ZREM', K.attempt_timeout, eid)
  redis.call('ZREM', K.execution_deadline, eid)
  redis.call('ZADD', K.terminal, now, eid)
  publish_completion(core, eid, 'expired')
  return ok('expired', phase)
end))
