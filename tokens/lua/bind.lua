-- bind.lua - shared helper: the rules that bind a token record to (user, device), pulled in by
-- register.lua (one registration) and import.lua (a batch of restored records) so that both keep
-- the same invariants (DESIGN.md "Device limit", and one token bound to one active record).
--   ctx  {owner_stem = "<p>owner:", dev_head = "<p>dev:{", dev_tail = "}", zkey = expiry index
--         key, now = unix s, iso = now as ISO-8601 ms, max = tokens.max_devices_per_user}
-- Steps, in this order: bind_room (a new device only), bind_take (when the record claims its
-- token), owner_unbind of the device's previous token, bind_write.
-- @include tokens/lua/record_drop.lua

-- The record as a table, or nil (missing or corrupt).
local function bind_decode(s)
  if not s then return nil end
  local ok, r = pcall(cjson.decode, s)
  if ok and type(r) == 'table' then return r end
  return nil
end

-- Makes room for one more device in the user's hash hk: past ctx.max, the oldest (updatedAt)
-- inactive, expired or corrupt records go with their owner keys and expiry entries, all or
-- nothing. Returns how many went, or -1 when there are not enough of them (nothing changed).
local function bind_room(ctx, hk, user)
  local need = redis.call('HLEN', hk) - ctx.max + 1
  if need <= 0 then return 0 end
  local all, dead = redis.call('HGETALL', hk), {}
  for i = 1, #all, 2 do
    local r = bind_decode(all[i + 1])
    if not r or r.isActive ~= true or (tonumber(r.expiresAt) or 0) <= ctx.now then
      local t = (r and type(r.updatedAt) == 'string') and r.updatedAt or ''
      dead[#dead + 1] = {all[i], r, t}
    end
  end
  if #dead < need then return -1 end
  table.sort(dead, function(a, b) return a[3] < b[3] end)
  for i = 1, need do
    record_drop(ctx, hk, user .. '\031' .. dead[i][1], dead[i][1], dead[i][2], 'evicted')
  end
  return need
end

-- The other (user, device) that holds token tok through its owner key okey: user, device, hash
-- key and record, or nil when the key is missing, names member, or names a record that no
-- longer holds tok.
local function bind_holder(ctx, okey, member, tok)
  local owner = redis.call('GET', okey)
  if not owner or owner == member then return nil end
  local sep = string.find(owner, '\031', 1, true)
  if not sep then return nil end
  local ou, od = string.sub(owner, 1, sep - 1), string.sub(owner, sep + 1)
  local ohk = ctx.dev_head .. ou .. ctx.dev_tail
  local orec = bind_decode(redis.call('HGET', ohk, od))
  if not orec or orec.expoPushToken ~= tok then return nil end
  return ou, od, ohk, orec
end

-- Takes tok for member: its holder's record is deactivated with reason "reassigned" (kept when
-- already inactive). Returns the previous user and device ('' when none) and whether a record
-- was deactivated.
local function bind_take(ctx, okey, member, tok)
  local ou, od, ohk, orec = bind_holder(ctx, okey, member, tok)
  if not ou then return '', '', false end
  local changed = orec.isActive ~= false
  if changed then
    orec.isActive = false
    orec.deactivatedReason = 'reassigned'
    orec.deactivatedAt = ctx.now
    orec.updatedAt = ctx.iso
    redis.call('HSET', ohk, od, cjson.encode(orec))
  end
  return ou, od, changed
end

-- Stores the record JSON js of device dev with its expiry entry; with own, the owner key okey
-- names member. The owner key and the hash expire with the newest expiresAt; an expiry already
-- passed is not set (EXPIREAT in the past would delete the key).
local function bind_write(ctx, hk, okey, member, dev, js, exp, own)
  redis.call('HSET', hk, dev, js)
  if own then redis.call('SET', okey, member, 'EXAT', exp) end
  redis.call('ZADD', ctx.zkey, exp, member)
  if exp > ctx.now and redis.call('EXPIREAT', hk, exp, 'GT') == 0 and
     redis.call('TTL', hk) == -1 then
    redis.call('EXPIREAT', hk, exp)
  end
end
