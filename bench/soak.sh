#!/usr/bin/env bash
# Soak benchmark: the whole platform under steady load for a while, and the
# memory of each process over time.
#
# Starts redis-server with the module, the MongoDB-compatible server, the
# worker and the API on free loopback ports (the helpers in bench/http.sh;
# nothing reads /metrics: an unscraped recorder is what must stay flat),
# creates a sale of 10^9 units, then drives wrk -t2 -c64 in back-to-back
# chunks of ~10 s with a mix of requests:
#   POST /orders/buy        a fresh e-mail every time (a new buyer queues,
#                           the worker admits them, their holds lapse)
#   GET  /orders/position   a buyer of this chunk, with the buyer token its
#                           buy handed out (read from the buy's answer, so
#                           wrk parses response bodies)
#   GET  /healthz
# After every chunk it reads VmRSS of the API, the worker and redis-server
# from /proc/<pid>/status and prints a row: requests so far, throughput of
# the chunk, RSS of each.
#
# Usage: bench/soak.sh [minutes]     (default 10)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/http.sh
. "$ROOT/bench/http.sh"

MINUTES=${1:-10}
CHUNK=${SOAK_CHUNK_SECONDS:-10}

cd "$ROOT"
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
echo "building (release)..." >&2
cargo build --release --quiet -p module -p api -p worker

SOAK_WORK=$(mktemp -d /tmp/flashsale-soak.XXXXXX)
soak_cleanup() {
  platform_stop
  rm -rf "$SOAK_WORK"
  return 0
}
trap soak_cleanup EXIT
trap 'exit 130' INT TERM

export RATE_LIMIT_BUY_PER_SECOND=4000000000 RATE_LIMIT_BUY_BURST=4000000000
WITH_WORKER=1 platform_start
SALE=$(create_big_sale)

cat > "$SOAK_WORK/mix.lua" <<LUA
local sale = "$SALE"
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  nonce = os.getenv("BENCH_NONCE") or tostring(os.time())
  counter = 0
  buyer, buyer_token = nil, nil
end
-- A token is "kid.payload.mac", the payload base64url JSON naming the
-- buyer ("u"): a position asks about the buyer of the last token seen.
local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local digit = {}
for i = 1, #alphabet do digit[alphabet:sub(i, i)] = i - 1 end
local function unbase64url(text)
  local out, bits, held = {}, 0, 0
  for i = 1, #text do
    local v = digit[text:sub(i, i)]
    if v then
      bits, held = bits * 64 + v, held + 6
      if held >= 8 then
        held = held - 8
        out[#out + 1] = string.char(math.floor(bits / 2 ^ held) % 256)
        bits = bits % 2 ^ held
      end
    end
  end
  return table.concat(out)
end
function response(status, headers, body)
  local token = body and body:match('"buyerToken":"([^"]+)"')
  local payload = token and token:match("^[^.]+%.([^.]+)%.")
  local who = payload and unbase64url(payload):match('"u":"([^"]+)"')
  if who then buyer, buyer_token = who, token end
end
function request()
  counter = counter + 1
  local kind = counter % 3
  if kind == 1 or buyer == nil then
    local email = string.format("s%s-%d-%d@soak.test", nonce, tid, counter)
    local body = string.format('{"email":"%s","flashSaleId":"%s"}', email, sale)
    return wrk.format("POST", "/orders/buy", {["Content-Type"] = "application/json"}, body)
  elseif kind == 2 then
    return wrk.format("GET", "/orders/position?flashSaleId=" .. sale .. "&email=" .. buyer,
      {["X-Buyer-Token"] = buyer_token})
  else
    return wrk.format("GET", "/healthz")
  end
end
LUA

rss_mb() { # pid
  awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo "-"
}

printf '\nSoak: %d min of wrk -t2 -c64 (1/3 POST /orders/buy with fresh e-mails, 1/3 GET /orders/position, 1/3 GET /healthz),\n' "$MINUTES"
printf 'no metrics scraper; VmRSS after every ~%d s chunk (MB)\n\n' "$CHUNK"
printf '| t (s) | requests | req/s | non-2xx | API RSS | worker RSS | redis RSS |\n|---:|---:|---:|---:|---:|---:|---:|\n'
printf '| 0 | 0 | | | %s | %s | %s |\n' "$(rss_mb "$API_PID")" "$(rss_mb "$WORKER_PID")" "$(rss_mb "$REDIS_PID")"

start=$SECONDS
total=0
chunk=0
declare -a api_rss
while [ $((SECONDS - start)) -lt $((MINUTES * 60)) ]; do
  chunk=$((chunk + 1))
  out=$(BENCH_NONCE="c$chunk" wrk -t2 -c64 -d"${CHUNK}s" -s "$SOAK_WORK/mix.lua" "$API_URL/")
  read -r count rps <<< "$(awk '/requests in/ {n = $1} /Requests\/sec/ {r = $2} END {print n + 0, r + 0}' <<< "$out")"
  bad=$(awk '/Non-2xx or 3xx responses/ {b = $NF} END {print b + 0}' <<< "$out")
  total=$((total + count))
  for pid in "$API_PID" "$WORKER_PID" "$REDIS_PID"; do
    kill -0 "$pid" 2>/dev/null || { echo "process $pid exited; logs in $PLATFORM_DIR" >&2; exit 1; }
  done
  api_rss+=("$(rss_mb "$API_PID")")
  printf '| %d | %d | %.0f | %d | %s | %s | %s |\n' "$((SECONDS - start))" "$total" "$rps" "$bad" \
    "${api_rss[-1]}" "$(rss_mb "$WORKER_PID")" "$(rss_mb "$REDIS_PID")"
done
sleep 6 # one metrics upkeep (every 5 s) with no load
printf '| %d (idle) | %d | | | %s | %s | %s |\n' "$((SECONDS - start))" "$total" \
  "$(rss_mb "$API_PID")" "$(rss_mb "$WORKER_PID")" "$(rss_mb "$REDIS_PID")"

# Growth of the API after warm-up: from the sample half-way through the
# run to the last one under load.
n=${#api_rss[@]}
if [ "$n" -ge 4 ]; then
  q=$((n / 2))
  awk -v a="${api_rss[$q]}" -v b="${api_rss[$((n - 1))]}" -v total="$total" -v n="$n" -v q="$q" 'BEGIN {
    printf "\nAPI RSS from chunk %d to chunk %d (after warm-up): %.1f MB -> %.1f MB (%+.1f MB over %.1f million requests in all)\n", q + 1, n, a, b, b - a, total / 1e6
  }'
fi
