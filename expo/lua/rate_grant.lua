-- rate_grant.lua - grants sends from the Expo send budget shared by all herald instances: a
-- sliding-window log of grants stamped with the Redis server's clock, so that no window of
-- ARGV[3] ms holds more than ARGV[2] granted sends, whichever instances asked. Grants are also
-- paced (n sends keep the next grant back for a little under n / rate seconds), as the local
-- limiter paces requests: a burst of concurrent requests would queue at the server, and the
-- delay of the last of them is what the next window's requests could overtake. A grant counts
-- from the moment it is made: the caller sends it at once.
-- KEYS[1]  <p>expo:rate:<project>: a list of grants, oldest first, two elements each:
--          <server time in microseconds> <sends>
-- ARGV[1]  sends wanted (1..rate)
-- ARGV[2]  sends allowed in any window (the rate)
-- ARGV[3]  window in ms (1005: a second plus room for the spread between grant and arrival)
-- Reply:   {granted (0..wanted), ms until the rest of `wanted` may be asked for (0: all granted)}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local want, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local span = tonumber(ARGV[3]) * 1000
local log = redis.call('LRANGE', KEYS[1], 0, -1)
local live, used = 1, 0
for i = 1, #log, 2 do
  local at = tonumber(log[i])
  if at > now then
    -- the server clock stepped back: count the grant from now rather than block until then
    at = now
    log[i] = now
    redis.call('LSET', KEYS[1], i - 1, string.format('%.0f', now))
  end
  if at + span <= now then
    live = i + 2
  else
    used = used + tonumber(log[i + 1])
  end
end
if live > 1 then
  redis.call('LTRIM', KEYS[1], live - 1, -1)
end
-- pacing: 1% faster than the rate's even spacing, so that the window, not pacing, is the bound
if #log >= live then
  local paced = tonumber(log[#log - 1]) + tonumber(log[#log]) * 990000 / rate
  if paced > now then
    return {0, math.max(1, math.ceil((paced - now) / 1000))}
  end
end
local g = math.max(0, math.min(want, rate - used))
if g > 0 then
  redis.call('RPUSH', KEYS[1], string.format('%.0f', now), g)
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + 1000)
end
if g == want then
  return {g, 0}
end
-- the oldest grants must leave until the rest fits
local need, freed = used + want - rate, 0
for i = live, #log, 2 do
  freed = freed + tonumber(log[i + 1])
  if freed >= need then
    local wait = math.ceil((tonumber(log[i]) + span - now) / 1000)
    if g > 0 then
      wait = math.max(wait, math.ceil(g * 990 / rate))
    end
    return {g, math.max(1, wait)}
  end
end
return {g, tonumber(ARGV[3])}
