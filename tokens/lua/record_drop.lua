-- record_drop.lua - shared helper of the lifecycle scripts, pulled in by an @include line.
-- record_drop(ctx, hk, member, device, rec, why) removes one token record and what points at it:
-- its field device of the hash hk (when device is not nil), and in its token's slot its owner key
-- (when that still names member) and expiry entry; with ctx.items it also lists
-- "member\031why".
--   ctx  {tp = token_parts(), zkey = the expiry bucket being walked or nil (its entry goes too),
--         unbind = nil, or a list that collects token, member pairs for the caller to unbind in
--         their slots (a script that may touch one slot only), scores = nil or a list that
--         collects each unbound record's expiresAt beside them, dry = change nothing,
--         items = nil or the list to append to}
--   rec  the decoded record, or nil (corrupt or missing: no token to look at)
-- @include tokens/lua/owner_unbind.lua
local function record_drop(ctx, hk, member, device, rec, why)
  if not ctx.dry then
    local tok = type(rec) == 'table' and rec.expoPushToken or nil
    if ctx.unbind and type(tok) == 'string' then
      ctx.unbind[#ctx.unbind + 1] = tok
      ctx.unbind[#ctx.unbind + 1] = member
      if ctx.scores then ctx.scores[#ctx.scores + 1] = tostring(rec.expiresAt or '') end
    elseif not ctx.unbind then
      owner_unbind(ctx.tp, tok, member)
    end
    if device then redis.call('HDEL', hk, device) end
    if ctx.zkey then redis.call('ZREM', ctx.zkey, member) end
  end
  if ctx.items then ctx.items[#ctx.items + 1] = member .. '\031' .. why end
end
