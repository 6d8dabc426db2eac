#!/usr/bin/env bash
# Serve a local publish directory (publish.target = "local") through the Worker, offline:
#   scripts/worker-local.sh PUBLISH_DIR PORT [--state DIR] [--fresh]
# Loads PUBLISH_DIR into Miniflare's persisted D1/KV/R2 (state: $WORKER_STATE_DIR or worker/.state) and a
# Vectorize stand-in, serves http://127.0.0.1:PORT until stopped (Ctrl-C), prints "ready" when it answers.
# Installs the Worker's Node packages from worker/package-lock.json when they are missing.
set -euo pipefail

if [ "$#" -lt 2 ]; then
  echo "usage: $0 PUBLISH_DIR PORT [--state DIR] [--fresh]" >&2
  exit 2
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORKER="$ROOT/worker"
export CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_SEND_METRICS=false

if ! command -v node >/dev/null 2>&1; then
  echo "worker-local: node (>= 20.3) is required" >&2
  exit 1
fi
if [ ! -f "$WORKER/node_modules/.package-lock.json" ] \
   || [ "$WORKER/package-lock.json" -nt "$WORKER/node_modules/.package-lock.json" ]; then
  echo "worker-local: installing the Worker's Node packages (npm ci)" >&2
  (cd "$WORKER" && npm ci --prefer-offline --no-audit --no-fund) >&2
fi
exec node "$WORKER/tools/serve.js" "$@"
