-- check_drop.lua - shared helper, pulled in by an @include line (pipeline/lua/privacy_*.lua):
-- the receipt checks' side of a privacy delete.
-- check_drop(stem, ref, user, device) removes from the check ref ("<bucket>:<check id>", as the
-- ledger keeps it) the tickets of user (of its device, unless device is ''); a check left without
-- tickets goes, with its schedule entry. Returns the number of tickets removed.
-- check_scrub(k, z, id, user, device) does the same for the check key k in schedule z.
--   stem   "<p>rq:", key_stem(KEY_RQ) passed in by the C caller
local function check_scrub(k, z, id, user, device)
  local h = redis.call('HGETALL', k)
  local head = user .. '\031'
  if device ~= '' then head = head .. device .. '\031' end
  local gone, left = {}, 0
  for i = 1, #h, 2 do
    if string.sub(h[i], 1, 1) ~= '_' then
      if string.sub(h[i + 1], 1, #head) == head then gone[#gone + 1] = h[i] else left = left + 1 end
    end
  end
  if #gone == 0 then return 0 end
  if left == 0 then
    redis.call('DEL', k)
    redis.call('ZREM', z, id)
  else
    redis.call('HDEL', k, unpack(gone))
  end
  return #gone
end
local function check_drop(stem, ref, user, device)
  local b, id = string.match(ref, '^(%d+):(.+)$')
  if not b then return 0 end
  local z = stem .. '{' .. b .. '}'
  return check_scrub(z .. ':' .. id, z, id, user, device)
end
