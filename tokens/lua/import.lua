-- import.lua - restores a batch of token records (heraldctl tokens import) under the rules of
-- registration, which it shares through bind.lua.
-- KEYS     none (the keys follow from the records)
-- ARGV     now (unix s), now (ISO-8601 ms), max devices, then the key parts from db/keys.c:
--          token key parts (key_token_parts), dev hash head "<p>dev:{" and tail "}"; then per
--          record: user, device, token, expiresAt, record JSON, active (0/1)
-- Reply:   {created, updated, unchanged, reassigned, evicted, {refused record numbers, 1-based}}
-- A record already stored exactly as given is left alone (unchanged): the same file twice changes
-- nothing the second time. Any other record goes through registration's steps:
-- - a new device past the limit evicts the user's oldest inactive/expired/corrupt records, or is
--   refused unchanged;
-- - an active, unexpired record takes its token: the holder's record is deactivated with reason
--   "reassigned" (counted when it was active);
-- - an inactive one gets the owner key only when no other record holds the token; an expired one
--   gets none and is left for the sweep;
-- - the device's previous token loses its owner key when that key still names this device;
-- but the record is stored as given (registeredAt, updatedAt, isActive, expiresAt, deactivated*).
-- The hashes, owner keys and expiry buckets are not in KEYS: fine on a single Redis, not
-- cluster-safe.
-- @include tokens/lua/bind.lua
local ctx = {now = tonumber(ARGV[1]), iso = ARGV[2], max = tonumber(ARGV[3]),
             tp = token_parts(ARGV[4]), dev_head = ARGV[5], dev_tail = ARGV[6]}
local n = {0, 0, 0, 0, 0}
local refused = {}
-- Does another record than member hold tok through its owner key okey?
local function held_by_other(okey, member, tok)
  local owner = redis.call('GET', okey)
  if not owner or owner == member then return false end
  local sep = string.find(owner, '\031', 1, true)
  if not sep then return false end
  local js = redis.call('HGET', ctx.dev_head .. string.sub(owner, 1, sep - 1) .. ctx.dev_tail,
                        string.sub(owner, sep + 1))
  return js ~= false and string.match(js, '"expoPushToken":"([^"\\]*)"') == tok
end
local function import_one(k, u, d, tok, exp, js, active)
  local hk, member = ctx.dev_head .. u .. ctx.dev_tail, u .. '\031' .. d
  local okey, zkey = token_keys(ctx.tp, tok)
  local cur = redis.call('HGET', hk, d)
  if cur == js then n[3] = n[3] + 1; return end
  if not cur then
    local ev = bind_room(ctx, hk, u)
    if ev < 0 then refused[#refused + 1] = k; return end
    n[5] = n[5] + ev
    n[1] = n[1] + 1
  else
    n[2] = n[2] + 1
  end
  local old = cur and string.match(cur, '"expoPushToken":"([^"\\]*)"')
  if old and old ~= tok then owner_unbind(ctx.tp, old, member) end
  redis.call('HSET', hk, d, js)
  bind_expire(hk, exp, ctx.now)
  local live = exp > ctx.now
  local own = live and (active or not held_by_other(okey, member, tok))
  local prev = bind_token(okey, zkey, member, exp, own)
  if live and active then
    local _, _, was = bind_take(ctx, prev, member, tok)
    if was then n[4] = n[4] + 1 end
  end
end
local k = 0
for i = 7, #ARGV, 6 do
  k = k + 1
  import_one(k, ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3]), ARGV[i + 4],
             ARGV[i + 5] == '1')
end
return {n[1], n[2], n[3], n[4], n[5], refused}
