-- Acknowledge a task: delete it wherever it is (in flight, or back in the due set after its
-- ack timeout ran out but before anyone claimed it again).
-- KEYS[1] due ZSET   KEYS[2] in-flight ZSET   KEYS[3] payload HASH   KEYS[4] attempts HASH
-- ARGV[1] task id
-- Returns 1 if the task existed, 0 if it was already acked or cancelled.
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1], 'd:' .. ARGV[1])
return redis.call('HDEL', KEYS[3], ARGV[1])
