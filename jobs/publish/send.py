"""Batches built and sent inside executor tasks, one stream per partition (``mapInArrow``).

Each task receives its partition's records already sorted, packs them into requests within the limits
(``batching.pack``), and for every request: computes its content hash, skips it when the ledger or a
write-ahead record says this generation already sent it, else sends it through the target — built once
per task from the config (``Stream.factory``, by default ``targets.build_target``) — and writes the
write-ahead record. The task yields one result row per batch (sent, done before, or only planned in a
dry run), which the driver collects for the summary. Packing depends only on the records and the limits,
so a rerun builds exactly the same batches.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from jobs.publish import batching, layout, render
from jobs.publish.ledger import Wal
from jobs.publish.targets import close_target
from lib.cloudflare import limits
from lib.cloudflare.sql import insert_statements
from lib.cloudflare.target import PublishTarget
from lib.config import Config

# Requests one batch costs (what the real target issues for it at the least).
REQUESTS = {
    "d1_import": 4,  # init, PUT to the upload URL, ingest, poll (once at least)
    "d1_query": 1,
    "vectorize_upsert": 1,
    "vectorize_delete": 1,
    "vectorize_drop": 1,
    "kv_put": 1,
    "kv_delete": 1,
    "r2_put": 1,
    "r2_delete": 1,
}
RESULT_DDL = ("kind string, location string, label string, batch_key string, batch_id string, rows long, "
              "bytes long, requests int, status string, mutation_id string, started_at double, sent_at double, "
              "info string")
RESULT_SCHEMA = pa.schema([
    ("kind", pa.string()), ("location", pa.string()), ("label", pa.string()), ("batch_key", pa.string()),
    ("batch_id", pa.string()), ("rows", pa.int64()), ("bytes", pa.int64()), ("requests", pa.int32()),
    ("status", pa.string()), ("mutation_id", pa.string()), ("started_at", pa.float64()), ("sent_at", pa.float64()),
    ("info", pa.string()),
])


@dataclass
class Prepared:
    """One request, ready to send: ``send(target)`` returns (mutation id, info)."""

    kind: str
    location: str
    label: str
    batch_id: str
    rows: int
    size: int
    requests: int
    send: Callable[[PublishTarget], tuple[str | None, str]]
    keys: Sequence[str] = ()
    info: str = ""


@dataclass(frozen=True)
class Stream:
    """What a task needs to send one object's batches of one generation (picklable)."""

    config_json: str
    factory: Callable[[Config], PublishTarget]
    wal: Wal
    object: str
    generation: str
    base: str
    ordinal: int
    send: bool
    done: dict[str, str] = field(default_factory=dict)

    def label(self, *parts: Any) -> str:
        return "-".join([f"{self.ordinal:04d}", self.generation[:8], *(str(p) for p in parts)])

    def target(self) -> PublishTarget:
        return self.factory(Config.from_json(self.config_json))


def run(stream: Stream, prepared: Iterable[Prepared], target: PublishTarget | None = None) -> Iterator[dict[str, Any]]:
    """Send (or, in a dry run, only measure) each prepared batch once; one result dict per batch. A target
    built here (the first batch to send builds it) is closed at the end."""
    own: list[PublishTarget] = []
    try:
        yield from _run(stream, prepared, target, own)
    finally:
        for built in own:
            close_target(built)


def _run(stream: Stream, prepared: Iterable[Prepared], target: PublishTarget | None,
         own: list[PublishTarget]) -> Iterator[dict[str, Any]]:
    for batch in prepared:
        key = stream.wal.batch_key(stream.object, stream.generation, batch.batch_id)
        status, mutation, info, started_at, sent_at = "planned", None, batch.info, None, None
        record = None
        if key in stream.done:
            status, info = "done", stream.done[key] or info
        else:
            record = stream.wal.read(stream.object, stream.generation, key)
            if record is not None:
                status, info, mutation = "done", record.get("info") or info, record.get("mutation_id")
        if status == "planned" and stream.send:
            if target is None:
                target = stream.target()
                own.append(target)
            started_at = time.time()  # with sent_at, what orders mutations of concurrent tasks (``steps._wait``)
            mutation, sent_info = batch.send(target)
            info = sent_info or batch.info
            stream.wal.record(stream.object, stream.generation, stream.base, batch.batch_id, kind=batch.kind,
                              location=batch.location, label=batch.label, rows=batch.rows, size=batch.size,
                              requests=batch.requests, keys=batch.keys, info=info, mutation_id=mutation)
            status, sent_at = "sent", time.time()
        yield {"kind": batch.kind, "location": batch.location, "label": batch.label, "batch_key": key,
               "batch_id": batch.batch_id, "rows": batch.rows, "bytes": batch.size, "requests": batch.requests,
               "status": status, "mutation_id": mutation, "started_at": started_at, "sent_at": sent_at, "info": info}


