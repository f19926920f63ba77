-- privacy_check.lua - a privacy delete on Redis Cluster (pipeline/privacy.c): the user's (device's)
-- tickets removed from one receipt check, in the check's slot (privacy_purge.lua names the checks).
-- KEYS[1]  <p>rq:{<b>}  the check's schedule (its slot)
-- ARGV     check stem "<p>rq:", the check ref "<b>:<check id>", user, device or ''
-- Reply:   the number of tickets removed
-- @include expo/lua/check_drop.lua
return check_drop(ARGV[1], ARGV[2], ARGV[3], ARGV[4])
