#!/usr/bin/env bash
# HTTP benchmark: what each layer of the API's HTTP stack costs, and what a
# purchase costs next to a health check.
#
#   - api/examples/http_layers.rs serves the API's own /healthz handler bare
#     and then with each layer of startup::router added in turn, one port per
#     variant (bare, tracing, request-id, metrics, safety-net, limits,
#     rate-limit);
#   - the real API (flashsale-api: every route, every layer, its settings)
#     on a private redis-server with the module (no AOF: this measures HTTP,
#     bench/engine.sh measures the engine) and the MongoDB-compatible server;
#     its /healthz, and POST /orders/buy with a fresh e-mail every request
#     (each one an ENQUEUE of a new buyer into a sale of 10^9 units).
#
# wrk -t2 -c64 on every target, interleaved: round 1 runs each target once,
# then round 2, ... Ratios are per round, then the median, so a round in
# which the machine was busier moves both sides of a ratio together.
# The buy rate limit is raised out of the way (the limiter itself stays in
# the path); rate limiting is measured as a layer of its own.
#
# Usage: bench/http.sh [rounds] [seconds-per-run]      (default 5 rounds of 10 s)
# This file also holds the helpers bench/soak.sh uses (sourced, it only
# defines functions).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # name port pid
  for _ in $(seq 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || { echo "$1 exited before listening on port $2" >&2; return 1; }
    sleep 0.05
  done
  echo "$1 did not come up on port $2" >&2
  return 1
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print 0; else print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# One wrk run: "<rps> <non-2xx> <errors> <requests> <wrk cpu ticks>" on
# stdout (wrk's own CPU from the children times of the subshell that
# waited for it, in clock ticks).
wrk_run() { # seconds url [wrk args...]
  local secs=$1 url=$2
  shift 2
  local summary me=$BASHPID
  summary=$(wrk -t2 -c64 -d"${secs}s" "$@" "$url" | awk '
    /requests in/ {n = $1}
    /Requests\/sec/ {rps = $2}
    /Non-2xx or 3xx responses/ {bad = $NF}
    /Socket errors/ {gsub(/,/, ""); err = $4 + $6 + $8 + $10}
    END {printf "%s %d %d %d\n", rps + 0, bad + 0, err + 0, n + 0}')
  echo "$summary $(awk '{print $16 + $17}' "/proc/$me/stat")"
}

# User + system CPU of a process so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# The wrk script of POST /orders/buy: a fresh e-mail every request (thread
# number, counter, and a nonce per run, so rounds never repeat a buyer).
write_buy_script() { # path sale-id
  cat > "$1" <<LUA
local sale = "$2"
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  nonce = os.getenv("BENCH_NONCE") or tostring(os.time())
  counter = 0
end
function request()
  counter = counter + 1
  local body = string.format('{"email":"b%s-%d-%d@bench.test","flashSaleId":"%s"}', nonce, tid, counter, sale)
  return wrk.format("POST", "/orders/buy", {["Content-Type"] = "application/json"}, body)
end
LUA
}

# Starts redis-server with the module, the MongoDB-compatible server and
# flashsale-api (and, with WITH_WORKER=1, flashsale-worker) on free loopback
# ports, data under $PLATFORM_DIR. Sets REDIS_PID MONGO_PID API_PID
# WORKER_PID API_URL REDIS_PORT; platform_stop stops them by PID.
# Extra settings for the API come from the environment (RATE_LIMIT_* ...);
# API_BIN names another flashsale-api binary (a before/after comparison).
platform_start() {
  PLATFORM_DIR=$(mktemp -d /tmp/flashsale-bench.XXXXXX)
  mkdir -p "$PLATFORM_DIR/redis" "$PLATFORM_DIR/mongo"
  REDIS_PORT=$(free_port)
  local mongo_port api_port mongo_bin api_bin=${API_BIN:-$ROOT/target/release/flashsale-api}
  mongo_port=$(free_port)
  api_port=$(free_port)
  REDIS_PID= MONGO_PID= API_PID= WORKER_PID=
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
    --appendonly "${REDIS_AOF:-no}" --appendfsync "${REDIS_APPENDFSYNC:-everysec}" \
    --dir "$PLATFORM_DIR/redis" --loadmodule "$ROOT/target/release/libflashsale_module.so" \
    --logfile "$PLATFORM_DIR/redis.log" &
  REDIS_PID=$!
  wait_port redis "$REDIS_PORT" "$REDIS_PID"
  mongo_bin=$("$ROOT/scripts/build-mongo-sqlite" | tail -n 1)
  "$mongo_bin" --listen "127.0.0.1:$mongo_port" --dir "$PLATFORM_DIR/mongo" \
    > "$PLATFORM_DIR/mongo.log" 2>&1 &
  MONGO_PID=$!
  wait_port mongodb "$mongo_port" "$MONGO_PID"
  export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/" MONGO_URL="mongodb://127.0.0.1:$mongo_port/"
  export MONGO_DB=bench ENGINE=module DEV_MODE=true BEND_HOST=127.0.0.1 BEND_PORT=$api_port
  unset REDIS_CLUSTER_NODES JWT_SECRET
  "$api_bin" seed-admin > "$PLATFORM_DIR/seed.log" 2>&1
  if [ "${WITH_WORKER:-0}" = 1 ]; then
    WORKER_METRICS_ADDR="127.0.0.1:$(free_port)" "$ROOT/target/release/flashsale-worker" \
      > "$PLATFORM_DIR/worker.log" 2>&1 &
    WORKER_PID=$!
  fi
  "$api_bin" > "$PLATFORM_DIR/api.log" 2>&1 &
  API_PID=$!
  wait_port api "$api_port" "$API_PID"
  API_URL="http://127.0.0.1:$api_port"
}

platform_stop() {
  local pid
  for pid in ${API_PID:-} ${WORKER_PID:-} ${MONGO_PID:-} ${REDIS_PID:-}; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in ${API_PID:-} ${WORKER_PID:-} ${MONGO_PID:-} ${REDIS_PID:-}; do
    wait "$pid" 2>/dev/null || true
  done
  API_PID= WORKER_PID= MONGO_PID= REDIS_PID=
  if [ -n "${PLATFORM_DIR:-}" ]; then rm -rf "$PLATFORM_DIR"; fi
  PLATFORM_DIR=
}

# Signs the dev admin in and creates a sale of 10^9 units that opens in a
# second and lasts a day; prints its id.
create_big_sale() {
  local token start end body
  token=$(curl -sf -X POST "$API_URL/auth/signin" -H 'content-type: application/json' \
    -d '{"email":"admin@example.com","password":"admin123"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])')
  start=$(date -u -d '+1 second' +%Y-%m-%dT%H:%M:%S.000Z)
  end=$(date -u -d '+1 day' +%Y-%m-%dT%H:%M:%S.000Z)
  body=$(printf '{"name":"bench","initialQuantity":1000000000,"pricePerUnit":"1.00","startsAt":"%s","endsAt":"%s","holdTtlSeconds":60}' "$start" "$end")
  curl -sf -X POST "$API_URL/flash-sales" -H 'content-type: application/json' \
    -H "authorization: Bearer $token" -d "$body" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
  sleep 1.5
}

LAYERS_PID=
WORK=
http_cleanup() {
  if [ -n "$LAYERS_PID" ]; then
    kill "$LAYERS_PID" 2>/dev/null || true
    wait "$LAYERS_PID" 2>/dev/null || true
  fi
  platform_stop
  [ -n "$WORK" ] && rm -rf "$WORK"
  return 0
}

main() {
  local rounds=${1:-5} secs=${2:-10}
  cd "$ROOT"
  command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
  echo "building (release)..." >&2
  cargo build --release --quiet -p module -p api --bin flashsale-api --example http_layers

  WORK=$(mktemp -d /tmp/flashsale-http.XXXXXX)
  local work=$WORK
  trap http_cleanup EXIT
  trap 'exit 130' INT TERM

  target/release/examples/http_layers > "$work/layers.out" 2>&1 &
  LAYERS_PID=$!
  for _ in $(seq 200); do grep -q '^ready' "$work/layers.out" && break; sleep 0.05; done
  grep -q '^ready' "$work/layers.out" || { cat "$work/layers.out" >&2; exit 1; }

  # The real API: the buy limit out of the way (the limiter stays in the path).
  export RATE_LIMIT_BUY_PER_SECOND=4000000000 RATE_LIMIT_BUY_BURST=4000000000
  platform_start
  local sale
  sale=$(create_big_sale)
  write_buy_script "$work/buy.lua" "$sale"

  # name<TAB>url<TAB>extra wrk args
  local -a names urls extras
  while read -r _ name port; do
    names+=("$name") urls+=("http://127.0.0.1:$port/healthz") extras+=("")
  done < <(grep '^variant ' "$work/layers.out")
  names+=("api /healthz") urls+=("$API_URL/healthz") extras+=("")
  names+=("api POST /orders/buy") urls+=("$API_URL/orders/buy") extras+=("-s $work/buy.lua")

  local n=${#names[@]} i round result r b e requests wrk_ticks
  local HZ
  HZ=$(getconf CLK_TCK)
  declare -A rps bad cpu_api cpu_redis cpu_wrk
  echo "warm-up..." >&2
  for ((i = 0; i < n; i++)); do
    # shellcheck disable=SC2086
    BENCH_NONCE="w$RANDOM" wrk_run 2 "${urls[$i]}" ${extras[$i]} > /dev/null
  done
  for round in $(seq "$rounds"); do
    local line="round $round:"
    for ((i = 0; i < n; i++)); do
      # shellcheck disable=SC2086
      local api0 redis0
      api0=$(cpu_ticks "$API_PID") redis0=$(cpu_ticks "$REDIS_PID")
      result=$(BENCH_NONCE="r$round$RANDOM" wrk_run "$secs" "${urls[$i]}" ${extras[$i]})
      read -r r b e requests wrk_ticks <<< "$result"
      if [ "$i" -ge $((n - 2)) ] && [ "$requests" -gt 0 ]; then
        # µs of CPU per request of each process (api /healthz and buy only).
        cpu_api[$round,$i]=$(awk -v t="$(($(cpu_ticks "$API_PID") - api0))" -v n="$requests" -v hz="$HZ" 'BEGIN {print t * 1e6 / hz / n}')
        cpu_redis[$round,$i]=$(awk -v t="$(($(cpu_ticks "$REDIS_PID") - redis0))" -v n="$requests" -v hz="$HZ" 'BEGIN {print t * 1e6 / hz / n}')
        cpu_wrk[$round,$i]=$(awk -v t="$wrk_ticks" -v n="$requests" -v hz="$HZ" 'BEGIN {print t * 1e6 / hz / n}')
      fi
      rps[$round,$i]=$r
      bad[$round,$i]=$((b + e))
      line+=" ${names[$i]}=$r"
      [ "$((b + e))" -gt 0 ] && line+="(!$((b + e)) non-2xx/errors)"
    done
    echo "$line" >&2
  done

  # Per-round figures, then medians.
  local last_layer=$((n - 3)) api_h=$((n - 2)) api_b=$((n - 1))
  printf '\nHTTP benchmark: median of %d interleaved rounds, wrk -t2 -c64, %d s per run, %s\n' \
    "$rounds" "$secs" "$(nproc) cores shared by server and wrk"
  printf '(ratios and costs: per round, then the median; cost = added time per request\n'
  printf ' at saturation, 10^6/rps minus the row above, in µs of the whole machine)\n\n'
  printf '| variant | req/s | vs bare axum | vs row above | added µs/request |\n|---|---:|---:|---:|---:|\n'
  for ((i = 0; i < n - 1; i++)); do
    local prev=$((i - 1))
    [ "$i" = "$api_h" ] && prev=$last_layer
    local med ratio step cost
    med=$(for round in $(seq "$rounds"); do echo "${rps[$round,$i]}"; done | median)
    ratio=$(for round in $(seq "$rounds"); do awk -v a="${rps[$round,$i]}" -v b="${rps[$round,0]}" 'BEGIN {print (b > 0) ? a / b : 0}'; done | median)
    if [ "$i" = 0 ]; then
      printf '| %s | %.0f | 1.00x | | |\n' "${names[$i]}" "$med"
      continue
    fi
    step=$(for round in $(seq "$rounds"); do awk -v a="${rps[$round,$i]}" -v b="${rps[$round,$prev]}" 'BEGIN {print (b > 0) ? a / b : 0}'; done | median)
    cost=$(for round in $(seq "$rounds"); do awk -v a="${rps[$round,$i]}" -v b="${rps[$round,$prev]}" 'BEGIN {print (a > 0 && b > 0) ? 1e6 / a - 1e6 / b : 0}'; done | median)
    printf '| %s%s | %.0f | %.2fx | %.2fx | %+.1f |\n' "$([ "$i" -le "$last_layer" ] && echo "+ ")" \
      "${names[$i]}" "$med" "$ratio" "$step" "$cost"
  done
  local bmed bratio bbad=0
  bmed=$(for round in $(seq "$rounds"); do echo "${rps[$round,$api_b]}"; done | median)
  bratio=$(for round in $(seq "$rounds"); do awk -v a="${rps[$round,$api_b]}" -v b="${rps[$round,$api_h]}" 'BEGIN {print (b > 0) ? a / b : 0}'; done | median)
  for round in $(seq "$rounds"); do bbad=$((bbad + bad[$round,$api_b])); done
  printf '| api POST /orders/buy (fresh e-mails) | %.0f | | %.2fx of api /healthz | |\n' "$bmed" "$bratio"
  local hratio
  hratio=$(for round in $(seq "$rounds"); do awk -v a="${rps[$round,$api_h]}" -v b="${rps[$round,0]}" 'BEGIN {print (b > 0) ? a / b : 0}'; done | median)
  printf '\nbuy answers that were not 2xx (or socket errors): %d\n' "$bbad"

  # Where a request's CPU goes, per process (median of the rounds). The
  # machine's cores are shared, so at saturation req/s ~ cores / (sum of
  # these); the ceiling is what the buy ratio would be if the API spent no
  # more on a buy than on /healthz — what Redis and wrk spend on a buy
  # alone bound the ratio, whatever the API does.
  local -A med_cpu
  printf '\nCPU per request at saturation, µs (median of rounds):\n\n'
  printf '| target | api | redis-server | wrk | all |\n|---|---:|---:|---:|---:|\n'
  for i in "$api_h" "$api_b"; do
    local part v all=0
    for part in api redis wrk; do
      local -n cpu="cpu_$part"
      v=$(for round in $(seq "$rounds"); do echo "${cpu[$round,$i]:-0}"; done | median)
      med_cpu[$part,$i]=$v
      all=$(awk -v a="$all" -v v="$v" 'BEGIN {print a + v}')
      unset -n cpu
    done
    printf '| %s | %.1f | %.1f | %.1f | %.1f |\n' "${names[$i]}" \
      "${med_cpu[api,$i]}" "${med_cpu[redis,$i]}" "${med_cpu[wrk,$i]}" "$all"
  done
  awk -v ah="${med_cpu[api,$api_h]}" -v rh="${med_cpu[redis,$api_h]}" -v wh="${med_cpu[wrk,$api_h]}" \
    -v ab="${med_cpu[api,$api_b]}" -v rb="${med_cpu[redis,$api_b]}" -v wb="${med_cpu[wrk,$api_b]}" 'BEGIN {
      h = ah + rh + wh
      if (h <= 0) exit
      printf "API CPU per buy: %.2fx of per /healthz; ceiling of buy/healthz on these shared cores\n", ab / ah
      printf "if a buy cost the API only what /healthz does: %.2fx (redis-server and wrk alone)\n", h / (ah + rb + wb)
    }'
  printf 'targets: api /healthz >= 0.60x bare axum: %s (%.2fx); POST /orders/buy >= 0.70x api /healthz: %s (%.2fx)\n' \
    "$(awk -v r="$hratio" 'BEGIN {print (r >= 0.6) ? "met" : "not met"}')" "$hratio" \
    "$(awk -v r="$bratio" 'BEGIN {print (r >= 0.7) ? "met" : "not met"}')" "$bratio"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
