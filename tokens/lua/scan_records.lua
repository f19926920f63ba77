-- scan_records.lua - one SCAN step over the device hashes, with the records of every hash it
-- returned (tok_store_scan: heraldctl tokens export walks every record this way).
-- KEYS     none: the hashes come from SCAN
-- ARGV[1]  SCAN cursor ("0" to start)
-- ARGV[2]  MATCH pattern: the glob-escaped "<p>dev:" stem followed by "{*}"
-- ARGV[3]  COUNT hint
-- Reply:   {next cursor, {hash key, deviceId, record JSON, hash key, deviceId, ...}}
local sc = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3], 'TYPE', 'hash')
local out = {}
for _, hk in ipairs(sc[2]) do
  local all = redis.call('HGETALL', hk)
  for i = 1, #all, 2 do
    out[#out + 1] = hk
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
return {sc[1], out}
