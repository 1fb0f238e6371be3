#!/usr/bin/env bash
# Redis memory across many sales: N sales of M confirmed orders each, read
# (INFO memory, DBSIZE) after selling, after the worker copied the orders to
# MongoDB and trimmed the outboxes (WORKER_OUTBOX_KEEP_S=0), and after it
# removed the ended sales' keys (SALE_RETENTION_SECONDS=0). Redis (module, no
# persistence) and the MongoDB-compatible server are started and stopped by
# the benchmark as local processes (FLASHSALE_TEST_BACKEND=processes unless
# set: the module just built, not a container image); MongoDB is the local
# FerretDB server unless MONGO_URL is set.
#
# The retention stage reads each sale's orders from MongoDB; on the local
# FerretDB server that scans the whole orders collection (7.6 s per sale
# with 100,000 orders stored, 78 s with 1,000,000, on 2 cores), so at
# 100 x 10000 it takes about two hours: SKIP_RETENTION=1 stops after
# trimming, or use fewer orders (100 x 1000: about 13 minutes).
#
# Usage: [SKIP_RETENTION=1] bench/memory.sh [sales] [orders]   (defaults 100 and 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
export FLASHSALE_TEST_BACKEND="${FLASHSALE_TEST_BACKEND:-processes}"
cargo build -p module --release --quiet
cargo run --release --quiet -p worker --example memory_bench -- "${1:-100}" "${2:-10000}"
