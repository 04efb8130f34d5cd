-- Add tasks with one deadline; announce a new earliest task on the queue's channel.
-- KEYS[1] due ZSET (id -> deadline ms)   KEYS[2] payload HASH (id -> payload)
-- KEYS[3] id counter (string)
-- ARGV[1] "in" (ARGV[2] = delay ms from the server's clock) or "at" (ARGV[2] = epoch ms)
-- ARGV[3] channel for new-earliest notices   ARGV[4..] payloads
-- Returns {id1, id2, ...}. Ids are zero-padded decimal counters, so equal deadlines sort
-- (and are claimed) in put order.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = tonumber(ARGV[2])
if ARGV[1] == 'in' then deadline = now + deadline end
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local ids = {}
for i = 4, #ARGV do
  local n = tostring(redis.call('INCR', KEYS[3]))
  local id = string.rep('0', 16 - #n) .. n
  redis.call('HSET', KEYS[2], id, ARGV[i])
  redis.call('ZADD', KEYS[1], deadline, id)
  ids[#ids + 1] = id
end
if #ids > 0 and (#head == 0 or deadline < tonumber(head[2])) then
  -- The notice carries the delay, not the deadline, so listeners need not share our clock.
  redis.call('PUBLISH', ARGV[3], tostring(math.max(0, deadline - now)))
end
return ids
