"""Output sinks: SQLite files written by ADBC bulk ingest on a background thread, and atomic publishing.

Why ADBC: binding Arrow columns in C is ~4.5x faster than ``sqlite3.executemany`` over Python tuples
(measured: 1M playlist rows in 1.9 s vs 8.8 s), and the ingest releases the GIL, so the next chunk is
generated while the previous one is written. One thread per file: SQLite has a single writer anyway.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import threading
from collections.abc import Iterable
from pathlib import Path

import adbc_driver_sqlite.dbapi as adbc
import pyarrow as pa

QUEUE_DEPTH = 2  # chunks waiting per file: bounds memory
CACHE_KIB = 65_536  # SQLite page cache per file (default 2 MB): index inserts of big chunks stay in memory


def temp_path(final: Path) -> Path:
    """Same directory (so the final rename is atomic), a name no reader looks for."""
    return final.with_name(f".{final.name}.tmp-{os.getpid()}")


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class SqliteSink:
    """One SQLite file: DDL, then appended Arrow tables, all in one transaction, journal off."""

    def __init__(self, final: Path, ddl: Iterable[str], post: Iterable[str] = ()) -> None:
        self.final = final
        self.path = temp_path(final)
        remove(self.path)
        self.rows: dict[str, int] = {}
        self._post = list(post)
        self._queue: queue.Queue[tuple[str, pa.Table] | None] = queue.Queue(QUEUE_DEPTH)
        self._error: BaseException | None = None
        self._conn = adbc.connect(str(self.path), autocommit=True)
        cur = self._conn.cursor()
        cur.execute("PRAGMA journal_mode=OFF")
        cur.fetchall()
        cur.execute("PRAGMA synchronous=OFF")
        cur.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        for statement in ddl:
            cur.execute(statement)
        cur.execute("BEGIN")
        cur.close()
        self._thread = threading.Thread(target=self._run, name=f"sqlite-{final.name}", daemon=True)
        self._thread.start()

    def put(self, table: str, data: pa.Table) -> None:
        """Queue rows for ``table`` (columns matched by name); blocks while the queue is full."""
        if self._error is not None:
            raise RuntimeError(f"writing {self.final.name} failed") from self._error
        self.rows[table] = self.rows.get(table, 0) + data.num_rows
        if data.num_rows:
            self._queue.put((table, data))

    def _run(self) -> None:
        cur = self._conn.cursor()
        while (item := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain so producers never block forever
            try:
                cur.adbc_ingest(item[0], item[1], mode="append")
            except BaseException as exc:  # surfaced by put() / close()
                self._error = exc
        cur.close()

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)  # the thread keeps draining, so this never blocks for long
            self._thread.join()

    def close(self) -> Path:
        """Finish the transaction, run post statements (indexes), close. Returns the temporary path."""
        self._stop()
        if self._error is not None:
            self.abort()
            raise RuntimeError(f"writing {self.final.name} failed") from self._error
        cur = self._conn.cursor()
        cur.execute("COMMIT")
        for statement in self._post:
            cur.execute(statement)
        cur.close()
        self._conn.close()
        return self.path

    def abort(self) -> None:
        """Stop the writer thread, close and delete the temporary file (safe to call twice)."""
        self._stop()
        with contextlib.suppress(Exception):
            self._conn.close()
        remove(self.path)


def publish(temp: Path, final: Path) -> None:
    """Atomically give a finished temporary file (or directory) its final name."""
    if temp.is_dir():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        if final.exists():
            os.replace(final, old)
        os.replace(temp, final)
        remove(old)
    else:
        os.replace(temp, final)


class LayoutWriter:
    """What both layout writers share: a set of named SQLite sinks, closed or aborted together."""

    sinks: dict[str, SqliteSink]
    tables: dict[str, tuple[str, ...]]

    def row_counts(self) -> dict[str, dict[str, int]]:
        return {name: {t: sink.rows.get(t, 0) for t in self.tables[name]} for name, sink in self.sinks.items()}

    def close(self) -> dict[str, Path]:
        """Close every file; returns final name → finished temporary path."""
        return {name: sink.close() for name, sink in self.sinks.items()}

    def abort(self) -> None:
        for sink in self.sinks.values():
            sink.abort()
