-- mark_done.lua - gives devices their final claim state in their ledger entries once the outcome
-- is durable: 'd' (accepted by Expo, or the token deactivated) or 'f' (the DLQ record
-- acknowledged; only a replay of that record claims it again).
-- KEYS     the ledger entries: <p>led:<n>:{<user>}:<event> (db/keys.h key_ledger)
-- ARGV[1]  the entry's TTL in seconds (refreshed)
-- ARGV[2]  'd' or 'f'
-- then per key, in order: the number of devices c, then c device ids
-- Reply:   the number of states set
local n, a = 0, 3
for _, k in ipairs(KEYS) do
  local c = tonumber(ARGV[a])
  local set = {}
  for i = a + 1, a + c do
    set[#set + 1] = 's:' .. ARGV[i]
    set[#set + 1] = ARGV[2]
  end
  redis.call('HSET', k, unpack(set))
  redis.call('EXPIRE', k, ARGV[1])
  n = n + c
  a = a + 1 + c
end
return n
