-- Take a lock and bump its fencing counter in one step.
-- KEYS[1]  the lock key
-- KEYS[2]  the fencing counter of that lock name
-- ARGV[1]  the owner's token
-- ARGV[2]  ttl in milliseconds
-- ARGV[3]  "1" for a reentrant lock (a hash: owner token -> hold count), "0" for a plain one
-- returns  one integer (cheaper to parse than a table, which counts on a 5-master fan-out):
--          > 0: taken, the value is the fencing token; 0: a reentrant owner entered again;
--          < 0: lost, the holder's pttl is -value - 3 (so -1: key vanished, -2: no expiry)
local function bump_fence()
  local fence = redis.call('incr', KEYS[2])
  if fence == 1 then
    -- A missing counter (new name, eviction, or a restart without persistence): seed it from
    -- the server clock in microseconds, so it never goes back below a value handed out before.
    local now = redis.call('time')
    fence = tonumber(now[1]) * 1000000 + tonumber(now[2])
    redis.call('set', KEYS[2], string.format('%.0f', fence))
  end
  return fence
end

if ARGV[3] == '0' then
  if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return bump_fence()
  end
else
  if redis.call('exists', KEYS[1]) == 0 then
    redis.call('hset', KEYS[1], ARGV[1], 1)
    redis.call('pexpire', KEYS[1], ARGV[2])
    return bump_fence()
  end
  if redis.call('hexists', KEYS[1], ARGV[1]) == 1 then
    redis.call('hincrby', KEYS[1], ARGV[1], 1)
    redis.call('pexpire', KEYS[1], ARGV[2])
    return 0
  end
end
return -redis.call('pttl', KEYS[1]) - 3
