-- ledger_scrub.lua - shared helper of the privacy scripts, pulled in by an @include line.
-- ledger_scrub(lk, w) removes from the delivery ledger entry lk (one user's, one event's) what
-- names device w.device: its claim state 's:<device>', its outcome 'o:<device>' and the trace
-- records 't:<seq>' naming it; when w.device is '' the whole entry goes. The receipt checks the
-- removed outcomes name ("<bucket>:<check id>") are added to the set w.checks, the devices the
-- removed fields name to w.devices. Returns the number of trace records and of claim states
-- removed.
-- Records are JSON objects written by pipeline/trace.c; one whose text lacks the device id (and
-- JSON would not escape the id) is kept without being decoded.
local function ledger_scrub(lk, w)
  local all = redis.call('HGETALL', lk)
  if #all == 0 then return 0, 0 end
  local whole = w.device == ''
  local plain = whole or not string.find(w.device, '["\\%c]')
  local gone, records, marks = {}, 0, 0
  for i = 1, #all, 2 do
    local f, v = all[i], all[i + 1]
    local kind, rest = string.sub(f, 1, 2), string.sub(f, 3)
    local drop = whole
    if kind == 's:' or kind == 'o:' then
      drop = whole or rest == w.device
      if drop then
        w.devices[rest] = true
        if kind == 's:' then marks = marks + 1 else w.checks[v] = true end
      end
    elseif kind == 't:' and (whole or not plain or string.find(v, w.device, 1, true)) then
      local ok, rec = pcall(cjson.decode, v)
      if ok and type(rec) == 'table' then
        drop = whole or rec.deviceId == w.device
        if drop and type(rec.deviceId) == 'string' then w.devices[rec.deviceId] = true end
      end
      if drop then records = records + 1 end
    end
    if drop then gone[#gone + 1] = f end
  end
  if whole then
    redis.call('DEL', lk)
  else
    for i = 1, #gone, 512 do
      redis.call('HDEL', lk, unpack(gone, i, math.min(i + 511, #gone)))
    end
  end
  return records, marks
end
