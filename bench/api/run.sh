#!/usr/bin/env bash
# bench/api/run.sh - registration API throughput and latency with wrk against a Release herald and
# a local redis-server, or (cluster) a 3-master Redis Cluster without replicas (redis.cluster =
# true: a registration is one script per slot). Prints requests/s, latency percentiles and
# herald's peak RSS; wrk runs flat out.
#   bench/api/run.sh [jwt|header] [connections] [seconds] [standalone|cluster]
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-jwt}; conns=${2:-64}; secs=${3:-15}; topo=${4:-standalone}
[ -x build/bin/herald ] || { cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null; cmake --build build -j2 >/dev/null; }
work=$(mktemp -d /tmp/herald-bench-XXXXXX); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# A port below 55000 whose cluster bus port (+10000) is free too.
bus_port() { python3 -c '
import socket
for _ in range(100):
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    if p >= 55000: continue
    try:
        b = socket.socket(); b.bind(("127.0.0.1", p + 10000)); print(p); break
    except OSError: pass'; }
redis() { # port [cluster options...]
  local p=$1; shift
  mkdir -p "$work/r$p"
  redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no --dir "$work/r$p" "$@" >/dev/null 2>&1 &
  pids+=($!); rpids+=($!)
  for _ in $(seq 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
}
rpids=(); masters=()
if [ "$topo" = cluster ]; then
  for _ in 1 2 3; do masters+=("$(bus_port)"); redis "${masters[-1]}" --cluster-enabled yes; done
  redis-cli --cluster create $(printf '127.0.0.1:%s ' "${masters[@]}") --cluster-yes >/dev/null
  for _ in $(seq 100); do
    ok=0; for p in "${masters[@]}"; do redis-cli -p "$p" cluster info | grep -q 'cluster_state:ok' && ok=$((ok + 1)); done
    [ "$ok" = 3 ] && break; sleep 0.1
  done
  rp=${masters[0]}
else
  rp=$(port); masters=("$rp"); redis "$rp"
fi
head -c 48 /dev/urandom | base64 > "$work/secret"
cat > "$work/herald.conf" <<CONF
log.level = warn
http.listen = 127.0.0.1:0
admin.listen = 127.0.0.1:0
redis.url = redis://127.0.0.1:$rp/0
redis.cluster = $([ "$topo" = cluster ] && echo true || echo false)
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
echo "mode=$mode connections=$conns duration=${secs}s redis=$topo (herald pid $hp, redis ${masters[*]})"
cpu() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; } # clock ticks (1/100 s)
h0=$(cpu "$hp"); r0=$(cpu "${rpids[@]}")
JWTS="$work/jwts.txt" HEADER_MODE=$([ "$mode" = header ] && echo 1 || echo 0) \
  wrk -t2 -c"$conns" -d"${secs}s" --latency -s bench/api/post.lua "http://127.0.0.1:$api" | \
  grep -E "Requests/sec|requests|latency p50|Non-2xx" | tee "$work/wrk.txt"
n=$(awk '/^requests /{gsub(",", "", $2); print $2}' "$work/wrk.txt")
echo "herald peak RSS: $(grep VmHWM /proc/$hp/status | awk '{print $2" "$3}')"
echo "herald CPU: $(awk '{printf "%.2f s user, %.2f s system", $14/100, $15/100}' /proc/$hp/stat)"
echo "redis CPU (${#rpids[@]} server(s)): $(( $(cpu "${rpids[@]}") - r0 )) ticks of 10 ms"
awk -v h="$(( $(cpu "$hp") - h0 ))" -v r="$(( $(cpu "${rpids[@]}") - r0 ))" -v n="$n" \
  'BEGIN { if (n > 0) printf "per request: herald %.1f us CPU, redis %.1f us CPU\n", h * 1e4 / n, r * 1e4 / n }'
# Each server's own expiry buckets (KEYS lists the local ones), summed.
count='local n = 0 for _, k in ipairs(redis.call("KEYS", ARGV[1] .. "*")) do n = n + redis.call("ZCARD", k) end return n'
stored=0; for p in "${masters[@]}"; do stored=$((stored + $(redis-cli -p "$p" eval "$count" 0 'herald:expiry:{t'))); done
echo "devices stored: $stored"
