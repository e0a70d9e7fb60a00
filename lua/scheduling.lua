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

-- Writes the grant hash (scheduling.md §5) with its absolute expiry.
function Sched.write_grant(grant_key, A, now)
  local expires_at = now + A.grant_ttl_ms
  redis.call('HSET', grant_key,
    'worker_id', A.worker_id,
    'worker_instance_id', A.worker_instance_id,
    'lane_id', A.lane_id,
    'capability_hash', A.capability_hash or '',
    'route_snapshot_json', A.route_snapshot_json or '',
    'admission_summary', A.admission_summary or '',
    'created_at', now,
    'grant_expires_at', expires_at)
  redis.call('PEXPIREAT', grant_key, expires_at)
end

redis.register_function('ff_issue_claim_grant', guard(function(keys, args)
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
  local bad = check_args(A, { { 'grant_ttl_ms', 'int' }, { 'execution_id', 'nonempty' } })
  if bad then return bad end
  if A.grant_ttl_ms <= 0 then
    return err('invalid_input', 'grant_ttl_ms must be positive, got: ' .. args[6])
  end
  local now = server_now()
  local core = hgetall(K.core)
  if next(core) == nil then
    return err('execution_not_found')
  end
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
  Sched.write_grant(K.claim_grant, A, now)
  return ok(A.execution_id)
end))
