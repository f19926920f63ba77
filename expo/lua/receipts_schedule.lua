-- receipts_schedule.lua - records one receipt check: the accepted tickets of one Expo request (or
-- flush), due at one time (expo/receipts.h).
-- KEYS[1]  <p>rq:{<b>}       the bucket's check ids by due time
-- KEYS[2]  <p>rq:{<b>}:<id>  the check (id: its first ticket id)
-- ARGV     id, due (unix s), TTL (s), sent at (unix s), then per ticket: ticket id, tuple
--          "<user>\x1f<device>\x1f<event key>\x1f<token>\x1f<resends>\x1f0"
-- Reply:   the number of tickets recorded
redis.call('HSET', KEYS[2], '_s', ARGV[4], '_c', 0, unpack(ARGV, 5))
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return (#ARGV - 4) / 2
