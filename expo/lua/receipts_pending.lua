-- receipts_pending.lua - how many receipt checks are scheduled, and the earliest due time.
-- KEYS     the 16 buckets' <p>rq:{<b>}, check ids by due time
-- ARGV     none
-- Reply:   {count, due time of the earliest (unix s) or '0'}
local n, oldest = 0, nil
for _, k in ipairs(KEYS) do
  n = n + redis.call('ZCARD', k)
  local o = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
  if o[2] and (not oldest or tonumber(o[2]) < oldest) then oldest = tonumber(o[2]) end
end
return {n, oldest and string.format('%d', oldest) or '0'}
