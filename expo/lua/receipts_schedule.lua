-- receipts_schedule.lua - schedules receipt checks for push tickets.
-- KEYS[1]  <p>receipts  ticket ids by due time
-- ARGV     ticket stem "<p>ticket:" (from db/keys.c), due (unix s), ticket hash ttl (s), then per
--          ticket: id, user, device, token, job, sentAt (unix s), event (encoded job event or
--          ""), resends, event key ("<jobId>:<STATUS>": its ledger entry, or "")
-- Reply:   the number of tickets scheduled
-- The ticket hashes are not in KEYS: fine on a single Redis, not cluster-safe.
local z, ticket_stem, due, ttl = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
for i = 4, #ARGV, 9 do
  local k = ticket_stem .. ARGV[i]
  redis.call('HSET', k, 'userId', ARGV[i+1], 'deviceId', ARGV[i+2], 'token', ARGV[i+3],
             'jobId', ARGV[i+4], 'sentAt', ARGV[i+5], 'event', ARGV[i+6], 'resends', ARGV[i+7],
             'key', ARGV[i+8])
  redis.call('EXPIRE', k, ttl)
  redis.call('ZADD', z, due, ARGV[i])
end
return (#ARGV - 3) / 9
