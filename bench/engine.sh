#!/usr/bin/env bash
# Engine benchmark: one redis-server, interleaved rounds of
#   plain ZADD (random members)          — the baseline,
#   FLASHSALE.ENQUEUE (module)           — random users,
#   FCALL flashsale_enqueue (Lua)        — random users,
#   FCALL floor_enqueue (bench/lua-floor.lua) — the nine commands of a new
#                                          buyer's Lua ENQUEUE, no rules,
# with redis-benchmark at -P 16, then GRANT throughput in holds per second for
# both backends, then CONFIRM throughput for both backends: CONFIRM_USERS
# users are queued and granted a hold, then each confirms once, the commands
# sent by `redis-cli --pipe` (the same way for both backends) and timed.
# Reports medians and ratios measured in this same run: each ratio is the
# median of the per-round ratios, with its spread (min–max) over the rounds.
#
# Usage: bench/engine.sh [rounds] [requests-per-test]
#   CONFIRM_USERS (default 20000): users confirming per backend and round.
#   LUA_LIBRARY (default lua/flashsale.lua): the library to load, e.g. an
#   older version to compare with.
#   MODULE_LIBRARY (default: target/release/libflashsale_module.so, built
#   first): the module to load, e.g. one built from an older commit.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-5}
REQUESTS=${2:-300000}
GRANT_BATCH=100
GRANT_CALLS=1000
CONFIRM_USERS=${CONFIRM_USERS:-20000}
PRICE=1999

if [ "$ROUNDS" -lt 5 ]; then
  echo "note: $ROUNDS rounds; the ratios below want at least 5 to mean much" >&2
fi

if [ -n "${MODULE_LIBRARY:-}" ]; then
  MODULE=$(realpath "$MODULE_LIBRARY")
else
  cargo build -p module --release --quiet
  MODULE=$PWD/target/release/libflashsale_module.so
fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DIR=$(mktemp -d)
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$DIR" \
  --loadmodule "$MODULE" --logfile "$DIR/redis.log" --daemonize yes --pidfile "$DIR/redis.pid"
