-- Reset the remaining time of a lock this owner holds; never re-creates an expired key.
-- KEYS[1]  the lock key
-- ARGV[1]  the owner's token
-- ARGV[2]  the new ttl in milliseconds
-- ARGV[3]  "1" for a reentrant lock (hash of hold counts), "0" for a plain one
-- returns  1 when extended, 0 when this owner does not hold the lock (nothing touched)
if ARGV[3] == '0' then
  if redis.call('get', KEYS[1]) ~= ARGV[1] then
    return 0
  end
elseif redis.call('hexists', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('pexpire', KEYS[1], ARGV[2])
return 1
