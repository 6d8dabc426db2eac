"""The embedded target: every request of the publish protocol lands as files under ``publish.local_dir``,
laid out as ``docs/publish-layout.md`` says, so the Worker can run against them locally (Miniflare).

- ``d1/<label>.sql`` are the import files exactly as the real target would upload them, and ``d1.sqlite``
  is loaded by executing those very files, each in one transaction (D1 rolls a failed import back too).
- ``vectorize/<index>/<label>.ndjson`` are the upsert bodies byte for byte; ``kv/<label>.json`` the bulk
  payloads. Each live id/key appears in exactly one file: an upsert or delete rewrites the older files
  that held those ids without them (and removes files left empty), so the folder is the index's content.
- ``r2/<key>`` the objects.

Executors of one Spark job write concurrently, as separate processes: D1 and the live-file index
(``.live.sqlite``) are SQLite databases written under ``BEGIN IMMEDIATE`` with a long busy timeout,
which serialises writers across processes; every file is written to a temporary name and renamed.
Every request is checked against the documented limits first (``batching.check_*``), so the local
target refuses what Cloudflare would refuse. The object holds only its folder (picklable).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from jobs.publish import batching
from jobs.publish.layout import compact_json
from lib.cloudflare.sql import file_statements

BUSY_TIMEOUT_S = 600.0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp's files are private (0600)


def _atomic_write(path: Path, data: bytes | str) -> None:
    """Write ``data`` (bytes, or the path of a local file to copy) to ``path`` under a temporary name, then
    rename: a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            if isinstance(data, (bytes, bytearray)):
                out.write(data)
            else:
                with open(data, "rb") as source:
                    shutil.copyfileobj(source, out, 1 << 20)
        os.chmod(temp, FILE_MODE)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


