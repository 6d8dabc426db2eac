#!/usr/bin/env bash
# Entry point for every job: ./spark-submit.sh <job> [--conf FILE] [--set section.key=value ...]
# Bootstraps the virtualenv on first use, validates the configuration, then hands over to the
# installed pyspark's spark-submit (see lib/cli.py).
set -euo pipefail
source "$(dirname "$0")/scripts/bootstrap.sh"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$VENV_PY" -P -m lib.cli "$@"  # -P: the caller's folder is not on sys.path (its own lib/ would shadow ours)
