-- lock_refresh.lua - extends or releases a lock, only when we still hold it.
-- KEYS[1]  <p>lock:<name>
-- ARGV     our holder token, ttl ms (0 = release)
-- Reply:   1 when we held the lock (and it was extended or released), 0 otherwise
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then redis.call('DEL', KEYS[1])
else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
