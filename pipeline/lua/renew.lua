-- renew.lua - keeps the claims of sends still in flight (disp_claims_renew): each mark that is
-- still pending gets the pending TTL again, so a live sender's claim never lapses while the Expo
-- client retries; a crashed sender renews nothing and its claim lapses after the TTL.
-- KEYS     the marks: <p>sent:<n>:{<user>}:<m>:<event>:<device> (db/keys.h key_sent)
-- ARGV[1]  pending TTL in seconds (dedup.pending_ttl_s)
-- Reply:   the number of marks renewed (done, failed or gone ones are left alone)
local n = 0
for _, k in ipairs(KEYS) do
  if redis.call('GET', k) == 'pending' then
    redis.call('EXPIRE', k, ARGV[1])
    n = n + 1
  end
end
return n
