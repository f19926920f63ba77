-- scan_chunk.lua - one SCAN step over the device hashes: counts the states of their records and
-- removes inactive ones past the retention cutoff (and, when asked, expired ones).
-- KEYS     none: the hashes come from SCAN
-- ARGV     match pattern (the escaped dev hash head, "*", the tail), cursor, count, now (unix s),
--          inactive cutoff (unix s, -1 none), remove expired (0/1), dry run (0/1),
--          want items (0/1), then the key parts from db/keys.c: token key parts
--          (key_token_parts), dev hash head "<p>dev:{" and tail "}", then cluster (0/1)
-- Reply:   {cursor, active, inactive, expired, corrupt, removed expired, removed inactive, items,
--          unbind}; unbind (cluster) lists token, member, expiresAt of each removed record
-- Records without deactivatedAt count from updatedAt (ISO-8601 UTC). The hashes, owner keys and
-- expiry buckets are not in KEYS: on a single Redis the script unbinds the removed records' tokens
-- itself; on a cluster (one master's SCAN, whose hashes are all local) it only touches the hashes
-- and lists the tokens for tokens/lifecycle.c to unbind in their slots (bucket_fix.lua).
-- @include tokens/lua/record_drop.lua
local now, cutoff = tonumber(ARGV[4]), tonumber(ARGV[5])
local rmexp = ARGV[6] == '1'
local dev_head, dev_tail = ARGV[10], ARGV[11]
local items = {}
local ctx = {tp = token_parts(ARGV[9]), dry = ARGV[7] == '1'}
if ARGV[8] == '1' then ctx.items = items end
if ARGV[12] == '1' then ctx.unbind, ctx.scores = {}, {} end
local function days(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * ((m + 9) % 12) + 2) / 5) + d - 1
  return era * 146097 + yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy - 719468
end
local function epoch(s)
  if type(s) ~= 'string' then return nil end
  local y, mo, d, h, mi, se = string.match(s, '^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)')
  if not y then return nil end
  return days(tonumber(y), tonumber(mo), tonumber(d)) * 86400 + tonumber(h) * 3600
    + tonumber(mi) * 60 + tonumber(se)
end
local sc = redis.call('SCAN', ARGV[2], 'MATCH', ARGV[1], 'COUNT', ARGV[3], 'TYPE', 'hash')
local n = {0, 0, 0, 0, 0, 0}
for _, hk in ipairs(sc[2]) do
  local u = string.sub(hk, #dev_head + 1, -(#dev_tail + 1))
  local all = redis.call('HGETALL', hk)
  for i = 1, #all, 2 do
    local d, m = all[i], u .. '\031' .. all[i]
    local ok, r = pcall(cjson.decode, all[i + 1])
    if not ok or type(r) ~= 'table' then
      n[4] = n[4] + 1
    elseif (tonumber(r.expiresAt) or 0) <= now then
      if rmexp then n[5] = n[5] + 1; record_drop(ctx, hk, m, d, r, 'expired')
      else n[3] = n[3] + 1 end
    elseif r.isActive == true then
      n[1] = n[1] + 1
    else
      local at = tonumber(r.deactivatedAt) or epoch(r.updatedAt)
      if cutoff >= 0 and at and at < cutoff then
        n[6] = n[6] + 1
        record_drop(ctx, hk, m, d, r, 'inactive')
      else n[2] = n[2] + 1 end
    end
  end
end
local unbind = {}
for i = 1, #(ctx.scores or {}) do
  unbind[#unbind + 1] = ctx.unbind[2 * i - 1]
  unbind[#unbind + 1] = ctx.unbind[2 * i]
  unbind[#unbind + 1] = ctx.scores[i]
end
return {sc[1], n[1], n[2], n[3], n[4], n[5], n[6], items, unbind}
