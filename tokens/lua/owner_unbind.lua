-- owner_unbind.lua - shared helper, pulled into the token scripts by an @include line.
-- owner_unbind(owner_stem, token, member) deletes the owner key of token when it still names
-- member ("user\031device"): a token that has since moved to another device keeps its owner.
--   owner_stem  "<p>owner:", key_stem(KEY_OWNER) passed in by the C caller
--   token       a record's expoPushToken; anything but a string (a corrupt record) is ignored
local function owner_unbind(owner_stem, token, member)
  if type(token) ~= 'string' then return end
  local k = owner_stem .. token
  if redis.call('GET', k) == member then redis.call('DEL', k) end
end
