-- claim.lua - claims the dedup marks of a loop turn's events before their devices are sent to.
-- A claim names its owner, the instance (pipeline/lease.h): 'pending:<id>'.
-- KEYS     one mark per device: <p>sent:<n>:{<user>}:<m>:<event>:<device> (db/keys.h key_sent)
-- ARGV[1]  pending TTL in seconds (dedup.pending_ttl_s)
-- ARGV[2]  this instance's id
-- ARGV[3]  one character per key: 'o' (an event as consumed) or 'r' (heraldctl dlq replay of a
--          notification that failed for good: its 'failed' mark may be claimed, once)
-- ARGV[4..] the instances whose lease lapsed: their pending marks are taken over
-- Reply:   per key, in order: 1 claimed now, 3 taken over from a lapsed owner (both: the mark is
--          now 'pending:<id>'), 0 already done (skip: delivered before), 2 failed before
--          (ordinary: skip, only a replay sends it), -1 pending (held by this or a live instance,
--          or by one not known to be gone, or written without an owner: claim again later)
local mine = 'pending:' .. ARGV[2]
local lapsed = {}
for i = 4, #ARGV do lapsed['pending:' .. ARGV[i]] = true end
local r = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if not v or (v == 'failed' and string.sub(ARGV[3], i, i) == 'r') then
    redis.call('SET', k, mine, 'EX', ARGV[1])
    r[i] = 1
  elseif v == 'done' then r[i] = 0
  elseif v == 'failed' then r[i] = 2
  elseif lapsed[v] then
    redis.call('SET', k, mine, 'EX', ARGV[1])
    r[i] = 3
  else r[i] = -1 end
end
return r
