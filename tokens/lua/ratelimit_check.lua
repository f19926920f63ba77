-- ratelimit_check.lua - checks and charges one request against 1 or 2 GCRA buckets at once,
-- on the Redis server's clock (tokens/ratelimit.c has the math and its C twin). The API's own
-- per-user limit is charged inside its store scripts; this serves callers outside them (the
-- privacy purge of DELETE ?purge=true).
-- KEYS     1 or 2 rate-limit keys
-- ARGV     rate (per s), burst for each key in order
-- Reply:   {allowed (0/1), then per key: ok (0/1), remaining, reset ms, retry ms}
-- Both keys are evaluated first and written only when both allow: a refusal charges nothing.
-- @include tokens/lua/gcra.lua
local now = gcra_now()
local allowed, vs = 1, {}
for i = 1, #KEYS do
  vs[i] = gcra_peek(KEYS[i], tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i]), now)
  if not vs[i].ok then allowed = 0 end
end
local out = {allowed}
for i = 1, #KEYS do
  if allowed == 1 then gcra_take(KEYS[i], vs[i]) end
  local ok, rem, reset, retry = gcra_reply(vs[i])
  out[#out + 1] = ok
  out[#out + 1] = rem
  out[#out + 1] = reset
  out[#out + 1] = retry
end
return out
