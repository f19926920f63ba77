-- claim.lua - claims the dedup marks of one event's devices before they are sent to.
-- KEYS     one mark per device: <p>sent:<n>:{<user>}:<m>:<event>:<device> (db/keys.h key_sent)
-- ARGV[1]  pending TTL in seconds (dedup.pending_ttl_s)
-- ARGV[2]  'ordinary' (an event as consumed) or 'replay' (heraldctl dlq replay of a notification
--          that failed for good: its 'failed' mark may be claimed, once)
-- Reply:   per key, in order: 1 claimed now (the mark is set to 'pending'), 0 already done
--          (skip: delivered before), 2 failed before (ordinary: skip, only a replay sends it),
--          -1 pending (another attempt holds it: claim again later)
local replay = ARGV[2] == 'replay'
local r = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if not v or (v == 'failed' and replay) then
    redis.call('SET', k, 'pending', 'EX', ARGV[1])
    r[i] = 1
  elseif v == 'done' then r[i] = 0
  elseif v == 'failed' then r[i] = 2
  else r[i] = -1 end
end
return r
