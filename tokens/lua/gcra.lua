-- gcra.lua - shared helper: one GCRA bucket, pulled in by an @include line (tokens/ratelimit.c
-- has the math and its C twin). gcra_now() is the Redis server's clock; the store scripts take
-- the caller's instead (one redis.call less per request: instances skewed by d ms let a user
-- ahead by at most d ms worth of requests).
--   gcra_peek(key, rate, burst, now) -> the verdict v, nothing written
--   gcra_take(key, v)                -> charges an allowed request
--   gcra_reply(v)                    -> ok (0/1), remaining, reset ms, retry ms
local function gcra_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function gcra_peek(key, rate, burst, now)
  local T = math.ceil(1000 / rate)
  local limit = T * burst
  local tat = tonumber(redis.call('GET', key)) or 0
  if tat < now then tat = now end
  local used = tat + T - now
  return {ok = used <= limit, tat = tat, used = used, T = T, limit = limit, now = now}
end

local function gcra_take(key, v)
  redis.call('SET', key, string.format('%.0f', v.tat + v.T), 'PX', v.used)
end

local function gcra_reply(v)
  if v.ok then return 1, math.floor((v.limit - v.used) / v.T), v.used, 0 end
  return 0, 0, v.tat - v.now, v.used - v.limit
end

-- The per-user limit of an API request at now_ms (the caller's clock), charged when it allows:
-- the reply's four numbers and whether the request may go on. rate or burst 0: no limit (a
-- request from inside herald).
local function user_quota(key, rate, burst, now_ms)
  rate, burst = tonumber(rate), tonumber(burst)
  if rate <= 0 or burst <= 0 then return {1, 0, 0, 0}, true end
  local v = gcra_peek(key, rate, burst, tonumber(now_ms))
  if v.ok then gcra_take(key, v) end
  return {gcra_reply(v)}, v.ok
end
