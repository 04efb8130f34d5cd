-- Claim up to ARGV[2] due tasks for one consumer: due -> in flight until now + ack timeout.
-- Tasks whose ack timeout ran out are returned to the due set first (redelivery).
-- KEYS[1] due ZSET   KEYS[2] in-flight ZSET (id -> visibility deadline ms)
-- KEYS[3] payload HASH   KEYS[4] attempts HASH (id -> deliveries so far; "d:"..id -> the
-- deadline the task was due at, kept across redeliveries)
-- ARGV[1] ack timeout ms   ARGV[2] most tasks to claim
-- Returns {next, id1, deadline1, attempts1, payload1, ...}: next is the delay in ms until
-- the earliest task still waiting or in flight, or -1 when there is none.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'WITHSCORES')
for i = 1, #expired, 2 do
  redis.call('ZREM', KEYS[2], expired[i])
  redis.call('ZADD', KEYS[1], expired[i + 1], expired[i])
end
local out = {-1}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0,
  tonumber(ARGV[2]))
for i = 1, #due, 2 do
  local id = due[i]
  redis.call('ZREM', KEYS[1], id)
  local payload = redis.call('HGET', KEYS[3], id)
  if payload then
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]), id)
    local attempts = redis.call('HINCRBY', KEYS[4], id, 1)
    redis.call('HSETNX', KEYS[4], 'd:' .. id, due[i + 1])
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGET', KEYS[4], 'd:' .. id)
    out[#out + 1] = attempts
    out[#out + 1] = payload
  end
end
local nxt = nil
local head = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #head > 0 then nxt = tonumber(head[2]) end
head = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #head > 0 and (nxt == nil or tonumber(head[2]) < nxt) then nxt = tonumber(head[2]) end
if nxt ~= nil then out[1] = math.max(0, nxt - now) end
return out
