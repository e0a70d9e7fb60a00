-- Extension functions: a worker loop of one call per job. KEYS, ARGV, replies:
-- spec/fastpath.yaml. They reuse the contract functions' own steps (Exec.claim_refusal,
-- Exec.start_attempt, Exec.finish_success, Sched.match_caps), so the state they leave is the
-- state the contract functions leave.
local Fast = {}

-- What a claim reads of a candidate, and its required capabilities.
Fast.CANDIDATE_FIELDS = field_list({ Exec.CLAIM_FIELDS, { 'required_capabilities' } })
-- The same with the two core fields the input gives (with_input): one HMGET for both.
Fast.CANDIDATE_INPUT_FIELDS = field_list({ Fast.CANDIDATE_FIELDS, { 'execution_kind', 'flow_id' } })
-- A candidate's fields (hmget_into): one map per field list, filled again for every
-- candidate and call; the claimed one's is read until the call's reply is built, and by
-- nothing after.
Fast.CANDIDATE, Fast.CANDIDATE_INPUT = {}, {}
-- The next claim's arguments of ff_complete_and_claim_next: every field set again by each
-- call (attempt_policy and execution_deadline_at, which a fast-path claim does not take,
-- never are).
Fast.NEXT_CLAIM = {}

-- Parses the worker's capabilities of a claim of the next eligible execution (the guard has
-- checked every other argument against the spec).
function Fast.check_claim_args(A)
  local caps, caps_err = Sched.parse_caps(A.worker_capabilities_csv, 'worker')
  if not caps then return caps_err end
  return nil
end

-- The keys of one execution on the partition of `tag` (patterns of spec/keys.yaml `exec`),
-- in one table that every candidate and call fills again: a function runs alone, and
-- nothing keeps the table past the candidate it was filled for.
Fast.EK = {}
function Fast.exec_keys(tag, eid, K)
  local EK = Fast.EK
  EK.core = KEY.exec_core(tag, eid)
  EK.claim_grant = KEY.exec_claim_grant(tag, eid)
  EK.attempts = KEY.exec_attempts(tag, eid)
  EK.lease_current = KEY.exec_lease_current(tag, eid)
  EK.lease_history = KEY.exec_lease_history(tag, eid)
  EK.eligible = K.eligible
  EK.lease_expiry = K.lease_expiry
  EK.worker_leases = K.worker_leases
  EK.active = K.active
  EK.attempt_timeout = K.attempt_timeout
  EK.execution_deadline = K.execution_deadline
  return EK
end

