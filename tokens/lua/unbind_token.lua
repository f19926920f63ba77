-- unbind_token.lua - drops a member's binding from one token's slot (see register_user.lua): the
-- owner key when it still names the member, and the expiry entry.
-- KEYS[1]  <p>owner:{t<k>}:<token>
-- KEYS[2]  <p>expiry:{t<k>}
-- ARGV     member ("user\031device")
-- Reply:   0
-- @include tokens/lua/token_keys.lua
token_unbind(KEYS[1], KEYS[2], ARGV[1])
return 0
