-- receipts_postpone.lua - puts off receipt checks whose receipts are not ready yet, doubling the
-- delay with each check of the same ticket.
-- KEYS[1]  <p>receipts  ticket ids by due time
-- ARGV     ticket stem "<p>ticket:" (from db/keys.c), now (unix s), base delay (s), delay cap (s),
--          then ticket ids
-- Reply:   the number of ids
-- A ticket whose hash is gone (a privacy delete while its check was in flight, or expired) is
-- forgotten: counting its checks would bring the hash back without its TTL.
for i = 5, #ARGV do
  local k = ARGV[1] .. ARGV[i]
  if redis.call('EXISTS', k) == 1 then
    local c = redis.call('HINCRBY', k, 'checks', 1)
    local d = math.min(tonumber(ARGV[4]), tonumber(ARGV[3]) * 2 ^ (c - 1))
    redis.call('ZADD', KEYS[1], tonumber(ARGV[2]) + d, ARGV[i])
  else
    redis.call('ZREM', KEYS[1], ARGV[i])
  end
end
return #ARGV - 4
