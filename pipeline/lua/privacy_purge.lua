-- privacy_purge.lua - a privacy delete (pipeline/privacy.c): one device's token record, or every
-- record of a user, and what herald wrote about it that the delivery trace can name. Walking (at
-- most ARGV[8]) jobs of the trace index KEYS[2], oldest first, it removes from each job's trace
-- list the records of the device (or user), deletes the job's dedup marks of the device (or of
-- every device of the user the hash or the records name) and the receipt checks of the ticket
-- ids those records hold; walked jobs leave the index, and the index goes once empty. For the
-- whole user it also deletes the job indexes of every device met.
-- KEYS[1]  <p>dev:{<user>}      the user's device hash
-- KEYS[2]  the index walked: <p>trace:d:<n>:{<user>}:<device> (one device) or
--          <p>trace:u:{<user>} (the whole user)
-- KEYS[3]  <p>trace:u:{<user>}  the user's job index (a job whose list empties leaves it)
-- KEYS[4]  <p>receipts          receipt checks by due time
-- ARGV[1]  user
-- ARGV[2]  device, or '' for every device of the user
-- ARGV[3]  token key parts (key_token_parts: the owner keys and expiry buckets)
-- ARGV[4]  trace list stem "<p>trace:j:" (a list is the stem and a job id)
-- ARGV[5]  the user's dedup-mark head "<p>sent:<n>:{<user>}:" (key_user_head); a mark is the head,
--          then "<m>:<event>:<device>" with event "<jobId>:<STATUS>" and m its length in bytes
-- ARGV[6]  the user's device-index head "<p>trace:d:<n>:{<user>}:" (a device's index: + device)
-- ARGV[7]  ticket stem "<p>ticket:"
-- ARGV[8]  how many jobs of the index to walk at most
-- ARGV[9..] every event status
-- Reply:   {records deleted, trace records removed, dedup marks deleted, receipt checks deleted,
--           device job indexes deleted, jobs the walked index still names}
-- The keys derived from ids inside (trace lists, marks, tickets, owner, expiry and device-index
-- keys) are not in KEYS: fine on a single Redis, not cluster-safe.
-- @include tokens/lua/devices_drop.lua
-- @include expo/lua/ticket_drop.lua
-- @include pipeline/lua/trace_scrub.lua
local user, device = ARGV[1], ARGV[2]
local idx = KEYS[2]
local statuses = {unpack(ARGV, 9)}
local dropped = devices_drop(KEYS[1], user, device, ARGV[3])
local known, met = {}, {}
for _, d in ipairs(dropped) do known[d] = true; met[d] = true end
local w = {user = user, device = device, orphans = true, tickets = {}}
local traces, marks, tickets, keys = 0, 0, 0, 0
for _, job in ipairs(redis.call('ZRANGE', idx, 0, tonumber(ARGV[8]) - 1)) do
  local devs = {}
  w.devices = devs
  local gone, empty = trace_scrub(ARGV[4] .. job, w)
  traces = traces + gone
  if empty then redis.call('ZREM', KEYS[3], job) end
  if device ~= '' then
    devs = {[device] = true}
  else
    for d in pairs(known) do devs[d] = true end
  end
  for d in pairs(devs) do
    met[d] = true
    for _, st in ipairs(statuses) do
      local ev = job .. ':' .. st
      marks = marks + redis.call('DEL', ARGV[5] .. #ev .. ':' .. ev .. ':' .. d)
    end
  end
  redis.call('ZREM', idx, job)
end
for id in pairs(w.tickets) do
  tickets = tickets + ticket_drop(KEYS[4], ARGV[7], id, user, device)
end
if device == '' then
  for d in pairs(met) do keys = keys + redis.call('DEL', ARGV[6] .. d) end
end
local left = redis.call('ZCARD', idx)
if left == 0 and device ~= '' then keys = keys + redis.call('EXISTS', idx) end
if left == 0 then redis.call('DEL', idx) end
return {#dropped, traces, marks, tickets, keys, left}
