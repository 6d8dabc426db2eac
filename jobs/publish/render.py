"""Request bodies from rows, in plain Python (run inside executor tasks): Vectorize NDJSON lines with
metadata trimmed to the limit, D1 rows as SQL literals (``lib.cloudflare.sql``), R2 shards as SQLite files.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from jobs.publish.layout import SHARD_COLUMNS, SHARD_DDL, compact_json
from lib.cloudflare.limits import VECTORIZE_MAX_ID_BYTES, VECTORIZE_MAX_METADATA_BYTES
from lib.cloudflare.sql import row_literal


def _json_size(value: Any) -> int:
    return len(compact_json(value).encode())


def _truncate_utf8(text: str, max_bytes: int) -> str:
    return text.encode()[:max(0, max_bytes)].decode("utf-8", errors="ignore")


def vector_metadata(row: dict[str, Any], promoted: bool = False) -> tuple[dict[str, Any], bool]:
    """The spec's metadata ``{isrc, mbid?, title, artist, popularity, genres, year?}`` (absent values left out)
    within ``VECTORIZE_MAX_METADATA_BYTES``: genres are dropped from the end first, then title and artist are
    shortened — the vector itself is always kept. Returns (metadata, trimmed)."""
    meta: dict[str, Any] = {}
    for name in ("isrc", "mbid", "title", "artist", "popularity"):
        if row.get(name) is not None:
            meta[name] = row[name]
    meta["genres"] = list(row.get("genres") or [])
    if row.get("year") is not None:
        meta["year"] = row["year"]
    if promoted:
        meta["promoted"] = True
    trimmed = False
    while _json_size(meta) > VECTORIZE_MAX_METADATA_BYTES and meta["genres"]:
        meta["genres"].pop()
        trimmed = True
    for name in ("title", "artist"):
        excess = _json_size(meta) - VECTORIZE_MAX_METADATA_BYTES
        if excess > 0 and isinstance(meta.get(name), str):
            meta[name] = _truncate_utf8(meta[name], len(meta[name].encode()) - excess - 8)
            trimmed = True
    return meta, trimmed


def values_json(vector: Sequence[float]) -> str:
    """The vector as float32 values in their shortest decimal form (Vectorize stores float32)."""
    return "[" + ",".join(str(v) for v in np.asarray(vector, dtype=np.float32)) + "]"


def vector_line(row: dict[str, Any], promoted: bool = False) -> tuple[str, bool]:
    """One NDJSON upsert record ``{"id","values","metadata"}`` and whether its metadata was trimmed."""
    vector_id = row["spotify_id"]
    if len(vector_id.encode()) > VECTORIZE_MAX_ID_BYTES:
        raise ValueError(f"Vectorize id {vector_id[:70]!r} exceeds {VECTORIZE_MAX_ID_BYTES} bytes")
    meta, trimmed = vector_metadata(row, promoted)
    line = '{"id":' + compact_json(vector_id) + ',"values":' + values_json(row["vector"]) + ',"metadata":' + \
        compact_json(meta) + "}"
    return line, trimmed


def sql_rows(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> list[str]:
    return [row_literal([row[c] for c in columns]) for row in rows]


SHARD_NAMES = [name for name, _ in SHARD_COLUMNS]
_INSERT_SHARD = f"INSERT INTO tracks ({','.join(SHARD_NAMES)}) VALUES ({','.join('?' * len(SHARD_NAMES))})"


def rows_digest(rows: Iterable[Sequence[Any]]) -> str:
    """Content hash of rows (used as a shard's batch id, independent of the SQLite library's file format)."""
    h = hashlib.sha256()
    for row in rows:
        h.update(compact_json([_plain(v) for v in row]).encode())
        h.update(b"\n")
    return h.hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    return value


def build_shard(rows: Sequence[Sequence[Any]], work_dir: str | None = None) -> bytes:
    """An SQLite file holding ``rows`` (in ``SHARD_COLUMNS`` order, sorted by spotify_id) in ``tracks``."""
    handle, path = tempfile.mkstemp(suffix=".sqlite", dir=work_dir)
    os.close(handle)
    try:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute(SHARD_DDL)
        conn.execute("BEGIN")
        conn.executemany(_INSERT_SHARD, rows)
        conn.execute("COMMIT")
        conn.close()
        with open(path, "rb") as handle_in:
            return handle_in.read()
    finally:
        os.unlink(path)


# ----------------------------------------------------------------------------------------------
# mapInArrow tasks that render rows (their output is shuffled into the sending tasks)

D1_ROWS_DDL = "order int, table string, row_sql string"
VECTOR_LINES_DDL = "location string, key string, payload string, hash string, trimmed boolean"


def d1_rows_task(table: str, order: int) -> Any:
    """Rows of one D1 table → (order, table, row_sql) with every literal rendered by ``lib.cloudflare.sql``."""
    from jobs.publish.layout import D1_TABLES

    columns = D1_TABLES[table].loaded

    def task(batches: Iterable[Any]) -> Iterable[Any]:
        import pyarrow as pa

        for batch in batches:
            rendered = sql_rows(batch.select(list(columns)).to_pylist(), columns)
            n = len(rendered)
            yield pa.RecordBatch.from_pydict({"order": pa.array([order] * n, pa.int32()),
                                              "table": pa.array([table] * n, pa.string()),
                                              "row_sql": pa.array(rendered, pa.string())})

    return task


def vector_lines_task(base: str, shard_count: int) -> Any:
    """Vector rows (``transforms.VECTOR_COLUMNS``) → (index, id, NDJSON line, sha256 of the line, trimmed?)."""
    from jobs.publish.layout import index_names, shard_of

    names = index_names(base, shard_count)

    def task(batches: Iterable[Any]) -> Iterable[Any]:
        import pyarrow as pa

        for batch in batches:
            out: dict[str, list[Any]] = {"location": [], "key": [], "payload": [], "hash": [], "trimmed": []}
            for row in batch.to_pylist():
                line, trimmed = vector_line(row, bool(row.get("promoted")))
                out["location"].append(names[shard_of(row["spotify_id"], shard_count)])
                out["key"].append(row["spotify_id"])
                out["payload"].append(line)
                out["hash"].append(hashlib.sha256(line.encode()).hexdigest())
                out["trimmed"].append(trimmed)
            yield pa.RecordBatch.from_pydict(out, schema=pa.schema([
                ("location", pa.string()), ("key", pa.string()), ("payload", pa.string()), ("hash", pa.string()),
                ("trimmed", pa.bool_())]))

    return task