def _arrow(results: Iterable[dict[str, Any]]) -> Iterator[pa.RecordBatch]:
    chunk: list[dict[str, Any]] = []
    for result in results:
        chunk.append(result)
        if len(chunk) >= 64:
            yield pa.RecordBatch.from_pylist(chunk, schema=RESULT_SCHEMA)
            chunk = []
    if chunk:
        yield pa.RecordBatch.from_pylist(chunk, schema=RESULT_SCHEMA)


def _rows(batches: Iterable[pa.RecordBatch]) -> Iterator[dict[str, Any]]:
    for batch in batches:
        yield from batch.to_pylist()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------------------------
# D1: one task, import files in table order; the first creates the __next tables, the last swaps them in


def d1_task(stream: Stream, tables: Sequence[str], max_file_bytes: int) -> Callable[[Iterator[pa.RecordBatch]],
                                                                                     Iterator[pa.RecordBatch]]:
    """Input: (order, table, row_sql) sorted, in one partition (a NULL row_sql marks a table with no rows)."""

    def statements(rows: Iterator[dict[str, Any]]) -> Iterator[tuple[bytes, int, str]]:
        """(statement as UTF-8 with its ``;``, rows in it, table or "swap")."""
        for sql in layout.create_next_sql(tables):
            yield (sql + ";").encode(), 0, ""
        for table, group in itertools.groupby(rows, key=lambda r: r["table"]):
            columns = layout.D1_TABLES[table].loaded
            literals = (r["row_sql"] for r in group if r["row_sql"] is not None)
            for statement, count in insert_statements(layout.next_name(table), columns, literals):
                yield statement.encode(), count, table
        for sql in layout.swap_sql(tables):
            yield (sql + ";").encode(), 0, "swap"

    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        def prepared() -> Iterator[Prepared]:
            for n, file in enumerate(import_files(statements(_rows(batches)), max_file_bytes)):
                label = stream.label("d1", f"{n:05d}")

                def send(target: PublishTarget, path: str = file.path, label: str = label) -> tuple[str | None, str]:
                    target.d1_import(path, label)
                    return None, ""

                yield Prepared("import", ",".join(sorted(file.tables)), label, file.sha256, file.rows, file.size,
                               REQUESTS["d1_import"], send, keys=list(tables) if file.swaps else (),
                               info="swap" if file.swaps else "")

        yield from _arrow(run(stream, prepared()))

    return task


@dataclass
class ImportFile:
    """One import file on local disk, as written so far."""

    path: str
    size: int = 0
    rows: int = 0
    tables: set[str] = field(default_factory=set)  # the tables whose rows it holds
    swaps: bool = False  # it holds the swap statements
    digest: Any = field(default_factory=hashlib.sha256)

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()


