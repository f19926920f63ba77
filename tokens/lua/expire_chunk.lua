-- expire_chunk.lua - removes one chunk of expired token records from the head of one expiry
-- bucket.
-- KEYS[1]  <p>expiry:{t<k>}  the expiry bucket
-- ARGV     now (unix s), offset, limit, dry run (0/1), want items (0/1), then the key parts from
--          db/keys.c: token key parts (key_token_parts), dev hash head "<p>dev:{" and tail "}"
-- Reply:   {examined, expired, stale, rescored, items}; items are "user\031device\031<why>"
-- An entry whose record is gone, or holds a token of another bucket now, is stale (dropped); one
-- whose record says it expires later is rescored; the rest go with their owner keys. The dev
-- hashes are not in KEYS: fine on a single Redis, not cluster-safe.
-- @include tokens/lua/record_drop.lua
local now = tonumber(ARGV[1])
local dev_head, dev_tail = ARGV[7], ARGV[8]
local items = {}
local ctx = {tp = token_parts(ARGV[6]), zkey = KEYS[1], dry = ARGV[4] == '1'}
if ARGV[5] == '1' then ctx.items = items end
local ms = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', ARGV[2], ARGV[3])
local expired, stale, fixed = 0, 0, 0
for _, m in ipairs(ms) do
  local sep = string.find(m, '\031', 1, true)
  local js, hk, d
  if sep then
    hk = dev_head .. string.sub(m, 1, sep - 1) .. dev_tail
    d = string.sub(m, sep + 1)
    js = redis.call('HGET', hk, d)
  end
  if not js then
    stale = stale + 1
    record_drop(ctx, hk, m, nil, nil, 'stale')
  else
    local ok, r = pcall(cjson.decode, js)
    if not ok or type(r) ~= 'table' then r = nil end
    local exp = r and tonumber(r.expiresAt)
    local _, zk = nil, nil
    if r and type(r.expoPushToken) == 'string' then _, zk = token_keys(ctx.tp, r.expoPushToken) end
    if zk and zk ~= KEYS[1] then
      stale = stale + 1
      record_drop(ctx, hk, m, nil, nil, 'stale')
    elseif exp and exp > now then
      fixed = fixed + 1
      if not ctx.dry then redis.call('ZADD', KEYS[1], exp, m) end
    else
      expired = expired + 1
      record_drop(ctx, hk, m, d, r, 'expired')
    end
  end
end
return {#ms, expired, stale, fixed, items}
