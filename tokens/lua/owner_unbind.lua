-- owner_unbind.lua - shared helper, pulled into the token scripts by an @include line.
-- owner_unbind(tp, token, member) removes what points at member ("user\031device") from the
-- slot of token: its owner key when that still names member (a token that has since moved to
-- another device keeps its owner) and its expiry entry.
--   tp     token_parts() of the key_token_parts() argument passed in by the C caller
--   token  a record's expoPushToken; anything but a string (a corrupt record) is ignored
-- @include tokens/lua/token_keys.lua
local function owner_unbind(tp, token, member)
  if type(token) ~= 'string' then return end
  local okey, zkey = token_keys(tp, token)
  token_unbind(okey, zkey, member)
end
