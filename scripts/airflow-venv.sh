#!/usr/bin/env bash
# Builds the virtualenv that runs examples/airflow/spotify_metadata_dag.py and its test (pytest -m airflow).
# Airflow pins hundreds of packages, so it lives in its own virtualenv, outside requirements.lock. Its
# constraints files are served from GitHub, which the build machines cannot reach: Airflow is pinned here and
# pip resolves the rest from PyPI. Idempotent: a stamp file names the pinned version; rerun after changing it.
#   scripts/airflow-venv.sh            # builds $AIRFLOW_VENV (default: .venv-airflow in the repository)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
AIRFLOW_VENV="${AIRFLOW_VENV:-$ROOT/.venv-airflow}"
AIRFLOW_VERSION="3.3.2"
STANDARD_PROVIDER=">=1.0"  # BashOperator lives in apache-airflow-providers-standard since Airflow 3
stamp="$AIRFLOW_VENV/.installed-airflow-$AIRFLOW_VERSION"

if [ -f "$stamp" ]; then
  exit 0
fi
py="${PYTHON:-python3}"
if ! "$py" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 13) else 1)'; then
  echo "error: $py is $("$py" -V 2>&1); Airflow $AIRFLOW_VERSION needs Python 3.10 to 3.13 (set PYTHON=...)" >&2
  exit 2
fi
echo "airflow-venv: building $AIRFLOW_VENV (apache-airflow==$AIRFLOW_VERSION)" >&2
[ -x "$AIRFLOW_VENV/bin/python" ] || "$py" -m venv "$AIRFLOW_VENV"
log="$AIRFLOW_VENV/pip-install.log"
if ! "$AIRFLOW_VENV/bin/python" -m pip install --disable-pip-version-check --quiet \
    "apache-airflow==$AIRFLOW_VERSION" "apache-airflow-providers-standard$STANDARD_PROVIDER" >"$log" 2>&1; then
  grep -v "^WARNING: Location" "$log" >&2 || true
  echo "error: installing apache-airflow==$AIRFLOW_VERSION into $AIRFLOW_VENV failed (log: $log)" >&2
  exit 2
fi
rm -f "$AIRFLOW_VENV"/.installed-airflow-*
touch "$stamp"
echo "airflow-venv: ready ($("$AIRFLOW_VENV/bin/python" -m pip show apache-airflow 2>/dev/null | grep ^Version))" >&2
