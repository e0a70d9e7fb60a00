-- Suspension, waitpoints and the waitpoint HMAC key ring. KEYS, ARGV and replies:
-- spec/suspension.yaml. Module-local helpers live in the one table Susp; signal.lua (bundled
-- after this file) uses its token, condition and resume helpers too.
local Susp = {}

---------------------------------------------------------------------------
-- Waitpoint tokens (model.md §8): HMAC-SHA1 over `<waitpoint_id>|<waitpoint_key>|<created_at>`,
-- built from redis.sha1hex and the bit library. Secrets never leave these functions (nor
-- does the cache of their padded keys, which lives in the library's own Lua state).
---------------------------------------------------------------------------

-- The byte of each two-digit hex pair, in either case ('0a', 'A0', ...), for gsub. Built on
-- first use: the string library is not reachable while the library loads.
function Susp.hex_pairs()
  if not Susp.HEX_PAIRS then
    local digits, pairs_map = '0123456789abcdefABCDEF', {}
    for i = 1, #digits do
      for j = 1, #digits do
        local pair = string.sub(digits, i, i) .. string.sub(digits, j, j)
        pairs_map[pair] = string.char(tonumber(pair, 16))
      end
    end
    Susp.HEX_PAIRS = pairs_map
  end
  return Susp.HEX_PAIRS
end

-- Bytes of a hex text (either case), or nil when it is not whole hex.
function Susp.hex_decode(hex)
  if type(hex) ~= 'string' or #hex % 2 ~= 0 or string.find(hex, '[^0-9a-fA-F]') then
    return nil
  end
  return (string.gsub(hex, '..', Susp.hex_pairs()))
end

-- The 64-byte block key XOR-ed with one pad byte.
function Susp.pad_key(block_key, pad)
  local out = {}
  for i = 1, 64 do
    out[i] = string.char(bit.bxor(string.byte(block_key, i), pad))
  end
  return table.concat(out)
end

-- The RFC 2104 inner and outer padded keys of a secret (its hex text), or nil when the
-- secret is not hex. Kept per secret for the life of the loaded library, so a token costs
-- two SHA-1 runs in C rather than a hundred-odd byte operations in Lua; the cache is
-- emptied when it reaches PAD_CACHE_MAX secrets (rotations add new ones).
Susp.PAD_CACHE, Susp.PAD_CACHE_SIZE, Susp.PAD_CACHE_MAX = {}, 0, 1024

function Susp.pads(secret_hex)
  local cached = Susp.PAD_CACHE[secret_hex]
  if cached then
    return cached[1], cached[2]
  end
  local key = Susp.hex_decode(secret_hex)
  if key == nil then
    return nil
  end
  if #key > 64 then
    key = Susp.hex_decode(redis.sha1hex(key))
  end
  key = key .. string.rep('\0', 64 - #key)
  local inner, outer = Susp.pad_key(key, 0x36), Susp.pad_key(key, 0x5c)
  if Susp.PAD_CACHE_SIZE >= Susp.PAD_CACHE_MAX then
    Susp.PAD_CACHE, Susp.PAD_CACHE_SIZE = {}, 0
  end
  Susp.PAD_CACHE[secret_hex] = { inner, outer }
  Susp.PAD_CACHE_SIZE = Susp.PAD_CACHE_SIZE + 1
  return inner, outer
end

-- RFC 2104 HMAC-SHA1 of message from a secret's padded keys; lowercase hex digest.
function Susp.hmac_sha1(inner_pad, outer_pad, message)
  local inner = Susp.hex_decode(redis.sha1hex(inner_pad .. message))
  return redis.sha1hex(outer_pad .. inner)
end

-- Compares two digests in time that does not depend on where they differ: it compares
-- their SHA-1s (Lua's own string comparison gives no such promise).
function Susp.same_digest(a, b)
  return redis.sha1hex(a) == redis.sha1hex(b)
end

function Susp.token_message(waitpoint_id, waitpoint_key, created_at_text)
  return waitpoint_id .. '|' .. waitpoint_key .. '|' .. created_at_text
end

-- Mints a token with the partition's current kid (§8.2). Reads only. Returns the token,
-- or nil and the error reply.
function Susp.mint(secrets_key, waitpoint_id, waitpoint_key, created_at)
  if not is_set(secrets_key) then
    return nil, err('invalid_keys_missing_hmac')
  end
  local kid = redis.call('HGET', secrets_key, 'current_kid')
  if not is_set(kid) then
    return nil, err('hmac_secret_not_initialized')
  end
  local secret = redis.call('HGET', secrets_key, 'secret:' .. kid)
  if not is_set(secret) then
    return nil, err('hmac_secret_not_initialized')
  end
  local inner, outer = Susp.pads(secret)
  if inner == nil then
    return nil, err('invalid_secret')
  end
  return kid .. ':' .. Susp.hmac_sha1(inner, outer, Susp.token_message(waitpoint_id, waitpoint_key, to_text(created_at)))
end

-- Verifies a presented token (§8.3, checks in order). Reads only. Returns nil when valid,
-- else the error code.
function Susp.verify(secrets_key, token, waitpoint_id, waitpoint_key, created_at_text, now)
  if not is_set(secrets_key) then
    return 'invalid_keys_missing_hmac'
  end
  if not is_set(token) then
    return 'missing_token'
  end
  local colon = string.find(token, ':', 1, true)
  if colon == nil or colon == 1 or colon == #token then
    return 'invalid_token'
  end
  local kid = string.sub(token, 1, colon - 1)
  local digest = string.sub(token, colon + 1)
  if #digest ~= 40 then
    return 'invalid_token'
  end
  local ring = hgetall(secrets_key)
  if not is_set(ring.current_kid) then
    return 'hmac_secret_not_initialized'
  end
  local secret = ring['secret:' .. kid]
  if kid == ring.current_kid then
    if not is_set(secret) then
      return 'invalid_token'
    end
  else
    if secret == nil then
      return 'invalid_token'
    end
    local expires_at = parse_number(ring['expires_at:' .. kid])
    if expires_at == nil or expires_at <= 0 or expires_at < now then
      return 'token_expired'
    end
  end
  local inner, outer = Susp.pads(secret)
  if inner == nil then
    return 'invalid_secret'
  end
  local expected = Susp.hmac_sha1(inner, outer, Susp.token_message(waitpoint_id, waitpoint_key, created_at_text))
  if not Susp.same_digest(expected, digest) then
    return 'invalid_token'
  end
  return nil
end

---------------------------------------------------------------------------
-- Resume conditions (suspension.md §A, model.md §4.8)
---------------------------------------------------------------------------

-- Validates resume_condition_json, as the guard decoded it. Returns a fresh condition state,
-- or nil and the invalid_input reply.
function Susp.parse_condition(spec)
  local function bad(what)
    return nil, err('invalid_input', 'resume_condition_json ' .. what)
  end
  if type(spec) ~= 'table' then
    return bad('must be a JSON object')
  end
  local condition_type = spec.condition_type
  if condition_type == nil then
    condition_type = 'signal_set'
  elseif type(condition_type) ~= 'string' then
    return bad('condition_type must be a string')
  end
  local mode = spec.signal_match_mode
  if mode == nil then
    mode = 'any'
  elseif type(mode) ~= 'string' then
    return bad('signal_match_mode must be a string')
  end
  local minimum = spec.minimum_signal_count
  if minimum == nil then
    minimum = 1
  else
    minimum = parse_number(minimum)
    if minimum == nil then
      return bad('minimum_signal_count must be a number')
    end
  end
  local names = {}
  local raw = spec.required_signal_names
  if raw ~= nil then
    local array = type(raw) == 'table'
    if array then
      local count = 0
      for _ in pairs(raw) do
        count = count + 1
      end
      array = count == #raw
      for i = 1, #raw do
        if type(raw[i]) ~= 'string' then
          array = false
        end
        names[i] = raw[i]
      end
    end
    if not array then
      return bad('required_signal_names must be an array of strings')
    end
  end
  if #names == 0 then
    names[1] = ''
  end
  local satisfied, signal_ids = {}, {}
  for i = 1, #names do
    satisfied[i] = false
    signal_ids[i] = ''
  end
  return {
    condition_type = condition_type, match_mode = mode, minimum = minimum, names = names,
    satisfied = satisfied, signal_ids = signal_ids, count = 0,
  }
end

-- The condition state stored in a condition hash (HGETALL map).
function Susp.load_condition(map)
  local total = parse_int(map.total_matchers) or 0
  local names, satisfied, signal_ids = {}, {}, {}
  for i = 1, total do
    local prefix = 'matcher:' .. (i - 1) .. ':'
    names[i] = map[prefix .. 'name'] or ''
    satisfied[i] = map[prefix .. 'satisfied'] == '1'
    signal_ids[i] = map[prefix .. 'signal_id'] or ''
  end
  return {
    condition_type = map.condition_type or 'signal_set', match_mode = map.match_mode or 'any',
    minimum = parse_number(map.minimum_signal_count) or 1, names = names,
    satisfied = satisfied, signal_ids = signal_ids, count = parse_number(map.satisfied_count) or 0,
  }
end

-- Offers a signal to the matchers: it takes the first unsatisfied one whose name is empty or
-- equal to the signal's. Returns that matcher's 1-based index, or nil (no-op).
function Susp.offer(condition, signal_name, signal_id)
  for i = 1, #condition.names do
    local name = condition.names[i]
    if not condition.satisfied[i] and (name == '' or name == signal_name) then
      condition.satisfied[i] = true
      condition.signal_ids[i] = signal_id
      condition.count = condition.count + 1
      return i
    end
  end
  return nil
end

function Susp.is_satisfied(condition)
  if condition.match_mode == 'all' then
    return condition.count >= #condition.names
  end
  return condition.count >= condition.minimum
end

-- Writes the whole condition hash; closed_reason given = written closed.
function Susp.write_condition(key, condition, now, closed_reason)
  redis.call('DEL', key)
  redis.call('HSET', key,
    'condition_type', condition.condition_type,
    'match_mode', condition.match_mode,
    'minimum_signal_count', to_text(condition.minimum),
    'total_matchers', to_text(#condition.names),
    'satisfied_count', to_text(condition.count),
    'closed', closed_reason and '1' or '0',
    'updated_at', to_text(now))
  for i = 1, #condition.names do
    local prefix = 'matcher:' .. (i - 1) .. ':'
    redis.call('HSET', key,
      prefix .. 'name', condition.names[i],
      prefix .. 'satisfied', condition.satisfied[i] and '1' or '0',
      prefix .. 'signal_id', condition.signal_ids[i])
  end
  if closed_reason then
    Susp.close_condition(key, now, closed_reason)
  end
end

function Susp.close_condition(key, now, reason)
  redis.call('HSET', key, 'closed', '1', 'closed_at', to_text(now), 'closed_reason', reason)
end

-- Closes a waitpoint hash; satisfied also stamps satisfied_at.
function Susp.close_waitpoint(key, now, reason, satisfied)
  if satisfied then
    redis.call('HSET', key, 'state', 'closed', 'satisfied_at', to_text(now), 'closed_at', to_text(now), 'close_reason', reason)
  else
    redis.call('HSET', key, 'state', 'closed', 'closed_at', to_text(now), 'close_reason', reason)
  end
end

---------------------------------------------------------------------------
-- State transitions and argument checks shared by the suspension and signal functions
---------------------------------------------------------------------------

-- reason_code → blocking_reason (model.md §4.11); anything else reads as waiting_for_signal.
Susp.BLOCKING_REASON = {
  waiting_for_signal = 'waiting_for_signal',
  waiting_for_approval = 'waiting_for_approval',
  waiting_for_callback = 'waiting_for_callback',
  waiting_for_tool_result = 'waiting_for_tool_result',
  waiting_for_operator_review = 'paused_by_operator',
  paused_by_policy = 'paused_by_policy',
  paused_by_budget = 'waiting_for_budget',
  step_boundary = 'waiting_for_signal',
  manual_pause = 'paused_by_operator',
}

-- Terminal timeout behaviours: terminal_outcome / public_state, close reason, attempt end state.
Susp.TERMINAL_TIMEOUT = {
  fail = { 'failed', 'timed_out_fail', 'ended_failure' },
  cancel = { 'cancelled', 'timed_out_cancel', 'ended_cancelled' },
  expire = { 'expired', 'timed_out_expire', 'ended_failure' },
}


-- The exec_core fields Susp.lane_of and Susp.make_runnable read, for callers that HMGET.
Susp.LANE_FIELDS = { 'lane_id' }
Susp.RUNNABLE_FIELDS = { 'priority', 'created_at' }

function Susp.lane_of(core)
  if is_set(core.lane_id) then
    return core.lane_id
  end
  return DEFAULTS.lane_id
end

-- Checks that caller-built KEYS are the ones their arguments or the stored state name:
-- checks is a list of { actual, expected, slot name }. Returns the invalid_input reply or nil.
function Susp.keys_match(checks)
  for i = 1, #checks do
    local check = checks[i]
    if check[1] ~= check[2] then
      return err('invalid_input', check[3] .. ' must be ' .. tostring(check[2]) .. ', got: ' .. tostring(check[1]))
    end
  end
  return nil
end


-- Moves a suspended execution to runnable: eligible now, or delayed by delay_ms (with
-- delay_until written so the delayed promoter can promote it). L = lane index keys
-- { suspended, eligible, delayed }.
function Susp.make_runnable(core_key, core, eid, L, delay_ms, delay_detail, now)
  local delayed = delay_ms > 0
  local extra = { current_suspension_id = '', current_waitpoint_id = '' }
  if delayed then
    extra.delay_until = now + delay_ms
  end
  write_state(core_key, now, {
    lifecycle_phase = 'runnable',
    ownership_state = 'unowned',
    eligibility_state = delayed and 'not_eligible_until_time' or 'eligible_now',
    blocking_reason = delayed and 'waiting_for_resume_delay' or 'waiting_for_worker',
    blocking_detail = delayed and delay_detail or '',
    terminal_outcome = 'none',
    attempt_state = 'attempt_interrupted',
    public_state = delayed and 'delayed' or 'waiting',
  }, extra)
  redis.call('ZREM', L.suspended, eid)
  if delayed then
    redis.call('ZADD', L.delayed, now + delay_ms, eid)
  else
    local score = eligible_score(parse_number(core.priority) or 0, parse_number(core.created_at) or 0)
    redis.call('ZADD', L.eligible, score, eid)
    -- The lane is the one in the eligible key (callers checked it against exec_core).
    wake_lane(tag_of(L.eligible), string.match(L.eligible, ':lane:(.*):eligible$') or 'default')
  end
  return delayed and 'delayed' or 'waiting'
end

-- Replays a waitpoint's buffered signals through a condition (activation). Returns whether
-- there was at least one.
function Susp.replay_buffered(stream_key, condition)
  local entries = redis.call('XRANGE', stream_key, '-', '+')
  for i = 1, #entries do
    local flat = entries[i][2]
    local fields = {}
    for j = 1, #flat, 2 do
      fields[flat[j]] = flat[j + 1]
    end
    Susp.offer(condition, fields.signal_name or '', fields.signal_id or '')
  end
  return #entries > 0
end

---------------------------------------------------------------------------
-- Functions
---------------------------------------------------------------------------

-- What a suspend reads of exec_core: the lease (validate_lease, mark_expired) and the lane.
Susp.SUSPEND_CORE_FIELDS = field_list({ LEASE_FIELDS, Susp.LANE_FIELDS })

redis.register_function('ff_suspend_execution', guard('ff_suspend_execution', function(keys, args)
  local K = {
    core = keys[1],
    attempt_record = keys[2],
    lease_current = keys[3],
    lease_history = keys[4],
    lease_expiry_zset = keys[5],
    worker_leases = keys[6],
    suspension_current = keys[7],
    waitpoint_hash = keys[8],
    waitpoint_signals = keys[9],
    suspension_timeout_zset = keys[10],
    pending_wp_expiry_zset = keys[11],
    active_index = keys[12],
    suspended_zset = keys[13],
    waitpoint_history = keys[14],
    wp_condition = keys[15],
    attempt_timeout_zset = keys[16],
    hmac_secrets = keys[17],
  }
  local A = {
    execution_id = args[1],
    attempt_index = args[2],
    attempt_id = args[3],
    lease_id = args[4],
    lease_epoch = args[5],
    suspension_id = args[6],
    waitpoint_id = args[7],
    waitpoint_key = args[8] or '',
    reason_code = args[9] or '',
    requested_by = args[10] or '',
    timeout_at = args[11],
    resume_condition_json = args[12],
    resume_policy_json = args[13] or '',
    continuation_metadata_pointer = args[14] or '',
    use_pending_waitpoint = args[15],
    timeout_behavior = args[16] or 'fail',
    lease_history_maxlen = args[17],
  }
  local condition, condition_error = Susp.parse_condition(args.json and args.json.resume_condition_json)
  if not condition then return condition_error end
  local tag = tag_of(K.core)
  local eid = A.execution_id
  local bad = check_core_key(K.core, eid)
  if bad then return bad end

  local now = server_now()
  local core, missing = read_core(K.core, Susp.SUSPEND_CORE_FIELDS)
  if not core then return missing end
  local rejected = validate_lease(K.core, K.lease_history, core, A.lease_id, A.lease_epoch, A.attempt_id, now)
  if rejected then return rejected end
  if core.current_attempt_index ~= A.attempt_index then
    return err('invalid_lease_for_suspend')
  end
  local previous = hgetall(K.suspension_current)
  if next(previous) ~= nil and not is_set(previous.closed_at) then
    return err('already_suspended')
  end

  local activate = A.use_pending_waitpoint == '1'
  local waitpoint_id, waitpoint_key, token = A.waitpoint_id, A.waitpoint_key, nil
  if activate then
    local wp = hgetall(K.waitpoint_hash)
    if next(wp) == nil then return err('waitpoint_not_found') end
    if wp.state ~= 'pending' then return err('waitpoint_not_pending') end
    if wp.execution_id ~= eid or wp.attempt_index ~= A.attempt_index then
      return err('invalid_waitpoint_for_execution')
    end
    if is_set(wp.expires_at) and (parse_number(wp.expires_at) or 0) <= now then
      return err('pending_waitpoint_expired')
    end
    if not is_set(wp.waitpoint_token) then return err('waitpoint_not_token_bound') end
    waitpoint_key = wp.waitpoint_key or ''
    token = wp.waitpoint_token
  else
    local mint_error
    token, mint_error = Susp.mint(K.hmac_secrets, A.waitpoint_id, A.waitpoint_key, now)
    if not token then return mint_error end
  end
  -- Everything above only read: now every KEY must be the execution's, its attempt's, the
  -- waitpoint's, its lane's and the lease holder's.
  bad = check_keys('ff_suspend_execution', keys, {
    tag = tag, execution_id = eid, attempt_index = A.attempt_index, waitpoint_id = A.waitpoint_id,
    lane_id = Susp.lane_of(core), worker_instance_id = core.current_worker_instance_id or '',
  })
  if bad then return bad end
  -- Buffered signals of a pending waitpoint are replayed before anything is written.
  local satisfied = activate and Susp.replay_buffered(K.waitpoint_signals, condition) and Susp.is_satisfied(condition)

  -- Every check passed: from here on, only writes.
  -- write phase
  if next(previous) ~= nil then
    if is_set(previous.waitpoint_id) then
      redis.call('SADD', K.waitpoint_history, previous.waitpoint_id)
    end
    redis.call('DEL', K.suspension_current)
  end
  local timeout_text = A.timeout_at ~= nil and to_text(A.timeout_at) or ''
  if activate then
    redis.call('HSET', K.waitpoint_hash, 'suspension_id', A.suspension_id, 'state', 'active',
      'activated_at', to_text(now), 'expires_at', timeout_text)
    redis.call('ZREM', K.pending_wp_expiry_zset, waitpoint_id)
    if satisfied then
      Susp.close_waitpoint(K.waitpoint_hash, now, 'resumed', true)
      Susp.write_condition(K.wp_condition, condition, now, 'satisfied')
      return ok_status('ALREADY_SATISFIED', A.suspension_id, waitpoint_id, waitpoint_key, token)
    end
  else
    hset_table(K.waitpoint_hash, {
      waitpoint_id = waitpoint_id, execution_id = eid, attempt_index = A.attempt_index,
      suspension_id = A.suspension_id, waitpoint_key = waitpoint_key, waitpoint_token = token,
      state = 'active', created_at = now, activated_at = now, expires_at = timeout_text,
      signal_count = 0, matched_signal_count = 0, last_signal_at = '',
    })
  end
  Susp.write_condition(K.wp_condition, condition, now, nil)

  redis.call('SADD', K.waitpoint_history, waitpoint_id)
  write_state(K.core, now, {
    lifecycle_phase = 'suspended',
    ownership_state = 'unowned',
    eligibility_state = 'not_applicable',
    blocking_reason = Susp.BLOCKING_REASON[A.reason_code] or 'waiting_for_signal',
    blocking_detail = 'suspended: waitpoint ' .. waitpoint_id .. ' awaiting ' .. A.reason_code,
    terminal_outcome = 'none',
    attempt_state = 'attempt_interrupted',
    public_state = 'suspended',
  }, {
    current_lease_id = '', current_worker_id = '', current_worker_instance_id = '',
    lease_expires_at = '', lease_last_renewed_at = '', lease_renewal_deadline = '',
    current_suspension_id = A.suspension_id, current_waitpoint_id = waitpoint_id,
  })
  redis.call('HSET', K.attempt_record, 'attempt_state', 'suspended', 'suspended_at', to_text(now),
    'suspension_id', A.suspension_id)
  redis.call('DEL', K.lease_current)
  redis.call('ZREM', K.lease_expiry_zset, eid)
  redis.call('SREM', K.worker_leases, eid)
  redis.call('ZREM', K.active_index, eid)
  redis.call('ZREM', K.attempt_timeout_zset, eid)
  history_add(K.lease_history, {
    'event', 'released', 'lease_id', A.lease_id, 'lease_epoch', A.lease_epoch,
    'attempt_index', A.attempt_index, 'attempt_id', core.current_attempt_id,
    'reason', 'suspend', 'ts', now,
  }, A.lease_history_maxlen)
  hset_table(K.suspension_current, {
    suspension_id = A.suspension_id, execution_id = eid, attempt_index = A.attempt_index,
    waitpoint_id = waitpoint_id, waitpoint_key = waitpoint_key, reason_code = A.reason_code,
    requested_by = A.requested_by, created_at = now, timeout_at = timeout_text,
    timeout_behavior = A.timeout_behavior, resume_condition_json = A.resume_condition_json,
    resume_policy_json = A.resume_policy_json,
    continuation_metadata_pointer = A.continuation_metadata_pointer,
    buffered_signal_summary_json = '{"total_count":0,"matched_count":0,"signal_names":[]}',
    last_signal_at = '', satisfied_at = '', closed_at = '', close_reason = '',
  })
  redis.call('ZADD', K.suspended_zset, A.timeout_at or SUSPENDED_NO_TIMEOUT_SCORE, eid)
  if A.timeout_at ~= nil then
    redis.call('ZADD', K.suspension_timeout_zset, A.timeout_at, eid)
  end
  return ok(A.suspension_id, waitpoint_id, waitpoint_key, token)
end))

redis.register_function('ff_resume_execution', guard('ff_resume_execution', function(keys, args)
  local K = {
    core = keys[1],
    suspension_current = keys[2],
    waitpoint_hash = keys[3],
    waitpoint_signals = keys[4],
    suspension_timeout_zset = keys[5],
    eligible_zset = keys[6],
    delayed_zset = keys[7],
    suspended_zset = keys[8],
  }
  local A = {
    execution_id = args[1],
    trigger_type = args[2] or 'signal',
    resume_delay_ms = args[3],
  }
  local tag = tag_of(K.core)
  local eid = A.execution_id
  local bad = Susp.keys_match({ { eid_of_exec_key(K.core), eid, 'execution_id of KEYS[1]' } })
  if bad then return bad end

  local now = server_now()
  local core, missing = read_core(K.core)
  if not core then return missing end
  if core.lifecycle_phase ~= 'suspended' then
    return err('execution_not_suspended')
  end
  local suspension = hgetall(K.suspension_current)
  if not is_set(suspension.suspension_id) or is_set(suspension.closed_at) then
    return err('execution_not_suspended')
  end
  local wp_key = KEY.partition_waitpoint(tag, suspension.waitpoint_id or '')
  local lane = Susp.lane_of(core)
  bad = Susp.keys_match({
    { K.waitpoint_hash, wp_key, 'KEYS[3] (waitpoint of the open suspension)' },
    { K.waitpoint_signals, wp_key .. ':signals', 'KEYS[4] (waitpoint of the open suspension)' },
    { K.eligible_zset, KEY.partition_lane_eligible(tag, lane), 'KEYS[6] (lane of exec_core)' },
    { K.delayed_zset, KEY.partition_lane_delayed(tag, lane), 'KEYS[7] (lane of exec_core)' },
    { K.suspended_zset, KEY.partition_lane_suspended(tag, lane), 'KEYS[8] (lane of exec_core)' },
  })
  if bad then return bad end

  -- write phase
  local public_state = Susp.make_runnable(K.core, core, eid,
    { suspended = K.suspended_zset, eligible = K.eligible_zset, delayed = K.delayed_zset },
    A.resume_delay_ms, 'resume delay ' .. A.resume_delay_ms .. 'ms', now)
  Susp.close_waitpoint(K.waitpoint_hash, now, 'resumed', true)
  -- Derived from KEYS[3], so on the call's slot: a closed waitpoint takes no more signals.
  local condition_key = K.waitpoint_hash .. ':condition'
  if redis.call('EXISTS', condition_key) == 1 then
    Susp.close_condition(condition_key, now, 'resumed')
  end
  redis.call('HSET', K.suspension_current, 'satisfied_at', to_text(now), 'closed_at', to_text(now),
    'close_reason', 'resumed')
  redis.call('ZREM', K.suspension_timeout_zset, eid)
  return ok(public_state)
end))

redis.register_function('ff_create_pending_waitpoint', guard('ff_create_pending_waitpoint', function(keys, args)
  local K = {
    core = keys[1],
    waitpoint_hash = keys[2],
    pending_wp_expiry_zset = keys[3],
    hmac_secrets = keys[4],
  }
  local A = {
    execution_id = args[1],
    attempt_index = args[2],
    waitpoint_id = args[3],
    waitpoint_key = args[4] or '',
    expires_at = args[5],
  }
  local tag = tag_of(K.core)
  local eid = A.execution_id
  local bad = Susp.keys_match({
    { eid_of_exec_key(K.core), eid, 'execution_id of KEYS[1]' },
    { K.waitpoint_hash, KEY.partition_waitpoint(tag, A.waitpoint_id), 'KEYS[2]' },
  })
  if bad then return bad end

  local now = server_now()
  local core, missing = read_core(K.core)
  if not core then return missing end
  if core.lifecycle_phase ~= 'active' then
    return err('execution_not_active', core.terminal_outcome or '', core.current_lease_epoch or '')
  end
  if core.ownership_state ~= 'leased' then
    return err('no_active_lease')
  end
  if core.current_attempt_index ~= A.attempt_index then
    return err('stale_lease')
  end
  local state = redis.call('HGET', K.waitpoint_hash, 'state')
  if state == 'pending' or state == 'active' then
    return err('waitpoint_already_exists')
  end
  local token, mint_error = Susp.mint(K.hmac_secrets, A.waitpoint_id, A.waitpoint_key, now)
  if not token then return mint_error end

  -- write phase
  hset_table(K.waitpoint_hash, {
    waitpoint_id = A.waitpoint_id, execution_id = eid, attempt_index = A.attempt_index,
    suspension_id = '', waitpoint_key = A.waitpoint_key, waitpoint_token = token,
    state = 'pending', created_at = now, activated_at = '', satisfied_at = '', closed_at = '',
    expires_at = A.expires_at, close_reason = '', signal_count = 0, matched_signal_count = 0,
    last_signal_at = '',
  })
  redis.call('ZADD', K.pending_wp_expiry_zset, A.expires_at, A.waitpoint_id)
  return ok(A.waitpoint_id, A.waitpoint_key, token)
end))

redis.register_function('ff_expire_suspension', guard('ff_expire_suspension', function(keys, args)
  local K = {
    core = keys[1],
    suspension_current = keys[2],
    waitpoint_hash = keys[3],
    wp_condition = keys[4],
    attempt_hash = keys[5],
    stream_meta = keys[6],
    suspension_timeout_zset = keys[7],
    suspended_zset = keys[8],
    terminal_zset = keys[9],
    eligible_zset = keys[10],
    delayed_zset = keys[11],
    lease_history = keys[12],
  }
  local A = {
    execution_id = args[1],
  }
  local tag = tag_of(K.core)
  local eid = A.execution_id
  local bad = Susp.keys_match({ { eid_of_exec_key(K.core), eid, 'execution_id of KEYS[1]' } })
  if bad then return bad end

  local now = server_now()
  local core = hgetall(K.core)
  if next(core) == nil then
    -- write phase
    redis.call('ZREM', K.suspension_timeout_zset, eid)
    return ok('not_found_cleaned')
  end
  if core.lifecycle_phase ~= 'suspended' then
    -- write phase
    redis.call('ZREM', K.suspension_timeout_zset, eid)
    return ok('not_suspended_cleaned')
  end
  local suspension = hgetall(K.suspension_current)
  if not is_set(suspension.suspension_id) or is_set(suspension.closed_at) then
    -- write phase
    redis.call('ZREM', K.suspension_timeout_zset, eid)
    return ok('no_active_suspension_cleaned')
  end
  -- No timeout (never set, or cleared by escalation) is never due.
  local timeout_at = parse_number(suspension.timeout_at)
  if timeout_at == nil or timeout_at == 0 or timeout_at > now then
    return ok('not_yet_due')
  end
  local behavior = suspension.timeout_behavior
  if behavior == nil then
    behavior = 'fail'
  end
  local wp_key = KEY.partition_waitpoint(tag, suspension.waitpoint_id or '')
  local lane = Susp.lane_of(core)
  local checks = {
    { K.waitpoint_hash, wp_key, 'KEYS[3] (waitpoint of the open suspension)' },
    { K.wp_condition, wp_key .. ':condition', 'KEYS[4] (waitpoint of the open suspension)' },
    { K.suspended_zset, KEY.partition_lane_suspended(tag, lane), 'KEYS[8] (lane of exec_core)' },
    { K.terminal_zset, KEY.partition_lane_terminal(tag, lane), 'KEYS[9] (lane of exec_core)' },
    { K.eligible_zset, KEY.partition_lane_eligible(tag, lane), 'KEYS[10] (lane of exec_core)' },
  }
  local attempt_index = core.current_attempt_index
  if is_set(attempt_index) then
    checks[#checks + 1] = { K.attempt_hash, KEY.exec_attempt_hash(tag, eid, attempt_index), 'KEYS[5] (current attempt)' }
    checks[#checks + 1] = { K.stream_meta, KEY.exec_stream_meta(tag, eid, attempt_index), 'KEYS[6] (current attempt)' }
  end
  bad = Susp.keys_match(checks)
  if bad then return bad end
  -- write phase
  if behavior == 'auto_resume' or behavior == 'auto_resume_with_timeout_signal' then
    Susp.make_runnable(K.core, core, eid,
      { suspended = K.suspended_zset, eligible = K.eligible_zset, delayed = K.delayed_zset }, 0, '', now)
    Susp.close_waitpoint(K.waitpoint_hash, now, 'timed_out_auto_resume', false)
    Susp.close_condition(K.wp_condition, now, 'timed_out_auto_resume')
    redis.call('HSET', K.suspension_current, 'closed_at', to_text(now), 'close_reason', 'timed_out_auto_resume')
    redis.call('ZREM', K.suspension_timeout_zset, eid)
    return ok('auto_resume', 'waiting')
  end

  if behavior == 'escalate' then
    write_state(K.core, now, {
      lifecycle_phase = 'suspended',
      ownership_state = 'unowned',
      eligibility_state = 'not_applicable',
      blocking_reason = 'paused_by_operator',
      blocking_detail = 'suspension escalated: timeout at ' .. suspension.timeout_at,
      terminal_outcome = 'none',
      attempt_state = core.attempt_state or 'attempt_interrupted',
      public_state = 'suspended',
    }, nil, false)
    redis.call('HSET', K.suspension_current, 'reason_code', 'waiting_for_operator_review',
      'timeout_at', '', 'timeout_behavior', '')
    redis.call('ZREM', K.suspension_timeout_zset, eid)
    return ok('escalate', 'suspended')
  end

  local terminal = Susp.TERMINAL_TIMEOUT[behavior] or Susp.TERMINAL_TIMEOUT.fail
  local outcome, close_reason, attempt_end = terminal[1], terminal[2], terminal[3]
  local failure_reason = 'suspension_timeout:' .. behavior
  write_state(K.core, now, {
    lifecycle_phase = 'terminal',
    ownership_state = 'unowned',
    eligibility_state = 'not_applicable',
    blocking_reason = 'none',
    terminal_outcome = outcome,
    attempt_state = 'attempt_terminal',
    public_state = outcome,
  }, {
    failure_reason = failure_reason, completed_at = now,
    current_suspension_id = '', current_waitpoint_id = '',
  })
  if is_set(attempt_index) then
    redis.call('HSET', K.attempt_hash, 'attempt_state', attempt_end, 'ended_at', to_text(now),
      'failure_reason', failure_reason, 'suspended_at', '', 'suspension_id', '')
  end
  if redis.call('EXISTS', K.stream_meta) == 1 then
    redis.call('HSET', K.stream_meta, 'closed_at', to_text(now), 'closed_reason', 'suspension_timeout')
  end
  Susp.close_waitpoint(K.waitpoint_hash, now, close_reason, false)
  Susp.close_condition(K.wp_condition, now, close_reason)
  redis.call('HSET', K.suspension_current, 'closed_at', to_text(now), 'close_reason', close_reason)
  redis.call('ZREM', K.suspension_timeout_zset, eid)
  redis.call('ZREM', K.suspended_zset, eid)
  redis.call('ZADD', K.terminal_zset, now, eid)
  publish_completion(core, eid, outcome)
  return ok(behavior, outcome)
end))

redis.register_function('ff_close_waitpoint', guard('ff_close_waitpoint', function(keys, args)
  local K = {
    core = keys[1],
    waitpoint_hash = keys[2],
    pending_wp_expiry_zset = keys[3],
  }
  local A = {
    waitpoint_id = args[1],
    reason = args[2] or 'proactive_close',
  }
  local bad = Susp.keys_match({ { K.waitpoint_hash, KEY.partition_waitpoint(tag_of(K.core), A.waitpoint_id), 'KEYS[2]' } })
  if bad then return bad end

  local wp = hgetall(K.waitpoint_hash)
  if next(wp) == nil or wp.execution_id ~= eid_of_exec_key(K.core) then
    return err('waitpoint_not_found')
  end
  if wp.state == 'closed' or wp.state == 'expired' then
    return ok('already_closed')
  end
  if wp.state ~= 'pending' and wp.state ~= 'active' then
    return err('waitpoint_not_open')
  end
  local now = server_now()
  -- write phase
  Susp.close_waitpoint(K.waitpoint_hash, now, A.reason, false)
  redis.call('ZREM', K.pending_wp_expiry_zset, A.waitpoint_id)
  -- Derived from KEYS[2] (same slot). A pending waitpoint has no condition yet.
  local condition_key = K.waitpoint_hash .. ':condition'
  if redis.call('EXISTS', condition_key) == 1 and redis.call('HGET', condition_key, 'closed') ~= '1' then
    Susp.close_condition(condition_key, now, A.reason)
  end
  return ok()
end))

redis.register_function('ff_rotate_waitpoint_hmac_secret', guard('ff_rotate_waitpoint_hmac_secret', function(keys, args)
  local K = {
    hmac_secrets = keys[1],
  }
  local A = {
    new_kid = args[1],
    new_secret_hex = args[2],
    grace_ms = args[3],
  }
  if not is_set(A.new_kid) or string.find(A.new_kid, ':', 1, true) then
    return err('invalid_kid')
  end
  local secret = A.new_secret_hex
  if not is_set(secret) or #secret % 2 ~= 0 or string.find(secret, '[^0-9a-fA-F]') then
    return err('invalid_secret_hex')
  end
  local grace = A.grace_ms -- checked by the guard when given; missing (argv_min 0), refused here in the reference's order
  if grace == nil then
    return err('invalid_grace_ms')
  end

  local now = server_now()
  local ring = hgetall(K.hmac_secrets)
  local current = ring.current_kid
  local kid = A.new_kid
  if current == kid then
    local stored = ring['secret:' .. kid]
    if not is_set(stored) then
      -- A torn earlier write: complete it.
      -- write phase
      redis.call('HSET', K.hmac_secrets, 'secret:' .. kid, secret)
      return ok('noop', kid)
    end
    if stored == secret then
      return ok('noop', kid)
    end
    return err('rotation_conflict', kid)
  end

  -- write phase
  -- Collect kids whose grace has ended (the boundary matches verification: expiry = now is
  -- still valid). The outgoing kid is spared: it gets a fresh expiry below.
  local doomed, gc_count = {}, 0
  for field, value in pairs(ring) do
    local old = string.match(field, '^expires_at:(.*)$')
    if old ~= nil and old ~= current then
      local expires_at = parse_number(value)
      if expires_at == nil or expires_at <= 0 or expires_at < now then
        doomed[#doomed + 1] = field
        doomed[#doomed + 1] = 'secret:' .. old
        gc_count = gc_count + 1
      end
    end
  end
  if #doomed > 0 then
    redis.call('HDEL', K.hmac_secrets, unpack(doomed))
  end
  -- The current kid never has an expiry; drop one left from an earlier use of the name.
  redis.call('HDEL', K.hmac_secrets, 'expires_at:' .. kid)
  local fields = { 'current_kid', kid, 'secret:' .. kid, secret }
  if is_set(current) then
    -- Capped at 2^53-1 so the expiry stays an exact, plain decimal integer.
    local expires_at = to_text(math.min(now + grace, 9007199254740991))
    fields[#fields + 1] = 'previous_kid'
    fields[#fields + 1] = current
    fields[#fields + 1] = 'previous_expires_at'
    fields[#fields + 1] = expires_at
    fields[#fields + 1] = 'expires_at:' .. current
    fields[#fields + 1] = expires_at
  end
  redis.call('HSET', K.hmac_secrets, unpack(fields))
  return ok('rotated', is_set(current) and current or '', kid, to_text(gc_count))
end))

redis.register_function{
  function_name = 'ff_list_waitpoint_hmac_kids',
  callback = guard('ff_list_waitpoint_hmac_kids', function(keys, args)
    local K = {
      hmac_secrets = keys[1],
    }
    local now = server_now()
    local ring = hgetall(K.hmac_secrets)
    local kids = {}
    for field, value in pairs(ring) do
      local kid = string.match(field, '^expires_at:(.*)$')
      local expires_at = kid and parse_number(value)
      if expires_at and expires_at > 0 and expires_at >= now then
        kids[#kids + 1] = kid
      end
    end
    table.sort(kids)
    local reply = { 1, 'OK', ring.current_kid or '', to_text(#kids) }
    for i = 1, #kids do
      reply[#reply + 1] = kids[i]
      reply[#reply + 1] = ring['expires_at:' .. kids[i]]
    end
    return reply
  end),
  flags = { 'no-writes' },
}
