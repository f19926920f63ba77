-- expo_sim_post100.lua - wrk script for bench/expo_sim_bench.sh: every request POSTs one
-- pre-built body of 100 Expo messages (distinct tokens, title, body, data, collapseId).
local msgs = {}
for i = 1, 100 do
  msgs[i] = string.format(
    '{"to":"ExponentPushToken[bench%05d-abcdefghijkl]","title":"Photo Editor - Ready!",' ..
    '"body":"Your enhanced photo is ready to download","sound":"default","priority":"high",' ..
    '"collapseId":"job-%d:COMPLETED","data":{"jobId":"job-%d","status":"COMPLETED",' ..
    '"type":"job","action":"download"}}', i, i, i)
end
wrk.method = "POST"
wrk.body = "[" .. table.concat(msgs, ",") .. "]"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
