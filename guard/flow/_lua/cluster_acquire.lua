-- One decision (or one lease) of a cluster flow rule over a sliding window kept in Redis.
--
-- The window is a hash of buckets: field = bucket start (ms, Redis server time), value =
-- tokens granted in that bucket, plus two bookkeeping fields: "total" (the sum of the
-- buckets still in the window) and "low" (the oldest bucket start still counted). A call
-- drops the buckets that left the window since the last call from "total", so its cost
-- does not grow with the number of buckets (one or two steps per call when busy). A
-- bucket counts while its start is within the last window_ms, so with 10 ms buckets the
-- window is 990 to 1000 ms long.
-- Live instances are a sorted set of heartbeats scored by server time: members older than
-- heartbeat_ttl_ms are dropped, so a crashed process stops counting by itself.
-- Both keys share the hash tag {guard:flow:<rule-id>}, so they live on one Cluster slot.
--
-- KEYS[1]  window hash            {guard:flow:<rule-id>}:window
-- KEYS[2]  live-instance zset     {guard:flow:<rule-id>}:instances
-- ARGV[1]  want: tokens asked for (0 = heartbeat / give-back only)
-- ARGV[2]  count: the rule's threshold per window (a decimal string)
-- ARGV[3]  per_instance: 1 for avg_local (limit = count x live instances), else 0
-- ARGV[4]  instance id of the caller
-- ARGV[5]  heartbeat_ttl_ms
-- ARGV[6]  give_back: unused leased tokens returned, as "<bucket>:<tokens>" pairs
--          separated by spaces, each to the bucket it was granted in ("" = none)
-- ARGV[7]  debt: passes admitted without Redis (during a fallback) to book now
-- ARGV[8]  window_ms
-- ARGV[9]  buckets in the window (window_ms must be a multiple)
-- ARGV[10] all_or_nothing: 1 grants want or nothing (one decision), 0 grants what is left
-- ARGV[11] leave: 1 removes the caller from the live instances (its rule was removed)
-- ARGV[12] debt_id: the booking's id ("" with no debt). A booking whose reply was lost is
--          sent again with the same id; the window keeps the last id booked per instance
--          (field "debt:<instance>") and books an id once.
-- Returns {granted, bucket, live_instances, remaining_after}: remaining_after may be < 0
-- when debts pushed the window over its limit.

if redis.replicate_commands then
  pcall(redis.replicate_commands)  -- Redis < 5: TIME needs effects replication
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local want = tonumber(ARGV[1])
local count = tonumber(ARGV[2])
local per_instance = tonumber(ARGV[3])
local instance = ARGV[4]
local ttl = tonumber(ARGV[5])
local debt = tonumber(ARGV[7])
local window_ms = tonumber(ARGV[8])
local width = window_ms / tonumber(ARGV[9])
local all_or_nothing = tonumber(ARGV[10])
local leave = tonumber(ARGV[11])
local debt_id = ARGV[12]

local current = now - now % width
local oldest = current - window_ms + width

if leave == 1 then
  redis.call('ZREM', KEYS[2], instance)
else
  redis.call('ZADD', KEYS[2], now, instance)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
redis.call('PEXPIRE', KEYS[2], ttl * 2)
local live = redis.call('ZCARD', KEYS[2])

local total = tonumber(redis.call('HGET', KEYS[1], 'total') or '0')
local low = tonumber(redis.call('HGET', KEYS[1], 'low') or tostring(oldest))
if low < oldest then
  if oldest - low > window_ms then
    redis.call('DEL', KEYS[1])  -- idle for over a window: nothing in it counts
    total = 0
  else
    for bucket = low, oldest - width, width do
      local tokens = redis.call('HGET', KEYS[1], bucket)
      if tokens then
        total = total - tonumber(tokens)
        redis.call('HDEL', KEYS[1], bucket)
      end
    end
  end
  low = oldest
end

for bucket, tokens in string.gmatch(ARGV[6], '(%d+):(%d+)') do
  if tonumber(bucket) >= low then
    local held = tonumber(redis.call('HGET', KEYS[1], bucket) or '0')
    local back = math.min(held, tonumber(tokens))
    if back > 0 then
      redis.call('HINCRBY', KEYS[1], bucket, -back)
      total = total - back
    end
  end
end
local used = total

local limit = count
if per_instance == 1 then
  limit = count * math.max(live, 1)
end
-- Sentinel's reject rule: pass while used + acquire <= count.
local available = math.floor(limit - used)
local granted = 0
if available > 0 then
  granted = math.min(want, available)
end
if all_or_nothing == 1 and granted < want then
  granted = 0
end
if debt > 0 and debt_id ~= '' then
  local field = 'debt:' .. instance
  if redis.call('HGET', KEYS[1], field) == debt_id then
    debt = 0  -- booked by an earlier call whose reply was lost
  else
    redis.call('HSET', KEYS[1], field, debt_id)
  end
end
local booked = granted + debt
if booked > 0 then
  redis.call('HINCRBY', KEYS[1], current, booked)
  total = total + booked
end
redis.call('HSET', KEYS[1], 'total', total, 'low', low)
redis.call('PEXPIRE', KEYS[1], window_ms * 2)
return {granted, current, live, available - booked}
