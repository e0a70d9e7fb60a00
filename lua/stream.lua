-- The attempt output stream: append and range read. KEYS, ARGV and replies: spec/stream.yaml.
-- Module-local helpers live in the one table Stream, to keep the chunk's locals few.
local Stream = {}

Stream.DEFAULT_MAX_PAYLOAD_BYTES = 65536
-- retention_maxlen 0 means an approximate trim to this many entries.
Stream.DEFAULT_RETENTION = 10000

-- An XRANGE bound: `-`, `+`, or `<ms>` / `<ms>-<seq>`, optionally `(`-prefixed (exclusive).
function Stream.valid_bound(id)
  if id == '-' or id == '+' then
    return true
  end
  local body = id
  if string.sub(id, 1, 1) == '(' then
    body = string.sub(id, 2)
  end
  return string.match(body, '^%d+$') ~= nil or string.match(body, '^%d+%-%d+$') ~= nil
end

-- The stream keys must be those of ARGV's execution and attempt, on the core key's slot.
function Stream.check_keys(K, execution_id, attempt_index)
  local mismatch = check_core_key(K.core, execution_id)
  if mismatch then return mismatch end
  local tag = tag_of(K.core)
  if K.stream ~= KEY.exec_stream(tag, execution_id, attempt_index)
    or K.stream_meta ~= KEY.exec_stream_meta(tag, execution_id, attempt_index) then
    return err('invalid_input', 'stream keys do not match execution_id and attempt_index')
  end
  return nil
end

redis.register_function('ff_append_frame', guard('ff_append_frame', function(keys, args)
  local K = {
    core = keys[1],
    stream = keys[2],
    stream_meta = keys[3],
  }
  local A = {
    execution_id = args[1],
    attempt_index = args[2],
    lease_id = args[3],
    lease_epoch = args[4],
    frame_type = args[5],
    ts = args[6],
    payload = args[7],
    encoding = args[8],
    correlation_id = args[9],
    source = args[10],
    retention_maxlen = args[11],
    attempt_id = args[12],
    max_payload_bytes = args[13],
  }
  -- attempt_index is compared as text with current_attempt_index, as the engine stores it.
  local attempt_index = A.attempt_index
  local bad = Stream.check_keys(K, A.execution_id, attempt_index)
  if bad then return bad end
  local payload = A.payload or ''
  local max_payload = A.max_payload_bytes or Stream.DEFAULT_MAX_PAYLOAD_BYTES
  local retention = A.retention_maxlen or 0
  -- Absent encoding/source fall back; an explicit empty string is kept (as the reference).
  local encoding = A.encoding
  if encoding == nil then encoding = 'utf8' end
  local source = A.source
  if source == nil then source = 'worker' end

  if #payload > max_payload then
    return err('retention_limit_exceeded')
  end

  local lease = redis.call('HMGET', K.core, 'current_attempt_index', 'current_lease_id',
    'current_lease_epoch', 'lease_expires_at', 'lifecycle_phase', 'ownership_state')
  if lease[5] ~= 'active' then
    return err('stream_closed')
  end
  if lease[6] == 'lease_expired_reclaimable' or lease[6] == 'lease_revoked' then
    return err('stale_owner_cannot_append')
  end
  local now = server_now()
  if (parse_number(lease[4]) or 0) <= now then
    return err('stale_owner_cannot_append')
  end
  if lease[1] ~= attempt_index or lease[2] ~= A.lease_id or lease[3] ~= A.lease_epoch then
    return err('stale_owner_cannot_append')
  end

  local meta_exists = redis.call('EXISTS', K.stream_meta) == 1
  if meta_exists and is_set(redis.call('HGET', K.stream_meta, 'closed_at')) then
    return err('stream_closed')
  end

  -- write phase
  if not meta_exists then
    redis.call('HSET', K.stream_meta,
      'stream_id', A.execution_id .. ':' .. attempt_index,
      'execution_id', A.execution_id,
      'attempt_id', A.attempt_id or '',
      'attempt_index', attempt_index,
      'created_at', to_text(now),
      'closed_at', '',
      'closed_reason', '',
      'durability_mode', 'durable_full',
      'retention_maxlen', to_text(retention),
      'last_sequence', '',
      'frame_count', '0',
      'total_bytes', '0',
      'last_frame_at', '')
  end

  local entry = { 'XADD', K.stream, '*',
    'frame_type', A.frame_type or '',
    'ts', to_text(A.ts or now),
    'payload', payload,
    'encoding', encoding,
    'source', source }
  if is_set(A.correlation_id) then
    entry[#entry + 1] = 'correlation_id'
    entry[#entry + 1] = A.correlation_id
  end
  local entry_id = redis.call(unpack(entry))
  local frame_count = redis.call('HINCRBY', K.stream_meta, 'frame_count', 1)
  redis.call('HINCRBY', K.stream_meta, 'total_bytes', #payload)
  redis.call('HSET', K.stream_meta, 'last_sequence', entry_id, 'last_frame_at', to_text(now))
  if retention == 0 then
    redis.call('XTRIM', K.stream, 'MAXLEN', '~', to_text(Stream.DEFAULT_RETENTION))
  else
    redis.call('XTRIM', K.stream, 'MAXLEN', '=', to_text(retention))
  end
  return ok(entry_id, to_text(frame_count))
end))

redis.register_function{
  function_name = 'ff_read_attempt_stream',
  callback = guard('ff_read_attempt_stream', function(keys, args)
    local K = {
      stream = keys[1],
      stream_meta = keys[2],
    }
    local A = {
      from_id = args[1],
      to_id = args[2],
      count_limit = args[3],
    }
    local count = A.count_limit
    -- Absent or empty bounds mean the whole stream.
    local from = is_set(A.from_id) and A.from_id or '-'
    local to = is_set(A.to_id) and A.to_id or '+'
    if not Stream.valid_bound(from) then
      return err('invalid_input', 'from_id must be -, +, <ms>, <ms>-<seq> or (<id>, got: ' .. from)
    end
    if not Stream.valid_bound(to) then
      return err('invalid_input', 'to_id must be -, +, <ms>, <ms>-<seq> or (<id>, got: ' .. to)
    end
    -- The server still refuses ids out of its range (e.g. more than 64 bits): report that
    -- as bad input too, not as a script error.
    local entries = redis.pcall('XRANGE', K.stream, from, to, 'COUNT', to_text(count))
    if type(entries) == 'table' and entries.err then
      return err('invalid_input', 'XRANGE refused the bounds: ' .. tostring(entries.err))
    end
    local markers = redis.call('HMGET', K.stream_meta, 'closed_at', 'closed_reason')
    local closed_at = is_set(markers[1]) and markers[1] or ''
    local closed_reason = is_set(markers[2]) and markers[2] or ''
    return ok(entries, closed_at, closed_reason)
  end),
  flags = { 'no-writes' },
}
