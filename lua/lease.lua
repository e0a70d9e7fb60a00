-- Lease upkeep: renew, mark expired, revoke. KEYS, ARGV and replies: spec/lease.yaml.
-- Module-local helpers live in the one table Lease, to keep the chunk's locals few.
local Lease = {}

-- Upper bound of the renew durations (about 31 700 years).
Lease.MAX_DURATION_MS = 1000000000000000

-- What a renewal reads of exec_core: the lease fields (which mark_expired needs too) and
-- the revocation stamp. Renewal is a worker's most frequent call: no HGETALL of fifty fields.
Lease.RENEW_FIELDS = field_list({ { 'lease_revoked_at' }, LEASE_FIELDS })

redis.register_function('ff_renew_lease', guard('ff_renew_lease', function(keys, args)
  local K = {
    core = keys[1],
    lease_current = keys[2],
    lease_history = keys[3],
    lease_expiry = keys[4],
  }
  local A = {
    execution_id = args[1],
    attempt_index = args[2],
    attempt_id = args[3],
    lease_id = args[4],
    lease_epoch = args[5],
    lease_ttl_ms = args[6],
    lease_history_grace_ms = args[7],
  }
  -- Bounded so that now + ttl + grace stays an exact integer (timestamps are written as text).
  local bad, tag = check_core_key(K.core, A.execution_id)
  if bad then return bad end
  bad = check_keys('ff_renew_lease', keys, { tag = tag, execution_id = A.execution_id, core_checked = true })
  if bad then return bad end

  local now, now_s = server_clock()
  local core, missing = read_core(K.core, Lease.RENEW_FIELDS)
  if not core then return missing end
  if core.lifecycle_phase ~= 'active' then
    return err('execution_not_active', core.terminal_outcome or '', core.current_lease_epoch or '')
  end
  if core.ownership_state == 'lease_revoked' or is_set(core.lease_revoked_at) then
    return err('lease_revoked')
  end
  if (parse_number(core.lease_expires_at) or 0) <= now then
    mark_expired(K.core, K.lease_history, core, now)
    return err('lease_expired')
  end
  if core.current_attempt_index ~= A.attempt_index
    or core.current_attempt_id ~= A.attempt_id
    or core.current_lease_id ~= A.lease_id
    or core.current_lease_epoch ~= A.lease_epoch then
    return err('stale_lease')
  end

  local expires_at = now + A.lease_ttl_ms
  local renewal_deadline = now + math.floor(A.lease_ttl_ms * 2 / 3)
  local renewal_s, expires_s = num_text(renewal_deadline), num_text(expires_at)
  -- write phase
  redis.call('HSET', K.core,
    'lease_last_renewed_at', now_s,
    'lease_renewal_deadline', renewal_s,
    'lease_expires_at', expires_s,
    'last_mutation_at', now_s)
  redis.call('HSET', K.lease_current,
    'last_renewed_at', now_s,
    'renewal_deadline', renewal_s,
    'expires_at', expires_s)
  redis.call('PEXPIREAT', K.lease_current, num_text(expires_at + A.lease_history_grace_ms))
  redis.call('ZADD', K.lease_expiry, expires_s, A.execution_id)
  return ok(expires_s)
end))

redis.register_function('ff_mark_lease_expired_if_due', guard('ff_mark_lease_expired_if_due', function(keys, args)
  local K = {
    core = keys[1],
    lease_current = keys[2],
    lease_expiry = keys[3],
    lease_history = keys[4],
  }
  local A = {
    execution_id = args[1],
  }
  local bad = check_core_key(K.core, A.execution_id)
    or check_keys('ff_mark_lease_expired_if_due', keys, { tag = tag_of(K.core), execution_id = A.execution_id })
  if bad then return bad end

  local now = server_now()
  local core = hgetall(K.core)
  -- write phase
  if next(core) == nil then
    redis.call('ZREM', K.lease_expiry, A.execution_id)
    return ok_status('ALREADY_SATISFIED', 'execution_not_found')
  end
  if core.lifecycle_phase ~= 'active' then
    redis.call('ZREM', K.lease_expiry, A.execution_id)
    return ok_status('ALREADY_SATISFIED', 'not_active')
  end
  if core.ownership_state == 'lease_expired_reclaimable' then
    return ok_status('ALREADY_SATISFIED', 'already_expired')
  end
  if core.ownership_state == 'lease_revoked' then
    return ok_status('ALREADY_SATISFIED', 'already_revoked')
  end
  if core.ownership_state == 'unowned' then
    redis.call('ZREM', K.lease_expiry, A.execution_id)
    return ok_status('ALREADY_SATISFIED', 'unowned')
  end
  if (parse_number(core.lease_expires_at) or 0) > now then
    return ok_status('ALREADY_SATISFIED', 'not_yet_expired')
  end
  -- The lease_expiry entry stays: the reclaim scan looks for the execution there.
  mark_expired(K.core, K.lease_history, core, now)
  return ok('marked_expired')
end))

