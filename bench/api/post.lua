-- wrk script: registrations from many users and devices. Tokens come from jwts.txt (one per
-- line, user-1..user-N as minted by herald-jwt-mint --sub-prefix user-), or with HEADER_MODE=1
-- the user id goes in X-User-Id (auth.mode = trusted-header).
local tokens = {}
local counter = 0
local header_mode = os.getenv("HEADER_MODE") == "1"

function init(args)
  if not header_mode then
    for line in io.lines(os.getenv("JWTS") or "jwts.txt") do tokens[#tokens + 1] = line end
  end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 1000)
end

function request()
  counter = counter + 1
  local n = header_mode and 10000 or #tokens
  local u = math.random(1, n)
  local d = math.random(1, 2)
  local body = string.format(
    '{"deviceId":"dev-%d","expoPushToken":"ExponentPushToken[bench%08d%d%013d]","platform":"ios"}',
    d, u, d, counter % 1000)
  local headers = {["Content-Type"] = "application/json"}
  if header_mode then
    headers["X-User-Id"] = "user-" .. u
  else
    headers["Authorization"] = "Bearer " .. tokens[u]
  end
  return wrk.format("POST", "/v1/device-tokens", headers, body)
end

function done(summary, latency, requests)
  local codes = {}
  io.write(string.format("requests %d, errors: connect %d read %d write %d status %d timeout %d\n",
    summary.requests, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
  io.write(string.format("latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
