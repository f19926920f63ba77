-- ledger_trim.lua - shared helper of the scripts that write trace records into a delivery ledger
-- entry (trace_append.lua, claim.lua, mark_done.lua), pulled in by an @include line. The entry's
-- field 'n' counts the records ever written to it (a privacy scrub removes some without counting
-- down): an upper bound of its 't:<seq>' fields, so the records are counted only when 'n' passes
-- the bound, or on the first count of an entry written before 'n' existed.
-- ledger_trim(k, max) keeps the newest max records of entry k; 'n' becomes their number.
-- ledger_count(k, n, added, ttl, max): after a write that took 'n' to n by adding added records
-- (n == added: the first count, the entry new or older than 'n'), sets a new entry's TTL and
-- trims when the bound may be passed.
local function ledger_trim(k, max)
  local recs = {}
  for _, f in ipairs(redis.call('HKEYS', k)) do
    if string.sub(f, 1, 2) == 't:' then recs[#recs + 1] = f end
  end
  if #recs > max then
    table.sort(recs)
    for i = 1, #recs - max, 512 do
      redis.call('HDEL', k, unpack(recs, i, math.min(i + 511, #recs - max)))
    end
  end
  redis.call('HSET', k, 'n', math.min(#recs, max))
end

local function ledger_count(k, n, added, ttl, max)
  if n == added then
    if redis.call('EXPIRE', k, ttl, 'NX') == 0 and redis.call('HLEN', k) > max then
      ledger_trim(k, max)
    end
  elseif n > max then
    ledger_trim(k, max)
  end
end
