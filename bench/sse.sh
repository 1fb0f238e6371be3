#!/usr/bin/env bash
# Server-Sent Events against polling, for issue 12: N buyers queued in one
# sale, each with one connection to the API — an event stream
# (GET /orders/events), or a keep-alive connection asking
# GET /orders/position once a second — and for each way: the API's memory
# per connection, the CPU of the API and of Redis over an idle window, and
# the fan-out latency (a GRANT of a batch → every connection whose place
# changed shows its new place). Interleaved rounds (SSE first, then polling
# first, ...) on a fresh sale each; ratios are taken within each round.
#
# flashsale-sse-bench (stress crate, feature sse-bench) starts redis-server
# with the module and the MongoDB-compatible server (the test harness) and
# the API in a process of its own (api::Application::build, dev mode);
# the connections come from the bench's process. See the program's docs.
#
# Usage: bench/sse.sh [connections] [seconds]     (20000, 30; ROUNDS=3,
#        BATCH=100 buyers per GRANT, BATCHES=5 GRANTs per phase,
#        ARRIVALS=0 new buyers a second joining during the idle window)
# The connections are capped by the open-files limit (each side holds one
# descriptor per connection): the script raises the soft limit to the hard.
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${1:-20000}
IDLE_SECONDS=${2:-30}

ulimit -n "$(ulimit -Hn)"
cargo build -p module --release --quiet
cargo build -p stress --release --quiet --features sse-bench --bin flashsale-sse-bench
export FLASHSALE_TEST_BACKEND=processes
exec target/release/flashsale-sse-bench --connections "$CONNECTIONS" --seconds "$IDLE_SECONDS" \
  --rounds "${ROUNDS:-3}" --batch "${BATCH:-100}" --batches "${BATCHES:-5}" \
  --arrivals-per-second "${ARRIVALS:-0}"