@contextlib.contextmanager
def _write_transaction(path: Path) -> Iterator[sqlite3.Connection]:
    """An exclusive write transaction on an SQLite file, waiting for other processes' transactions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        conn.close()


class LocalTarget:
    name = "local"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @property
    def d1_path(self) -> Path:
        return self.root / "d1.sqlite"

    # D1 ------------------------------------------------------------------------------------------
    def d1_import(self, sql: bytes | str, label: str) -> None:
        batching.check_import_file(sql)
        _atomic_write(self.root / "d1" / f"{label}.sql", sql)
        with _write_transaction(self.d1_path) as conn:
            # The file as D1 would run it: all statements, one transaction (executescript would commit
            # first, so statements are run one by one inside ours).
            for statement in file_statements(sql):
                conn.execute(statement)

    def d1_execute(self, statements: Sequence[tuple[str, Sequence[Any]]], label: str) -> None:
        batching.check_query(statements)
        with _write_transaction(self.d1_path) as conn:
            for sql, params in statements:
                conn.execute(sql, tuple(params))

    def d1_query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        if not self.d1_path.exists():
            return []
        conn = sqlite3.connect(self.d1_path, timeout=BUSY_TIMEOUT_S)
        try:
            cursor = conn.execute(sql, tuple(params))
            names = [d[0] for d in cursor.description or ()]
            return [dict(zip(names, row)) for row in cursor.fetchall()]
        finally:
            conn.close()

    # Vectorize -----------------------------------------------------------------------------------
    def _index_dir(self, index: str) -> Path:
        return self.root / "vectorize" / index

    def vectorize_ensure_index(self, index: str, dimensions: int, metric: str,
                               metadata_indexes: dict[str, str]) -> None:
        spec = {"name": index, "dimensions": dimensions, "metric": metric, "metadata_indexes": metadata_indexes}
        path = self._index_dir(index) / "index.json"
        if path.exists():
            existing = json.loads(path.read_text())
            if (existing["dimensions"], existing["metric"]) != (dimensions, metric):
                raise ValueError(f"Vectorize index {index} exists with {existing['dimensions']} dimensions "
                                 f"({existing['metric']}), not {dimensions} ({metric})")
            if existing.get("metadata_indexes") == metadata_indexes:
                return
        _atomic_write(path, (json.dumps(spec, indent=2) + "\n").encode())

    def vectorize_upsert(self, index: str, ndjson: bytes, label: str) -> str | None:
        batching.check_upsert(ndjson)
        if not (self._index_dir(index) / "index.json").exists():
            raise ValueError(f"Vectorize index {index} does not exist (create it before upserting)")
        ids = [json.loads(line)["id"] for line in ndjson.decode().splitlines()]
        self._live_write(f"vectorize/{index}", f"{label}.ndjson", ndjson, ids)
        return "local-" + hashlib.sha256(ndjson).hexdigest()[:16]

    def vectorize_delete(self, index: str, ids: Sequence[str], label: str) -> str | None:
        batching.check_vector_ids(ids)
        self._live_write(f"vectorize/{index}", None, b"", list(ids))
        return "local-" + hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]

    def vectorize_wait(self, index: str, mutation_id: str | None, earlier: Sequence[str] = ()) -> None:
        """Local writes are applied synchronously."""

    def vectorize_drop_index(self, index: str) -> None:
        with _write_transaction(self.root / ".live.sqlite") as conn:
            _live_schema(conn)
            conn.execute("DELETE FROM live WHERE container = ?", (f"vectorize/{index}",))
            shutil.rmtree(self._index_dir(index), ignore_errors=True)

    # KV ------------------------------------------------------------------------------------------
    def kv_put(self, items: Sequence[dict[str, Any]], label: str) -> None:
        batching.check_kv_items(items)
        self._live_write("kv", f"{label}.json", batching.kv_payload(items), [item["key"] for item in items])

    def kv_delete(self, keys: Sequence[str], label: str) -> None:
        batching.check_kv_keys(keys)
        self._live_write("kv", None, b"", list(keys))

    # R2 ------------------------------------------------------------------------------------------
    def _object(self, key: str) -> Path:
        batching.check_r2_keys([key])
        path = (self.root / "r2" / key).resolve()
        if not path.is_relative_to((self.root / "r2").resolve()):
            raise ValueError(f"R2 key {key!r} leaves the bucket folder")
        return path

    def r2_put(self, key: str, body: bytes | str, label: str) -> None:
        _atomic_write(self._object(key), body)

    def r2_get(self, key: str) -> bytes | None:
        path = self._object(key)
        return path.read_bytes() if path.is_file() else None

    def r2_delete(self, keys: Sequence[str], label: str) -> None:
        batching.check_r2_keys(keys)
        bucket = (self.root / "r2").resolve()
        for key in keys:
            path = self._object(key)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            parent = path.parent
            while parent != bucket and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent

    # live files ----------------------------------------------------------------------------------
    def _live_write(self, container: str, file_name: str | None, payload: bytes, keys: list[str]) -> None:
        """Write ``payload`` as ``container/file_name`` holding ``keys`` (None: delete ``keys``), removing those
        keys from every other file of the container, all under one cross-process lock."""
        folder = self.root / container
        with _write_transaction(self.root / ".live.sqlite") as conn:
            _live_schema(conn)
            holders: dict[str, set[str]] = {}
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for file, key in conn.execute(
                    f"SELECT file, key FROM live WHERE container = ? AND key IN ({marks})", (container, *chunk)
                ):
                    if file != file_name:
                        holders.setdefault(file, set()).add(key)
            for file, gone in holders.items():
                _rewrite_without(folder / file, gone)
            if file_name is None:
                conn.executemany("DELETE FROM live WHERE container = ? AND key = ?", [(container, k) for k in keys])
            else:
                _atomic_write(folder / file_name, payload)
                conn.executemany("INSERT OR REPLACE INTO live (container, key, file) VALUES (?, ?, ?)",
                                 [(container, k, file_name) for k in keys])


def _live_schema(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS live (container TEXT, key TEXT, file TEXT, PRIMARY KEY (container, key))")


def _rewrite_without(path: Path, gone: set[str]) -> None:
    """A payload file minus the records whose id/key is in ``gone``; removed when nothing is left."""
    if not path.exists():
        return
    if path.suffix == ".ndjson":
        lines = [line for line in path.read_text().splitlines() if json.loads(line)["id"] not in gone]
        data = "".join(line + "\n" for line in lines).encode()
        left = len(lines)
    else:
        items = [item for item in json.loads(path.read_text()) if item["key"] not in gone]
        data = compact_json(items).encode()
        left = len(items)
    if left:
        _atomic_write(path, data)
    else:
        path.unlink()
