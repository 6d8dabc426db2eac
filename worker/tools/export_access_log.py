#!/usr/bin/env python3
"""Carry the Worker's access log from Miniflare's persisted D1 into a local publish target's ``d1.sqlite``.

    python3 worker/tools/export_access_log.py [--state DIR] PUBLISH_DIR

On Cloudflare the Worker and the promotion job share one D1 database. Locally they do not: the Worker
(scripts/worker-local.sh) writes ``track_access_log`` into Miniflare's D1 (a plain SQLite file under
``<state>/d1/miniflare-D1DatabaseObject/``), while ``./spark-submit.sh promote`` with ``publish.target = "local"``
reads and marks the one in ``PUBLISH_DIR/d1.sqlite``. This copies the Worker's rows over, so promote sees
what the Worker counted. Each side keeps what it owns: ``access_count`` and ``last_accessed`` come from the
Worker; ``vectorized`` and ``promoted_at``, which promote sets, are never cleared (Miniflare's copy never
learns them). Safe to repeat, and to run while the Worker serves (the Worker's file is opened read-only).

State directory: ``--state``, else ``$WORKER_STATE_DIR``, else ``worker/.state`` (as worker-local.sh).
Python standard library only.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from pathlib import Path

WORKER_DIR = Path(__file__).resolve().parent.parent
ACCESS_LOG = "track_access_log"
BUSY_TIMEOUT_S = 60.0
COLUMNS = ("spotify_id", "access_count", "last_accessed", "vectorized", "promoted_at")
# The Worker counts, promote marks: a repeat export never undoes a promotion.
MERGE = f"""
INSERT INTO {ACCESS_LOG} ({", ".join(COLUMNS)})
SELECT {", ".join(COLUMNS)} FROM worker.{ACCESS_LOG} WHERE true
ON CONFLICT (spotify_id) DO UPDATE SET
  access_count = excluded.access_count,
  last_accessed = excluded.last_accessed,
  vectorized = MAX(COALESCE({ACCESS_LOG}.vectorized, 0), COALESCE(excluded.vectorized, 0)),
  promoted_at = COALESCE({ACCESS_LOG}.promoted_at, excluded.promoted_at)
"""


class ExportError(Exception):
    pass


def worker_d1_file(state: Path) -> Path:
    """Miniflare's D1 database file (one per database id; the Worker binds one)."""
    folder = state / "d1" / "miniflare-D1DatabaseObject"
    files = sorted(p for p in folder.glob("*.sqlite") if p.name != "metadata.sqlite") if folder.is_dir() else []
    if not files:
        raise ExportError(f"{folder}: no Miniflare D1 database (start scripts/worker-local.sh with this state first)")
    if len(files) > 1:
        raise ExportError(f"{folder}: {len(files)} D1 databases ({', '.join(p.name for p in files)}); expected one")
    return files[0]


def has_table(conn: sqlite3.Connection, schema: str) -> bool:
    query = f"SELECT 1 FROM {schema}.sqlite_master WHERE type = 'table' AND name = ?"
    return conn.execute(query, (ACCESS_LOG,)).fetchone() is not None


def export(state: Path, publish_dir: Path) -> dict[str, int | str]:
    local = publish_dir / "d1.sqlite"
    if not local.is_file():
        raise ExportError(f"{publish_dir}: no d1.sqlite (not a local publish target; publish.target = \"local\")")
    source = worker_d1_file(state)
    # isolation_level IMMEDIATE: the merge runs under BEGIN IMMEDIATE, the lock the local target's writers take.
    conn = sqlite3.connect(local.as_uri(), uri=True, timeout=BUSY_TIMEOUT_S, isolation_level="IMMEDIATE")
    try:
        conn.execute("ATTACH DATABASE ? AS worker", (source.as_uri() + "?mode=ro",))
        for schema, where in (("main", local), ("worker", source)):
            if not has_table(conn, schema):
                raise ExportError(f"{where}: no {ACCESS_LOG} table (load the publish directory first)")
        with conn:  # one transaction: committed, or rolled back on an error
            rows = conn.execute(MERGE).rowcount
    finally:
        conn.close()
    return {"rows": rows, "from": str(source), "to": str(local)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("publish_dir", type=Path, help="the local publish target (publish.local_dir)")
    parser.add_argument("--state", type=Path, default=Path(os.environ.get("WORKER_STATE_DIR") or WORKER_DIR / ".state"),
                        help="Miniflare state directory (default $WORKER_STATE_DIR or worker/.state)")
    args = parser.parse_args()
    try:
        done = export(args.state.resolve(), args.publish_dir.resolve())
    except (ExportError, sqlite3.Error) as e:
        sys.exit(f"export_access_log: {e}")
    print(f"exported {done['rows']} access-log rows from {done['from']} to {done['to']}")


if __name__ == "__main__":
    main()