def import_files(statements: Iterable[tuple[bytes, int, str]], max_bytes: int,
                 folder: str | None = None) -> Iterator[ImportFile]:
    """(statement, rows, table or "swap") in order → import files of at most ``max_bytes``, each statement
    followed by a newline, written to local disk as they stream by (a task holds one statement in memory,
    not a file: D1 takes 5 GB per file). One file exists at a time: a file is removed when the next one is
    asked for, so the consumer sends each before taking the next. The folder is the executor's Spark local
    directory (``SPARK_LOCAL_DIRS``) unless given."""
    root = folder or (os.environ.get("SPARK_LOCAL_DIRS") or "").split(",")[0] or None
    with tempfile.TemporaryDirectory(prefix="d1-import-", dir=root) as workdir:
        files = 0
        file: ImportFile | None = None
        out = None
        try:
            for statement, count, table in statements:
                line = statement + b"\n"
                if len(line) > max_bytes:
                    raise batching.LimitError(f"a SQL statement of {len(line):,} bytes exceeds the "
                                              f"{max_bytes:,}-byte import file limit")
                if file is not None and file.size + len(line) > max_bytes:
                    out.close()
                    yield file
                    os.unlink(file.path)
                    file = None
                if file is None:
                    file = ImportFile(os.path.join(workdir, f"{files:05d}.sql"))
                    out = open(file.path, "wb")  # noqa: SIM115 (closed when the file is full, or below)
                    files += 1
                out.write(line)
                file.digest.update(line)
                file.size += len(line)
                file.rows += count
                if table == "swap":
                    file.swaps = True
                elif table:
                    file.tables.add(table)
            if file is not None:
                out.close()
                yield file
        finally:
            if out is not None:
                out.close()


# ----------------------------------------------------------------------------------------------
# Keyed streams: Vectorize upserts/deletes, KV puts/deletes


def _grouped(rows: Iterator[dict[str, Any]]) -> Iterator[tuple[tuple[int, str, str], Iterator[dict[str, Any]]]]:
    return itertools.groupby(rows, key=lambda r: (r["part"], r["op"], r["location"]))


def vectorize_task(stream: Stream) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """Input: (part, op ∈ {upsert, delete}, location = index, key = id, payload = NDJSON line) sorted."""

    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        def prepared() -> Iterator[Prepared]:
            for (part, op, index), rows in _grouped(_rows(batches)):
                if op == "upsert":
                    groups = batching.pack(rows, lambda r: batching.line_bytes(r["payload"]),
                                           limits.VECTORIZE_MAX_VECTORS_PER_UPSERT, limits.VECTORIZE_MAX_UPSERT_BYTES,
                                           what="vector")
                else:
                    groups = batching.pack(rows, lambda r: len(r["key"].encode()) + 3,
                                           limits.VECTORIZE_MAX_IDS_PER_DELETE, limits.VECTORIZE_MAX_UPSERT_BYTES)
                for n, group in enumerate(groups):
                    ids = [r["key"] for r in group]
                    label = stream.label(op, index, f"p{part:04d}", f"{n:05d}")
                    if op == "upsert":
                        body = batching.ndjson([r["payload"] for r in group])

                        def send(t: PublishTarget, body: bytes = body, index: str = index,
                                 label: str = label) -> tuple[str | None, str]:
                            mutation = t.vectorize_upsert(index, body, label)
                            return mutation, mutation or ""

                        yield Prepared("upsert", index, label, sha(body), len(ids), len(body),
                                       REQUESTS["vectorize_upsert"], send, keys=ids)
                    else:
                        body = "\n".join(ids).encode()

                        def drop(t: PublishTarget, ids: list[str] = ids, index: str = index,
                                 label: str = label) -> tuple[str | None, str]:
                            mutation = t.vectorize_delete(index, ids, label)
                            return mutation, mutation or ""

                        yield Prepared("delete", index, label, sha(b"delete\n" + body), len(ids), len(body),
                                       REQUESTS["vectorize_delete"], drop, keys=ids)

        yield from _arrow(run(stream, prepared()))

    return task


