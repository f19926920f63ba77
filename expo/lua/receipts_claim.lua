-- receipts_claim.lua - claims due receipt checks for one poller by moving them to the end of a
-- lease: a crashed poller's claims come back when the lease ends.
-- KEYS[1]  <p>receipts  ticket ids by due time
-- ARGV     now (unix s), lease until (unix s), limit, ticket stem "<p>ticket:" (from db/keys.c)
-- Reply:   per claimed id: id, userId, deviceId, token, jobId, sentAt, event, resends, key, checks (""
--          where the ticket hash has expired or, for hashes written before event/resends, lacks
--          the field)
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local out = {}
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], ARGV[2], id)
  local h = redis.call('HMGET', ARGV[4] .. id, 'userId', 'deviceId', 'token',
                       'jobId', 'sentAt', 'event', 'resends', 'key', 'checks')
  out[#out+1] = id
  for j = 1, 9 do out[#out+1] = h[j] or '' end
end
return out
