-- import_user.lua - the user-slot step of importing one record on Redis Cluster (tokens/lifecycle.c;
-- import.lua does it all in one script on a single Redis): stores the record as given under
-- registration's device limit (bind.lua), and lists the token bindings it let go (evicted records,
-- the device's previous token) for the caller to drop in their slots (bucket_fix.lua).
-- KEYS[1]  <p>dev:{<user>}
-- ARGV     user, device, token, expiresAt, record JSON, now (unix s), max devices, token key parts
-- Reply:   {status, evicted, {token, member, expiresAt, ...}}; status = unchanged (stored exactly
--          so: nothing done), refused (the device limit), created or updated
-- @include tokens/lua/bind.lua
local u, d, tok, js = ARGV[1], ARGV[2], ARGV[3], ARGV[5]
local ctx = {now = tonumber(ARGV[6]), max = tonumber(ARGV[7]), tp = token_parts(ARGV[8]),
             unbind = {}, scores = {}}
local hk, member = KEYS[1], u .. '\031' .. d
local cur = redis.call('HGET', hk, d)
if cur == js then return {'unchanged', 0, {}} end
local status, ev = 'updated', 0
if not cur then
  ev = bind_room(ctx, hk, u)
  if ev < 0 then return {'refused', 0, {}} end
  status = 'created'
end
local old = bind_decode(cur)
if old and type(old.expoPushToken) == 'string' and old.expoPushToken ~= tok then
  ctx.unbind[#ctx.unbind + 1] = old.expoPushToken
  ctx.unbind[#ctx.unbind + 1] = member
  ctx.scores[#ctx.scores + 1] = tostring(old.expiresAt or '')
end
redis.call('HSET', hk, d, js)
bind_expire(hk, tonumber(ARGV[4]), ctx.now)
local out = {}
for i = 1, #ctx.scores do
  out[#out + 1] = ctx.unbind[2 * i - 1]
  out[#out + 1] = ctx.unbind[2 * i]
  out[#out + 1] = ctx.scores[i]
end
return {status, ev, out}
