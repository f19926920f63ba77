#!/bin/sh
# expo_shared_rate.sh - several herald Expo clients sharing one send budget through Redis
# (expo.shared_rate_limit) against herald-expo-sim with a rate limit (default: its strict mode,
# where no real second may hold more than the limit). Each instance is a bench-expo process in
# rate mode with --redis, fed without pause. Prints each instance's line, then from the
# simulator's record the messages it accepted in the measured window (after a 5 s warm-up) as a
# rate, the most it accepted in any 1000 ms, and its 429 count. The targets: no 429 and >= 99%.
# usage: bench/expo_shared_rate.sh [BUILD_DIR=build] [SECONDS=20] [INSTANCES=2] [RATE=600]
#        [WINDOW=strict|sliding|fixed]
set -eu
build=${1:-build}
secs=${2:-20}
n=${3:-2}
rate=${4:-600}
window=${5:-strict}
tmp=$(mktemp -d)
pids=""
trap 'for p in $pids; do kill $p 2>/dev/null; wait $p 2>/dev/null; done; rm -rf "$tmp"' EXIT
redis-server --port 0 --unixsocket "$tmp/redis.sock" --save '' --appendonly no \
    --dir "$tmp" >"$tmp/redis.log" 2>&1 &
pids="$!"
"$build/bin/herald-expo-sim" --listen 127.0.0.1:0 --port-file "$tmp/port" \
    --rate-limit "$rate" --rate-window "$window" --record "$tmp/record.jsonl" >/dev/null &
sim=$!
pids="$pids $sim"
i=0
while { [ ! -s "$tmp/port" ] || [ ! -S "$tmp/redis.sock" ]; } && [ $i -lt 100 ]; do
    sleep 0.05
    i=$((i + 1))
done
addr=$(cat "$tmp/port")
k=0
bench=""
while [ $k -lt "$n" ]; do
    "$build/bin/bench-expo" --url "http://$addr" --mode rate --rate "$rate" --seconds "$secs" \
        --redis "unix://$tmp/redis.sock" >"$tmp/bench.$k" &
    bench="$bench $!"
    k=$((k + 1))
done
for p in $bench; do wait "$p"; done
cat "$tmp"/bench.*
stats=$(curl -s "http://$addr/stats")
kill "$sim"
wait "$sim" 2>/dev/null || true
pids=${pids% *}
# record lines start {"ts":<wall ms>, one ts per request
sed -n 's/^{"ts":\([0-9]*\),.*/\1/p' "$tmp/record.jsonl" | sort -n | awk -v rate="$rate" \
    -v n="$n" -v secs="$secs" -v window="$window" '
    { t[NR] = $1 }
    END {
        # the requests from the first to the last inside the measured window: the messages
        # accepted from the first up to (not including) the last, over the time between them
        from = t[1] + 5000; to = from + secs * 1000
        for (i = 1; i <= NR; i++) if (t[i] >= from && t[i] < to) { if (!f) f = t[i]; l = t[i] }
        for (i = 1; i <= NR; i++) if (t[i] >= f && t[i] < l) c++
        j = 1
        for (i = 1; i <= NR; i++) {
            while (t[i] - t[j] >= 1000) j++
            if (i - j + 1 > peak) peak = i - j + 1
        }
        r = l > f ? c * 1000 / (l - f) : 0
        printf "shared: %d instances, %s %d/s server: %.1f/s accepted over %.1f s = %.2f%%; peak %d in 1000 ms\n", n, window, rate, r, (l - f) / 1000, 100 * r / rate, peak
    }'
echo "simulator: $(echo "$stats" | grep -o '"http429":[0-9]*'), $(echo "$stats" | grep -o '"messagesAccepted":[0-9]*')"
