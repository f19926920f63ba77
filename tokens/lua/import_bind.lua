-- import_bind.lua - the token-slot step of importing one record on Redis Cluster
-- (tokens/lifecycle.c): the expiry entry, and with own the owner key (bind.lua's bind_token).
-- KEYS[1]  <p>owner:{t<k>}:<token>
-- KEYS[2]  <p>expiry:{t<k>}
-- ARGV     member ("user\031device"), expiresAt (unix s), own (0/1)
-- Reply:   what the owner key named before ('' when nothing, or when not own)
-- @include tokens/lua/bind.lua
return bind_token(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1') or ''
