#!/usr/bin/env bash
# The Worker's tests, offline: Node packages from package-lock.json (npm ci), then node's test runner
# driving the Worker in workerd through Miniflare. Exits non-zero when a test fails.
#   worker/run-tests.sh                            # against a fixture from test/make_publish_fixture.py
#   PUBLISH_DIR=data/publish worker/run-tests.sh   # against the publish job's local target
#   PUBLISH_DIR=data/publish WAREHOUSE_DIR=data/warehouse worker/run-tests.sh
#                                                  # ... and the answers compared with the warehouse's tables
#   PROMOTE_ROUND_TRIP=1 (with both): then the Worker's access log → ./spark-submit.sh promote → Vectorize;
#                                     this changes PUBLISH_DIR and WAREHOUSE_DIR (promote's effects)
set -euo pipefail
cd "$(dirname "$0")"
export CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_SEND_METRICS=false

if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a * 1000 + b >= 20003 ? 0 : 1)'
then
  echo "worker/run-tests.sh: Node.js >= 20.3 is required (found $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi
if [ -n "${WAREHOUSE_DIR:-}" ] && [ -z "${PUBLISH_DIR:-}" ]; then
  echo "worker/run-tests.sh: WAREHOUSE_DIR needs PUBLISH_DIR (the publish.local_dir of the same pipeline run)" >&2
  exit 2
fi
if [ "${PROMOTE_ROUND_TRIP:-0}" = 1 ] && [ -z "${WAREHOUSE_DIR:-}" ]; then
  echo "worker/run-tests.sh: PROMOTE_ROUND_TRIP=1 needs PUBLISH_DIR and WAREHOUSE_DIR of one pipeline run" >&2
  exit 2
fi
npm ci --prefer-offline --no-audit --no-fund

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
if [ -z "${PUBLISH_DIR:-}" ]; then
  python3 test/make_publish_fixture.py "$scratch/publish" >/dev/null
  export PUBLISH_DIR="$scratch/publish" WORKER_FIXTURE=1
  echo "worker tests: fixture publish directory $PUBLISH_DIR"
else
  PUBLISH_DIR="$(cd "$PUBLISH_DIR" && pwd)"
  export PUBLISH_DIR
  echo "worker tests: publish directory $PUBLISH_DIR"
fi
if [ -n "${WAREHOUSE_DIR:-}" ]; then
  # The project's virtualenv (delta-rs): the one ./spark-submit.sh uses ($ARIA_VENV or .venv).
  source ../scripts/bootstrap.sh
  WAREHOUSE_DIR="$(cd "$WAREHOUSE_DIR" && pwd)"
  export WAREHOUSE_DIR WORKER_GOLD="$scratch/gold.json"
  "$VENV_PY" test/export_gold.py "$WAREHOUSE_DIR" "$WORKER_GOLD"
fi
# Load the publish directory once; each test file starts Miniflare on a copy of this state.
node tools/prepare-state.js "$PUBLISH_DIR" "$scratch/state"
export WORKER_TEST_STATE="$scratch/state"
node --test --test-reporter=spec --test-timeout=300000 test/*.test.js
if [ "${PROMOTE_ROUND_TRIP:-0}" = 1 ]; then
  # Last: it changes the publish directory and the warehouse the tests above read.
  node --test --test-reporter=spec test/promote-round-trip.js
fi
