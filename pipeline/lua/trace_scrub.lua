-- trace_scrub.lua - shared helper of the privacy scripts, pulled in by an @include line.
-- trace_scrub(lk, w) removes from the trace list lk the records of user w.user: all of them when
-- w.device is '', else those naming device w.device. With w.orphans (a list the user's own index
-- names) records without a userId go too, and in the whole-user case so do records that do not
-- parse; records of other users always stay. The list keeps its TTL, or goes when emptied.
-- The ticket ids and device ids of the removed records are added to the sets w.tickets and
-- w.devices. Returns the number of records removed and whether the list is gone.
-- Records are JSON objects written by pipeline/trace.c; one that cannot name the target (its text
-- lacks the id, and JSON would not escape the id) is kept without being decoded.
local function trace_scrub(lk, w)
  local all = redis.call('LRANGE', lk, 0, -1)
  if #all == 0 then return 0, true end
  local whole = w.device == ''
  local needle = whole and w.user or w.device
  local plain = not string.find(needle, '["\\%c]')
  local keep, gone = {}, 0
  for _, raw in ipairs(all) do
    local drop
    if plain and not string.find(raw, needle, 1, true) then
      drop = whole and w.orphans and not string.find(raw, '"userId"', 1, true)
    else
      local ok, rec = pcall(cjson.decode, raw)
      if not ok or type(rec) ~= 'table' then
        drop = whole and w.orphans
      else
        local u = rec.userId
        local orphan = u == nil or u == cjson.null
        drop = (u == w.user or (orphan and w.orphans)) and (whole or rec.deviceId == w.device)
        if drop and type(rec.deviceId) == 'string' then w.devices[rec.deviceId] = true end
        if drop and type(rec.ticketId) == 'string' and rec.ticketId ~= '' then
          w.tickets[rec.ticketId] = true
        end
      end
    end
    if drop then gone = gone + 1 else keep[#keep + 1] = raw end
  end
  if gone == 0 then return 0, false end
  local ttl = redis.call('PTTL', lk)
  redis.call('DEL', lk)
  for i = 1, #keep, 512 do
    redis.call('RPUSH', lk, unpack(keep, i, math.min(i + 511, #keep)))
  end
  if #keep > 0 and ttl > 0 then redis.call('PEXPIRE', lk, ttl) end
  return gone, #keep == 0
end
