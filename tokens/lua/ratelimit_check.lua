-- ratelimit_check.lua - checks and charges one request against 1 or 2 GCRA buckets at once,
-- on the Redis server's clock (tokens/ratelimit.c has the math and its C twin).
-- KEYS     1 or 2 rate-limit keys (<p>rl:u:<user>, <p>rl:ip:<ip>)
-- ARGV     rate (per s), burst for each key in order
-- Reply:   {allowed (0/1), then per key: ok (0/1), remaining, reset ms, retry ms}
-- Both keys are evaluated first and written only when both allow: a refusal charges nothing.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local allowed, keys = 1, {}
for i = 1, #KEYS do
  local rate, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local T = math.ceil(1000 / rate)
  local limit = T * burst
  local tat = tonumber(redis.call('GET', KEYS[i])) or 0
  if tat < now then tat = now end
  local used = tat + T - now
  local k = {ok = used <= limit, tat = tat, used = used, T = T, limit = limit}
  if not k.ok then allowed = 0 end
  keys[i] = k
end
local out = {allowed}
for i = 1, #KEYS do
  local k = keys[i]
  if k.ok then
    if allowed == 1 then
      redis.call('SET', KEYS[i], string.format('%.0f', k.tat + k.T), 'PX', k.used)
    end
    out[#out + 1] = 1
    out[#out + 1] = math.floor((k.limit - k.used) / k.T)
    out[#out + 1] = k.used
    out[#out + 1] = 0
  else
    out[#out + 1] = 0
    out[#out + 1] = 0
    out[#out + 1] = k.tat - now
    out[#out + 1] = k.used - k.limit
  end
end
return out
