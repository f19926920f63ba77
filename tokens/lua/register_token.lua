-- register_token.lua - the token slot's half of a registration alone (see register_user.lua):
-- the owner key names the member until expiresAt, the expiry bucket schedules it.
-- KEYS[1]  <p>owner:{t<k>}:<token>
-- KEYS[2]  <p>expiry:{t<k>}
-- ARGV     member ("user\031device"), expiresAt (unix s)
-- Reply:   what the owner key named before ('' when nothing)
-- @include tokens/lua/bind.lua
return bind_token(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]), true) or ''
