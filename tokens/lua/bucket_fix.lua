-- bucket_fix.lua - the token-slot step of a lifecycle removal on Redis Cluster (tokens/lifecycle.c),
-- after the user-slot step decided about a record: drops the record's binding (the owner key when
-- it still names the member, and the expiry entry), drops a stale expiry entry, or rescores one.
-- KEYS[1]  <p>expiry:{t<k>}          the expiry bucket
-- KEYS[2]  <p>owner:{t<k>}:<token>   (action unbind only)
-- ARGV     member ("user\031device"), the score seen (the record's expiresAt, or the entry's),
--          action (unbind | drop | rescore), the new score (rescore)
-- Reply:   1 done, 0 the entry moved on (a registration since then wrote another score: the
--          binding is the new registration's, left alone)
local cur = redis.call('ZSCORE', KEYS[1], ARGV[1])
if cur and tonumber(cur) ~= tonumber(ARGV[2]) then return 0 end
if ARGV[3] == 'rescore' then
  if cur then redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1]) end
  return 1
end
if ARGV[3] == 'unbind' and KEYS[2] and redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
