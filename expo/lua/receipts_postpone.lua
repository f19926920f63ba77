-- receipts_postpone.lua - puts off receipt checks whose receipts are not ready yet, doubling the
-- delay with each check of the same ticket.
-- KEYS[1]  <p>receipts  ticket ids by due time
-- ARGV     ticket stem "<p>ticket:" (from db/keys.c), now (unix s), base delay (s), delay cap (s),
--          then ticket ids
-- Reply:   the number of ids
for i = 5, #ARGV do
  local c = redis.call('HINCRBY', ARGV[1] .. ARGV[i], 'checks', 1)
  local d = math.min(tonumber(ARGV[4]), tonumber(ARGV[3]) * 2 ^ (c - 1))
  redis.call('ZADD', KEYS[1], tonumber(ARGV[2]) + d, ARGV[i])
end
return #ARGV - 4