cleanup() { kill "$(cat "$DIR/redis.pid")" 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
cli() { redis-cli -p "$PORT" "$@"; }
for _ in $(seq 100); do cli PING >/dev/null 2>&1 && break; sleep 0.05; done
cli -x FUNCTION LOAD REPLACE < "${LUA_LIBRARY:-lua/flashsale.lua}" >/dev/null
cli -x FUNCTION LOAD REPLACE < bench/lua-floor.lua >/dev/null

# fresh_sales [SETUP options...]: an empty server with the sales bench-mod
# and bench-lua, open from a second ago for an hour.
fresh_sales() {
  cli FLUSHALL >/dev/null
  local now; now=$(cli TIME | head -1)000
  for sale in bench-mod bench-lua; do
    cli FLASHSALE.SETUP "$sale" 1000000000 $((now - 1000)) $((now + 3600000)) 600000 "$@" >/dev/null
  done
  cli SET '{bench-floor}:sale' record >/dev/null
}

# Prints requests per second of one redis-benchmark run.
rps() {
  redis-benchmark -p "$PORT" -q --csv -r 100000000 "$@" | tail -1 | cut -d, -f2 | tr -d '"'
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# The median, minimum and maximum of the numbers on stdin.
spread() { sort -g | awk '{a[NR]=$1} END {print ((NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2), a[1], a[NR]}'; }
# Per-round ratios a[i] / b[i] of two arrays given by name, one a line.
ratios() {
  local -n a=$1 b=$2
  for i in "${!a[@]}"; do awk -v x="${a[$i]}" -v y="${b[$i]}" 'BEGIN {print x / y}'; done
}

declare -a zadd modenq luaenq floorenq
for round in $(seq "$ROUNDS"); do
  fresh_sales
  zadd+=("$(rps -P 16 -c 50 -n "$REQUESTS" ZADD bench:zset __rand_int__ member:__rand_int__)")
  modenq+=("$(rps -P 16 -c 50 -n "$REQUESTS" FLASHSALE.ENQUEUE bench-mod u-__rand_int__)")
  luaenq+=("$(rps -P 16 -c 50 -n "$REQUESTS" FCALL flashsale_enqueue 1 bench-lua u-__rand_int__)")
  floorenq+=("$(rps -P 16 -c 50 -n "$REQUESTS" FCALL floor_enqueue 1 '{bench-floor}' u-__rand_int__)")
  echo "round $round: ZADD ${zadd[-1]}  module ENQUEUE ${modenq[-1]}  Lua ENQUEUE ${luaenq[-1]}  Lua floor ${floorenq[-1]}" >&2
done
# Per-round ratios, so a round where the whole machine was slower counts as
# one round, not as a skew of one side.
RZ=$(ratios modenq zadd | median)
RL=$(ratios modenq luaenq | median)
read -r MZ_MED MZ_MIN MZ_MAX < <(ratios modenq zadd | spread)
read -r LZ_MED LZ_MIN LZ_MAX < <(ratios luaenq zadd | spread)
read -r FZ_MED FZ_MIN FZ_MAX < <(ratios floorenq zadd | spread)
read -r LF_MED LF_MIN LF_MAX < <(ratios luaenq floorenq | spread)
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
read -r RG_MED RG_MIN RG_MAX < <(ratios modgrant luagrant | spread)

# CONFIRM: one command per user c-1 .. c-CONFIRM_USERS, written once as
# RESP for `redis-cli --pipe`.
commands() { # commands FILE ARGS...: ARGS with {user} replaced, per user
  local file=$1; shift
  python3 - "$CONFIRM_USERS" "$@" >"$file" <<'EOF'
import sys
users, template = int(sys.argv[1]), sys.argv[2:]
out = []
for i in range(1, users + 1):
    args = [a.replace('{user}', 'c-%d' % i).encode() for a in template]
    out.append(b'*%d\r\n' % len(args) + b''.join(b'$%d\r\n%s\r\n' % (len(a), a) for a in args))
sys.stdout.buffer.write(b''.join(out))
EOF
}
commands "$DIR/enqueue-mod" FLASHSALE.ENQUEUE bench-mod '{user}'
commands "$DIR/enqueue-lua" FCALL flashsale_enqueue 1 bench-lua '{user}'
commands "$DIR/confirm-mod" FLASHSALE.CONFIRM bench-mod '{user}' "$PRICE"
commands "$DIR/confirm-lua" FCALL flashsale_confirm 1 bench-lua '{user}' "$PRICE"

# Sends FILE through redis-cli --pipe; with "timed", prints commands per
# second (wall clock, from the first byte sent to the last reply).
pipe() {
  local start end out
  start=$(date +%s%N)
  out=$(cli --pipe <"$1" 2>&1)
  end=$(date +%s%N)
  if ! grep -q "errors: 0, replies: $CONFIRM_USERS" <<<"$out"; then
    echo "redis-cli --pipe < $(basename "$1") failed: $out" >&2
    exit 1
  fi
  if [ "${2:-}" = timed ]; then
    awk -v n="$CONFIRM_USERS" -v ns=$((end - start)) 'BEGIN {print n / (ns / 1e9)}'
  fi
}
# Holds for every queued user of a sale: GRANT 10000 at a time.
grant_all() { # grant_all GRANT-COMMAND...
  local granted
  while :; do
    granted=$(cli "$@" 10000 | sed -n 3,\$p | grep -c . || true)
    [ "$granted" -gt 0 ] || break
  done
}
# Stops the benchmark unless every user of the sale bought: CONFIRM ran
# its whole path, not an early refusal.
all_sold() { # all_sold STATUS-COMMAND...
  local sold; sold=$(cli "$@" | sed -n '/^sold$/{n;p}')
  if [ "$sold" != "$CONFIRM_USERS" ]; then
    echo "CONFIRM sold $sold of $CONFIRM_USERS units ($*)" >&2
    exit 1
  fi
}

declare -a modconf luaconf
for round in $(seq "$ROUNDS"); do
  fresh_sales PRICE "$PRICE"
  pipe "$DIR/enqueue-mod"
  pipe "$DIR/enqueue-lua"
  grant_all FLASHSALE.GRANT bench-mod
  grant_all FCALL flashsale_grant 1 bench-lua
  # Alternate which backend goes first.
  if ((round % 2)); then
    modconf+=("$(pipe "$DIR/confirm-mod" timed)")
    luaconf+=("$(pipe "$DIR/confirm-lua" timed)")
  else
    luaconf+=("$(pipe "$DIR/confirm-lua" timed)")
    modconf+=("$(pipe "$DIR/confirm-mod" timed)")
  fi
  all_sold FLASHSALE.STATUS bench-mod
  all_sold FCALL flashsale_status 1 bench-lua
  echo "round $round: module CONFIRM ${modconf[-1]}  Lua CONFIRM ${luaconf[-1]}" >&2
done
MC=$(printf '%s\n' "${modconf[@]}" | median)
LC=$(printf '%s\n' "${luaconf[@]}" | median)
read -r RC_MED RC_MIN RC_MAX < <(ratios modconf luaconf | spread)

awk -v rz="$RZ" -v rl="$RL" -v z="$Z" -v m="$M" -v l="$L" -v mg="$MG" -v lg="$LG" -v b="$GRANT_BATCH" -v rounds="$ROUNDS" -v n="$REQUESTS" 'BEGIN {
  printf "Engine benchmark: median of %d interleaved rounds, %d requests each, redis-benchmark -P 16 -c 50\n(module ratios: medians of the per-round ratios)\n\n", rounds, n
  printf "| command | ops/s | vs plain ZADD | vs Lua |\n|---|---:|---:|---:|\n"
  printf "| ZADD (baseline) | %.0f | 1.00x | |\n", z
  printf "| FLASHSALE.ENQUEUE (module) | %.0f | %.2fx | %.2fx |\n", m, rz, rl
  printf "| FCALL flashsale_enqueue (Lua) | %.0f | %.2fx | 1.00x |\n", l, l/z
  printf "\nGRANT, %d holds per call, 4 clients:\n\n| backend | holds/s | vs 50 holds/s per worker |\n|---|---:|---:|\n", b
  printf "| module | %.0f | %.0fx |\n| Lua | %.0f | %.0fx |\n", mg*b, mg*b/50, lg*b, lg*b/50
  printf "\ntargets: module ENQUEUE >= 0.85x ZADD: %s; >= 1.3x Lua: %s\n", (rz >= 0.85) ? "met" : "MISSED", (rl >= 1.3) ? "met" : "MISSED"
}'
awk -v mc="$MC" -v lc="$LC" -v users="$CONFIRM_USERS" -v rounds="$ROUNDS" \
  -v mz="$MZ_MED" -v mz0="$MZ_MIN" -v mz1="$MZ_MAX" -v lz="$LZ_MED" -v lz0="$LZ_MIN" -v lz1="$LZ_MAX" \
  -v fz="$FZ_MED" -v fz0="$FZ_MIN" -v fz1="$FZ_MAX" -v lf="$LF_MED" -v lf0="$LF_MIN" -v lf1="$LF_MAX" \
  -v rg="$RG_MED" -v rg0="$RG_MIN" -v rg1="$RG_MAX" -v rc="$RC_MED" -v rc0="$RC_MIN" -v rc1="$RC_MAX" 'BEGIN {
  printf "\nCONFIRM, %d users holding a unit, one CONFIRM each (redis-cli --pipe):\n\n| backend | confirms/s |\n|---|---:|\n", users
  printf "| module | %.0f |\n| Lua | %.0f |\n", mc, lc
  printf "\nRatios over %d rounds: median (min-max) of the per-round ratios\n\n| ratio | median | min | max |\n|---|---:|---:|---:|\n", rounds
  printf "| module ENQUEUE / ZADD | %.2fx | %.2fx | %.2fx |\n", mz, mz0, mz1
  printf "| Lua ENQUEUE / ZADD | %.2fx | %.2fx | %.2fx |\n", lz, lz0, lz1
  printf "| Lua floor (its nine commands, no rules) / ZADD | %.2fx | %.2fx | %.2fx |\n", fz, fz0, fz1
  printf "| Lua ENQUEUE / Lua floor | %.2fx | %.2fx | %.2fx |\n", lf, lf0, lf1
  printf "| GRANT module / Lua | %.2fx | %.2fx | %.2fx |\n", rg, rg0, rg1
  printf "| CONFIRM module / Lua | %.2fx | %.2fx | %.2fx |\n", rc, rc0, rc1
  printf "\nLua targets: ENQUEUE >= 0.45x ZADD: %s; GRANT within 2x of the module: %s; CONFIRM within 2x of the module: %s\n", (lz >= 0.45) ? "met" : "MISSED", (rg <= 2) ? "met" : "MISSED", (rc <= 2) ? "met" : "MISSED"
}'