redis.register_function('ff_revoke_lease', guard('ff_revoke_lease', function(keys, args)
  local K = {
    core = keys[1],
    lease_current = keys[2],
    lease_history = keys[3],
    lease_expiry = keys[4],
    worker_leases = keys[5],
  }
  local A = {
    execution_id = args[1],
    expected_lease_id = args[2],
    revoke_reason = args[3],
  }
  local bad = check_core_key(K.core, A.execution_id)
  if bad then return bad end
  -- Only a missing reason falls back; an explicit empty string is kept (as the reference).
  local reason = A.revoke_reason
  if reason == nil then reason = 'operator' end

  local now = server_now()
  local core, missing = read_core(K.core)
  if not core then return missing end
  if core.lifecycle_phase ~= 'active' then
    return err('execution_not_active', core.terminal_outcome or '', core.current_lease_epoch or '')
  end
  if core.ownership_state ~= 'leased' then
    if core.ownership_state == 'lease_revoked' then
      return ok_status('ALREADY_SATISFIED', 'already_revoked')
    end
    if core.ownership_state == 'lease_expired_reclaimable' then
      return ok_status('ALREADY_SATISFIED', 'already_expired')
    end
    return err('no_active_lease')
  end
  local current_lease_id = core.current_lease_id or ''
  if is_set(A.expected_lease_id) and A.expected_lease_id ~= current_lease_id then
    return err('stale_lease', 'expected ' .. A.expected_lease_id .. ' but current is ' .. current_lease_id)
  end
  -- The worker set may be another's (the recorded holder's is swept as well, a deviation).
  bad = check_keys('ff_revoke_lease', keys, { tag = tag_of(K.core), execution_id = A.execution_id })
  if bad then return bad end

  -- Identity for the reply and the event, captured before the state write.
  local lease_epoch = core.current_lease_epoch or ''
  -- write phase
  write_state(K.core, now, {
    lifecycle_phase = 'active',
    ownership_state = 'lease_revoked',
    eligibility_state = core.eligibility_state or 'not_applicable',
    blocking_reason = 'waiting_for_worker',
    blocking_detail = 'lease revoked: ' .. reason,
    terminal_outcome = 'none',
    attempt_state = 'attempt_interrupted',
    public_state = 'active',
  }, {
    lease_revoked_at = now,
    lease_revoke_reason = reason,
  }, false)
  redis.call('DEL', K.lease_current)
  redis.call('ZREM', K.lease_expiry, A.execution_id)
  redis.call('SREM', K.worker_leases, A.execution_id)
  if is_set(core.current_worker_instance_id) then
    local holder_set = KEY.partition_worker_leases(tag_of(K.core), core.current_worker_instance_id)
    if holder_set ~= K.worker_leases then
      redis.call('SREM', holder_set, A.execution_id)
    end
  end
  history_add(K.lease_history, {
    'event', 'revoked', 'lease_id', current_lease_id, 'lease_epoch', lease_epoch,
    'attempt_index', core.current_attempt_index, 'attempt_id', core.current_attempt_id,
    'worker_id', core.current_worker_id, 'worker_instance_id', core.current_worker_instance_id,
    'reason', reason, 'ts', now,
  })
  return ok('revoked', current_lease_id, lease_epoch)
end))
