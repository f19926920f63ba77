-- trace_append.lua - writes the delivery-trace records of one loop turn (disp_trace_add) into the
-- events' ledger entries and keeps the per-user and per-device indexes of recent jobs and the job
-- indexes. A record is the field 't:<seq>' of its (user, event) entry (seq: 13 digits of unix
-- ms, then a counter: fields sort in time order). The turn's records of one entry are one part:
-- one HSET of all its fields, and each index its records name (the user's with the event's
-- opening record, a device's with the device's records) gains the entry's job once. A part may
-- have no records: theirs went with the entry's claim or done mark (disp_trace_ride), only their
-- indexes are written here. The entry keeps at most ARGV[3] records (ledger_trim.lua).
-- An index is trimmed (by age, then to ARGV[4] members) only when a new member pushes it past
-- ARGV[4], and its TTL refreshed only when it gains a member.
-- KEYS     per part: an entry part's <p>led:<n>:{<user>}:<event> then its indexes
--          (<p>trace:u:{<user>}, <p>trace:d:<n>:{<user>}:<device>); a job part's <p>job:<job>
--          (db/keys.h spells them). A job index is a part of its own: on Redis Cluster each call's
--          keys share one slot, and a job's is not its users'.
-- ARGV[1]  the entry's TTL in seconds (max(dedup.done_ttl_s, trace.ttl_s)), set on creation
-- ARGV[2]  the indexes' TTL (trace.ttl_s)
-- ARGV[3]  records kept per entry (trace.max_records)
-- ARGV[4]  job ids kept per index at most
-- then per part: 'e', job id, now (unix ms, the index score), the number of indexes i, the number
--          of records r, then r times field and record JSON; or 'j' and the member
--          "<user>\x1f<event>"
-- Reply:   1
-- A user's (device's) index names every job of its recent events, which is how a privacy delete
-- finds the entries to scrub (pipeline/lua/privacy_purge.lua).
-- @include pipeline/lua/ledger_trim.lua
local ettl, ttl, max, keep = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local idx = {}
local now = 0

local key, a = 1, 5
while a <= #ARGV do
  local k = KEYS[key]
  if ARGV[a] == 'j' then
    if redis.call('SADD', k, ARGV[a + 1]) == 1 then redis.call('EXPIRE', k, ttl) end
    key, a = key + 1, a + 2
  else
    local job, t, ni, nr = ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
    now = math.max(now, tonumber(t))
    if nr > 0 then
      local n = redis.call('HINCRBY', k, 'n', nr)
      redis.call('HSET', k, unpack(ARGV, a + 5, a + 4 + 2 * nr))
      ledger_count(k, n, nr, ettl, max)
    end
    for i = key + 1, key + ni do
      if redis.call('ZADD', KEYS[i], t, job) == 1 then idx[KEYS[i]] = true end
    end
    key, a = key + 1 + ni, a + 5 + 2 * nr
  end
end
local cutoff = string.format('%d', now - tonumber(ttl) * 1000)
for k in pairs(idx) do
  redis.call('EXPIRE', k, ttl)
  if redis.call('ZCARD', k) > keep then
    redis.call('ZREMRANGEBYSCORE', k, '-inf', '(' .. cutoff)
    redis.call('ZREMRANGEBYRANK', k, 0, -keep - 1)
  end
end
return 1
