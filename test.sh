#!/usr/bin/env bash
# The test command: lint, then the whole pytest suite (extra arguments go to pytest).
set -euo pipefail
source "$(dirname "$0")/scripts/bootstrap.sh"
cd "$ROOT"
"$VENV/bin/ruff" check lib jobs tests bench driver.py
exec "$VENV_PY" -m pytest "$@"
