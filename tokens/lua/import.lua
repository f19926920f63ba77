-- import.lua - restores a batch of token records (heraldctl tokens import) under the rules of
-- registration, which it shares through bind.lua.
-- KEYS[1]  <p>expiry  the expiry index
-- ARGV     now (unix s), now (ISO-8601 ms), max devices, then the key parts from db/keys.c:
--          owner stem "<p>owner:", dev hash head "<p>dev:{" and tail "}"; then per record:
--          user, device, token, expiresAt, record JSON, active (0/1)
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
-- The hashes and owner keys are not in KEYS: fine on a single Redis, not cluster-safe.
-- @include tokens/lua/bind.lua
local ctx = {now = tonumber(ARGV[1]), iso = ARGV[2], max = tonumber(ARGV[3]),
             owner_stem = ARGV[4], dev_head = ARGV[5], dev_tail = ARGV[6], zkey = KEYS[1]}
local n = {0, 0, 0, 0, 0}
local refused = {}
local function import_one(k, u, d, tok, exp, js, active)
  local hk, member, okey = ctx.dev_head .. u .. ctx.dev_tail, u .. '\031' .. d, ctx.owner_stem .. tok
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
  local own = false
  if exp > ctx.now then
    if active then
      local _, _, changed = bind_take(ctx, okey, member, tok)
      if changed then n[4] = n[4] + 1 end
      own = true
    else
      own = bind_holder(ctx, okey, member, tok) == nil
    end
  end
  local old = bind_decode(cur)
  if old and old.expoPushToken ~= tok then owner_unbind(ctx.owner_stem, old.expoPushToken, member) end
  bind_write(ctx, hk, okey, member, d, js, exp, own)
end
local k = 0
for i = 7, #ARGV, 6 do
  k = k + 1
  import_one(k, ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3]), ARGV[i + 4],
             ARGV[i + 5] == '1')
end
return {n[1], n[2], n[3], n[4], n[5], refused}