-- Claims the first claimable of the lane's first max_candidates eligible executions, or
-- returns nil; else the core fields read (with the input's when A.with_input is '1'), the
-- execution id and the claim's six reply fields, as values. A refused candidate is left
-- untouched, except that a capability miss stamps last_capability_mismatch_at as the grant
-- function does.
function Fast.claim_head(K, A, now)
  local tag = tag_of(K.eligible)
  local heads = redis.call('ZRANGE', K.eligible, 0, A.max_candidates - 1)
  for i = 1, #heads do
    local eid = heads[i]
    local EK = Fast.exec_keys(tag, eid, K)
    local core, fields = Fast.CANDIDATE, Fast.CANDIDATE_FIELDS
    if A.with_input == '1' then core, fields = Fast.CANDIDATE_INPUT, Fast.CANDIDATE_INPUT_FIELDS end
    local found = hmget_into(core, EK.core, fields)
    -- A candidate filed under another lane than its own is left alone: its lane keys
    -- would not be the ones this call holds.
    if found and core_lane(core) == A.lane_id and not Exec.claim_refusal(core)
      and redis.call('EXISTS', EK.claim_grant) == 0
      and not Sched.match_caps(EK.core, core, A.worker_capabilities_csv, now) then
      -- The claim's arguments are A's, for this execution (A is not read again after).
      A.execution_id = eid
      return core, eid, Exec.start_attempt(EK, A, core, now, tag)
    end
  end
  return nil
end

-- Extension (issue 16): what a worker gives the claimed execution's handler, read in the
-- claiming call when asked (with_input), so the worker needs no second round trip per job.
-- Keys derived from the partition's hash tag, like the candidate's other keys; `core` is
-- what the claim read of the candidate (Fast.CANDIDATE_INPUT_FIELDS). Returns the five input
-- reply fields as values: kind, flow, payload, policy, tags.
function Fast.input(tag, eid, core)
  local tags = redis.call('HGETALL', KEY.exec_tags(tag, eid))
  local tags_json = ''
  if #tags > 0 then
    local map = {}
    for i = 1, #tags, 2 do map[tags[i]] = tags[i + 1] end
    tags_json = cjson.encode(map)
  end
  local payload = redis.call('GET', KEY.exec_payload(tag, eid)) or ''
  local policy = redis.call('GET', KEY.exec_policy(tag, eid)) or ''
  return core.execution_kind or '', core.flow_id or '', payload, policy, tags_json
end

-- The reply of a fast-path claim: status, the claimed execution and its claim fields, and
-- with_input its input fields; one table, built once.
function Fast.claimed_reply(status, A, tag, core, eid, lease_id, epoch, expires, attempt_id, index, attempt_type)
  if A.with_input == '1' then
    return ok(status, eid, lease_id, epoch, expires, attempt_id, index, attempt_type, Fast.input(tag, eid, core))
  end
  return ok(status, eid, lease_id, epoch, expires, attempt_id, index, attempt_type)
end

redis.register_function('ff_claim_next_eligible', guard('ff_claim_next_eligible', function(keys, args)
  local K = {
    eligible = keys[1],
    lease_expiry = keys[2],
    worker_leases = keys[3],
    active = keys[4],
    attempt_timeout = keys[5],
    execution_deadline = keys[6],
  }
  local A = {
    worker_id = args[1],
    worker_instance_id = args[2],
    lane_id = args[3],
    lease_id = args[4],
    attempt_id = args[5],
    lease_ttl_ms = args[6],
    renew_before_ms = args[7],
    worker_capabilities_csv = args[8],
    attempt_timeout_ms = args[9],
    max_candidates = args[10],
    with_input = args[11],
  }
  local bad = Fast.check_claim_args(A)
  if bad then return bad end
  local tag = tag_of(K.eligible)
  bad = check_keys('ff_claim_next_eligible', keys, {
    tag = tag, lane_id = A.lane_id, worker_instance_id = A.worker_instance_id,
  })
  if bad then return bad end
  -- write phase
  local core, eid, lease_id, epoch, expires, attempt_id, index, attempt_type = Fast.claim_head(K, A, server_now())
  if not core then
    return ok('empty')
  end
  return Fast.claimed_reply('claimed', A, tag, core, eid, lease_id, epoch, expires, attempt_id, index, attempt_type)
end))

redis.register_function('ff_complete_and_claim_next', guard('ff_complete_and_claim_next', function(keys, args)
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
    eligible = keys[13],
  }
  local A = {
    execution_id = args[1],
    lease_id = args[2],
    lease_epoch = args[3],
    attempt_id = args[4],
    result_payload = args[5],
    worker_id = args[6],
    next_worker_instance_id = args[7],
    next_lane_id = args[8],
    next_lease_id = args[9],
    next_attempt_id = args[10],
    lease_ttl_ms = args[11],
    renew_before_ms = args[12],
    worker_capabilities_csv = args[13],
    attempt_timeout_ms = args[14],
    max_candidates = args[15],
    with_input = args[16],
  }
  local mismatch, tag = check_core_key(K.core, A.execution_id)
  if mismatch then return mismatch end
  -- Everything the next claim needs is validated before the completion writes anything.
  local next_claim = Fast.NEXT_CLAIM
  next_claim.worker_id = A.worker_id
  next_claim.worker_instance_id = A.next_worker_instance_id
  next_claim.lane_id = A.next_lane_id
  next_claim.lease_id = A.next_lease_id
  next_claim.attempt_id = A.next_attempt_id
  next_claim.lease_ttl_ms = A.lease_ttl_ms
  next_claim.renew_before_ms = A.renew_before_ms
  next_claim.worker_capabilities_csv = A.worker_capabilities_csv
  next_claim.attempt_timeout_ms = A.attempt_timeout_ms
  next_claim.max_candidates = A.max_candidates
  next_claim.with_input = A.with_input
  next_claim.execution_id = nil -- set by claim_head for the execution it claims
  local bad = Fast.check_claim_args(next_claim)
  if bad then return bad end
  local now = server_now()
  local core, missing = read_core(K.core, LEASE_FIELDS, Exec.HOLDER_CORE)
  if not core then return missing end
  local rejected = validate_lease(K.core, K.lease_history, core, A.lease_id, A.lease_epoch, A.attempt_id, now)
    or Exec.check_holder_keys('ff_complete_and_claim_next', keys, K, A, core, tag)
  if rejected then return rejected end
  -- The next claim uses the same lane and worker-set KEYS: it must be the holder's lane and instance.
  if A.next_lane_id ~= core_lane(core) or A.next_worker_instance_id ~= (core.current_worker_instance_id or '') then
    return err('invalid_input', 'next_lane_id and next_worker_instance_id must be the lease holder\'s lane and worker instance')
  end
  -- write phase
  Exec.finish_success(K, A, core, now)
  local claimed, eid, lease_id, epoch, expires, attempt_id, index, attempt_type = Fast.claim_head(K, next_claim, now)
  if not claimed then
    return ok('completed')
  end
  return Fast.claimed_reply('claimed_next', A, tag, claimed, eid, lease_id, epoch, expires, attempt_id, index, attempt_type)
end))
