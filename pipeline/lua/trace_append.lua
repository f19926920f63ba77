-- trace_append.lua - writes the delivery-trace records of one loop turn (disp_trace_add) into the
-- events' ledger entries and keeps the per-user and per-device indexes of recent jobs and the job
-- indexes. A record is the field 't:<seq>' of its (user, event) entry (seq: 13 digits of unix
-- ms, then a counter: fields sort in time order). Indexes are written once per event (the user's
-- and the job's with the event's opening record) or per device record; an index is trimmed (by age, then to ARGV[3] members) only when a new member pushes
-- it past ARGV[3], and its TTL refreshed only when it gains a member.
-- KEYS     per record, the ones its ARGV 'which' names in this order: <p>led:<n>:{<user>}:<event>
--          (e), <p>trace:u:{<user>} (u), <p>trace:d:<n>:{<user>}:<device> (d), <p>job:<job> (j)
--          (db/keys.h spells them). On Redis Cluster a record's job index is a record of its own
--          ('j' alone, in the job's slot), as each call's keys share one slot.
-- ARGV[1]  TTL seconds (trace.ttl_s)
-- ARGV[2]  records kept per entry (trace.max_records)
-- ARGV[3]  job ids kept per index at most
-- ARGV[4..] per record: which (a subset of 'eudj'), field, record JSON, job id, job index member
--          "<user>\x1f<event>", now (unix ms, the index score)
-- Reply:   1
-- An entry's TTL is set only when it has none (the dedup claims give it the longer of the dedup
-- and trace TTLs); a user's (device's) index names every job of its recent events, which is how a
-- privacy delete finds the entries to scrub (pipeline/lua/privacy_purge.lua).
local ttl, max, keep = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local entries, idx = {}, {}
local now = 0
local key, a = 1, 4
while a <= #ARGV do
  local which = ARGV[a]
  now = math.max(now, tonumber(ARGV[a + 5]))
  for c in string.gmatch(which, '.') do
    local k = KEYS[key]
    key = key + 1
    if c == 'e' then
      redis.call('HSET', k, ARGV[a + 1], ARGV[a + 2])
      entries[k] = true
    elseif c == 'j' then
      if redis.call('SADD', k, ARGV[a + 4]) == 1 then redis.call('EXPIRE', k, ttl) end
    elseif redis.call('ZADD', k, ARGV[a + 5], ARGV[a + 3]) == 1 then
      idx[k] = true
    end
  end
  a = a + 6
end
for k in pairs(entries) do
  redis.call('EXPIRE', k, ttl, 'NX')
  if redis.call('HLEN', k) > max then
    local recs = {}
    for _, f in ipairs(redis.call('HKEYS', k)) do
      if string.sub(f, 1, 2) == 't:' then recs[#recs + 1] = f end
    end
    if #recs > max then
      table.sort(recs)
      redis.call('HDEL', k, unpack(recs, 1, #recs - max))
    end
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
