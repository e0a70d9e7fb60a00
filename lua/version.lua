-- The library version: its only home. Bump it whenever a function's KEYS or ARGV change
-- or what a function writes or publishes changes, so a client built for another library
-- reloads it (docs/conventions.md, Workflow 5).
redis.register_function{
  function_name = 'ff_version',
  callback = function()
    return '11'
  end,
  flags = { 'no-writes' },
}
