-- Release a lock if, and only if, this owner holds it; signal waiters when it frees.
-- KEYS[1]  the lock key
-- ARGV[1]  the owner's token
-- ARGV[2]  "1" for a reentrant lock (hash of hold counts), "0" for a plain one
-- ARGV[3]  the pub/sub channel waiters listen on
-- ARGV[4]  the message published there ("<origin> <lock key>")
-- returns  0 when this owner does not hold the lock (nothing touched), 1 when the lock was freed,
--          2 when a reentrant owner still holds it (a hold count is left)
if ARGV[2] == '0' then
  if redis.call('get', KEYS[1]) ~= ARGV[1] then
    return 0
  end
else
  if redis.call('hexists', KEYS[1], ARGV[1]) == 0 then
    return 0
  end
  if redis.call('hincrby', KEYS[1], ARGV[1], -1) > 0 then
    return 2
  end
end
redis.call('del', KEYS[1])
redis.call('publish', ARGV[3], ARGV[4])
return 1
