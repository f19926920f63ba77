-- deactivate.lua - marks one device's token record inactive, charging the user's rate limit
-- first when one is given (an API request).
-- KEYS[1]  <p>dev:{<user>}   the user's device hash
-- KEYS[2]  <p>rl:u:{<user>}  the user's rate limit
-- ARGV     device, reason, now (unix s), now (ISO-8601 ms), only-if token or "", rate, burst
--          (0 0: no limit), now (unix ms)
-- Reply:   {code, limit ok (0/1), remaining, reset ms, retry ms}; code 0, -1 (no record),
--          -4 (corrupt record), -6 (the record holds another token), -7 (rate limited)
-- An inactive record keeps its first reason and time. The record stays in the owner and expiry
-- indexes (the sweep removes it after the retention period).
-- @include tokens/lua/gcra.lua
-- @include tokens/lua/record_deactivate.lua
local rl, allowed = user_quota(KEYS[2], ARGV[6], ARGV[7], ARGV[8])
local code = -7
if allowed then
  code = record_deactivate(KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5])
end
return {code, rl[1], rl[2], rl[3], rl[4]}
