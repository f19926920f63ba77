-- import.lua - writes validated token records with their owner keys and expiry entries.
-- KEYS[1]  <p>expiry  the expiry index
-- ARGV     now (unix s), then the key parts from db/keys.c: owner stem "<p>owner:", dev hash
--          head "<p>dev:{" and tail "}"; then per record: user, device, token, expiresAt,
--          record JSON, active (0/1)
-- Reply:   {created, updated, unchanged}
-- Idempotent. A record that replaces one with another token unbinds the old token's owner key
-- (when it still points here). The owner key points at an active record; an inactive one takes it
-- only when nobody holds it. Expired records get no owner key and are left for the sweep. The
-- hashes and owner keys are not in KEYS: fine on a single Redis, not cluster-safe.
-- @include tokens/lua/owner_unbind.lua
local now = tonumber(ARGV[1])
local owner_stem, dev_head, dev_tail = ARGV[2], ARGV[3], ARGV[4]
local c, u2, same = 0, 0, 0
for i = 5, #ARGV, 6 do
  local u, d, tok, exp, js = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3]), ARGV[i + 4]
  local hk, m = dev_head .. u .. dev_tail, u .. '\031' .. d
  local old = redis.call('HGET', hk, d)
  if old == js then same = same + 1
  else
    if old then
      u2 = u2 + 1
      local ok, r = pcall(cjson.decode, old)
      if ok and type(r) == 'table' and r.expoPushToken ~= tok then
        owner_unbind(owner_stem, r.expoPushToken, m)
      end
    else c = c + 1 end
    redis.call('HSET', hk, d, js)
  end
  redis.call('ZADD', KEYS[1], exp, m)
  if exp > now then
    local okey = owner_stem .. tok
    if ARGV[i + 5] == '1' or redis.call('EXISTS', okey) == 0 then
      redis.call('SET', okey, m, 'EXAT', exp)
    end
    if redis.call('EXPIRETIME', hk) < exp then redis.call('EXPIREAT', hk, exp) end
  end
end
return {c, u2, same}
