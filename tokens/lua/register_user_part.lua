-- register_user_part.lua - the user slot's half of a registration, pulled in by an @include line
-- (register.lua: the whole registration in one script; register_user.lua: this half alone, when
-- each script may touch one hash slot). Every key it touches is tagged by the user.
-- register_ctx(ARGV) reads the arguments both scripts share:
--   user, device, token, rate, burst (the user's limit, 0 0: none), now (unix s),
--   now (ISO-8601 ms), expiresAt, max devices, the record JSON before and after the value of
--   registeredAt (tokens/model.c tok_record_json with it empty), the token key parts
--   (key_token_parts), dev hash head "<p>dev:{" and tail "}"
-- register_user(c, hk, rlkey): charges the user's limit (refused: -7, nothing else changed);
-- a new device past the limit first evicts the user's oldest inactive/expired/corrupt records
-- (not enough of them: -2, nothing else changed); stores the record with registeredAt kept from
-- the stored one (as text: no JSON decoding). Returns the limit's verdict, 0, created (0/1) and
-- registeredAt; c.unbind lists the token, member pairs whose token slots must drop their binding
-- to this user (the device's previous token, evicted records).
-- @include tokens/lua/gcra.lua
-- @include tokens/lua/bind.lua
local function register_ctx(a)
  return {user = a[1], dev = a[2], tok = a[3], rate = a[4], burst = a[5], now = tonumber(a[6]),
          iso = a[7], exp = tonumber(a[8]), max = tonumber(a[9]), head = a[10], tail = a[11],
          tparts = a[12], dev_head = a[13], dev_tail = a[14], member = a[1] .. '\031' .. a[2],
          unbind = {}}
end

local function register_user(c, hk, rlkey)
  local rl, allowed = user_quota(rlkey, c.rate, c.burst)
  if not allowed then return rl, -7 end
  local cur = redis.call('HGET', hk, c.dev)
  local created, reg = 0, nil
  if cur then
    reg = string.match(cur, '"registeredAt":"([^"\\]*)"')
    local old = string.match(cur, '"expoPushToken":"([^"\\]*)"')
    if old and old ~= c.tok then
      c.unbind[#c.unbind + 1] = old
      c.unbind[#c.unbind + 1] = c.member
    end
  else
    created = 1
    if bind_room(c, hk, c.user) < 0 then return rl, -2 end
  end
  reg = reg or c.iso
  redis.call('HSET', hk, c.dev, c.head .. reg .. c.tail)
  bind_expire(hk, c.exp, c.now)
  return rl, 0, created, reg
end
