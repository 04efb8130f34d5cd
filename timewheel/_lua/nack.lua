-- Give a task back: in flight -> due again after a delay; only by its current delivery.
-- KEYS[1] due ZSET   KEYS[2] in-flight ZSET   KEYS[3] attempts HASH
-- ARGV[1] task id   ARGV[2] delay ms   ARGV[3] the delivery's attempt number
-- ARGV[4] channel for new-earliest notices
-- Returns 1 if given back, 0 if this delivery is no longer current.
if redis.call('ZSCORE', KEYS[2], ARGV[1]) == false then return 0 end
if tonumber(redis.call('HGET', KEYS[3], ARGV[1])) ~= tonumber(ARGV[3]) then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = now + tonumber(ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
redis.call('ZADD', KEYS[1], deadline, ARGV[1])
redis.call('HSET', KEYS[3], 'd:' .. ARGV[1], deadline)
if #head == 0 or deadline < tonumber(head[2]) then
  redis.call('PUBLISH', ARGV[4], tostring(tonumber(ARGV[2])))
end
return 1
