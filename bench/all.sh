#!/usr/bin/env bash
# Every benchmark in one run, each ratio measured within its own benchmark:
#   bench/engine.sh   the engine in Redis (module vs ZADD, vs the Lua library)
#   bench/http.sh     the HTTP stack layer by layer, buy vs /healthz
#   bench/soak.sh     the platform under load, memory over time (short)
#   bench/sse.sh      idle Server-Sent Events against polling: memory per
#                     connection, idle CPU, fan-out latency
# then the ratio and target lines of all four together.
#
# Usage: bench/all.sh [rounds] [soak-minutes] [sse-connections]
#        (default 5 rounds, 3 minutes, 20000 connections)
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-5}
SOAK_MINUTES=${2:-3}
SSE_CONNECTIONS=${3:-20000}
OUT=$(mktemp -d /tmp/flashsale-bench-all.XXXXXX)
trap 'rm -rf "$OUT"' EXIT

run() { # name command...
  local name=$1
  shift
  echo "=== $name: $* ===" >&2
  "$@" | tee "$OUT/$name.txt"
  echo
}

run engine bench/engine.sh "$ROUNDS"
run http bench/http.sh "$ROUNDS"
run soak bench/soak.sh "$SOAK_MINUTES"
run sse bench/sse.sh "$SSE_CONNECTIONS" 30

echo "=== summary: every ratio of this run ==="
for name in engine http soak sse; do
  echo "--- $name"
  grep -E '^\| |targets|^API RSS|^API CPU per buy|^if a buy cost' "$OUT/$name.txt" | grep -vE '^\|[-:|]+\|$' || true
done
