-- record_drop.lua - shared helper of the lifecycle scripts, pulled in by an @include line.
-- record_drop(ctx, hk, member, device, rec, why) removes one token record and what points at it:
-- its owner key (when that still names member), its field device of the hash hk (when device is
-- not nil) and its expiry index entry; with ctx.items it also lists "member\031why".
--   ctx  {owner_stem = "<p>owner:", zkey = expiry index key, dry = change nothing,
--         items = nil or the list to append to}
--   rec  the decoded record, or nil (corrupt or missing: no owner key to look at)
-- @include tokens/lua/owner_unbind.lua
local function record_drop(ctx, hk, member, device, rec, why)
  if not ctx.dry then
    if type(rec) == 'table' then owner_unbind(ctx.owner_stem, rec.expoPushToken, member) end
    if device then redis.call('HDEL', hk, device) end
    redis.call('ZREM', ctx.zkey, member)
  end
  if ctx.items then ctx.items[#ctx.items + 1] = member .. '\031' .. why end
end
