-- record_deactivate.lua - shared helper, pulled in by an @include line (deactivate.lua, and the
-- registration scripts for the record a token is taken from).
-- record_deactivate(hk, dev, reason, now, iso, only) marks the record of device dev in the hash hk
-- inactive with reason (kept with its time when already inactive); with only ~= '' only when the
-- record still holds that token. Returns 0, -1 (no record), -4 (corrupt), -6 (another token).
-- Records as herald writes them (tokens/model.c tok_record_json) are edited as text; anything
-- else goes through cjson.
local function record_deactivate_json(hk, dev, cur, reason, now, iso, only)
  local ok, rec = pcall(cjson.decode, cur)
  if not ok or type(rec) ~= 'table' then return -4 end
  if only ~= '' and rec.expoPushToken ~= only then return -6 end
  if rec.isActive == false then return 0 end
  rec.isActive = false
  rec.deactivatedReason = reason
  rec.deactivatedAt = now
  rec.updatedAt = iso
  redis.call('HSET', hk, dev, cjson.encode(rec))
  return 0
end

local function record_deactivate(hk, dev, reason, now, iso, only)
  local cur = redis.call('HGET', hk, dev)
  if not cur then return -1 end
  local tok = string.match(cur, '"expoPushToken":"([^"\\]*)"')
  local a, b = string.find(cur, '"updatedAt":"[^"\\]*","isActive":true,', 1)
  if not tok or not a or string.find(cur, '"deactivated', 1, true) or
     string.sub(cur, -1) ~= '}' then
    return record_deactivate_json(hk, dev, cur, reason, now, iso, only)
  end
  if only ~= '' and tok ~= only then return -6 end
  local js = string.sub(cur, 1, a - 1) .. '"updatedAt":' .. cjson.encode(iso) ..
    ',"isActive":false,' .. string.sub(cur, b + 1, -2) .. ',"deactivatedReason":' ..
    cjson.encode(reason) .. ',"deactivatedAt":' .. string.format('%d', now) .. '}'
  redis.call('HSET', hk, dev, js)
  return 0
end
