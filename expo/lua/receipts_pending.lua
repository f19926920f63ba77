-- receipts_pending.lua - how many receipt checks are scheduled, and the earliest due time, per
-- bucket (the caller sums them: on Redis Cluster the buckets are in different slots).
-- KEYS     buckets' <p>rq:{<b>}, check ids by due time
-- ARGV     none
-- Reply:   per key: count, due time of its earliest (unix s) or 0
local r = {}
for _, k in ipairs(KEYS) do
  local o = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
  r[#r + 1] = redis.call('ZCARD', k)
  r[#r + 1] = o[2] and math.floor(tonumber(o[2])) or 0
end
return r
