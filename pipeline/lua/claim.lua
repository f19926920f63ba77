-- claim.lua - claims the devices of a loop turn's events before they are sent to, in the events'
-- delivery ledger entries (pipeline/ledger.h). A device's claim state is the entry's field
-- 's:<device>': 'p:<owner>:<deadline>' (pending, owned by instance <owner> until <deadline>, unix
-- ms of Redis's clock, renewed by renew.lua), 'd' (done) or 'f' (failed for good). Redis 7.0 has
-- no per-field TTL: a pending claim past its deadline counts as absent.
-- KEYS     one entry per event: <p>led:<n>:{<user>}:<event> (db/keys.h key_ledger)
-- ARGV[1]  pending lease in ms (dedup.pending_ttl_s): the deadline is now + this
-- ARGV[2]  this instance's id
-- ARGV[3]  the entry's TTL in seconds, set when the entry is created (its field 'n', the count of
--          trace records, is absent only then: the trace and every ledger writer keep it)
-- ARGV[4]  trace records kept per entry (trace.max_records)
-- ARGV[5]  L: how many instances' leases lapsed
-- ARGV[6..5+L] those instances: their pending claims are taken over
-- then per key, in order: mode ('o' an event as consumed, 'r' heraldctl dlq replay of a
--          notification that failed for good: its 'f' state may be claimed, once; 'O' and 'R' the
--          same claimed again after the answer to this instance's last claim of it was lost: its
--          own pending state counts as absent, nothing of this instance sends under it), the number
--          of devices c, then c device ids, then the number of trace records r of the event to
--          write with the claim (whatever the results), then r times field and record JSON
-- Reply:   per device, in order: 1 claimed now, 3 taken over from a lapsed owner (both: the state
--          is now pending for this instance), 0 already done (skip: delivered before), 2 failed
--          before (ordinary: skip, only a replay sends it), -1 pending (held by this or a live
--          instance, or by one not known to be gone, until its deadline: claim again later)
-- @include pipeline/lua/ledger_trim.lua
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local mine = string.format('p:%s:%d', ARGV[2], now + tonumber(ARGV[1]))
local ttl, max = ARGV[3], tonumber(ARGV[4])
local nl = tonumber(ARGV[5])
local lapsed = {}
for i = 6, 5 + nl do lapsed[ARGV[i]] = true end
local r = {}
local a = 6 + nl
for _, k in ipairs(KEYS) do
  local replay = ARGV[a] == 'r' or ARGV[a] == 'R'
  local again = ARGV[a] == 'O' or ARGV[a] == 'R'
  local c = tonumber(ARGV[a + 1])
  local set, fs = {}, {'n'}
  for i = 1, c do fs[i + 1] = 's:' .. ARGV[a + 1 + i] end
  local cur = redis.call('HMGET', k, unpack(fs))
  for i = 1, c do
    local f, v = fs[i + 1], cur[i + 1]
    local res = -1
    if not v or (v == 'f' and replay) then res = 1
    elseif v == 'd' then res = 0
    elseif v == 'f' then res = 2
    else
      local owner, deadline = string.match(v, '^p:([^:]*):(%d+)$')
      if not owner or tonumber(deadline) <= now or (again and owner == ARGV[2]) then res = 1
      elseif lapsed[owner] then res = 3 end
    end
    if res == 1 or res == 3 then
      set[#set + 1] = f
      set[#set + 1] = mine
    end
    r[#r + 1] = res
  end
  local nr = tonumber(ARGV[a + 2 + c])
  for i = a + 3 + c, a + 2 + c + 2 * nr do set[#set + 1] = ARGV[i] end
  if #set > 0 then
    -- 'n' counts the entry's records (ledger_trim.lua); absent only in a new entry (or one kept
    -- before it): the TTL is set once, when the entry is created.
    local n = tonumber(cur[1] or '0') + nr
    set[#set + 1] = 'n'
    set[#set + 1] = n
    redis.call('HSET', k, unpack(set))
    if not cur[1] then ledger_count(k, n, nr, ttl, max)
    elseif n > max then ledger_trim(k, max) end
  end
  a = a + 3 + c + 2 * nr
end
return r
