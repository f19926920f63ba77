-- renew.lua - keeps the claims of sends still in flight (disp_claims_renew): each device state
-- this instance still owns ('p:<id>:<deadline>' in its ledger entry, see claim.lua) gets a new
-- deadline, so a live sender's claim never lapses while the Expo client retries; a crashed sender
-- renews nothing (its claims are taken over once its lease lapses, or lapse at their deadline).
-- KEYS     the ledger entries: <p>led:<n>:{<user>}:<event> (db/keys.h key_ledger)
-- ARGV[1]  pending lease in ms (dedup.pending_ttl_s)
-- ARGV[2]  this instance's id
-- then per key, in order: the number of devices c, then c device ids
-- Reply:   the number of claims renewed (done, failed, gone or taken over ones are left alone)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local head = 'p:' .. ARGV[2] .. ':'
local mine = head .. string.format('%d', now + tonumber(ARGV[1]))
local n, a = 0, 3
for _, k in ipairs(KEYS) do
  local c = tonumber(ARGV[a])
  for i = a + 1, a + c do
    local f = 's:' .. ARGV[i]
    local v = redis.call('HGET', k, f)
    if v and string.sub(v, 1, #head) == head then
      redis.call('HSET', k, f, mine)
      n = n + 1
    end
  end
  a = a + 1 + c
end
return n
