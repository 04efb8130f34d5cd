-- Raise a fencing counter to at least a given value (a max-register), for Redlock: the token
-- taken from a quorum is written back to a majority so every later quorum overlaps it.
-- KEYS[1]  the fencing counter of the lock name
-- ARGV[1]  the fencing token to record
-- returns  the counter after the write (>= ARGV[1])
local current = tonumber(redis.call('get', KEYS[1]) or '0')
local wanted = tonumber(ARGV[1])
if current < wanted then
  redis.call('set', KEYS[1], ARGV[1])
  return wanted
end
return current
