-- delete_devices.lua - deletes one device's token record, or all of a user's.
-- KEYS[1]  <p>dev:{<user>}  the user's device hash
-- KEYS[2]  <p>expiry        the expiry index
-- ARGV     user, device or "" for all devices, owner stem "<p>owner:" (from db/keys.c)
-- Reply:   the number of records deleted, or -1 when there were none
-- The owner keys that still point at the records and their expiry entries go with them.
-- @include tokens/lua/owner_unbind.lua
local user, owner_stem = ARGV[1], ARGV[3]
local function drop(dev, js)
  local m = user .. '\031' .. dev
  local ok, rec = pcall(cjson.decode, js)
  if ok and type(rec) == 'table' then owner_unbind(owner_stem, rec.expoPushToken, m) end
  redis.call('ZREM', KEYS[2], m)
end
if ARGV[2] ~= '' then
  local js = redis.call('HGET', KEYS[1], ARGV[2])
  if not js then return -1 end
  drop(ARGV[2], js)
  redis.call('HDEL', KEYS[1], ARGV[2])
  return 1
end
local all = redis.call('HGETALL', KEYS[1])
if #all == 0 then return -1 end
for i = 1, #all, 2 do drop(all[i], all[i + 1]) end
redis.call('DEL', KEYS[1])
return #all / 2
