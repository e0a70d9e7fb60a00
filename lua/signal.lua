-- Signals and the resumed claim. KEYS, ARGV and replies: spec/signal.yaml. Token, condition
-- and resume helpers come from the Susp table of suspension.lua (bundled before this file);
-- this module's own helpers live in Sig.
local Sig = {}

-- Signal payloads above this many bytes are refused (RFC-005's v1 limit).
Sig.PAYLOAD_MAX_BYTES = 65536

-- Validates the 18 ARGV shared by delivery and buffering, in place (absent slots take the
-- engine defaults), and checks the KEYS against them. Returns the error reply or nil.
function Sig.check(K, A)
  local defaults = {
    signal_name = '', signal_category = '', source_type = '', source_identity = '', payload = '',
    payload_encoding = 'json', idempotency_key = '', correlation_id = '', target_scope = 'waitpoint',
    waitpoint_token = '',
  }
  for name, value in pairs(defaults) do
    if A[name] == nil then
      A[name] = value
    end
  end
  if #A.payload > Sig.PAYLOAD_MAX_BYTES then
    return err('payload_too_large')
  end
  local tag = tag_of(K.core)
  local eid = A.execution_id
  local wp_key = KEY.partition_waitpoint(tag, A.waitpoint_id)
  local signal_key = KEY.partition_signal(tag, A.signal_id)
  local idem_key = KEY.partition_noop(tag)
  if is_set(A.idempotency_key) then
    idem_key = KEY.partition_signal_dedup(tag, A.waitpoint_id, A.idempotency_key)
  end
  local checks = {
    { eid_of_exec_key(K.core), eid, 'execution_id of KEYS[1]' },
    { K.wp_condition, wp_key .. ':condition', 'KEYS[2]' },
    { K.wp_signals_stream, wp_key .. ':signals', 'KEYS[3]' },
    { K.exec_signals_zset, KEY.exec_exec_signals(tag, eid), 'KEYS[4]' },
    { K.signal_hash, signal_key, 'KEYS[5]' },
    { K.signal_payload, signal_key .. ':payload', 'KEYS[6]' },
    { K.idem_key, idem_key, 'KEYS[7]' },
    { K.waitpoint_hash, wp_key, 'KEYS[8]' },
  }
  -- An absent or empty key ring slot is the token check's own error.
  if is_set(K.hmac_secrets) then
    checks[#checks + 1] = { K.hmac_secrets, KEY.partition_waitpoint_hmac_secrets(tag), 'key ring KEYS slot' }
  end
  if K.suspension_current ~= nil then
    checks[#checks + 1] = { K.suspension_current, KEY.exec_suspension_current(tag, eid), 'KEYS[9]' }
  end
  return Susp.keys_match(checks)
end

-- The waitpoint a signal targets, as the token check needs it: its hash, and its created_at
-- as the decimal text bound into the token. Nil when missing, without created_at, or of
-- another execution.
function Sig.load_waitpoint(K, A)
  local wp = hgetall(K.waitpoint_hash)
  local created_at = parse_number(wp.created_at)
  if next(wp) == nil or created_at == nil or wp.execution_id ~= A.execution_id then
    return nil
  end
  return wp, to_text(created_at)
end

-- Checks the token; on failure stamps the execution and returns the error reply.
function Sig.authenticate(K, A, wp, created_at_text, now)
  local code = Susp.verify(K.hmac_secrets, A.waitpoint_token, A.waitpoint_id, wp.waitpoint_key or '', created_at_text, now)
  if code == nil then
    return nil
  end
  redis.call('HSET', K.core, 'last_hmac_validation_failed_at', to_text(now))
  return err(code)
end

-- Per-execution signal limit (0 or less disables it).
function Sig.over_limit(K, A)
  return A.max_signals_per_execution > 0
    and redis.call('ZCARD', K.exec_signals_zset) >= A.max_signals_per_execution
end

-- Idempotency (suspension.md §D.2): the first signal's id when this key was already used on
-- the waitpoint, else nil. Only with a key and a positive TTL.
function Sig.dedup_active(A)
  return is_set(A.idempotency_key) and A.dedup_ttl_ms > 0
end

function Sig.existing_duplicate(K, A)
  if not Sig.dedup_active(A) then
    return nil
  end
  local existing = redis.call('GET', K.idem_key)
  if existing then
    return existing
  end
  return nil
end

-- Records an accepted signal: the dedup guard, its hash, payload, waitpoint stream entry and
-- the execution's signal index.
function Sig.record(K, A, now, effect)
  if Sig.dedup_active(A) then
    redis.call('SET', K.idem_key, A.signal_id, 'PX', A.dedup_ttl_ms, 'NX')
  end
  local fields = {
    signal_id = A.signal_id, target_execution_id = A.execution_id, target_waitpoint_id = A.waitpoint_id,
    target_scope = A.target_scope, signal_name = A.signal_name, signal_category = A.signal_category,
    source_type = A.source_type, source_identity = A.source_identity, correlation_id = A.correlation_id,
    idempotency_key = A.idempotency_key, created_at = A.created_at or now, accepted_at = now,
    matched_waitpoint_id = A.waitpoint_id, payload_encoding = A.payload_encoding,
  }
  if effect then
    fields.observed_effect = effect
  end
  hset_table(K.signal_hash, fields)
  if is_set(A.payload) then
    redis.call('SET', K.signal_payload, A.payload)
  end
  redis.call('XADD', K.wp_signals_stream, 'MAXLEN', '~', to_text(A.signal_maxlen), '*',
    'signal_id', A.signal_id, 'signal_name', A.signal_name, 'signal_category', A.signal_category,
    'source_type', A.source_type, 'source_identity', A.source_identity, 'matched', '0',
    'accepted_at', to_text(now))
  redis.call('ZADD', K.exec_signals_zset, now, A.signal_id)
end

-- What a delivery reads of exec_core: its phase and waitpoint, and what resuming needs.
Sig.DELIVER_CORE_FIELDS = field_list({ { 'lifecycle_phase', 'current_waitpoint_id' }, Susp.LANE_FIELDS, Susp.RUNNABLE_FIELDS })

redis.register_function('ff_deliver_signal', guard('ff_deliver_signal', function(keys, args)
  local K = {
    core = keys[1],
    wp_condition = keys[2],
    wp_signals_stream = keys[3],
    exec_signals_zset = keys[4],
    signal_hash = keys[5],
    signal_payload = keys[6],
    idem_key = keys[7],
    waitpoint_hash = keys[8],
    suspension_current = keys[9],
    eligible_zset = keys[10],
    suspended_zset = keys[11],
    delayed_zset = keys[12],
    suspension_timeout_zset = keys[13],
    hmac_secrets = keys[14],
  }
  local A = {
    signal_id = args[1],
    execution_id = args[2],
    waitpoint_id = args[3],
    signal_name = args[4],
    signal_category = args[5],
    source_type = args[6],
    source_identity = args[7],
    payload = args[8],
    payload_encoding = args[9],
    idempotency_key = args[10],
    correlation_id = args[11],
    target_scope = args[12],
    created_at = args[13],
    dedup_ttl_ms = args[14],
    resume_delay_ms = args[15],
    signal_maxlen = args[16],
    max_signals_per_execution = args[17],
    waitpoint_token = args[18],
  }
  local bad = Sig.check(K, A)
  if bad then return bad end

  local now = server_now()
  local core, missing = read_core(K.core, Sig.DELIVER_CORE_FIELDS)
  if not core then return missing end
  -- A missing waitpoint answers like a bad token, so callers cannot probe for waitpoints.
  local wp, created_at_text = Sig.load_waitpoint(K, A)
  if not wp then
    return err('invalid_token')
  end
  bad = Sig.authenticate(K, A, wp, created_at_text, now)
  if bad then return bad end

  local phase = core.lifecycle_phase
  if phase == 'terminal' then
    return err('target_not_signalable')
  end
  if phase == 'active' or phase == 'runnable' or phase == 'submitted' then
    if wp.state == 'pending' then
      return err('waitpoint_pending_use_buffer_script')
    end
    if wp.state ~= 'active' then
      return err('target_not_signalable')
    end
  end
  local condition_map = hgetall(K.wp_condition)
  if next(condition_map) == nil then
    return err('waitpoint_not_found')
  end
  if condition_map.closed == '1' then
    return err('waitpoint_closed')
  end
  if Sig.over_limit(K, A) then
    return err('signal_limit_exceeded')
  end
  local existing = Sig.existing_duplicate(K, A)
  if existing then
    return ok_status('DUPLICATE', existing)
  end

  local condition = Susp.load_condition(condition_map)
  local taken = Susp.offer(condition, A.signal_name, A.signal_id)
  local satisfied = taken ~= nil and Susp.is_satisfied(condition)
  -- Only the execution's current waitpoint resumes it (and closes its suspension).
  local current = phase == 'suspended' and core.current_waitpoint_id == A.waitpoint_id
  local suspension = hgetall(K.suspension_current)
  local own_suspension = suspension.waitpoint_id == A.waitpoint_id
  local tag = tag_of(K.core)
  if satisfied and current then
    local lane = Susp.lane_of(core)
    bad = Susp.keys_match({
      { K.eligible_zset, KEY.partition_lane_eligible(tag, lane), 'KEYS[10] (lane of exec_core)' },
      { K.suspended_zset, KEY.partition_lane_suspended(tag, lane), 'KEYS[11] (lane of exec_core)' },
      { K.delayed_zset, KEY.partition_lane_delayed(tag, lane), 'KEYS[12] (lane of exec_core)' },
    })
    if bad then return bad end
  end

  -- Every check passed: from here on, only writes.
  local effect = satisfied and 'resume_condition_satisfied' or (taken and 'appended_to_waitpoint' or 'no_op')
  -- write phase
  Sig.record(K, A, now, effect)
  if taken then
    local prefix = 'matcher:' .. (taken - 1) .. ':'
    redis.call('HSET', K.wp_condition, prefix .. 'satisfied', '1', prefix .. 'signal_id', A.signal_id,
      'satisfied_count', to_text(condition.count))
  end
  if satisfied then
    if current then
      Susp.make_runnable(K.core, core, A.execution_id,
        { suspended = K.suspended_zset, eligible = K.eligible_zset, delayed = K.delayed_zset },
        A.resume_delay_ms, 'resume delay ' .. A.resume_delay_ms .. 'ms after signal ' .. A.signal_name, now)
      redis.call('ZREM', K.suspension_timeout_zset, A.execution_id)
    end
    Susp.close_condition(K.wp_condition, now, 'satisfied')
    Susp.close_waitpoint(K.waitpoint_hash, now, 'resumed', true)
    if own_suspension and is_set(suspension.suspension_id) and not is_set(suspension.closed_at) then
      redis.call('HSET', K.suspension_current, 'satisfied_at', to_text(now), 'closed_at', to_text(now),
        'close_reason', 'resumed')
    end
  end
  redis.call('HINCRBY', K.waitpoint_hash, 'signal_count', 1)
  if taken then
    redis.call('HINCRBY', K.waitpoint_hash, 'matched_signal_count', 1)
  end
  redis.call('HSET', K.waitpoint_hash, 'last_signal_at', to_text(now))
  if own_suspension then
    redis.call('HSET', K.suspension_current, 'last_signal_at', to_text(now))
  end
  return ok(A.signal_id, effect)
end))

redis.register_function('ff_buffer_signal_for_pending_waitpoint', guard('ff_buffer_signal_for_pending_waitpoint', function(keys, args)
  local K = {
    core = keys[1],
    wp_condition = keys[2],
    wp_signals_stream = keys[3],
    exec_signals_zset = keys[4],
    signal_hash = keys[5],
    signal_payload = keys[6],
    idem_key = keys[7],
    waitpoint_hash = keys[8],
    hmac_secrets = keys[9],
  }
  local A = {
    signal_id = args[1],
    execution_id = args[2],
    waitpoint_id = args[3],
    signal_name = args[4],
    signal_category = args[5],
    source_type = args[6],
    source_identity = args[7],
    payload = args[8],
    payload_encoding = args[9],
    idempotency_key = args[10],
    correlation_id = args[11],
    target_scope = args[12],
    created_at = args[13],
    dedup_ttl_ms = args[14],
    resume_delay_ms = args[15],
    signal_maxlen = args[16],
    max_signals_per_execution = args[17],
    waitpoint_token = args[18],
  }
  local bad = Sig.check(K, A)
  if bad then return bad end

  local now = server_now()
  if redis.call('EXISTS', K.core) == 0 then
    return err('execution_not_found')
  end
  local wp, created_at_text = Sig.load_waitpoint(K, A)
  if not wp then
    return err('waitpoint_not_found')
  end
  bad = Sig.authenticate(K, A, wp, created_at_text, now)
  if bad then return bad end
  if wp.state == 'closed' or wp.state == 'expired' then
    return err('waitpoint_closed')
  end
  -- An active waitpoint evaluates signals on delivery; a buffered one would never be.
  if wp.state ~= 'pending' then
    return err('waitpoint_not_pending')
  end
  if Sig.over_limit(K, A) then
    return err('signal_limit_exceeded')
  end
  local existing = Sig.existing_duplicate(K, A)
  if existing then
    return ok_status('DUPLICATE', existing)
  end

  -- write phase
  Sig.record(K, A, now, 'buffered_for_pending_waitpoint')
  return ok(A.signal_id, 'buffered_for_pending_waitpoint')
end))

-- What a resumed claim reads of exec_core.
Sig.CLAIM_RESUMED_CORE_FIELDS = field_list({
  { 'lifecycle_phase', 'attempt_state', 'current_attempt_id', 'current_attempt_index', 'current_lease_epoch' },
  Susp.LANE_FIELDS,
})

redis.register_function('ff_claim_resumed_execution', guard('ff_claim_resumed_execution', function(keys, args)
  local K = {
    core = keys[1],
    claim_grant = keys[2],
    eligible_zset = keys[3],
    lease_expiry_zset = keys[4],
    worker_leases = keys[5],
    existing_attempt_hash = keys[6],
    lease_current = keys[7],
    lease_history = keys[8],
    active_index = keys[9],
    attempt_timeout_zset = keys[10],
    execution_deadline_zset = keys[11],
  }
  local A = {
    execution_id = args[1],
    worker_id = args[2],
    worker_instance_id = args[3],
    lane_id = args[4],
    capability_snapshot_hash = args[5],
    lease_id = args[6],
    lease_ttl_ms = args[7],
    remaining_attempt_timeout_ms = args[8],
  }
  local tag = tag_of(K.core)
  local eid = A.execution_id
  local bad = Susp.keys_match({
    { eid_of_exec_key(K.core), eid, 'execution_id of KEYS[1]' },
    { K.worker_leases, KEY.partition_worker_leases(tag, A.worker_instance_id or ''), 'KEYS[5]' },
  })
  if bad then return bad end

  local now = server_now()
  local core, missing = read_core(K.core, Sig.CLAIM_RESUMED_CORE_FIELDS)
  if not core then return missing end
  if core.lifecycle_phase ~= 'runnable' then
    return err('execution_not_leaseable')
  end
  if core.attempt_state ~= 'attempt_interrupted' or not is_set(core.current_attempt_id)
    or not is_set(core.current_attempt_index) then
    return err('not_a_resumed_execution')
  end
  local grant = hgetall(K.claim_grant)
  if next(grant) == nil or grant.worker_id ~= A.worker_id then
    return err('invalid_claim_grant')
  end
  if is_set(grant.grant_expires_at) and (parse_number(grant.grant_expires_at) or 0) < now then
    redis.call('DEL', K.claim_grant)
    return err('claim_grant_expired')
  end
  local lane = Susp.lane_of(core)
  bad = Susp.keys_match({
    { K.existing_attempt_hash, KEY.exec_attempt_hash(tag, eid, core.current_attempt_index), 'KEYS[6] (current attempt)' },
    { K.eligible_zset, KEY.partition_lane_eligible(tag, lane), 'KEYS[3] (lane of exec_core)' },
    { K.active_index, KEY.partition_lane_active(tag, lane), 'KEYS[9] (lane of exec_core)' },
  })
  if bad then return bad end

  local epoch = (parse_number(core.current_lease_epoch) or 0) + 1
  local expires_at = now + A.lease_ttl_ms
  local renewal_deadline = now + math.floor(A.lease_ttl_ms * 2 / 3)
  -- write phase
  redis.call('DEL', K.claim_grant)
  hset_table(K.existing_attempt_hash, {
    attempt_state = 'started', resumed_at = now, lease_id = A.lease_id, lease_epoch = epoch,
    worker_id = A.worker_id, worker_instance_id = A.worker_instance_id, suspended_at = '', suspension_id = '',
  })
  redis.call('DEL', K.lease_current)
  hset_table(K.lease_current, {
    lease_id = A.lease_id, lease_epoch = epoch, execution_id = eid, attempt_id = core.current_attempt_id,
    worker_id = A.worker_id, worker_instance_id = A.worker_instance_id, acquired_at = now,
    expires_at = expires_at, last_renewed_at = now, renewal_deadline = renewal_deadline,
  })
  -- The same state vector as a fresh claim (lua/execution.lua).
  write_state(K.core, now, Exec.CLAIMED, {
    current_lease_id = A.lease_id, current_lease_epoch = epoch, current_worker_id = A.worker_id,
    current_worker_instance_id = A.worker_instance_id, current_lane = A.lane_id,
    lease_acquired_at = now, lease_expires_at = expires_at, lease_last_renewed_at = now,
    lease_renewal_deadline = renewal_deadline, lease_expired_at = '', lease_revoked_at = '',
    lease_revoke_reason = '',
  })
  redis.call('ZREM', K.eligible_zset, eid)
  redis.call('ZADD', K.lease_expiry_zset, expires_at, eid)
  redis.call('SADD', K.worker_leases, eid)
  redis.call('ZADD', K.active_index, expires_at, eid)
  if A.remaining_attempt_timeout_ms ~= nil and A.remaining_attempt_timeout_ms > 0 then
    redis.call('ZADD', K.attempt_timeout_zset, now + A.remaining_attempt_timeout_ms, eid)
  end
  history_add(K.lease_history, {
    'event', 'acquired', 'lease_id', A.lease_id, 'lease_epoch', epoch,
    'attempt_index', core.current_attempt_index, 'attempt_id', core.current_attempt_id,
    'worker_id', A.worker_id, 'reason', 'claim_resumed', 'ts', now,
  })
  return ok(A.lease_id, to_text(epoch), to_text(expires_at), core.current_attempt_id,
    core.current_attempt_index, 'resumed')
end))
