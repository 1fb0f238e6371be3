#!/usr/bin/env bash
# Redis Cluster benchmark: a local cluster of 3 primaries + 3 replicas and
# one standalone server, the module loaded on every node, AOF and RDB off
# (throughput, not durability, is measured). Interleaved rounds of
# flashsale-engine-load (FLASHSALE.ENQUEUE of fresh users, the same
# concurrency everywhere):
#   a) 6 sales spread over the 3 primaries (2 each),
#   b) 6 sales all on one primary,
#   c) 1 hot sale (one slot, so one primary),
#   d) the same 6 sales on the standalone server.
# Reports medians, medians of the per-round ratios a/b, a/d, c/b, and the
# Redis CPU per ENQUEUE from INFO cpu (used_cpu_user + used_cpu_sys, every
# node, over the measured window) for projecting to machines of their own.
#
# redis-benchmark --cluster cannot drive these commands (it needs a {tag}
# in the key, and sale ids refuse braces), hence our own load tool.
#
# Usage: bench/cluster.sh [rounds] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-8}
# Commands in flight, dealt over independent client connections (each to
# every node): enough to keep both cores busy in every scenario.
CONCURRENCY=${CONCURRENCY:-384}
CONNECTIONS=${CONNECTIONS:-4}
REDIS_SERVER=${REDIS_SERVER:-/usr/bin/redis-server}

cargo build -p module --release --quiet
cargo build -p stress --release --quiet --bin flashsale-engine-load
MODULE=$PWD/target/release/libflashsale_module.so
LOAD=$PWD/target/release/flashsale-engine-load

DIR=$(mktemp -d)
cleanup() {
  for pidfile in "$DIR"/*/redis.pid; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  # Wait for them to go, so the data dirs can be removed.
  for pidfile in "$DIR"/*/redis.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  done
  rm -rf "$DIR"
}
trap cleanup EXIT

# Seven free loopback ports whose cluster bus ports (+10000) are free too.
read -r -a PORTS <<< "$(python3 - <<'EOF'
import socket
ports = []
while len(ports) < 7:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]
    try:
        if p + 10000 > 65535 or p in ports:
            continue
        b = socket.socket(); b.bind(("127.0.0.1", p + 10000)); b.close()
        ports.append(p)
    except OSError:
        pass
    finally:
        s.close()
print(" ".join(map(str, ports)))
EOF
)"
CLUSTER_PORTS=("${PORTS[@]:0:6}")
SINGLE_PORT=${PORTS[6]}

start_node() { # port [extra redis-server args…]
  local port=$1; shift
  mkdir -p "$DIR/$port"
  "$REDIS_SERVER" --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$DIR/$port" --loadmodule "$MODULE" --logfile "$DIR/$port/redis.log" \
    --daemonize yes --pidfile "$DIR/$port/redis.pid" "$@"
}
for port in "${CLUSTER_PORTS[@]}"; do
  start_node "$port" --cluster-enabled yes --cluster-config-file "$DIR/$port/nodes.conf" \
    --cluster-node-timeout 5000
done
start_node "$SINGLE_PORT"
for port in "${PORTS[@]}"; do
  for _ in $(seq 100); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.05; done
done

SEEDS=()
for port in "${CLUSTER_PORTS[@]}"; do SEEDS+=("127.0.0.1:$port"); done
redis-cli --cluster create "${SEEDS[@]}" --cluster-replicas 1 --cluster-yes >"$DIR/create.log" 2>&1 \
  || { cat "$DIR/create.log" >&2; exit 1; }
# Healthy: every node says cluster_state:ok and every replica has synced.
healthy() {
  local port
  for port in "${CLUSTER_PORTS[@]}"; do
    redis-cli -p "$port" CLUSTER INFO | grep -q '^cluster_state:ok' || return 1
    local info; info=$(redis-cli -p "$port" INFO replication)
    if grep -q '^role:slave' <<<"$info"; then
      grep -q '^master_link_status:up' <<<"$info" || return 1
    fi
  done
  [ "$(redis-cli -p "${CLUSTER_PORTS[0]}" CLUSTER NODES | grep -c master)" -eq 3 ]
}
for i in $(seq 200); do
  healthy && break
  [ "$i" -eq 200 ] && { echo "the cluster did not become healthy" >&2; exit 1; }
  sleep 0.1
done

