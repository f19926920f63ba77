-- bind.lua - shared helper: the rules that bind a token record to (user, device), pulled in by
-- the registration scripts (register.lua, register_user.lua) and import.lua (a batch of restored
-- records) so that all keep the same invariants (DESIGN.md "Device limit", and one token bound to
-- one active record).
--   ctx  {tp = token_parts(), dev_head = "<p>dev:{", dev_tail = "}", now = unix s,
--         iso = now as ISO-8601 ms, max = tokens.max_devices_per_user,
--         unbind = nil or the list collecting token, member pairs (see record_drop.lua)}
-- Steps, in this order: bind_room (a new device only), the device's previous token unbound,
-- bind_take (when the record claims its token), bind_write.
-- @include tokens/lua/record_drop.lua
-- @include tokens/lua/record_deactivate.lua

-- The record as a table, or nil (missing or corrupt).
local function bind_decode(s)
  if not s then return nil end
  local ok, r = pcall(cjson.decode, s)
  if ok and type(r) == 'table' then return r end
  return nil
end

-- Makes room for one more device in the user's hash hk: past ctx.max, the oldest (updatedAt)
-- inactive, expired or corrupt records go with their owner keys and expiry entries, all or
-- nothing. Returns how many went, or -1 when there are not enough of them (nothing changed), and
-- how many records the hash held.
local function bind_room(ctx, hk, user)
  local len = redis.call('HLEN', hk)
  local need = len - ctx.max + 1
  if need <= 0 then return 0, len end
  local all, dead = redis.call('HGETALL', hk), {}
  for i = 1, #all, 2 do
    local r = bind_decode(all[i + 1])
    if not r or r.isActive ~= true or (tonumber(r.expiresAt) or 0) <= ctx.now then
      local t = (r and type(r.updatedAt) == 'string') and r.updatedAt or ''
      dead[#dead + 1] = {all[i], r, t}
    end
  end
  if #dead < need then return -1, len end
  table.sort(dead, function(a, b) return a[3] < b[3] end)
  for i = 1, need do
    record_drop(ctx, hk, user .. '\031' .. dead[i][1], dead[i][1], dead[i][2], 'evicted')
  end
  return need, len
end

-- Takes token tok for member, whose owner key okey now names it (prev: what the key named
-- before). The record prev names is deactivated with reason "reassigned" (kept when already
-- inactive) when it still holds tok. Returns its user and device ('' when none) and whether it
-- was active.
local function bind_take(ctx, prev, member, tok)
  if not prev or prev == member then return '', '', false end
  local sep = string.find(prev, '\031', 1, true)
  if not sep then return '', '', false end
  local ou, od = string.sub(prev, 1, sep - 1), string.sub(prev, sep + 1)
  local ohk = ctx.dev_head .. ou .. ctx.dev_tail
  local was = redis.call('HGET', ohk, od)
  if record_deactivate(ohk, od, 'reassigned', ctx.now, ctx.iso, tok) ~= 0 then
    return '', '', false
  end
  return ou, od, was ~= nil and string.find(was, '"isActive":true', 1, true) ~= nil
end

-- The user's hash hk expires a day (BIND_SLACK) after its newest expiresAt, so that a device
-- re-registering within a day needs no new expiry (register_user_part.lua); an expiry already
-- passed is not set (EXPIREAT in the past would delete the key). fresh: the hash was just created
-- (it has no expiry yet); false: it existed, with an expiry; nil: not known.
local BIND_SLACK = 86400
local function bind_expire(hk, exp, now, fresh)
  if exp <= now then return end
  if fresh then
    redis.call('EXPIREAT', hk, exp + BIND_SLACK)
  elseif redis.call('EXPIREAT', hk, exp + BIND_SLACK, 'GT') == 0 and fresh == nil and
     redis.call('TTL', hk) == -1 then
    redis.call('EXPIREAT', hk, exp + BIND_SLACK)
  end
end

-- The token slot's half of a binding: with own, the owner key okey names member until exp (the
-- previous value is returned); the expiry bucket zkey schedules member at exp.
local function bind_token(okey, zkey, member, exp, own)
  local prev = false
  if own then prev = redis.call('SET', okey, member, 'EXAT', exp, 'GET') end
  redis.call('ZADD', zkey, exp, member)
  return prev
end
