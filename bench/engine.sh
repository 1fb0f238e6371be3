#!/usr/bin/env bash
# Engine benchmark: one redis-server, interleaved rounds of
#   plain ZADD (random members)          — the baseline,
#   FLASHSALE.ENQUEUE (module)           — random users,
#   FCALL flashsale_enqueue (Lua)        — random users,
# with redis-benchmark at -P 16, then GRANT throughput in holds per second for
# both backends. Reports medians and ratios measured in this same run.
#
# Usage: bench/engine.sh [rounds] [requests-per-test]
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-5}
REQUESTS=${2:-300000}
GRANT_BATCH=100
GRANT_CALLS=1000

cargo build -p module --release --quiet
MODULE=$PWD/target/release/libflashsale_module.so
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DIR=$(mktemp -d)
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$DIR" \
  --loadmodule "$MODULE" --logfile "$DIR/redis.log" --daemonize yes --pidfile "$DIR/redis.pid"
cleanup() { kill "$(cat "$DIR/redis.pid")" 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
cli() { redis-cli -p "$PORT" "$@"; }
for _ in $(seq 100); do cli PING >/dev/null 2>&1 && break; sleep 0.05; done
cli -x FUNCTION LOAD REPLACE < lua/flashsale.lua >/dev/null

fresh_sales() {
  cli FLUSHALL >/dev/null
  local now; now=$(cli TIME | head -1)000
  for sale in bench-mod bench-lua; do
    cli FLASHSALE.SETUP "$sale" 1000000000 $((now - 1000)) $((now + 3600000)) 600000 >/dev/null
  done
}

# Prints requests per second of one redis-benchmark run.
rps() {
  redis-benchmark -p "$PORT" -q --csv -r 100000000 "$@" | tail -1 | cut -d, -f2 | tr -d '"'
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

declare -a zadd modenq luaenq
for round in $(seq "$ROUNDS"); do
  fresh_sales
  zadd+=("$(rps -P 16 -c 50 -n "$REQUESTS" ZADD bench:zset __rand_int__ member:__rand_int__)")
  modenq+=("$(rps -P 16 -c 50 -n "$REQUESTS" FLASHSALE.ENQUEUE bench-mod u-__rand_int__)")
  luaenq+=("$(rps -P 16 -c 50 -n "$REQUESTS" FCALL flashsale_enqueue 1 bench-lua u-__rand_int__)")
  echo "round $round: ZADD ${zadd[-1]}  module ENQUEUE ${modenq[-1]}  Lua ENQUEUE ${luaenq[-1]}" >&2
done
# Per-round ratios, so a round where the whole machine was slower counts as
# one round, not as a skew of one side.
RZ=$(for i in "${!zadd[@]}"; do awk -v a="${modenq[$i]}" -v b="${zadd[$i]}" 'BEGIN {print a / b}'; done | median)
RL=$(for i in "${!zadd[@]}"; do awk -v a="${modenq[$i]}" -v b="${luaenq[$i]}" 'BEGIN {print a / b}'; done | median)
Z=$(printf '%s\n' "${zadd[@]}" | median)
M=$(printf '%s\n' "${modenq[@]}" | median)
L=$(printf '%s\n' "${luaenq[@]}" | median)

# GRANT: queue enough users, then admit GRANT_BATCH per call.
declare -a modgrant luagrant
for round in $(seq "$ROUNDS"); do
  fresh_sales
  queued=$((GRANT_BATCH * GRANT_CALLS * 2))
  rps -P 16 -c 50 -n "$queued" FLASHSALE.ENQUEUE bench-mod u-__rand_int__ >/dev/null
  rps -P 16 -c 50 -n "$queued" FCALL flashsale_enqueue 1 bench-lua u-__rand_int__ >/dev/null
  modgrant+=("$(rps -c 4 -n "$GRANT_CALLS" FLASHSALE.GRANT bench-mod "$GRANT_BATCH")")
  luagrant+=("$(rps -c 4 -n "$GRANT_CALLS" FCALL flashsale_grant 1 bench-lua "$GRANT_BATCH")")
done
MG=$(printf '%s\n' "${modgrant[@]}" | median)
LG=$(printf '%s\n' "${luagrant[@]}" | median)

awk -v rz="$RZ" -v rl="$RL" -v z="$Z" -v m="$M" -v l="$L" -v mg="$MG" -v lg="$LG" -v b="$GRANT_BATCH" -v rounds="$ROUNDS" -v n="$REQUESTS" 'BEGIN {
  printf "Engine benchmark: median of %d interleaved rounds, %d requests each, redis-benchmark -P 16 -c 50\n(module ratios: medians of the per-round ratios)\n\n", rounds, n
  printf "| command | ops/s | vs plain ZADD | vs Lua |\n|---|---:|---:|---:|\n"
  printf "| ZADD (baseline) | %.0f | 1.00x | |\n", z
  printf "| FLASHSALE.ENQUEUE (module) | %.0f | %.2fx | %.2fx |\n", m, rz, rl
  printf "| FCALL flashsale_enqueue (Lua) | %.0f | %.2fx | 1.00x |\n", l, l/z
  printf "\nGRANT, %d holds per call, 4 clients:\n\n| backend | holds/s | vs 50 holds/s per worker |\n|---|---:|---:|\n", b
  printf "| module | %.0f | %.0fx |\n| Lua | %.0f | %.0fx |\n", mg*b, mg*b/50, lg*b, lg*b/50
  printf "\ntargets: module ENQUEUE >= 0.75x ZADD: %s; >= 1.3x Lua: %s\n", (rz >= 0.75) ? "met" : "MISSED", (rl >= 1.3) ? "met" : "MISSED"
}'
