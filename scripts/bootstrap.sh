# Sourced by ./spark-submit.sh and ./test.sh: makes sure the project's virtualenv exists and matches
# requirements.lock. Idempotent; after the first run it costs one hash of the lock file.
# Sets ROOT and VENV_PY for the caller.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="${ARIA_VENV:-$ROOT/.venv}"
VENV_PY="$VENV/bin/python"

_lock_hash=$(sha256sum "$ROOT/requirements.lock" | cut -c1-16)
_stamp="$VENV/.installed-$_lock_hash"

if [ ! -f "$_stamp" ]; then
  _py="${PYTHON:-python3}"
  if ! command -v "$_py" >/dev/null 2>&1; then
    echo "error: $_py not found; install Python >= 3.10 or set PYTHON=/path/to/python3" >&2
    exit 2
  fi
  if ! "$_py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
    echo "error: $_py is $("$_py" -V 2>&1); Python >= 3.10 is required (set PYTHON=...)" >&2
    exit 2
  fi
  if ! command -v java >/dev/null 2>&1 && [ -z "${JAVA_HOME:-}" ]; then
    echo "error: java not found; Spark 4 needs Java 17 or 21 on PATH or in JAVA_HOME" >&2
    exit 2
  fi
  echo "bootstrap: creating $VENV from requirements.lock (first run only)" >&2
  [ -x "$VENV_PY" ] || "$_py" -m venv "$VENV" || exit 2
  _log="$VENV/pip-install.log"
  if ! "$VENV_PY" -m pip install --quiet --disable-pip-version-check -r "$ROOT/requirements.lock" >"$_log" 2>&1; then
    grep -v "^WARNING: Location" "$_log" >&2 || true
    echo "error: installing requirements.lock into $VENV failed (log: $_log)" >&2
    exit 2
  fi
  rm -f "$VENV"/.installed-*
  touch "$_stamp"
fi
