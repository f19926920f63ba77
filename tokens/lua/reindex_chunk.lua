-- reindex_chunk.lua - one SCAN step of `heraldctl tokens reindex`: rebuilds the token-scoped
-- indexes (db/keys.h: owner keys and expiry buckets by token bucket) from the device hashes, and
-- removes the keys of the schema before them (<p>owner:<token> without a bucket, one <p>expiry
-- ZSET). Run once after upgrading from that schema; running it again changes nothing.
-- KEYS     none: the keys come from SCAN
-- ARGV     cursor, count, MATCH pattern (the escaped prefix and "*"), now (unix s), then the key
--          parts from db/keys.c: token key parts (key_token_parts), dev hash head "<p>dev:{" and
--          tail "}", owner stem "<p>owner:", the old expiry index "<p>expiry", then cluster (0/1)
-- Reply:   {cursor, records seen, owner keys written, old keys removed, records}; records
--          (cluster) lists user, device, token, expiresAt, active (1/0) of each record to index
-- Under registration's rules: every record gets its expiry entry; an active, unexpired record
-- gets the owner key unless another record holding the token has it; an inactive one only when
-- nobody has it. On a single Redis the script writes them itself; on a cluster (one master's
-- SCAN, whose keys are all local) it only reads the records and removes the old keys, and
-- tokens/lifecycle.c writes each record's keys in its token's slot (reindex_bind.lua).
-- @include tokens/lua/token_keys.lua
local now = tonumber(ARGV[4])
local tp = token_parts(ARGV[5])
local dev_head, dev_tail, owner_stem, old_expiry = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local cluster, recs = ARGV[10] == '1', {}
local n = {0, 0, 0}
-- Does the (user, device) the owner value names hold tok?
local function holds(owner, tok)
  local sep = string.find(owner, '\031', 1, true)
  if not sep then return false end
  local js = redis.call('HGET', dev_head .. string.sub(owner, 1, sep - 1) .. dev_tail,
                        string.sub(owner, sep + 1))
  local ok, r = pcall(cjson.decode, js or '')
  return ok and type(r) == 'table' and r.expoPushToken == tok
end
local function index(user, dev, js)
  n[1] = n[1] + 1
  local ok, r = pcall(cjson.decode, js)
  if not ok or type(r) ~= 'table' or type(r.expoPushToken) ~= 'string' then return end
  local exp, member = tonumber(r.expiresAt) or 0, user .. '\031' .. dev
  if cluster then
    local act = r.isActive == true and '1' or '0'
    for _, v in ipairs({user, dev, r.expoPushToken, tostring(exp), act}) do recs[#recs + 1] = v end
    return
  end
  local okey, zkey = token_keys(tp, r.expoPushToken)
  redis.call('ZADD', zkey, exp, member)
  if exp <= now then return end
  local cur = redis.call('GET', okey)
  if cur == member then return end
  if not cur or (r.isActive == true and not holds(cur, r.expoPushToken)) then
    redis.call('SET', okey, member, 'EXAT', exp)
    n[2] = n[2] + 1
  end
end
local sc = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[3], 'COUNT', ARGV[2])
for _, k in ipairs(sc[2]) do
  if string.sub(k, 1, #dev_head) == dev_head and string.sub(k, -#dev_tail) == dev_tail then
    local user = string.sub(k, #dev_head + 1, -(#dev_tail + 1))
    local all = redis.call('HGETALL', k)
    for i = 1, #all, 2 do index(user, all[i], all[i + 1]) end
  elseif k == old_expiry or (string.sub(k, 1, #owner_stem) == owner_stem and
                             string.sub(k, #owner_stem + 1, #owner_stem + 1) ~= '{') then
    redis.call('UNLINK', k)
    n[3] = n[3] + 1
  end
end
return {sc[1], n[1], n[2], n[3], recs}
