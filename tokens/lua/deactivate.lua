-- deactivate.lua - marks one device's token record inactive.
-- KEYS[1]  <p>dev:{<user>}  the user's device hash
-- ARGV     device, reason, now (unix s), now (ISO-8601 ms), only-if token or ""
-- Reply:   0, -1 (no record), -4 (corrupt record), -6 (the record holds another token)
-- An inactive record keeps its first reason and time. The record stays in the owner and expiry
-- indexes (the sweep removes it after the retention period).
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return -1 end
local ok, rec = pcall(cjson.decode, cur)
if not ok or type(rec) ~= 'table' then return -4 end
if ARGV[5] ~= '' and rec.expoPushToken ~= ARGV[5] then return -6 end
if rec.isActive == false then return 0 end
rec.isActive = false
rec.deactivatedReason = ARGV[2]
rec.deactivatedAt = tonumber(ARGV[3])
rec.updatedAt = ARGV[4]
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(rec))
return 0
