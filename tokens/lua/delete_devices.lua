-- delete_devices.lua - deletes one device's token record, or all of a user's.
-- KEYS[1]  <p>dev:{<user>}  the user's device hash
-- KEYS[2]  <p>expiry        the expiry index
-- ARGV     user, device or "" for all devices, owner stem "<p>owner:" (from db/keys.c)
-- Reply:   the number of records deleted, or -1 when there were none
-- The owner keys that still point at the records and their expiry entries go with them.
-- @include tokens/lua/devices_drop.lua
local n = #devices_drop(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])
if n == 0 then return -1 end
return n
