#!/usr/bin/env bash
# bench/api/run.sh - registration API throughput and latency with wrk against a Release herald and
# a local redis-server. Prints requests/s, latency percentiles and herald's peak RSS.
#   bench/api/run.sh [jwt|header] [connections] [seconds] [rate]
# rate (optional) uses wrk2-style pacing when available; plain wrk runs flat out.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-jwt}; conns=${2:-64}; secs=${3:-15}
[ -x build/bin/herald ] || { cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null; cmake --build build -j2 >/dev/null; }
work=$(mktemp -d /tmp/herald-bench-XXXXXX); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rp=$(port)
redis-server --port "$rp" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null 2>&1 & rpid=$!; pids+=($rpid)
for _ in $(seq 100); do redis-cli -p "$rp" ping >/dev/null 2>&1 && break; sleep 0.1; done
head -c 48 /dev/urandom | base64 > "$work/secret"
cat > "$work/herald.conf" <<CONF
log.level = warn
http.listen = 127.0.0.1:0
admin.listen = 127.0.0.1:0
redis.url = redis://127.0.0.1:$rp/0
auth.mode = $([ "$mode" = header ] && echo trusted-header || echo jwt)
auth.jwt.hs256_secret_file = $work/secret
ratelimit.user_burst = 1000000
ratelimit.user_rate = 1000000
ratelimit.ip_burst = 1000000
ratelimit.ip_rate = 1000000
CONF
build/bin/herald --config "$work/herald.conf" --ready-file "$work/ready" 2>"$work/herald.log" & hp=$!; pids+=($hp)
for _ in $(seq 100); do [ -s "$work/ready" ] && break; sleep 0.1; done
api=$(jq -r '.api_port' "$work/ready")
build/bin/herald-jwt-mint --secret-file "$work/secret" --sub-prefix user- --count 10000 --ttl 3600 > "$work/jwts.txt"
echo "mode=$mode connections=$conns duration=${secs}s (herald pid $hp, redis $rp)"
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # clock ticks (1/100 s)
h0=$(cpu "$hp"); r0=$(cpu "$rpid")
JWTS="$work/jwts.txt" HEADER_MODE=$([ "$mode" = header ] && echo 1 || echo 0) \
  wrk -t2 -c"$conns" -d"${secs}s" --latency -s bench/api/post.lua "http://127.0.0.1:$api" | \
  grep -E "Requests/sec|requests|latency p50|Non-2xx" | tee "$work/wrk.txt"
n=$(awk '/^requests /{gsub(",", "", $2); print $2}' "$work/wrk.txt")
echo "herald peak RSS: $(grep VmHWM /proc/$hp/status | awk '{print $2" "$3}')"
echo "herald CPU: $(awk '{printf "%.2f s user, %.2f s system", $14/100, $15/100}' /proc/$hp/stat)"
echo "redis CPU: $(awk '{printf "%.2f s user, %.2f s system", $14/100, $15/100}' /proc/$rpid/stat)"
awk -v h="$(( $(cpu "$hp") - h0 ))" -v r="$(( $(cpu "$rpid") - r0 ))" -v n="$n" \
  'BEGIN { if (n > 0) printf "per request: herald %.1f us CPU, redis %.1f us CPU\n", h * 1e4 / n, r * 1e4 / n }'
count='local n = 0 for k = 0, 1023 do n = n + redis.call("ZCARD", ARGV[1] .. k .. "}") end return n'
echo "devices stored: $(redis-cli -p "$rp" eval "$count" 0 herald:expiry:{t)"
