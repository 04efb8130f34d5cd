-- Cancel a task that is still waiting (not in flight).
-- KEYS[1] due ZSET   KEYS[2] payload HASH   KEYS[3] attempts HASH
-- ARGV[1] task id
-- Returns 1 if it was waiting and is now deleted, else 0.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1], 'd:' .. ARGV[1])
return 1
