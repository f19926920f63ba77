-- reindex_bind.lua - the token-slot step of `heraldctl tokens reindex` on Redis Cluster
-- (tokens/lifecycle.c): the record's expiry entry, and with own its owner key, but only while the
-- key still names what the earlier reads saw (nothing, or a holder that no longer holds the
-- token): a binding a registration wrote meanwhile is never overwritten by a stale record.
-- KEYS[1]  <p>owner:{t<k>}:<token>
-- KEYS[2]  <p>expiry:{t<k>}
-- ARGV     member ("user\031device"), expiresAt (unix s), own (0/1), the owner value expected
--          ('' for none)
-- Reply:   {1 when the owner key was written else 0, what the owner key named ('' nothing)}
-- @include tokens/lua/bind.lua
local cur = redis.call('GET', KEYS[1]) or ''
local own = ARGV[3] == '1' and cur == ARGV[4] and cur ~= ARGV[1]
bind_token(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]), own)
return {own and 1 or 0, cur}