CLUSTER_NODES=$(IFS=,; echo "${SEEDS[*]}")
# Prints the tool's summary line.
load() { # cluster-nodes url args…
  local nodes=$1 url=$2; shift 2
  REDIS_CLUSTER_NODES=$nodes REDIS_URL=$url ENGINE=module \
    "$LOAD" --seconds "$SECONDS_PER_RUN" --warmup-seconds 1 --concurrency "$CONCURRENCY" \
    --connections "$CONNECTIONS" "$@" \
    >"$DIR/last.txt" || { cat "$DIR/last.txt" >&2; exit 1; }
  grep '^summary ' "$DIR/last.txt"
}
field() { # summary-line name
  tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k {print $2}'
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {print a / b}'; }

declare -a ops_a ops_b ops_c ops_d r_ab r_ad r_cb
declare -a us_a us_b us_c us_d rep_a rep_b rep_c tool_a tool_b tool_c tool_d core_a core_b core_c
for round in $(seq "$ROUNDS"); do
  a=$(load "$CLUSTER_NODES" "" --sales 6 --placement spread)
  b=$(load "$CLUSTER_NODES" "" --sales 6 --placement one)
  c=$(load "$CLUSTER_NODES" "" --sales 1 --placement one)
  d=$(load "" "redis://127.0.0.1:$SINGLE_PORT/" --sales 6)
  for x in a b c; do
    used=$(field "${!x}" primaries_used)
    want=$([ "$x" = a ] && echo 3 || echo 1)
    [ "$used" = "$want" ] || { echo "scenario $x used $used primaries, expected $want" >&2; exit 1; }
  done
  for x in a b c d; do
    declare -n ops=ops_$x us=us_$x tool=tool_$x
    ops+=("$(field "${!x}" ops_per_sec)")
    us+=("$(field "${!x}" primary_us_per_op)")
    tool+=("$(field "${!x}" tool_us_per_op)")
    if [ "$x" != d ]; then
      declare -n rep=rep_$x core=core_$x
      rep+=("$(field "${!x}" replica_us_per_op)")
      core+=("$(field "${!x}" busiest_primary_cpu_cores)")
    fi
    unset -n ops us tool rep core
  done
  r_ab+=("$(ratio "${ops_a[-1]}" "${ops_b[-1]}")")
  r_ad+=("$(ratio "${ops_a[-1]}" "${ops_d[-1]}")")
  r_cb+=("$(ratio "${ops_c[-1]}" "${ops_b[-1]}")")
  echo "round $round: a) spread ${ops_a[-1]}  b) one primary ${ops_b[-1]}  c) hot sale ${ops_c[-1]}  d) standalone ${ops_d[-1]} ENQUEUE/s" >&2
done

m() { printf '%s\n' "$@" | median; }
awk -v rounds="$ROUNDS" -v secs="$SECONDS_PER_RUN" -v c="$CONCURRENCY" -v conns="$CONNECTIONS" -v cores="$(nproc)" \
  -v a="$(m "${ops_a[@]}")" -v b="$(m "${ops_b[@]}")" -v hot="$(m "${ops_c[@]}")" -v d="$(m "${ops_d[@]}")" \
  -v ua="$(m "${us_a[@]}")" -v ub="$(m "${us_b[@]}")" -v uc="$(m "${us_c[@]}")" -v ud="$(m "${us_d[@]}")" \
  -v ra="$(m "${rep_a[@]}")" -v rb="$(m "${rep_b[@]}")" -v rc="$(m "${rep_c[@]}")" \
  -v ta="$(m "${tool_a[@]}")" -v tb="$(m "${tool_b[@]}")" -v tc="$(m "${tool_c[@]}")" -v td="$(m "${tool_d[@]}")" \
  -v ca="$(m "${core_a[@]}")" -v cb="$(m "${core_b[@]}")" -v cc="$(m "${core_c[@]}")" \
  -v rab="$(m "${r_ab[@]}")" -v rad="$(m "${r_ad[@]}")" -v rcb="$(m "${r_cb[@]}")" '
function row(name, ops, up, ur, ut, busiest,   all) {
  all = up + ur + ut
  printf "| %s | %.0f | %.2f | %s | %.2f | %.2f | %.2f | %s |\n", name, ops, up, \
    (ur == "" ? "–" : sprintf("%.2f", ur)), ut, all, ops * all / 1e6, \
    (busiest == "" ? "–" : sprintf("%.2f", busiest))
}
BEGIN {
  printf "Cluster benchmark: FLASHSALE.ENQUEUE of fresh users, median of %d interleaved rounds, %d s each,\n", rounds, secs
  printf "%d commands in flight over %d client connections; 3 primaries + 3 replicas and 1 standalone server, AOF and RDB off, all on %d cores\n", c, conns, cores
  printf "(ratios: medians of the per-round ratios; CPU: INFO cpu user+sys per node, /proc/self/stat for the load tool, over the window, per op)\n\n"
  printf "| scenario | ENQUEUE/s | µs/op primaries | µs/op replicas | µs/op load tool | µs/op all | cores busy | busiest primary, cores |\n"
  printf "|---|---:|---:|---:|---:|---:|---:|---:|\n"
  row("a) 6 sales spread over 3 primaries", a, ua, ra, ta, ca)
  row("b) 6 sales on one primary", b, ub, rb, tb, cb)
  row("c) 1 hot sale (one slot)", hot, uc, rc, tc, cc)
  row("d) 6 sales, standalone server", d, ud, "", td, "")
  printf "\nratios: a/b (spread vs one primary) %.2fx; a/d (cluster spread vs standalone) %.2fx; c/b (hot sale vs 6 sales on its primary) %.2fx\n", rab, rad, rcb
  printf "\nAll processes share %d cores: ops/s is about cores / (µs/op all), so spreading the sales adds processes, not cores.\n", cores
  printf "Projection, a primary with a core of its own: 1e6 / %.2f µs = about %.0f ENQUEUE/s per primary (b);\n", ub, 1e6 / ub
  printf "N primaries on N machines: about N x that when there are N or more sales dealt evenly, plus %.2f µs/op\n", rb
  printf "on each replica and %.2f µs/op in the clients, on cores of their own. One hot sale is one slot on one primary:\n", tb
  printf "at most about 1e6 / %.2f µs = %.0f ENQUEUE/s however many machines (measured here: %.0f, its primary busy %.2f cores).\n", uc, 1e6 / uc, hot, cc
}'
