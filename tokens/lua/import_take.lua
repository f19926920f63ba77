-- import_take.lua - the previous holder's user-slot step of importing one record on Redis Cluster
-- (tokens/lifecycle.c): the holder's record loses the token (reason "reassigned") when it still
-- holds it, as bind.lua's bind_take does in one script.
-- KEYS[1]  <p>dev:{<holder user>}
-- ARGV     holder device, token, now (unix s), now (ISO-8601 ms)
-- Reply:   1 when an active record was deactivated, else 0
-- @include tokens/lua/record_deactivate.lua
local was = redis.call('HGET', KEYS[1], ARGV[1])
if record_deactivate(KEYS[1], ARGV[1], 'reassigned', tonumber(ARGV[3]), ARGV[4], ARGV[2]) ~= 0 then
  return 0
end
if was and string.find(was, '"isActive":true', 1, true) then return 1 end
return 0
