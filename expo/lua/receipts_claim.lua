-- receipts_claim.lua - claims due receipt checks of one bucket for one poller by moving them to
-- the end of a lease: a crashed poller's claims come back when the lease ends.
-- KEYS[1]  <p>rq:{<b>}  the bucket's check ids by due time
-- ARGV     now (unix s), lease until (unix s), most tickets to claim (>= 100), check stem
--          "<p>rq:{<b>}:" (db/keys.h key_rq_check without the id)
-- Reply:   per claimed check: id, sent at, checks made, k, then k times ticket id, tuple
-- A check whose hash is gone (expired, or emptied by a privacy delete) leaves the schedule.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 64)
local out, left = {}, tonumber(ARGV[3])
for _, id in ipairs(ids) do
  local h = redis.call('HGETALL', ARGV[4] .. id)
  if #h == 0 then
    redis.call('ZREM', KEYS[1], id)
  else
    local t, sent, checks = {}, '0', '0'
    for i = 1, #h, 2 do
      if h[i] == '_s' then sent = h[i + 1]
      elseif h[i] == '_c' then checks = h[i + 1]
      else t[#t + 1] = h[i]; t[#t + 1] = h[i + 1] end
    end
    if #t / 2 > left then break end
    left = left - #t / 2
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    out[#out + 1] = id
    out[#out + 1] = sent
    out[#out + 1] = checks
    out[#out + 1] = #t / 2
    for i = 1, #t do out[#out + 1] = t[i] end
  end
end
return out
