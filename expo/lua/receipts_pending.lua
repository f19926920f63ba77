-- receipts_pending.lua - how many receipt checks are scheduled, and the earliest due time.
-- KEYS[1]  <p>receipts  ticket ids by due time
-- ARGV     none
-- Reply:   {count, due time of the earliest (unix s) or '0'}
local n = redis.call('ZCARD', KEYS[1])
local o = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {n, o[2] or '0'}
