-- trace_purge.lua - deletes delivery traces for a privacy request (heraldctl tokens delete):
-- the user's index of recent jobs with every trace list it names, and device indexes.
-- KEYS     the user's index <p>trace:u:{<user>} when ARGV[2] is '1', then the indexes of the
--          user's devices <p>trace:d:<n>:{<user>}:<device> (db/keys.h spells them)
-- ARGV[1]  the stem of trace lists, "<p>trace:j:" (a list is the stem followed by a job id)
-- ARGV[2]  '1' when KEYS[1] is a user index, else '0'
-- Reply:   the number of keys deleted
local n = 0
if ARGV[2] == '1' then
  for _, job in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    n = n + redis.call('DEL', ARGV[1] .. job)
  end
end
for _, k in ipairs(KEYS) do
  n = n + redis.call('DEL', k)
end
return n
