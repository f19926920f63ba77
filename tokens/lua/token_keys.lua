-- token_keys.lua - shared helper: the token-scoped keys (db/keys.h) of a push token the script
-- learned inside Redis, pulled in by an @include line.
-- token_parts(s) reads the argument key_token_parts() builds (netstrings: owner head, owner tail,
-- expiry head, expiry tail); token_bucket(tok) is key_token_bucket()'s twin (FNV-1a 32 bit mod
-- 1024, exact on Lua's doubles: h * 16777619 mod 2^32 = h * 403 + (h mod 256) * 2^24 mod 2^32);
-- tests/db/test_keys.c runs both on the same tokens.
local function token_parts(s)
  local t, i = {}, 1
  while i <= #s do
    local c = string.find(s, ':', i, true)
    local n = tonumber(string.sub(s, i, c - 1))
    t[#t + 1] = string.sub(s, c + 1, c + n)
    i = c + n + 1
  end
  return {owner_head = t[1], owner_tail = t[2], expiry_head = t[3], expiry_tail = t[4]}
end

local function token_bucket(tok)
  local h = 2166136261
  for i = 1, #tok do
    h = bit.bxor(h, string.byte(tok, i)) % 4294967296
    h = (h * 403 + (h % 256) * 16777216) % 4294967296
  end
  return h % 1024
end

-- The owner key and the expiry key of tok.
local function token_keys(tp, tok)
  local k = token_bucket(tok)
  return tp.owner_head .. k .. tp.owner_tail .. tok, tp.expiry_head .. k .. tp.expiry_tail
end

-- Removes what points at member ("user\031device") from tok's slot: its owner key when that still
-- names member (a token that has moved on keeps its owner), and its expiry entry.
local function token_unbind(okey, zkey, member)
  if redis.call('GET', okey) == member then redis.call('DEL', okey) end
  redis.call('ZREM', zkey, member)
end
