-- expire_record.lua - the user-slot step of the expiry sweep on Redis Cluster (tokens/lifecycle.c):
-- decides about one entry of an expiry bucket by the record it names, and removes the record
-- when it has expired. bucket_fix.lua then does the token-slot part.
-- KEYS[1]  <p>dev:{<user>}   the user's device hash
-- ARGV     device, now (unix s), the expiry bucket's key, token key parts (key_token_parts),
--          dry run (0/1)
-- Reply:   {why, token, expiresAt}: why = stale (no record, or its token is in another bucket),
--          later (expires after now: rescore to expiresAt) or expired (removed unless dry run;
--          token '' for a corrupt record)
-- @include tokens/lua/token_keys.lua
local js = redis.call('HGET', KEYS[1], ARGV[1])
if not js then return {'stale', '', ''} end
local ok, r = pcall(cjson.decode, js)
if not ok or type(r) ~= 'table' then r = nil end
local exp = r and tonumber(r.expiresAt)
local tok = r and type(r.expoPushToken) == 'string' and r.expoPushToken or nil
if tok then
  local _, zk = token_keys(token_parts(ARGV[4]), tok)
  if zk ~= ARGV[3] then return {'stale', '', ''} end
end
if exp and exp > tonumber(ARGV[2]) then return {'later', tok or '', tostring(exp)} end
if ARGV[5] ~= '1' then redis.call('HDEL', KEYS[1], ARGV[1]) end
return {'expired', tok or '', exp and tostring(exp) or ''}
