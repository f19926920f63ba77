-- receipts_forget.lua - forgets receipt checks that have a definite result.
-- KEYS[1]  <p>receipts  ticket ids by due time
-- ARGV     ticket stem "<p>ticket:" (from db/keys.c), then ticket ids
-- Reply:   the number of ids
for i = 2, #ARGV do
  redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('DEL', ARGV[1] .. ARGV[i])
end
return #ARGV - 1
