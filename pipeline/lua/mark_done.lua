-- mark_done.lua - gives devices their final claim state in their ledger entries once the outcome
-- is durable: 'd' (accepted by Expo, or the token deactivated) or 'f' (the DLQ record
-- acknowledged; only a replay of that record claims it again); with it the device's outcome
-- 'o:<device>' (the receipt check holding its ticket, "<bucket>:<check id>") and the encoded
-- event 'ev' a receipt's resend reads (in the same HSET).
-- KEYS     the ledger entries: <p>led:<n>:{<user>}:<event> (db/keys.h key_ledger)
-- ARGV[1]  the entry's TTL in seconds, set only when this write creates the entry (its claim
--          made it; a privacy delete may have removed it since)
-- ARGV[2]  'd' or 'f'
-- ARGV[3]  trace records kept per entry (trace.max_records)
-- then per key, in order: the number of devices c, the encoded event or '', then c times a
--          device id and its outcome or '', then the number of trace records r to write with the
--          marks, then r times field and record JSON
-- Reply:   the number of states set
-- @include pipeline/lua/ledger_trim.lua
local max = tonumber(ARGV[3])
local n, a = 0, 4
for _, k in ipairs(KEYS) do
  local c = tonumber(ARGV[a])
  local set = {}
  for i = a + 2, a + 2 * c, 2 do
    set[#set + 1] = 's:' .. ARGV[i]
    set[#set + 1] = ARGV[2]
    if ARGV[i + 1] ~= '' then
      set[#set + 1] = 'o:' .. ARGV[i]
      set[#set + 1] = ARGV[i + 1]
    end
  end
  -- 'ev' goes with the marks (one HSET, no HSETNX): any writer's copy of the event serves a resend.
  if ARGV[a + 1] ~= '' then
    set[#set + 1] = 'ev'
    set[#set + 1] = ARGV[a + 1]
  end
  local nr = tonumber(ARGV[a + 2 + 2 * c])
  local fresh = #set / 2 -- the marks' fields (and 'ev'): all new when the entry was gone
  for i = a + 3 + 2 * c, a + 2 + 2 * c + 2 * nr do set[#set + 1] = ARGV[i] end
  local count = nr > 0 and redis.call('HINCRBY', k, 'n', nr)
  -- Every field new (records always are): the entry may be new; it gets its TTL.
  if redis.call('HSET', k, unpack(set)) == fresh + nr then
    if count then ledger_count(k, count, nr, ARGV[1], max)
    else redis.call('EXPIRE', k, ARGV[1], 'NX') end
  elseif count and count > max then
    ledger_trim(k, max)
  end
  n = n + c
  a = a + 3 + 2 * c + 2 * nr
end
return n
