-- list.lua - every record of a user, charging the user's rate limit first (an API request).
-- KEYS[1]  <p>dev:{<user>}   the user's device hash
-- KEYS[2]  <p>rl:u:{<user>}  the user's rate limit
-- ARGV     rate, burst, now (unix ms)
-- Reply:   {code, limit ok (0/1), remaining, reset ms, retry ms, HGETALL of the hash}; code 0,
--          or -7 (rate limited: no records)
-- @include tokens/lua/gcra.lua
local rl, allowed = user_quota(KEYS[2], ARGV[1], ARGV[2], ARGV[3])
if not allowed then return {-7, rl[1], rl[2], rl[3], rl[4]} end
return {0, rl[1], rl[2], rl[3], rl[4], redis.call('HGETALL', KEYS[1])}
