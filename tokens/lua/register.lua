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
-- The rules shared with import.lua are in bind.lua.
-- @include tokens/lua/bind.lua
local user, dev, tok = ARGV[1], ARGV[2], ARGV[3]
local ctx = {owner_stem = ARGV[9], dev_head = ARGV[10], dev_tail = ARGV[11], zkey = KEYS[3],
             now = tonumber(ARGV[5]), iso = ARGV[6], max = tonumber(ARGV[8])}
local member = user .. '\031' .. dev
local cur = redis.call('HGET', KEYS[1], dev)
local rec, exists = bind_decode(cur), cur ~= false
if not exists and bind_room(ctx, KEYS[1], user) < 0 then return {-2} end
local pu, pd = bind_take(ctx, KEYS[2], member, tok)
if rec and rec.expoPushToken ~= tok then owner_unbind(ctx.owner_stem, rec.expoPushToken, member) end
local created = 0
if not exists then created = 1 end
if not rec then rec = {} end
if type(rec.registeredAt) ~= 'string' then rec.registeredAt = ctx.iso end
rec.userId, rec.deviceId, rec.expoPushToken, rec.platform = user, dev, tok, ARGV[4]
rec.updatedAt, rec.isActive = ctx.iso, true
rec.expiresAt = ctx.now + tonumber(ARGV[7])
rec.deactivatedReason, rec.deactivatedAt = nil, nil
rec.locale = ARGV[12] ~= '' and ARGV[12] or nil
local js = cjson.encode(rec)
bind_write(ctx, KEYS[1], KEYS[2], member, dev, js, rec.expiresAt, true)
return {0, created, js, pu, pd}
