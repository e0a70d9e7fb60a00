-- Shared helpers of the flowfabric library. Everything here is a local of the one chunk
-- the server compiles, so every registered function can use it; none is callable by FCALL.
-- Module files keep their own helpers in one local table each, to stay far below Lua's
-- limit of 200 locals per chunk. See spec/*.yaml for each function's KEYS, ARGV and replies.

---------------------------------------------------------------------------
-- Replies (model.md §5): success {1, status, fields…}, failure {0, code, detail…}.
-- Never pass nil inside a reply: it would end the array early.
---------------------------------------------------------------------------
local function ok(...)
  return { 1, 'OK', ... }
end

local function ok_status(status, ...)
  return { 1, status, ... }
end

local function err(code, ...)
  return { 0, code, ... }
end

---------------------------------------------------------------------------
-- Time: always the server clock, in ms.
---------------------------------------------------------------------------
-- The texts '000' … '999' (the milliseconds of a timestamp) and '0' … '999' (small counts:
-- epochs, attempt indexes), made once: formatting a number costs a sprintf each time.
local MS_TEXTS, SMALL_TEXTS = {}, {}
for i = 0, 999 do
  SMALL_TEXTS[i] = '' .. i
  MS_TEXTS[i] = (i < 10 and '00' or i < 100 and '0' or '') .. i
end

-- The server clock in ms, and the same as text (to_text(now)). Lua's arithmetic converts the
-- reply's digit texts (no tonumber or math.floor calls: each costs more than the rest).
local function server_clock()
  local t = redis.call('TIME')
  local us = t[2] + 0
  local ms = (us - us % 1000) / 1000
  return t[1] * 1000 + ms, t[1] .. MS_TEXTS[ms]
end

-- The server clock in ms (one value: it is passed on as a last argument in many places).
local function server_now()
  local t = redis.call('TIME')
  local us = t[2] + 0
  return t[1] * 1000 + (us - us % 1000) / 1000
end

---------------------------------------------------------------------------
-- Values. parse_int, parse_number, count_text, argv_refusal and json_arg are declared local in
-- the generated part above (ARGV_CHECKS calls them), so they are defined without `local` here.
---------------------------------------------------------------------------
local function is_set(value)
  return value ~= nil and value ~= false and value ~= ''
end

-- Parsed numeric texts, remembered (ARGV_INTS and ARGV_NUMBERS are declared in the generated
-- part, whose ARGV checks look a text up before calling a parser). In Redis 7.0's Lua a
-- tonumber costs about 2k instructions and a pattern match as much again, while the same
-- short texts come back on every call (TTLs, partition ids, priorities, epochs). Only
-- texts of at most 9 characters are kept (no timestamp: those rarely repeat), and a table
-- that reached 1024 entries is dropped and started again, so the memory stays bounded.
local ARGV_MEMO_MAX = 1024
local argv_ints_size, argv_numbers_size = 0, 0
-- ARGV_INTS maps each remembered integer text to its number; INT_TEXTS maps the number back to
-- that text, its canonical form (int_text).
local INT_TEXTS = {}

-- A number as the reference accepts it (any Lua number text), but never NaN or infinity,
-- which tonumber would let through on some platforms.
function parse_number(value)
  local n = ARGV_NUMBERS[value]
  if n ~= nil then return n end
  n = tonumber(value) -- nil for anything but a number or a numeric string
  if n == nil or n ~= n or n == math.huge or n == -math.huge then
    return nil
  end
  if value ~= n and #value <= 9 then -- a text (a number equals its own value), short
    if argv_numbers_size >= ARGV_MEMO_MAX then ARGV_NUMBERS, argv_numbers_size = {}, 0 end
    ARGV_NUMBERS[value], argv_numbers_size = n, argv_numbers_size + 1
  end
  return n
end

-- An integer text as the server itself parses one (string2ll): an optional '-', then
-- digits without a leading zero ('0' alone is fine); no '+', no spaces, no '-0', no
-- exponent or hex. Within the exactly representable range (±2^53), so Lua keeps it exact
-- and the text can go to any command (HINCRBY, XADD MAXLEN, PX…) as it is.
function parse_int(value)
  local n = ARGV_INTS[value]
  if n ~= nil then return n end
  if type(value) ~= 'string' or #value > 17 then
    return nil
  end
  if value ~= '0' and not string.match(value, '^%-?[1-9]%d*$') then
    return nil
  end
  n = tonumber(value)
  if n > 9007199254740991 or n < -9007199254740991 then
    return nil
  end
  if #value <= 9 then
    if argv_ints_size >= ARGV_MEMO_MAX then ARGV_INTS, INT_TEXTS, argv_ints_size = {}, {}, 0 end
    ARGV_INTS[value], INT_TEXTS[n], argv_ints_size = n, value, argv_ints_size + 1
  end
  return n
end

-- A count text (digits only, at most 17, leading zeros allowed: compared with stored text,
-- never converted): true or false. The ARGV checks look ARGV_INTS up first; a canonical
-- one is remembered there by parse_int.
function count_text(value)
  if #value > 17 or not string.match(value, '^%d+$') then return false end
  parse_int(value)
  return true
end

-- The invalid_input reply for an integer ARGV that parse_int refused. Text that is no number
-- at all gets the reference's own wording (`<name> must be a number, got: <raw>`, `nil` when
-- missing); a number that is not an integer the server accepts is refused by us alone.
local function int_refusal(name, raw)
  if parse_number(raw) == nil then
    return { 0, 'invalid_input', name .. ' must be a number, got: ' .. tostring(raw) }
  end
  return { 0, 'invalid_input', name .. ' must be an integer, got: ' .. tostring(raw) }
end

-- A decoded JSON value that cjson can encode again (JSON numbers such as 1e999 decode to
-- infinity, which cjson.encode refuses): true, or false when some write would fail on it.
local function json_reencodes(decoded)
  return (pcall(cjson.encode, decoded))
end

-- Checks a decoded JSON value against its shape (SHAPES, generated from spec/shapes.yaml):
-- an object (a Lua table that is not a non-empty array), each declared member that is present and not null of its JSON
-- type (nested shapes and array elements too), and every value of a map of one type.
-- Returns nil, or the invalid_input reply naming the path (`retry_policy_json.backoff`).
local function check_shape(shape, value, path, what)
  if type(value) ~= 'table' or value[1] ~= nil then -- cjson decodes an array to a table with [1]
    return { 0, 'invalid_input', path .. ' must be ' .. (what or 'an object') }
  end
  local fields = shape.fields
  for i = 1, #fields do
    local f = fields[i]
    local v = value[f[1]]
    if v ~= nil and v ~= cjson.null then
      if f[2] and type(v) ~= f[2] then
        return { 0, 'invalid_input', path .. '.' .. f[1] .. ' must be ' .. f[3] }
      end
      if f.shape then
        local bad = check_shape(f.shape, v, path .. '.' .. f[1])
        if bad then return bad end
      elseif f.of then
        for j = 1, #v do
          if type(v[j]) ~= f.of then return { 0, 'invalid_input', path .. '.' .. f[1] .. ' must be ' .. f.of_text } end
        end
      end
    end
  end
  if shape.values then
    for k, v in pairs(value) do
      if type(v) ~= shape.values then
        return { 0, 'invalid_input', path .. '.' .. tostring(k) .. ' must be ' .. shape.values_text }
      end
    end
  end
  return nil
end

-- The invalid_input reply (or the slot's own refusal from the spec: `code`, `detail`, the
-- reference's texts `low` and `high`) for an ARGV that check_argv refused; `why` is one of
-- empty, nan (no number), int (no integer the server takes), low, high, json, finite, enum.
function argv_refusal(rule, why, raw)
  if rule.code then
    if rule.detail then return { 0, rule.code, rule.detail } end
    return { 0, rule.code }
  end
  local name = rule.name
  if rule.low and (why == 'nan' or why == 'low' or why == 'empty') then
    return { 0, 'invalid_input', rule.low }
  end
  if rule.high and why == 'high' then return { 0, 'invalid_input', rule.high } end
  if why == 'empty' then
    if rule.kind == 'int' or rule.kind == 'number' or rule.kind == 'count' then return int_refusal(name, raw) end
    if rule.kind == 'enum' then return { 0, 'invalid_input', name .. ' must be one of ' .. rule.list .. ', got: ' } end
    return { 0, 'invalid_input', name .. ' must not be empty' }
  end
  if why == 'nan' or why == 'int' then return int_refusal(name, raw) end
  if why == 'low' then return { 0, 'invalid_input', name .. ' must be >= ' .. (rule.min_text or '0') .. ', got: ' .. raw } end
  if why == 'high' then return { 0, 'invalid_input', name .. ' must be <= ' .. rule.max_text .. ', got: ' .. raw } end
  if why == 'json' then return { 0, 'invalid_input', name .. ' must be valid JSON' } end
  if why == 'finite' then return { 0, 'invalid_input', name .. ' must be JSON with finite numbers' } end
  return { 0, 'invalid_input', name .. ' must be one of ' .. rule.list .. ', got: ' .. raw }
end

-- A JSON ARGV (ARGV_CHECKS, generated from the spec, call it for each json slot): cjson must
-- decode it and encode it again (1e999 decodes to infinity, which no write can take), and it
-- must have the rule's shape; the decoded value goes to args.json[name]. Returns nil or the
-- refusal.
function json_arg(rule, args, raw)
  local decoded_ok, decoded = pcall(cjson.decode, raw)
  if not decoded_ok then return argv_refusal(rule, 'json', raw) end
  if not json_reencodes(decoded) then return argv_refusal(rule, 'finite', raw) end
  if rule.shape then
    local bad = check_shape(rule.shape, decoded, rule.name, 'a JSON object')
    if bad then
      if rule.code then return argv_refusal(rule, 'json', raw) end
      return bad
    end
  end
  local json = args.json
  if json == nil then json = {}; args.json = json end
  json[rule.name] = decoded
  return nil
end

-- Every registered callback runs through guard. First it refuses a call with fewer KEYS
-- than the spec declares (FUNCTION_KEYS, generated from spec/ at the top of the bundle), so
-- no function ever writes some keys before finding another missing, and a call with fewer
-- ARGV than the spec's fixed slots (FUNCTION_ARGV), so no body reads a missing argument as
-- nil. More ARGV than declared are ignored, as the reference does. Then check_argv checks and
-- converts every ARGV against the spec's rules (ARGV_RULES). Then an unexpected Lua
-- error (a bug, or a server command that failed) becomes a structured `internal_error`
-- reply instead of a script error: a net for defects, not for input checking.
local function guard(name, callback)
  local needed = FUNCTION_KEYS[name] or 0
  local argv_needed = FUNCTION_ARGV[name] or 0
  -- The one ARGV validator (issue 11): ARGV_CHECKS[name], generated from the spec's slots (see
  -- ARGV_RULES), checks every ARGV before the body runs, so a value passes only if every command
  -- that receives it accepts it, and converts it in place: integers (as the server parses them,
  -- within min..max) become numbers, an accepted empty one nil or its default; digit texts
  -- compared with stored text stay text; JSON is decoded into args.json[name]; enums are checked.
  local check_argv, rules = ARGV_CHECKS[name], ARGV_RULES[name]
  return function(keys, args)
    if #keys < needed then
      return { 0, 'invalid_input', name .. ' needs ' .. needed .. ' KEYS, got ' .. #keys }
    end
    if #args < argv_needed then
      return { 0, 'invalid_input', name .. ' needs ' .. argv_needed .. ' ARGV, got ' .. #args }
    end
    if check_argv then
      local bad = check_argv(args, rules)
      if bad then return bad end
    end
    local ran, result = pcall(callback, keys, args)
    if ran then
      return result
    end
    local message = result
    if type(result) == 'table' then
      message = result.err or 'error'
    end
    return { 0, 'internal_error', tostring(message) }
  end
end

---------------------------------------------------------------------------
-- Hashes
---------------------------------------------------------------------------
local function hgetall(key)
  local flat = redis.call('HGETALL', key)
  local map = {}
  for i = 1, #flat, 2 do
    map[flat[i]] = flat[i + 1]
  end
  return map
end

-- HMGET into `map`, a table the caller keeps for these fields and fills again on every read
-- (a missing field is set to nil), so a hot path builds no table per read. Returns whether
-- any field was there. Only for a map nothing holds past the call that filled it.
local function hmget_into(map, key, fields)
  local values = redis.call('HMGET', key, unpack(fields))
  local found = false
  for i = 1, #fields do
    local value, field = values[i], fields[i]
    if value then -- HMGET answers false for a missing field
      found = true
      map[field] = value
    elseif map[field] ~= nil then -- (a nil stored into a new map would still make the key)
      map[field] = nil
    end
  end
  return found
end

-- HMGET into a new map of the named fields (missing ones absent). Hot paths read only what
-- they need: an execution's core hash has some fifty fields.
local function hmget_map(key, fields)
  local map = {}
  hmget_into(map, key, fields)
  return map
end

-- An execution's exec_core: the named fields (HMGET; missing ones absent), or all of them;
-- with `into`, the named fields filled into that map (hmget_into).
-- Returns nil and the execution_not_found reply when there is no such record.
local function read_core(core_key, fields, into)
  local core, found
  if fields then
    core = into or {}
    found = hmget_into(core, core_key, fields)
  else
    core = hgetall(core_key)
    found = next(core) ~= nil
  end
  if not found then
    return nil, err('execution_not_found')
  end
  return core
end

-- One list of exec_core field names made of several (for HMGET). Runs at load time too,
-- so it uses no global.
local function field_list(parts)
  local all = {}
  for i = 1, #parts do
    for j = 1, #parts[i] do all[#all + 1] = parts[i][j] end
  end
  return all
end

-- The thousands of a timestamp (its seconds) as text, remembered: the same few come back
-- on every call. Bounded like the ARGV memo.
local THOUSANDS_TEXTS, thousands_size = {}, 0

-- Text of a number for storage: an integer in plain decimal (tostring would switch to
-- exponent form from 1e14 on), anything else as tostring gives it. A small one is a table
-- read; a larger one (a timestamp) its thousands' text, remembered, and three digits.
local function num_text(value)
  local small = SMALL_TEXTS[value]
  if small then return small end
  if value >= 1000 and value < 9007199254740992 and value % 1 == 0 then
    local rest = value % 1000
    local high = (value - rest) / 1000
    local high_text = SMALL_TEXTS[high] or THOUSANDS_TEXTS[high]
    if high_text == nil then
      high_text = string.format('%d', high)
      if thousands_size >= 1024 then THOUSANDS_TEXTS, thousands_size = {}, 0 end
      THOUSANDS_TEXTS[high], thousands_size = high_text, thousands_size + 1
    end
    return high_text .. MS_TEXTS[rest]
  end
  if value == math.floor(value) and value > -9007199254740992 and value < 9007199254740992 then
    return string.format('%d', value)
  end
  return tostring(value)
end

-- Text of a value for storage: a number as num_text gives it, anything else as tostring.
local function to_text(value)
  if type(value) == 'number' then return num_text(value) end
  return tostring(value)
end

-- The text of an integer that came as ARGV (a partition id, a TTL): the ARGV's own text when
-- parse_int remembered it, else to_text. Saves formatting a number again (a sprintf; the
-- server formats a number argument with %.17g, which costs as much).
local function int_text(value)
  return INT_TEXTS[value] or to_text(value)
end

-- HSET from a Lua table; values are written as text. Order of fields does not matter.
local function hset_table(key, fields)
  local flat = {}
  local n = 0
  for field, value in pairs(fields) do
    if type(value) ~= 'string' then value = to_text(value) end
    flat[n + 1], flat[n + 2], n = field, value, n + 2
  end
  if #flat > 0 then
    redis.call('HSET', key, unpack(flat))
  end
end

---------------------------------------------------------------------------
-- Keys built inside Lua (model.md §3.8): always from the caller's hash tag, so they share
-- the call's slot. Patterns match spec/keys.yaml.
---------------------------------------------------------------------------
local function tag_of(key)
  return string.match(key, '{[^}]*}')
end

-- The execution id inside an exec key `ff:exec:<tag>:<eid>:<suffix>`.
local function eid_of_exec_key(key)
  local tag = tag_of(key)
  if not tag then return nil end
  local rest = string.sub(key, #KEY.exec_core(tag, '') - #':core' + 1)
  return string.match(rest, '^(.-}:[^:]+)')
end

-- ARGV execution_id names the member the partition indexes receive; it must be the
-- execution whose core key was passed, or those indexes would drift from the records.
-- Returns nil and the key's hash tag, or the invalid_input reply.
local function check_core_key(core_key, execution_id)
  if not is_set(execution_id) then
    return err('invalid_input', 'execution_id must not be empty')
  end
  local tag = core_key and tag_of(core_key)
  if not tag or core_key ~= KEY.exec_core(tag, execution_id) then
    return err('invalid_input', 'execution_id does not match the core key')
  end
  return nil, tag -- the tag, for the caller's key checks (tag_of is not cheap)
end

-- Foreign KEYS (issue 11): the slots of the call that KEY_CHECKS (generated from
-- spec/keys.yaml) can build from c — tag, execution_id, and whatever the body passes from
-- stored state: lane_id, the attempt index, the lease holder's worker_instance_id, the
-- current waitpoint… under the names the spec binds them to — must be exactly those keys.
-- Returns nil, or the invalid_input reply naming the first foreign slot. Call it before the
-- first write.
local function check_keys(name, keys, c)
  if c.tag == nil then
    return err('invalid_input', 'KEYS[1] has no hash tag, got: ' .. tostring(keys[1]))
  end
  local checker = KEY_CHECKS[name]
  local slot, index, expected
  if checker then slot, index, expected = checker(keys, c) end
  if slot then
    return err('invalid_input', 'KEYS[' .. index .. '] (' .. slot .. ') must be ' .. expected .. ', got: ' .. keys[index])
  end
  return nil
end

-- The lane an execution's lane KEYS name: its lane_id, "default" when missing (the lane
-- callers pre-read to build them).
local function core_lane(core)
  local lane = core.lane_id
  if lane == nil or lane == '' then return DEFAULTS.lane_id end
  return lane
end

-- A stored field for a key check: nil (not checked) when empty.
local function set_or_nil(value)
  if value == nil or value == '' then return nil end
  return value
end


---------------------------------------------------------------------------
-- Scheduling scores (model.md §3.2, §3.9)
---------------------------------------------------------------------------
local PRIORITY_MAX = 9000

local function clamp_priority(p)
  if p < 0 then return 0 end
  if p > PRIORITY_MAX then return PRIORITY_MAX end
  return math.floor(p)
end

local function eligible_score(priority, created_at)
  return -(priority * 1000000000000) + created_at
end

local SUSPENDED_NO_TIMEOUT_SCORE = 9999999999999

-- Capability list bounds (model.md §4.12), inclusive maxima.
local CAPS_MAX_TOKENS = 256
local CAPS_MAX_BYTES = 4096

---------------------------------------------------------------------------
-- State vector (model.md §4.3): every transition writes all state fields in one HSET.
---------------------------------------------------------------------------
-- v: lifecycle_phase, ownership_state, eligibility_state, blocking_reason, blocking_detail,
-- terminal_outcome, attempt_state, public_state; extra: more fields for the same HSET, as a
-- map or as a flat list { field, value, … } (no nil values).
-- transition=true also stamps last_transition_at.
local STATE_FIELDS = {
  'lifecycle_phase', 'ownership_state', 'eligibility_state', 'blocking_reason', 'terminal_outcome',
  'attempt_state', 'public_state',
}

-- A transition to a whole state vector v (every dimension set, as Exec.CLAIMED), stamping
-- last_transition_at, with extra fields given as values (field, value, …; none nil): the
-- hot paths' HSET, with no list built. The field order is the record's layout when create
-- writes it. Numbers are passed as they are: the server writes an integer as its plain
-- digits (Redis 7.0 with %.17g, below 1e17; 7.2+ and Valkey as an integer), which is what
-- to_text gives. Hot callers pass text all the same: 7.0's %.17g costs more than to_text.
local function write_full_state(core_key, now, v, ...)
  redis.call('HSET', core_key, 'blocking_detail', v.blocking_detail or '', 'last_mutation_at', now,
    'lifecycle_phase', v.lifecycle_phase, 'ownership_state', v.ownership_state,
    'eligibility_state', v.eligibility_state, 'blocking_reason', v.blocking_reason,
    'terminal_outcome', v.terminal_outcome, 'attempt_state', v.attempt_state,
    'public_state', v.public_state, 'last_transition_at', now, ...)
end

local function write_state(core_key, now, v, extra, transition)
  -- This HSET runs on every transition. The usual shape (the whole vector, a transition,
  -- extra fields as a flat list) goes straight onto the call's argument stack: no command
  -- table is built and grown.
  if transition ~= false and (extra == nil or extra[1] ~= nil) and v.lifecycle_phase and v.ownership_state
    and v.eligibility_state and v.blocking_reason and v.terminal_outcome and v.attempt_state and v.public_state then
    write_full_state(core_key, now, v, unpack(extra or {}))
    return
  end
  -- Otherwise (a dimension left nil in v is not written: promotion keeps attempt_state;
  -- extra as a map, whose values go through to_text) one flat argument list.
  local cmd = { 'HSET', core_key, 'blocking_detail', v.blocking_detail or '', 'last_mutation_at', now }
  local n = 6
  for i = 1, #STATE_FIELDS do
    local field = STATE_FIELDS[i]
    local value = v[field]
    if value ~= nil then
      cmd[n + 1], cmd[n + 2], n = field, value, n + 2
    end
  end
  if transition ~= false then
    cmd[n + 1], cmd[n + 2], n = 'last_transition_at', now, n + 2
  end
  if extra and extra[1] ~= nil then
    for i = 1, #extra do cmd[n + i] = extra[i] end
  elseif extra then
    for field, value in pairs(extra) do
      cmd[n + 1], cmd[n + 2], n = field, to_text(value), n + 2
    end
  end
  redis.call(unpack(cmd))
end

-- The exec_core fields that lease validation and expiry marking read (with flow_id for the
-- completion notice), so write paths can HMGET them instead of reading the whole record.
local LEASE_FIELDS = {
  'lifecycle_phase', 'ownership_state', 'eligibility_state', 'terminal_outcome', 'lease_expires_at',
  'current_lease_id', 'current_lease_epoch', 'current_attempt_id', 'current_attempt_index',
  'current_worker_id', 'current_worker_instance_id', 'flow_id', 'lane_id',
}

---------------------------------------------------------------------------
-- Lease history (execution.md §1.7): XADD MAXLEN ~ 1000, fields in the given order.
---------------------------------------------------------------------------
local function history_add(history_key, pairs_list, maxlen)
  -- A missing value leaves a hole in the list, where # is unreliable: find the last index
  -- (table.maxn: one call, where a pairs loop calls next once per entry).
  local n = table.maxn(pairs_list)
  if n % 2 == 1 then n = n + 1 end -- a missing last value
  -- Holes become empty values, in place, and the list goes straight to the call: no command
  -- table. Integers are passed as numbers; the server writes them as plain digits.
  for i = 1, n do
    local value = pairs_list[i]
    if value == nil or value == false then
      pairs_list[i] = ''
    end
  end
  redis.call('XADD', history_key, 'MAXLEN', '~', maxlen and tostring(maxlen) or '1000', '*', unpack(pairs_list, 1, n))
end

---------------------------------------------------------------------------
-- Lease expiry marking (execution.md §1.6). Idempotent.
---------------------------------------------------------------------------
local function mark_expired(core_key, history_key, core, now)
  if core.ownership_state == 'lease_expired_reclaimable' then
    return
  end
  hset_table(core_key, {
    lifecycle_phase = core.lifecycle_phase or 'active',
    ownership_state = 'lease_expired_reclaimable',
    eligibility_state = core.eligibility_state or 'not_applicable',
    blocking_reason = 'waiting_for_worker',
    blocking_detail = 'lease expired, awaiting reclaim',
    terminal_outcome = core.terminal_outcome or 'none',
    attempt_state = 'attempt_interrupted',
    public_state = 'active',
    lease_expired_at = now,
    last_mutation_at = now,
  })
  -- The history key is derived from the core key: this write may come before the call's
  -- KEYS are checked (a lease_expired reply still marks the expiry).
  history_add(string.sub(core_key, 1, -#':core' - 1) .. ':lease:history', {
    'event', 'expired', 'lease_id', core.current_lease_id, 'lease_epoch', core.current_lease_epoch,
    'attempt_index', core.current_attempt_index, 'attempt_id', core.current_attempt_id,
    'worker_id', core.current_worker_id, 'worker_instance_id', core.current_worker_instance_id, 'ts', now,
  })
  if is_set(core.current_attempt_index) then
    local tag = tag_of(core_key)
    local meta = KEY.exec_stream_meta(tag, eid_of_exec_key(core_key), core.current_attempt_index)
    if redis.call('EXISTS', meta) == 1 and not is_set(redis.call('HGET', meta, 'closed_at')) then
      redis.call('HSET', meta, 'closed_at', now, 'closed_reason', 'lease_expired')
    end
  end
end

---------------------------------------------------------------------------
-- Lease fencing for write paths (model.md §4.4, execution.md §1.5). Returns nil when the
-- caller holds the current lease, else the error reply (after marking an expired lease).
---------------------------------------------------------------------------
local function validate_lease(core_key, history_key, core, lease_id, lease_epoch, attempt_id, now)
  if core.lifecycle_phase ~= 'active' then
    return err('execution_not_active', core.terminal_outcome or '', core.current_lease_epoch or '')
  end
  if core.ownership_state == 'lease_revoked' then
    return err('lease_revoked')
  end
  if (parse_number(core.lease_expires_at) or 0) <= now then
    mark_expired(core_key, history_key, core, now)
    return err('lease_expired')
  end
  if core.current_lease_id ~= lease_id
    or core.current_lease_epoch ~= lease_epoch
    or core.current_attempt_id ~= attempt_id then
    return err('stale_lease')
  end
  return nil
end

---------------------------------------------------------------------------
-- Flow completion notice (execution.md §1.8)
---------------------------------------------------------------------------
local function publish_completion(core, eid, outcome)
  if is_set(core.flow_id) then
    redis.call('PUBLISH', KEY.global_dag_completions(),
      cjson.encode({ execution_id = eid, flow_id = core.flow_id, outcome = outcome }))
  end
end

---------------------------------------------------------------------------
-- Extension (issue 16): tells the lane's idle workers that an execution became eligible on
-- this partition (message: the partition's hash tag), so they claim at once instead of at
-- their next poll. PUBLISH names no key (any node, any slot) and costs little with no
-- subscriber; a worker that is not listening finds the execution by polling as before.
local function wake_lane(tag, lane)
  redis.call('PUBLISH', KEY.global_lane_wake(lane), tag)
end
