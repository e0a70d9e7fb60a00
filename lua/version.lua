-- The library version: its only home. Bump it whenever a function is added or any
-- function's KEYS or ARGV change, so a client built for another library reloads it.
redis.register_function{
  function_name = 'ff_version',
  callback = function()
    return '10'
  end,
  flags = { 'no-writes' },
}
