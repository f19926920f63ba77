-- devices_drop.lua - shared helper, pulled in by an @include line (tokens/lua/delete_devices.lua,
-- pipeline/lua/privacy_purge.lua).
-- devices_drop(hk, user, device, tparts) deletes one device's token record (device ~= '') or
-- every record of the user (device == ''), with, in each record's token slot, the owner key when
-- it still points at the record and the expiry entry. Returns the list of the device ids deleted
-- (empty: none existed). With a table `unbound` (Redis Cluster, where the token slots are other
-- calls) the token slots are left alone and each record's token and member are appended to it.
--   hk      <p>dev:{<user>}, the user's device hash
--   tparts  the token key parts, key_token_parts() passed in by the C caller
-- A corrupt record names no token: its expiry entry is left for the sweep (stale, dropped).
-- @include tokens/lua/owner_unbind.lua
local function devices_drop(hk, user, device, tparts, unbound)
  local tp = token_parts(tparts)
  local function drop(dev, js)
    local token, member = string.match(js, '"expoPushToken":"([^"\\]*)"'), user .. '\031' .. dev
    if not unbound then owner_unbind(tp, token, member)
    elseif token then unbound[#unbound + 1] = token; unbound[#unbound + 1] = member end
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
