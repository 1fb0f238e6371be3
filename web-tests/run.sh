#!/usr/bin/env bash
# The browser tests: the customer page and the admin dashboard in headless
# Chromium (Debian's /usr/bin/chromium through npm playwright-core) against
# a whole platform the tests start themselves on free loopback ports
# (redis-server + module, the MongoDB-compatible server, the API, the
# worker). Screenshots and process logs go to test-artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ] && [ -z "${CHROMIUM_PATH:-}" ]; then
  echo "web-tests: /usr/bin/chromium not found: apt-get install -y chromium (scripts/install-deps does)" >&2
  exit 1
fi
command -v node >/dev/null 2>&1 || { echo "web-tests: node (20+) not found" >&2; exit 1; }
command -v redis-server >/dev/null 2>&1 || { echo "web-tests: redis-server not found (scripts/install-deps)" >&2; exit 1; }

# npm dependencies exactly as locked (playwright-core only; it downloads no browser).
(cd web-tests && npm ci --no-audit --no-fund --loglevel=error)

cargo build -p module --release
cargo build -p api -p worker
FLASHSALE_MONGO_BIN="$(scripts/build-mongo-sqlite | tail -n 1)"
export FLASHSALE_MONGO_BIN

mkdir -p test-artifacts
# One file per platform; files run one after another (2 shared cores).
exec node --test --test-concurrency=1 \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=junit --test-reporter-destination=test-artifacts/web-tests.junit.xml \
  "$@" web-tests/tests/
