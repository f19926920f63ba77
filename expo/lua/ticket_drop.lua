-- ticket_drop.lua - shared helper, pulled in by an @include line (pipeline/lua/privacy_*.lua):
-- the receipt checks' side of a privacy delete.
-- ticket_drop(zk, ticket_stem, id, user, device) deletes the receipt check of ticket id, its
-- <p>ticket:<id> hash and its <p>receipts entry, when the hash names user (and device, unless
-- device is '') or has already expired. Returns 1 when something was deleted, else 0.
--   zk           <p>receipts, ticket ids by due time
--   ticket_stem  "<p>ticket:", key_stem(KEY_TICKET) passed in by the C caller
local function ticket_drop(zk, ticket_stem, id, user, device)
  local k = ticket_stem .. id
  local h = redis.call('HMGET', k, 'userId', 'deviceId')
  if h[1] and (h[1] ~= user or (device ~= '' and h[2] ~= device)) then return 0 end
  local n = redis.call('DEL', k) + redis.call('ZREM', zk, id)
  if n > 0 then return 1 end
  return 0
end
