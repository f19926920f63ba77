-- rate_grant.lua - grants part of the cross-instance Expo send budget of the current second.
-- KEYS[1]  <p>expo:rate:<project> (the window key is KEYS[1] .. ':' .. <server unix second>)
-- ARGV[1]  sends wanted
-- ARGV[2]  rate per second
-- Reply:   {granted, ms until the next window}
local t = redis.call('TIME')
local key = KEYS[1] .. ':' .. t[1]
local used = tonumber(redis.call('GET', key) or '0')
local g = math.min(tonumber(ARGV[1]), tonumber(ARGV[2]) - used)
if g < 0 then g = 0 end
if g > 0 then
  redis.call('INCRBY', key, g)
  redis.call('EXPIRE', key, 2)
end
return {g, 1000 - math.floor(tonumber(t[2]) / 1000)}
