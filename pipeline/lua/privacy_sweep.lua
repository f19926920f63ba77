-- privacy_sweep.lua - one SCAN step of a privacy delete's sweep of the whole keyspace (heraldctl
-- tokens delete, after privacy_purge.lua): what no trace index names any more (jobs past the
-- index, a trace that was off, records trimmed away) is found by key name or content. Of the keys
-- the step returns it deletes the user's ledger entries (the one device's fields and records when
-- ARGV[5] is not '') and device job indexes (of the one device), the user's job-index members,
-- the user's (device's) records in trace lists written before the ledger, and the receipt checks
-- and owner keys that name the user (device).
-- ARGV[1]  cursor ("0" to start)
-- ARGV[2]  SCAN COUNT
-- ARGV[3]  MATCH pattern: the glob-escaped prefix and "*"
-- ARGV[4]  user
-- ARGV[5]  device, or '' for every device of the user
-- ARGV[6]  the user's ledger head "<p>led:<n>:{<user>}:" (then the event)
-- ARGV[7]  the user's device-index head "<p>trace:d:<n>:{<user>}:" (then the device)
-- ARGV[8]  trace list stem "<p>trace:j:" (lists written before the ledger)
-- ARGV[9]  receipt check stem "<p>rq:" (schedules "<p>rq:{<b>}", checks "<p>rq:{<b>}:<id>")
-- ARGV[10] owner stem "<p>owner:"
-- ARGV[11] <p>trace:u:{<user>}, the user's job index
-- ARGV[12] job index stem "<p>job:" (members "<user>\x1f<event>")
-- Reply:   {next cursor ("0": done), 0 (records: the purge's), trace records removed, dedup marks
--           deleted, receipt checks deleted, other keys deleted}
-- Not in KEYS (SCAN finds them): fine on a single Redis; a cluster needs one sweep per node.
-- @include expo/lua/check_drop.lua
-- @include pipeline/lua/trace_scrub.lua
-- @include pipeline/lua/ledger_scrub.lua
local user, device = ARGV[4], ARGV[5]
local mark_head, dix_head, list_stem = ARGV[6], ARGV[7], ARGV[8]
local rq_stem, owner_stem, uidx, job_stem = ARGV[9], ARGV[10], ARGV[11], ARGV[12]
local w = {user = user, device = device, orphans = false, tickets = {}, devices = {}, checks = {}}
local traces, marks, tickets, keys = 0, 0, 0, 0
local function after(k, head)
  if string.sub(k, 1, #head) == head then return string.sub(k, #head + 1) end
  return nil
end
local function owned(v)
  if type(v) ~= 'string' then return false end
  if device ~= '' then return v == user .. '\031' .. device end
  return string.sub(v, 1, #user + 1) == user .. '\031'
end
-- One key of the step: what it holds of the user (device) goes.
local function visit(k)
  local r = after(k, mark_head)
  if r then
    local n, m = ledger_scrub(k, w)
    traces, marks = traces + n, marks + m
    return
  end
  r = after(k, dix_head)
  if r then
    if device == '' or r == device then keys = keys + redis.call('DEL', k) end
    return
  end
  if k == uidx then
    if device == '' then keys = keys + redis.call('DEL', k) end
    return
  end
  if after(k, job_stem) then
    if device ~= '' then return end
    for _, m in ipairs(redis.call('SMEMBERS', k)) do
      if string.sub(m, 1, #user + 1) == user .. '\031' then redis.call('SREM', k, m) end
    end
    return
  end
  r = after(k, list_stem)
  if r then
    local gone, empty = trace_scrub(k, w)
    traces = traces + gone
    if empty and gone > 0 then redis.call('ZREM', uidx, r) end
    return
  end
  r = after(k, rq_stem)
  if r then
    local b, id = string.match(r, '^{(%d+)}:(.+)$')
    if b then tickets = tickets + check_scrub(k, rq_stem .. '{' .. b .. '}', id, user, device) end
  elseif after(k, owner_stem) and owned(redis.call('GET', k)) then
    keys = keys + redis.call('DEL', k)
  end
end
local step = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[3], 'COUNT', ARGV[2])
for _, k in ipairs(step[2]) do visit(k) end
-- The receipt checks the scrubbed entries name (w.checks) are not visited through them: the walk
-- meets every check itself (check_scrub above), and on Redis Cluster a check of another slot may
-- live on another node, where this node's script cannot reach it.
return {step[1], 0, traces, marks, tickets, keys}
