-- mark_done.lua - marks (event, device) pairs delivered once their outcome is durable.
-- KEYS     the marks: <p>sent:<n>:{<user>}:<m>:<event>:<device> (db/keys.h key_sent)
-- ARGV[1]  done TTL in seconds (dedup.done_ttl_s)
-- Reply:   the number of marks set
for _, k in ipairs(KEYS) do
  redis.call('SET', k, 'done', 'EX', ARGV[1])
end
return #KEYS
