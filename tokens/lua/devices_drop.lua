-- devices_drop.lua - shared helper, pulled in by an @include line (tokens/lua/delete_devices.lua,
-- pipeline/lua/privacy_purge.lua).
-- devices_drop(hk, zk, user, device, owner_stem) deletes one device's token record (device ~= '')
-- or every record of the user (device == ''), with the owner keys that still point at them and
-- their expiry index entries. Returns the list of the device ids deleted (empty: none existed).
--   hk          <p>dev:{<user>}, the user's device hash
--   zk          <p>expiry, the expiry index
--   owner_stem  "<p>owner:", key_stem(KEY_OWNER) passed in by the C caller
-- @include tokens/lua/owner_unbind.lua
local function devices_drop(hk, zk, user, device, owner_stem)
  local function drop(dev, js)
    local m = user .. '\031' .. dev
    local ok, rec = pcall(cjson.decode, js)
    if ok and type(rec) == 'table' then owner_unbind(owner_stem, rec.expoPushToken, m) end
    redis.call('ZREM', zk, m)
  end
  if device ~= '' then
    local js = redis.call('HGET', hk, device)
    if not js then return {} end
    drop(device, js)
    redis.call('HDEL', hk, device)
    return {device}
  end
  local all, devs = redis.call('HGETALL', hk), {}
  for i = 1, #all, 2 do
    drop(all[i], all[i + 1])
    devs[#devs + 1] = all[i]
  end
  redis.call('DEL', hk)
  return devs
end
