#!/usr/bin/env bash
# Outbox drain benchmark: orders copied to MongoDB per second by one worker,
# and the drain time for a backlog, against a direct-insert baseline measured
# in the same run. MongoDB is the local FerretDB server unless MONGO_URL is set.
#
# Usage: bench/worker.sh [orders] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -p module --release --quiet
cargo run --release --quiet -p worker --example drain_bench -- "${1:-10000}" "${2:-3}"
