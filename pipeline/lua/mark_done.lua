-- mark_done.lua - gives (event, device) marks their final state once the outcome is durable:
-- 'done' (accepted by Expo, or the token deactivated) or 'failed' (the DLQ record acknowledged;
-- only a replay of that record claims it again).
-- KEYS     the marks: <p>sent:<n>:{<user>}:<m>:<event>:<device> (db/keys.h key_sent)
-- ARGV[1]  TTL in seconds (dedup.done_ttl_s)
-- ARGV[2]  'done' or 'failed'
-- Reply:   the number of marks set
for _, k in ipairs(KEYS) do
  redis.call('SET', k, ARGV[2], 'EX', ARGV[1])
end
return #KEYS
