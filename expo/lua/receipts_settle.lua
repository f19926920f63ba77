-- receipts_settle.lua - writes back what a poll made of its claimed checks of one bucket (or
-- forgets one ticket after its resend): tickets with a final receipt leave their check, tickets
-- to resend are rewritten, and the check is due again, or goes with its last ticket.
-- KEYS[1]  <p>rq:{<b>}  the bucket's check ids by due time
-- ARGV[1]  check stem "<p>rq:{<b>}:"
-- then per check: id, next due (unix s, or '-' to leave it), bump ('1': one more check made),
--          nd, ns, nd ticket ids to remove, ns pairs ticket id, tuple to set
-- Reply:   the number of checks gone
-- A check whose hash is gone (a privacy delete while it was in flight, or expired) is not brought
-- back: it only leaves the schedule.
local gone, a = 0, 2
while a <= #ARGV do
  local id, due, bump = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local nd, ns = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  local k = ARGV[1] .. id
  local f = a + 5
  if redis.call('EXISTS', k) == 0 then
    redis.call('ZREM', KEYS[1], id)
    gone = gone + 1
  else
    if nd > 0 then redis.call('HDEL', k, unpack(ARGV, f, f + nd - 1)) end
    if ns > 0 then redis.call('HSET', k, unpack(ARGV, f + nd, f + nd + 2 * ns - 1)) end
    if redis.call('HLEN', k) <= 2 then
      redis.call('DEL', k)
      redis.call('ZREM', KEYS[1], id)
      gone = gone + 1
    else
      if bump == '1' then redis.call('HINCRBY', k, '_c', 1) end
      if due ~= '-' then redis.call('ZADD', KEYS[1], due, id) end
    end
  end
  a = f + nd + 2 * ns
end
return gone
