-- register.lua - registers (or refreshes) one device's push token for a user, in one script: the
-- user slot's half (register_user_part.lua), the token slots of the tokens it let go, the token
-- slot's half (owner key and expiry entry) and the record the token was taken from. On a single
-- Redis this is the one round trip of a registration; tokens/store_redis.c runs the same steps
-- as separate scripts, one hash slot each, when it must (DESIGN.md "Reassignment across slots").
-- KEYS[1]  <p>owner:{t<k>}:<token>  the token's owner key
-- KEYS[2]  <p>expiry:{t<k>}         the token's expiry bucket
-- KEYS[3]  <p>dev:{<user>}          the user's device hash
-- KEYS[4]  <p>rl:u:{<user>}         the user's rate limit
-- ARGV     as register_user_part.lua's register_ctx
-- Reply:   {code, limit ok (0/1), remaining, reset ms, retry ms, created (0/1), registeredAt,
--          previous user, previous device}; code -7 (rate limited) and -2 (the user is at the
--          device limit) end after the limit's four numbers.
-- - a token bound to another (user, device) whose record still holds it: that record is
--   deactivated with reason "reassigned" (kept if already inactive) and reported;
-- - the device's previous token loses its owner key when that key still names this device;
-- - registeredAt survives, isActive = true, deactivated fields cleared, expiresAt as given,
--   locale as given (none: removed): the record is the JSON the caller built;
-- - owner key and hash expire with the newest expiresAt.
-- @include tokens/lua/register_user_part.lua
local c = register_ctx(ARGV)
local rl, code, created, reg = register_user(c, KEYS[3], KEYS[4])
local out = {code, rl[1], rl[2], rl[3], rl[4]}
if code ~= 0 then return out end
if #c.unbind > 0 then
  local tp = token_parts(c.tparts)
  for i = 1, #c.unbind, 2 do
    local okey, zkey = token_keys(tp, c.unbind[i])
    if c.unbind[i] == c.owned then
      redis.call('DEL', okey)
      redis.call('ZREM', zkey, c.unbind[i + 1])
    else
      token_unbind(okey, zkey, c.unbind[i + 1])
    end
  end
end
local prev = bind_token(KEYS[1], KEYS[2], c.member, c.exp, true)
local pu, pd = bind_take(c, prev, c.member, c.tok)
out[6], out[7], out[8], out[9] = created, reg, pu, pd
return out
