-- register_user_part.lua - the user slot's half of a registration, pulled in by an @include line
-- (register.lua: the whole registration in one script; register_user.lua: this half alone, when
-- each script may touch one hash slot). Every key it touches is tagged by the user.
-- register_ctx(ARGV) reads the arguments both scripts share:
--   user, device, token, rate, burst (the user's limit, 0 0: none), now (unix ms),
--   now (ISO-8601 ms), expiresAt, max devices, the record JSON before and after the value of
--   registeredAt (tokens/model.c tok_record_json with it empty), the token key parts
--   (key_token_parts), dev hash head "<p>dev:{" and tail "}"
-- register_user(c, hk, rlkey): charges the user's limit (refused: -7, nothing else changed);
-- a new device past the limit first evicts the user's oldest inactive/expired/corrupt records
-- (not enough of them: -2, nothing else changed); stores the record with registeredAt kept from
-- the stored one (read as text: no JSON decoding). Returns the limit's verdict, 0, created (0/1) and
-- registeredAt; c.unbind lists the token, member pairs whose token slots must drop their binding
-- to this user (the device's previous token, evicted records), and c.owned the previous token
-- when the record was active: its owner key names this device or nobody (a registration taking
-- a token deactivates its holder in the same script), so one script may delete it unread.
-- @include tokens/lua/gcra.lua
-- @include tokens/lua/bind.lua
-- The string value of "name" in a record as herald writes it (plain search: no pattern), or nil.
local function record_str(js, name)
  local _, e = string.find(js, '"' .. name .. '":"', 1, true)
  if not e then return nil end
  local q = string.find(js, '"', e + 1, true)
  return q and string.sub(js, e + 1, q - 1) or nil
end

local function register_ctx(a)
  return {user = a[1], dev = a[2], tok = a[3], rate = a[4], burst = a[5], now_ms = a[6],
          now = math.floor(tonumber(a[6]) / 1000),
          iso = a[7], exp = tonumber(a[8]), max = tonumber(a[9]), head = a[10], tail = a[11],
          tparts = a[12], dev_head = a[13], dev_tail = a[14], member = a[1] .. '\031' .. a[2],
          unbind = {}}
end

local function register_user(c, hk, rlkey)
  local rl, allowed = user_quota(rlkey, c.rate, c.burst, c.now_ms)
  if not allowed then return rl, -7 end
  local cur = redis.call('HGET', hk, c.dev)
  local created, reg, recent, fresh = 0, nil, false, false
  if cur then
    reg = record_str(cur, 'registeredAt')
    local old = record_str(cur, 'expoPushToken')
    if old and old ~= c.tok then
      c.unbind[#c.unbind + 1] = old
      c.unbind[#c.unbind + 1] = c.member
      if string.find(cur, '"isActive":true', 1, true) then c.owned = old end
    end
    -- The hash expires a day after this record did (bind_expire): late enough for the new one?
    local _, e = string.find(cur, '"expiresAt":', 1, true)
    local was = e and tonumber(string.match(cur, '^%d+', e + 1))
    recent = was ~= nil and c.exp <= was + BIND_SLACK
  else
    created = 1
    local evicted, len = bind_room(c, hk, c.user)
    if evicted < 0 then return rl, -2 end
    fresh = len == 0
  end
  reg = reg or c.iso
  redis.call('HSET', hk, c.dev, c.head .. reg .. c.tail)
  if not recent then bind_expire(hk, c.exp, c.now, fresh) end
  return rl, 0, created, reg
end
