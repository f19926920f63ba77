-- register.lua - registers (or refreshes) one device's push token for a user.
-- KEYS[1]  <p>dev:{<user>}   the user's device hash
-- KEYS[2]  <p>owner:<token>  the token's owner key
-- KEYS[3]  <p>expiry         the expiry index
-- ARGV     user, device, token, platform, now (unix s), now (ISO-8601 ms), ttl (s),
--          max devices, then the key parts from db/keys.c: owner stem "<p>owner:",
--          dev hash head "<p>dev:{" and tail "}", then the locale ("" for none)
-- Reply:   {0, created (0/1), record JSON, previous user, previous device}, or {-2} when the
--          user is at the device limit
-- - a new device past the limit first evicts the oldest inactive/expired/corrupt records of the
--   user (all or nothing); when there are not enough of those the call is refused unchanged;
-- - a token bound to another (user, device) that still holds it: that record is deactivated with
--   reason "reassigned" (kept if already inactive) and reported as the previous user and device;
-- - the device's previous token loses its owner key when that key still points at this device;
-- - registeredAt survives, isActive = true, deactivated fields cleared, expiresAt = now + ttl,
--   locale as given (none: removed);
-- - owner key and hash expire with the newest expiresAt.
-- @include tokens/lua/owner_unbind.lua
local user, dev, tok = ARGV[1], ARGV[2], ARGV[3]
local now, iso, max = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[8])
local owner_stem, dev_head, dev_tail = ARGV[9], ARGV[10], ARGV[11]
local member = user .. '\031' .. dev
local function decode(s)
  if not s then return nil end
  local ok, r = pcall(cjson.decode, s)
  if ok and type(r) == 'table' then return r end
  return nil
end
local cur = redis.call('HGET', KEYS[1], dev)
local rec, exists = decode(cur), cur ~= false
if not exists then
  local need = redis.call('HLEN', KEYS[1]) - max + 1
  if need > 0 then
    local all, dead = redis.call('HGETALL', KEYS[1]), {}
    for i = 1, #all, 2 do
      local r = decode(all[i + 1])
      if not r or r.isActive ~= true or (tonumber(r.expiresAt) or 0) <= now then
        local t = (r and type(r.updatedAt) == 'string') and r.updatedAt or ''
        dead[#dead + 1] = {all[i], r, t}
      end
    end
    if #dead < need then return {-2} end
    table.sort(dead, function(a, b) return a[3] < b[3] end)
    for i = 1, need do
      local m = user .. '\031' .. dead[i][1]
      if dead[i][2] then owner_unbind(owner_stem, dead[i][2].expoPushToken, m) end
      redis.call('HDEL', KEYS[1], dead[i][1])
      redis.call('ZREM', KEYS[3], m)
    end
  end
end
local pu, pd = '', ''
local owner = redis.call('GET', KEYS[2])
if owner and owner ~= member then
  local sep = string.find(owner, '\031', 1, true)
  if sep then
    local ou, od = string.sub(owner, 1, sep - 1), string.sub(owner, sep + 1)
    local ohk = dev_head .. ou .. dev_tail
    local orec = decode(redis.call('HGET', ohk, od))
    if orec and orec.expoPushToken == tok then
      if orec.isActive ~= false then
        orec.isActive = false
        orec.deactivatedReason = 'reassigned'
        orec.deactivatedAt = now
        orec.updatedAt = iso
        redis.call('HSET', ohk, od, cjson.encode(orec))
      end
      pu, pd = ou, od
    end
  end
end
if rec and rec.expoPushToken ~= tok then owner_unbind(owner_stem, rec.expoPushToken, member) end
local created = 0
if not exists then created = 1 end
if not rec then rec = {} end
if type(rec.registeredAt) ~= 'string' then rec.registeredAt = iso end
rec.userId, rec.deviceId, rec.expoPushToken, rec.platform = user, dev, tok, ARGV[4]
rec.updatedAt, rec.isActive = iso, true
rec.expiresAt = now + tonumber(ARGV[7])
rec.deactivatedReason, rec.deactivatedAt = nil, nil
rec.locale = ARGV[12] ~= '' and ARGV[12] or nil
local js = cjson.encode(rec)
redis.call('HSET', KEYS[1], dev, js)
redis.call('SET', KEYS[2], member, 'EXAT', rec.expiresAt)
redis.call('ZADD', KEYS[3], rec.expiresAt, member)
if redis.call('EXPIREAT', KEYS[1], rec.expiresAt, 'GT') == 0 and
   redis.call('TTL', KEYS[1]) == -1 then
  redis.call('EXPIREAT', KEYS[1], rec.expiresAt)
end
return {0, created, js, pu, pd}
