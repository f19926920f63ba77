-- lease.lua - renews (or gives up) one herald instance's lease and answers which instances'
-- leases lapsed (pipeline/lease.c). Times are Redis's clock, so instances need not agree on one.
-- KEYS[1]  <p>instances (db/keys.h key_instances): ZSET instance id -> lease expiry, unix ms
-- ARGV[1]  this instance's id
-- ARGV[2]  lease length in ms; '0' gives the lease up (clean shutdown): it has lapsed already
-- ARGV[3]  horizon in ms: an entry this long past its expiry is removed
-- ARGV[4]  the most lapsed instances answered
-- Reply:   {lapsed, id, ...}: lapsed is 1 when this instance's own lease had lapsed before this
--          renewal (others may have taken its claims over), else 0; then the instances whose
--          lease has lapsed, most recent first
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local len = tonumber(ARGV[2])
local prev = redis.call('ZSCORE', KEYS[1], ARGV[1])
local lapsed = 0
if prev and tonumber(prev) < now then lapsed = 1 end
if len > 0 then
  redis.call('ZADD', KEYS[1], now + len, ARGV[1])
else
  redis.call('ZADD', KEYS[1], now - 1, ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[3])))
local r = redis.call('ZREVRANGEBYSCORE', KEYS[1], '(' .. now, '-inf', 'LIMIT', 0, ARGV[4])
table.insert(r, 1, lapsed)
return r
