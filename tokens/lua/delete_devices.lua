-- delete_devices.lua - deletes one device's token record, or all of a user's.
-- KEYS[1]  <p>dev:{<user>}  the user's device hash
-- ARGV     user, device or "" for all devices, token key parts (key_token_parts in db/keys.c)
-- Reply:   the number of records deleted, or -1 when there were none
-- The owner keys that still point at the records and their expiry entries go with them (in the
-- tokens' slots: on a single Redis).
-- @include tokens/lua/devices_drop.lua
local n = #devices_drop(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
if n == 0 then return -1 end
return n
