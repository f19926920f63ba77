-- register_user.lua - the user slot's half of a registration alone (register_user_part.lua),
-- for a Redis where a script may touch one hash slot only. tokens/store_redis.c then unbinds the
-- tokens it lists (unbind_token.lua, each in its slot), binds the token (register_token.lua) and
-- deactivates the record the token was taken from (deactivate.lua): DESIGN.md "Reassignment across slots".
-- KEYS[1]  <p>dev:{<user>}   the user's device hash
-- KEYS[2]  <p>rl:u:{<user>}  the user's rate limit
-- ARGV     as register_user_part.lua's register_ctx
-- Reply:   {code, limit ok, remaining, reset ms, retry ms, created (0/1), registeredAt,
--          {token, member, ...} to unbind}; codes as register.lua's
-- @include tokens/lua/register_user_part.lua
local c = register_ctx(ARGV)
local rl, code, created, reg = register_user(c, KEYS[1], KEYS[2])
local out = {code, rl[1], rl[2], rl[3], rl[4]}
if code ~= 0 then return out end
out[6], out[7], out[8] = created, reg, c.unbind
return out
