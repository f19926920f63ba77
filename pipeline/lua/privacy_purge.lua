-- privacy_purge.lua - a privacy delete (pipeline/privacy.c): one device's token record, or every
-- record of a user, and what herald wrote about it that the delivery trace can name. Walking (at
-- most ARGV[8]) jobs of the trace index KEYS[2], oldest first, it scrubs each job's ledger
-- entries of the user (every status): the device's claim state, outcome and trace records, or
-- the whole entries and their job-index members; then the user's (device's) tickets in the
-- receipt checks those entries name. Walked jobs leave the index, and the index goes once empty. For the whole user it
-- also deletes the job indexes of every device met.
-- KEYS[1]  <p>dev:{<user>}      the user's device hash
-- KEYS[2]  the index walked: <p>trace:d:<n>:{<user>}:<device> (one device) or
--          <p>trace:u:{<user>} (the whole user)
-- KEYS[3]  <p>trace:u:{<user>}  the user's job index
-- ARGV[1]  user
-- ARGV[2]  device, or '' for every device of the user
-- ARGV[3]  token key parts (key_token_parts: the owner keys and expiry buckets)
-- ARGV[4]  job index stem "<p>job:" (a job's index is the stem and a job id)
-- ARGV[5]  the user's ledger head "<p>led:<n>:{<user>}:" (key_user_head); an entry is the head,
--          then the event "<jobId>:<STATUS>"
-- ARGV[6]  the user's device-index head "<p>trace:d:<n>:{<user>}:" (a device's index: + device)
-- ARGV[7]  receipt check stem "<p>rq:" (a check: the stem, "{<bucket>}:" and its id)
-- ARGV[8]  how many jobs of the index to walk at most
-- ARGV[9]  '1' on Redis Cluster: only the user's slot is written here; the reply's three lists
--          name what the caller removes in the other slots (pipeline/privacy.c), else ''
-- ARGV[10..] every event status
-- Reply:   {records deleted, trace records removed, dedup marks deleted, tickets removed from
--           receipt checks,
--           device job indexes deleted, jobs the walked index still names}, and with ARGV[9] = '1'
--          three lists: token, member pairs to unbind; job index, member pairs to remove; the
--          receipt check refs ("<bucket>:<check id>") to scrub
-- The keys derived from ids inside (entries, device indexes; on a single Redis also the job
-- indexes, checks, owner and expiry keys) are not in KEYS: the entries and device indexes share
-- the user's slot.
-- @include tokens/lua/devices_drop.lua
-- @include expo/lua/check_drop.lua
-- @include pipeline/lua/ledger_scrub.lua
local user, device = ARGV[1], ARGV[2]
local idx = KEYS[2]
local statuses = {unpack(ARGV, 10)}
local split = ARGV[9] == '1'
local unbound, unjob, checks = {}, {}, {}
local dropped = devices_drop(KEYS[1], user, device, ARGV[3], split and unbound or nil)
local met = {}
for _, d in ipairs(dropped) do met[d] = true end
local w = {device = device, checks = {}, devices = met}
local traces, marks, tickets, keys = 0, 0, 0, 0
for _, job in ipairs(redis.call('ZRANGE', idx, 0, tonumber(ARGV[8]) - 1)) do
  for _, st in ipairs(statuses) do
    local ev = job .. ':' .. st
    local r, m = ledger_scrub(ARGV[5] .. ev, w)
    traces, marks = traces + r, marks + m
    if device == '' and split then
      unjob[#unjob + 1] = ARGV[4] .. job
      unjob[#unjob + 1] = user .. '\031' .. ev
    elseif device == '' then
      redis.call('SREM', ARGV[4] .. job, user .. '\031' .. ev)
    end
  end
  redis.call('ZREM', idx, job)
end
for ref in pairs(w.checks) do
  if split then checks[#checks + 1] = ref
  else tickets = tickets + check_drop(ARGV[7], ref, user, device) end
end
if device == '' then
  for d in pairs(met) do keys = keys + redis.call('DEL', ARGV[6] .. d) end
end
local left = redis.call('ZCARD', idx)
if left == 0 and device ~= '' then keys = keys + redis.call('EXISTS', idx) end
if left == 0 then redis.call('DEL', idx) end
if split then return {#dropped, traces, marks, tickets, keys, left, unbound, unjob, checks} end
return {#dropped, traces, marks, tickets, keys, left}
