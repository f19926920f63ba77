#!/usr/bin/env bash
# bench/pipeline/run.sh - herald's pipeline end to end in a Release build: drain rate of a
# 100,000-event backlog (10,000 users x 2 devices), end-to-end latency at a steady 1,000 events/s,
# herald's CPU seconds and peak RSS. Extra arguments go to bench_pipeline (see its header), e.g.
#   bench/pipeline/run.sh --events 100000 --users 10000 --rate 1000 --seconds 20
# On a 3 + 3 node Redis Cluster: bench/pipeline/run.sh --cluster
# Profile the drain: BUILD_DIR=build-prof (configured with -DCMAKE_C_FLAGS=-fno-omit-frame-pointer)
#   bench/pipeline/run.sh --events 20000 --perf /tmp/herald.perf.data
# BUILD_DIR (default build-bench) is configured as Release if missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD_DIR:-build-bench}
if [ ! -x "$build/bin/bench_pipeline" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" -j2 --target bench_pipeline herald herald-expo-sim >/dev/null
HERALD_TEST_BIN_DIR="$PWD/$build/bin" "$build/bin/bench_pipeline" "$@"
