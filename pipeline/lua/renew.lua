-- renew.lua - keeps the claims of sends still in flight (disp_claims_renew): each mark this
-- instance still owns gets the pending TTL again, so a live sender's claim never lapses while the
-- Expo client retries; a crashed sender renews nothing (its claims are taken over once its lease
-- lapses, or lapse after the TTL).
-- KEYS     the marks: <p>sent:<n>:{<user>}:<m>:<event>:<device> (db/keys.h key_sent)
-- ARGV[1]  pending TTL in seconds (dedup.pending_ttl_s)
-- ARGV[2]  this instance's id
-- Reply:   the number of marks renewed (done, failed, gone or taken over ones are left alone)
local mine = 'pending:' .. ARGV[2]
local n = 0
for _, k in ipairs(KEYS) do
  if redis.call('GET', k) == mine then
    redis.call('EXPIRE', k, ARGV[1])
    n = n + 1
  end
end
return n
