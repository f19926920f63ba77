-- trace_append.lua - appends the delivery-trace records of one loop turn (disp_trace_add) and
-- keeps the per-user and per-device indexes of recent jobs. Each list and index is trimmed and
-- given its TTL once per call.
-- KEYS     per record: <p>trace:j:<job>, <p>trace:u:{<user>}, <p>trace:d:<n>:{<user>}:<device>
--          or '' (db/keys.h spells them)
-- ARGV[1]  TTL seconds (trace.ttl_s)
-- ARGV[2]  records kept per job (trace.max_records)
-- ARGV[3]  job ids kept per index at most
-- ARGV[4..] per record: record JSON, job id, now (unix ms, the index score)
-- Reply:   1
-- An index names every job of its user (device) whose trace list can still exist, those of the
-- last ARGV[1] seconds, up to ARGV[3] of them: a privacy delete finds the lists, dedup marks
-- and receipt checks to delete through it (pipeline/lua/privacy_purge.lua).
local ttl, max, keep = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local lists, idx = {}, {}
local now = 0
for r = 0, #KEYS / 3 - 1 do
  local k = KEYS[3 * r + 1]
  redis.call('RPUSH', k, ARGV[4 + 3 * r])
  lists[k] = true
  now = math.max(now, tonumber(ARGV[6 + 3 * r]))
  for i = 2, 3 do
    local ik = KEYS[3 * r + i]
    if ik ~= '' then
      redis.call('ZADD', ik, ARGV[6 + 3 * r], ARGV[5 + 3 * r])
      idx[ik] = true
    end
  end
end
for k in pairs(lists) do
  redis.call('LTRIM', k, -max, -1)
  redis.call('EXPIRE', k, ttl)
end
local cutoff = now - tonumber(ttl) * 1000
for k in pairs(idx) do
  redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. string.format('%d', cutoff))
  redis.call('ZREMRANGEBYRANK', k, 0, -keep - 1)
  redis.call('EXPIRE', k, ttl)
end
return 1