def kv_task(stream: Stream) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """Input: (part, op ∈ {put, delete}, location = "", key, payload = value, ttl) sorted."""

    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        def prepared() -> Iterator[Prepared]:
            for (part, op, _), rows in _grouped(_rows(batches)):
                if op == "put":
                    items = (batching.kv_item(r["key"], r["payload"], r["ttl"]) for r in rows)
                    groups = batching.pack(items, batching.kv_item_bytes, limits.KV_MAX_PAIRS_PER_BULK,
                                           limits.KV_MAX_BULK_BYTES, base=2, separator=1, what="KV pair")
                else:
                    groups = batching.pack(({"key": r["key"]} for r in rows), lambda i: len(i["key"].encode()) + 3,
                                           limits.KV_MAX_KEYS_PER_BULK_DELETE, limits.KV_MAX_BULK_BYTES)
                for n, group in enumerate(groups):
                    keys = [i["key"] for i in group]
                    label = stream.label(op, f"p{part:04d}", f"{n:05d}")
                    if op == "put":
                        body = batching.kv_payload(group)

                        def put(t: PublishTarget, group: list[dict[str, Any]] = group,
                                label: str = label) -> tuple[str | None, str]:
                            t.kv_put(group, label)
                            return None, ""

                        yield Prepared("put", "", label, sha(body), len(keys), len(body), REQUESTS["kv_put"], put,
                                       keys=keys)
                    else:
                        body = json.dumps(keys).encode()

                        def delete(t: PublishTarget, keys: list[str] = keys,
                                   label: str = label) -> tuple[str | None, str]:
                            t.kv_delete(keys, label)
                            return None, ""

                        yield Prepared("delete", "", label, sha(b"delete\n" + body), len(keys), len(body),
                                       REQUESTS["kv_delete"], delete, keys=keys)

        yield from _arrow(run(stream, prepared()))

    return task


# ----------------------------------------------------------------------------------------------
# R2: cold-tier shards and backup files


def shard_task(stream: Stream, max_shard_bytes: int) -> Callable[[Iterator[pa.RecordBatch]],
                                                                  Iterator[pa.RecordBatch]]:
    """Input: shard rows (``layout.SHARD_COLUMNS`` + ``_shard`` + ``_bytes``) sorted by (_shard, spotify_id)."""

    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        def prepared() -> Iterator[Prepared]:
            for shard, group in itertools.groupby(_rows(batches), key=lambda r: r["_shard"]):
                rows = list(group)
                values = [tuple(r[name] for name in render.SHARD_NAMES) for r in rows]
                key = layout.SHARD_KEY.format(version=stream.generation, n=shard)
                estimate = sum(r["_bytes"] for r in rows)
                first, last = values[0][0], values[-1][0]
                info = json.dumps({"key": key, "first_id": first, "last_id": last, "rows": len(rows),
                                   "bytes": estimate, "sha256": None})

                label = stream.label("r2", f"{shard:05d}")

                def put(t: PublishTarget, values: list[tuple[Any, ...]] = values, key: str = key,
                        first: str = first, last: str = last, label: str = label) -> tuple[str | None, str]:
                    body = render.build_shard(values)
                    if len(body) > max_shard_bytes:
                        raise batching.LimitError(
                            f"R2 shard {key} is {len(body):,} bytes, over publish.r2_shard_bytes "
                            f"({max_shard_bytes:,}); the row estimate is too low for this data")
                    t.r2_put(key, body, label)
                    return None, json.dumps({"key": key, "first_id": first, "last_id": last, "rows": len(values),
                                             "bytes": len(body), "sha256": sha(body)})

                yield Prepared("put", key, label, render.rows_digest(values), len(rows),
                               estimate, REQUESTS["r2_put"], put, keys=[key], info=info)

        yield from _arrow(run(stream, prepared()))

    return task


def backup_task(stream: Stream) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """Input: (key, path, size, hash) — one dump file per row."""

    def task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        def prepared() -> Iterator[Prepared]:
            for row in _rows(batches):
                def put(t: PublishTarget, row: dict[str, Any] = row) -> tuple[str | None, str]:
                    t.r2_put(row["key"], row["path"], stream.label("backup"))
                    return None, ""

                yield Prepared("put", row["key"], stream.label("backup", row["key"].rsplit("/", 1)[-1]),
                               sha(f"{row['key']}\x1f{row['hash']}".encode()), 1, int(row["size"]),
                               REQUESTS["r2_put"], put, keys=[row["key"]])

        yield from _arrow(run(stream, prepared()))

    return task


def driver_batch(kind: str, location: str, label: str, body: bytes, rows: int, requests: int,
                 send: Callable[[PublishTarget], tuple[str | None, str]], keys: Sequence[str] = ()) -> Prepared:
    """A batch the driver sends itself (manifest, deletes of old objects, index drops)."""
    return Prepared(kind, location, label, sha(body), rows, len(body), requests, send, keys=keys)
