#!/usr/bin/env bash
# The Worker's tests, offline: Node packages from package-lock.json (npm ci), then node's test runner
# driving the Worker in workerd through Miniflare. Exits non-zero when a test fails.
#   PUBLISH_DIR=data/publish worker/run-tests.sh   # against the publish job's local target
#   worker/run-tests.sh                            # against a fixture from test/make_publish_fixture.py
set -euo pipefail
cd "$(dirname "$0")"
export CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_SEND_METRICS=false

if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a * 1000 + b >= 20003 ? 0 : 1)'
then
  echo "worker/run-tests.sh: Node.js >= 20.3 is required (found $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi
npm ci --prefer-offline --no-audit --no-fund

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
if [ -z "${PUBLISH_DIR:-}" ]; then
  python3 test/make_publish_fixture.py "$scratch/publish" >/dev/null
  export PUBLISH_DIR="$scratch/publish"
  echo "worker tests: fixture publish directory $PUBLISH_DIR"
else
  PUBLISH_DIR="$(cd "$PUBLISH_DIR" && pwd)"
  export PUBLISH_DIR
  echo "worker tests: publish directory $PUBLISH_DIR"
fi
# Load the publish directory once; each test file starts Miniflare on a copy of this state.
node tools/prepare-state.js "$PUBLISH_DIR" "$scratch/state"
export WORKER_TEST_STATE="$scratch/state"
node --test --test-reporter=spec --test-timeout=300000 test/*.test.js
