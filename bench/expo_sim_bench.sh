#!/bin/sh
# expo_sim_bench.sh - how fast is herald-expo-sim alone? The simulator is pinned to CPU 0, wrk to
# CPU 1, and wrk posts the same 100-message body (expo_sim_post100.lua) over keep-alive
# connections. Prints requests/s, messages/s, the simulator's CPU seconds and requests per
# simulator CPU second (the figure that does not depend on what else runs on the machine).
# usage: bench/expo_sim_bench.sh [BUILD_DIR=build] [SECONDS=10] [CONNECTIONS=32] [--record]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
secs=${2:-10}
conns=${3:-32}
record=${4:-}
bin=$build/bin/herald-expo-sim
tmp=$(mktemp -d)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$tmp"' EXIT
extra=""
[ "$record" = "--record" ] && extra="--record $tmp/record.jsonl"
taskset -c 0 "$bin" --listen 127.0.0.1:0 --port-file "$tmp/port" $extra >/dev/null &
pid=$!
i=0
while [ ! -s "$tmp/port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
addr=$(cat "$tmp/port")
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
c0=$(cpu)
taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" -s "$here/expo_sim_post100.lua" \
    "http://$addr/--/api/v2/push/send" >"$tmp/wrk.txt"
c1=$(cpu)
cat "$tmp/wrk.txt"
stats=$(curl -s "http://$addr/stats" | head -c 400)
rps=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.txt")
reqs=$(awk '/requests in/ {print $1}' "$tmp/wrk.txt")
awk -v rps="$rps" -v reqs="$reqs" -v c0="$c0" -v c1="$c1" -v t="$ticks" -v rec="${record:-no}" \
    'BEGIN {
        cpu = (c1 - c0) / t
        printf "expo-sim: %.0f requests/s, %.0f messages/s (100 per request), record=%s\n", rps, rps * 100, rec
        printf "expo-sim: %.2f CPU s for %d requests = %.0f requests per CPU second (%.0f messages)\n", cpu, reqs, reqs / cpu, reqs * 100 / cpu
    }'
echo "stats: $stats..."
if [ -n "$extra" ]; then echo "record lines: $(wc -l <"$tmp/record.jsonl")"; fi
