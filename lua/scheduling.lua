-- Scheduling functions. KEYS, ARGV and replies: spec/scheduling.yaml.
local Sched = {}

-- Parses a capability CSV (scheduling.md §4): empty pieces skipped, no trimming, bounded.
-- Returns a set and a count, or nil and the error reply naming the side.
function Sched.parse_caps(csv, side)
  local set, count = {}, 0
  if not is_set(csv) then
    return set, 0
  end
  if #csv > CAPS_MAX_BYTES then
    return nil, err('invalid_capabilities', side .. ':too_many_bytes')
  end
  for token in string.gmatch(csv, '[^,]+') do
    count = count + 1
    if count > CAPS_MAX_TOKENS then
      return nil, err('invalid_capabilities', side .. ':too_many_tokens')
    end
    set[token] = true
  end
  return set, count
end

-- Checks the worker covers the execution's required capabilities. On a miss it stamps
-- last_capability_mismatch_at (the only write) and returns the capability_mismatch reply.
function Sched.match_caps(core_key, core, worker_csv, now)
  -- Most executions require nothing: then only the worker list's own bounds can fail, and a
  -- list of at most 512 bytes cannot hold more than 256 tokens. No sets to build.
  if not is_set(core.required_capabilities) and (not is_set(worker_csv) or #worker_csv <= 2 * CAPS_MAX_TOKENS) then
    return nil
  end
  local required, required_err = Sched.parse_caps(core.required_capabilities, 'required')
  if not required then return required_err end
  local worker, worker_err = Sched.parse_caps(worker_csv, 'worker')
  if not worker then return worker_err end
  local missing = {}
  for token in pairs(required) do
    if not worker[token] then
      missing[#missing + 1] = token
    end
  end
  if #missing == 0 then
    return nil
  end
  table.sort(missing)
  redis.call('HSET', core_key, 'last_capability_mismatch_at', now)
  return err('capability_mismatch', table.concat(missing, ','))
end

-- The exec_core fields a claim grant reads (the record has some fifty: HGETALL would copy
-- them all into Lua on every grant).
Sched.GRANT_CTX = {}
Sched.GRANT_CORE_FIELDS = { 'lifecycle_phase', 'eligibility_state', 'required_capabilities' }
-- Those fields of the execution a grant call reads: one map filled again by every call (hmget_into).
Sched.GRANT_CORE = {}

-- Writes the grant hash (scheduling.md §5) with its absolute expiry.
function Sched.write_grant(grant_key, A, now)
  local now_s, expires_s = num_text(now), num_text(now + A.grant_ttl_ms)
  redis.call('HSET', grant_key,
    'worker_id', A.worker_id,
    'worker_instance_id', A.worker_instance_id or '',
    'lane_id', A.lane_id or '',
    'capability_hash', A.capability_hash or '',
    'route_snapshot_json', A.route_snapshot_json or '',
    'admission_summary', A.admission_summary or '',
    'created_at', now_s,
    'grant_expires_at', expires_s)
  redis.call('PEXPIREAT', grant_key, expires_s)
end

redis.register_function('ff_issue_claim_grant', guard('ff_issue_claim_grant', function(keys, args)
  local K = {
    core = keys[1],
    claim_grant = keys[2],
    eligible_zset = keys[3],
  }
  local A = {
    execution_id = args[1],
    worker_id = args[2],
    worker_instance_id = args[3],
    lane_id = args[4],
    capability_hash = args[5],
    grant_ttl_ms = args[6],
    route_snapshot_json = args[7],
    admission_summary = args[8],
    worker_capabilities_csv = args[9],
  }
  local now = server_now()
  local core, missing = read_core(K.core, Sched.GRANT_CORE_FIELDS, Sched.GRANT_CORE)
  if not core then return missing end
  -- The eligible index is only read (ZSCORE): another lane's answers execution_not_in_eligible_set.
  local c = Sched.GRANT_CTX -- refilled, not built anew: see Exec.CREATE_CTX
  c.tag, c.execution_id = tag_of(K.core), A.execution_id
  local bad = check_keys('ff_issue_claim_grant', keys, c)
  if bad then return bad end
  if core.lifecycle_phase ~= 'runnable' or core.eligibility_state ~= 'eligible_now' then
    return err('execution_not_eligible')
  end
  if redis.call('EXISTS', K.claim_grant) == 1 then
    return err('grant_already_exists')
  end
  if not redis.call('ZSCORE', K.eligible_zset, A.execution_id) then
    return err('execution_not_in_eligible_set')
  end
  local mismatch = Sched.match_caps(K.core, core, A.worker_capabilities_csv, now)
  if mismatch then return mismatch end
  -- write phase
  Sched.write_grant(K.claim_grant, A, now)
  return ok(A.execution_id)
end))

redis.register_function('ff_change_priority', guard('ff_change_priority', function(keys, args)
  local K = {
    core = keys[1],
    eligible_zset = keys[2],
  }
  local A = {
    execution_id = args[1],
    new_priority = args[2],
  }
  local mismatch = check_core_key(K.core, A.execution_id)
  if mismatch then return mismatch end
  local now = server_now()
  local core, missing = read_core(K.core)
  if not core then return missing end
  local bad = check_keys('ff_change_priority', keys, { tag = tag_of(K.core), execution_id = A.execution_id, lane_id = core_lane(core) })
  if bad then return bad end
  if core.lifecycle_phase ~= 'runnable' or core.eligibility_state ~= 'eligible_now' then
    return err('execution_not_eligible')
  end
  local old_priority = parse_number(core.priority) or 0
  local new_priority = clamp_priority(A.new_priority)
  -- write phase
  redis.call('HSET', K.core, 'priority', to_text(new_priority), 'last_mutation_at', to_text(now))
  redis.call('ZADD', K.eligible_zset, eligible_score(new_priority, parse_number(core.created_at) or 0), A.execution_id)
  return ok(to_text(old_priority), to_text(new_priority))
end))

redis.register_function('ff_update_progress', guard('ff_update_progress', function(keys, args)
  local K = {
    core = keys[1],
  }
  local A = {
    execution_id = args[1],
    lease_id = args[2],
    lease_epoch = args[3],
    progress_pct = args[4],
    progress_message = args[5],
  }
  local now = server_now()
  local core, missing = read_core(K.core)
  if not core then return missing end
  if core.lifecycle_phase ~= 'active' then
    return err('execution_not_active', core.terminal_outcome or '', core.current_lease_epoch or '')
  end
  if core.ownership_state == 'lease_revoked' then
    return err('lease_revoked')
  end
  -- Unlike the write paths, an expired lease is reported but not marked here.
  if (parse_number(core.lease_expires_at) or 0) <= now then
    return err('lease_expired')
  end
  if core.current_lease_id ~= A.lease_id or core.current_lease_epoch ~= A.lease_epoch then
    return err('stale_lease')
  end
  local fields = { last_mutation_at = now, progress_updated_at = now }
  if A.progress_pct ~= nil then
    fields.progress_pct = A.progress_pct
  end
  if is_set(A.progress_message) then
    fields.progress_message = A.progress_message
  end
  -- write phase
  hset_table(K.core, fields)
  return ok()
end))

redis.register_function('ff_promote_delayed', guard('ff_promote_delayed', function(keys, args)
  local K = {
    core = keys[1],
    delayed_zset = keys[2],
    eligible_zset = keys[3],
  }
  local A = {
    execution_id = args[1],
    now_ms = args[2],
  }
  local eid = A.execution_id
  local mismatch = check_core_key(K.core, eid)
  if mismatch then return mismatch end
  local core = hgetall(K.core)
  local bad = check_keys('ff_promote_delayed', keys, { tag = tag_of(K.core), execution_id = eid, lane_id = next(core) ~= nil and core_lane(core) or nil })
  if bad then return bad end
  local stale
  if next(core) == nil then
    stale = 'not_found_cleaned'
  elseif core.lifecycle_phase ~= 'runnable' then
    stale = 'not_runnable_cleaned'
  elseif core.eligibility_state ~= 'not_eligible_until_time' then
    stale = 'not_delayed_cleaned'
  end
  -- write phase
  if stale then
    redis.call('ZREM', K.delayed_zset, eid)
    return ok(stale)
  end
  -- Resume-with-delay leaves delay_until empty: the delayed index's score holds the due
  -- time then; with neither, the execution is due.
  local due = parse_number(core.delay_until)
  if due == nil then
    due = parse_number(redis.call('ZSCORE', K.delayed_zset, eid))
  end
  if due ~= nil and due > A.now_ms then
    return ok('not_yet_due')
  end
  write_state(K.core, A.now_ms, {
    lifecycle_phase = 'runnable',
    ownership_state = 'unowned',
    eligibility_state = 'eligible_now',
    blocking_reason = 'waiting_for_worker',
    terminal_outcome = 'none',
    public_state = 'waiting',
  }, { delay_until = '' })
  redis.call('ZREM', K.delayed_zset, eid)
  redis.call('ZADD', K.eligible_zset,
    eligible_score(parse_number(core.priority) or 0, parse_number(core.created_at) or 0), eid)
  wake_lane(tag_of(K.core), core_lane(core))
  return ok('promoted')
end))

redis.register_function('ff_issue_reclaim_grant', guard('ff_issue_reclaim_grant', function(keys, args)
  local K = {
    core = keys[1],
    claim_grant = keys[2],
    lease_expiry = keys[3],
  }
  local A = {
    execution_id = args[1],
    worker_id = args[2],
    worker_instance_id = args[3],
    lane_id = args[4],
    capability_hash = args[5],
    grant_ttl_ms = args[6],
    route_snapshot_json = args[7],
    admission_summary = args[8],
    worker_capabilities_csv = args[9],
  }
  A.worker_instance_id = A.worker_instance_id or ''
  A.lane_id = A.lane_id or ''
  local now = server_now()
  local core, missing = read_core(K.core)
  if not core then return missing end
  local bad = check_keys('ff_issue_reclaim_grant', keys, { tag = tag_of(K.core), execution_id = A.execution_id })
  if bad then return bad end
  if core.lifecycle_phase ~= 'active' then
    return err('execution_not_reclaimable')
  end
  if core.ownership_state ~= 'lease_expired_reclaimable' and core.ownership_state ~= 'lease_revoked' then
    return err('execution_not_reclaimable')
  end
  if redis.call('EXISTS', K.claim_grant) == 1 then
    return err('grant_already_exists')
  end
  local mismatch = Sched.match_caps(K.core, core, A.worker_capabilities_csv, now)
  if mismatch then return mismatch end
  -- write phase
  Sched.write_grant(K.claim_grant, A, now)
  return ok(A.execution_id)
end))
