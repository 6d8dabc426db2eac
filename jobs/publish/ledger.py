"""Exactly once: what was sent (the ledger) and what each target holds (the state).

- **Write-ahead records.** Right after a batch's request succeeds, the process that sent it (an executor
  task, or the driver) writes one small JSON record under ``gold/_publish_ledger/_pending/<target id>/``.
  A batch whose record exists is never sent again — by a retried task, a rerun after a crash, or a
  speculative copy. The driver folds the records into the ledger Delta table at the start and the end of
  every run (a crash in between loses nothing: the records stay until folded).
- **Ledger** ``gold/_publish_ledger`` (partitioned by object): one row per batch sent (target, object,
  location — the table, index or prefix —, generation, batch id = sha256 of the request body, rows, bytes,
  requests, keys touched, time, run).
- **State** ``gold/_publish_state``: per target and object the content last committed — for keyed objects
  (Vectorize ids, KV keys, R2 shards) one row per key with the hash of what was sent, for D1 one row per
  table with its content digest — plus one marker per object holding the committed generation. The
  state of all objects changed by a run is replaced in one Delta commit at its end: that commit is the
  moment a publish is done.
- **Generations.** A run that finds an object's desired content different from its state works on
  generation ``sha256(object, committed generation, desired digest, keys touched by unfinished runs)``:
  a rerun of the same data after a crash lands on the same generation and resumes it; a rerun with
  other data starts a new one. Keys that unfinished runs (same base, other generation) may have written
  are treated as changed, so nothing they left behind survives.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import posixpath
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from lib import delta

LEDGER_TABLE = "_publish_ledger"
STATE_TABLE = "_publish_state"
PENDING_DIR = "_pending"

LEDGER_DDL = (
    "target string, target_id string, object string, location string, generation string, base string, "
    "batch_key string, batch_id string, kind string, label string, rows long, bytes long, requests int, "
    "keys array<string>, info string, mutation_id string, sent_at timestamp, run_id string"
)
STATE_DDL = (
    "object_id string, target_id string, object string, key string, hash string, location string, info string, "
    "generation string, ordinal long, committed_at timestamp"
)
LEDGER_FIELDS = [part.split(" ")[0] for part in LEDGER_DDL.split(", ")]


def digest(*parts: Any) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()


def generation_id(obj: str, base: str, desired: str, touched: Iterable[str]) -> str:
    return digest(obj, base, desired, digest(*sorted(touched)))[:16]


def _slug(obj: str) -> str:
    return obj.replace(":", "-")


def new_run_id() -> str:
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"


# ----------------------------------------------------------------------------------------------
# Write-ahead records (picklable: used on executors)


@dataclass(frozen=True)
class Wal:
    pending_dir: str
    target: str
    target_id: str
    run_id: str

    def batch_key(self, obj: str, generation: str, batch_id: str) -> str:
        return digest(self.target_id, obj, generation, batch_id)[:32]

    def path(self, obj: str, generation: str, key: str) -> str:
        return posixpath.join(self.pending_dir, f"{_slug(obj)}.{generation}.{key}.json")

    def prefix(self, obj: str, generation: str) -> str:
        return f"{_slug(obj)}.{generation}."

    def read(self, obj: str, generation: str, key: str) -> dict[str, Any] | None:
        fs, path = delta.filesystem(self.path(obj, generation, key))
        try:
            with fs.open_input_stream(path) as handle:
                return json.loads(handle.read())
        except (FileNotFoundError, OSError):
            return None

    def record(self, obj: str, generation: str, base: str, batch_id: str, *, kind: str, location: str,
               label: str, rows: int, size: int, requests: int, keys: Sequence[str] = (), info: str = "",
               mutation_id: str | None = None) -> dict[str, Any]:
        """Durably note that a batch was sent (temporary name, then rename: never half a record)."""
        key = self.batch_key(obj, generation, batch_id)
        record = {
            "target": self.target, "target_id": self.target_id, "object": obj, "location": location,
            "generation": generation, "base": base, "batch_key": key, "batch_id": batch_id, "kind": kind,
            "label": label, "rows": int(rows), "bytes": int(size), "requests": int(requests),
            "keys": list(keys), "info": info, "mutation_id": mutation_id, "sent_at": time.time(),
            "run_id": self.run_id,
        }
        fs, path = delta.filesystem(self.path(obj, generation, key))
        fs.create_dir(posixpath.dirname(path), recursive=True)
        temp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
        with fs.open_output_stream(temp) as out:
            out.write(json.dumps(record).encode())
        fs.move(temp, path)
        return record

    def list(self, obj: str | None = None, generation: str | None = None) -> list[str]:
        fs, root = delta.filesystem(self.pending_dir)
        infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True))
        prefix = "" if obj is None else (self.prefix(obj, generation) if generation else f"{_slug(obj)}.")
        return [i.path for i in infos if i.type == pafs.FileType.File and i.base_name.endswith(".json")
                and i.base_name.startswith(prefix)]

    def count(self, obj: str, generation: str) -> int:
        return len(self.list(obj, generation))


# ----------------------------------------------------------------------------------------------
# The ledger (driver)


class Ledger:
    def __init__(self, spark: Any, warehouse: str, target: str, target_id: str, run_id: str) -> None:
        self.spark = spark
        self.uri = delta.table_path(warehouse, "gold", LEDGER_TABLE)
        self.wal = Wal(posixpath.join(self.uri, PENDING_DIR, target_id), target, target_id, run_id)
        self.target_id = target_id

    def _scan(self, obj: str | None, columns: Sequence[str], where: Any = None) -> pa.Table | None:
        """This target's ledger rows of ``obj`` (a partition), narrowed by ``where`` — an expression on short
        columns only: a string statistic longer than 32 characters is not stored (``lib.delta``), and
        delta-rs' pyarrow fragments then drop files a filter on that column should keep."""
        if not delta.exists(self.uri):
            return None
        expr = pc.field("target_id") == self.target_id
        if obj is not None:
            expr = expr & (pc.field("object") == obj)
        if where is not None:
            expr = expr & where
        return delta.open_table(self.uri).to_pyarrow_dataset().to_table(columns=list(columns), filter=expr)

    def _pending(self, obj: str | None = None) -> list[dict[str, Any]]:
        records = []
        for path in self.wal.list(obj):
            fs, local = delta.filesystem(path)
            with fs.open_input_stream(local) as handle:
                records.append(json.loads(handle.read()))
        return records

    def wal_records(self, obj: str) -> list[dict[str, Any]]:
        """The write-ahead records of ``obj`` not folded yet."""
        return self._pending(obj)

    def records(self, obj: str, generation: str | None = None, with_keys: bool = True, base: str | None = None
                ) -> list[dict[str, Any]]:
        """Batches of ``obj`` (of one generation and/or base, or all) from the ledger and the unfolded records;
        the (large) ``keys`` lists are read only for the rows selected."""
        where = None
        if generation is not None:
            where = pc.field("generation") == generation
        if base is not None:
            where = (pc.field("base") == base) if where is None else where & (pc.field("base") == base)
        columns = LEDGER_FIELDS if with_keys else [f for f in LEDGER_FIELDS if f != "keys"]
        rows: dict[str, dict[str, Any]] = {}
        table = self._scan(obj, columns, where)
        if table is not None:
            for row in table.to_pylist():
                rows[row["batch_key"]] = row
        for record in self._pending(obj):
            if (generation is None or record["generation"] == generation) and (base is None
                                                                               or record["base"] == base):
                rows.setdefault(record["batch_key"], record)
        return list(rows.values())

    def done(self, obj: str, generation: str) -> dict[str, str]:
        """batch key → info of every batch of this generation already sent."""
        return {r["batch_key"]: r.get("info") or "" for r in self.records(obj, generation, with_keys=False)}

    def unfinished(self, obj: str, base: str, generation: str | None = None) -> list[dict[str, Any]]:
        """Batches that runs after the committed generation ``base`` sent without committing (other than
        ``generation``): what they wrote may still be in the target."""
        return [r for r in self.records(obj, base=base) if r["generation"] != generation]

    def fold(self) -> int:
        """Move the write-ahead records into the ledger table (one commit), then delete them."""
        paths = self.wal.list()
        if not paths:
            return 0
        records = self._pending()
        existing = set()
        table = self._scan(None, ["batch_key"])
        if table is not None:
            existing = set(table["batch_key"].to_pylist())
        fresh = [r for r in records if r["batch_key"] not in existing]
        if fresh:
            from pyspark.sql.types import StructType

            rows = [{**r, "sent_at": dt.datetime.fromtimestamp(r["sent_at"], dt.timezone.utc)} for r in fresh]
            frame = self.spark.createDataFrame([tuple(r[f] for f in LEDGER_FIELDS) for r in rows],
                                               StructType.fromDDL(LEDGER_DDL))
            delta.write(frame.coalesce(1), self.uri, mode="append", partition_by=["object"],
                        metadata={"aria.operation": "publish-ledger"})
        for path in paths:
            fs, local = delta.filesystem(path)
            fs.delete_file(local)
        return len(fresh)


# ----------------------------------------------------------------------------------------------
# The state (driver)


def bookkeeping(spark: Any, config: Any) -> tuple[Ledger, State]:
    """The ledger and the state of the target ``config`` names (publish and promote share both)."""
    from jobs.publish.targets import target_id, target_identity

    identity = target_identity(config)
    tid = target_id(identity)
    return (Ledger(spark, config.paths.warehouse, identity, tid, new_run_id()),
            State(spark, config.paths.warehouse, tid))


def object_id(target_id: str, obj: str) -> str:
    return f"{target_id}-{_slug(obj)}"


MARKERS = "_markers"  # the partition holding one marker row per object (key = object name)


class State:
    """Keyed rows live in one partition per object; the markers (committed generation, ordinal, digest and
    info per object) in one small partition of their own, so reading a marker never scans an object."""

    def __init__(self, spark: Any, warehouse: str, target_id: str) -> None:
        self.spark = spark
        self.uri = delta.table_path(warehouse, "gold", STATE_TABLE)
        self.target_id = target_id

    def _partition(self, obj: str) -> list[dict[str, Any]]:
        if not delta.exists(self.uri):
            return []
        dataset = delta.open_table(self.uri).to_pyarrow_dataset()
        # Filter on the partition column only: row-level filters would be pruned by file statistics, and a
        # string max statistic is omitted when long, which delta-rs' pyarrow fragments then mis-handle.
        return dataset.to_table(filter=pc.field("object_id") == object_id(self.target_id, obj)).to_pylist()

    def rows(self, obj: str) -> list[dict[str, Any]]:
        """The keyed rows of a (small) object."""
        return self._partition(obj)

    def markers(self) -> dict[str, dict[str, Any]]:
        return {row["key"]: row for row in self._partition(MARKERS)}

    def marker(self, obj: str) -> dict[str, Any] | None:
        return self.markers().get(obj)

    def frame(self, obj: str) -> Any:
        """The keyed rows of a (large) object as a Spark frame (key, hash, location, info)."""
        from pyspark.sql.types import StructType

        if not delta.exists(self.uri):
            return self.spark.createDataFrame([], StructType.fromDDL(STATE_DDL)).select("key", "hash", "location",
                                                                                        "info")
        frame = delta.read(self.spark, self.uri, partition_filters=[("object_id", "=", object_id(self.target_id,
                                                                                                    obj))])
        return frame.select("key", "hash", "location", "info")

    def commit(self, frames: dict[str, Any], markers: dict[str, dict[str, Any]]) -> int | None:
        """Replace the keyed rows of the objects in ``frames`` and the markers of ``markers`` in one commit."""
        if not frames and not markers:
            return None
        merged = {**self.markers(), **{obj: {**m, "key": obj} for obj, m in markers.items()}}
        union = self.rows_frame(MARKERS, list(merged.values()))
        for frame in frames.values():
            union = union.unionByName(frame)
        ids = [object_id(self.target_id, obj) for obj in [MARKERS, *frames]]
        if delta.exists(self.uri):
            return delta.write(union, self.uri, mode="overwrite", partition_by=["object_id"],
                               partition_filters=[("object_id", "in", ids)],
                               metadata={"aria.operation": "publish-state"})
        return delta.write(union, self.uri, mode="overwrite", partition_by=["object_id"],
                           metadata={"aria.operation": "publish-state"})

    def rows_frame(self, obj: str, rows: Sequence[dict[str, Any]]) -> Any:
        """Small state rows (dicts with key, hash, location?, info?, generation, ordinal?) as a frame."""
        from pyspark.sql.types import StructType

        now = dt.datetime.now(dt.timezone.utc)
        oid = object_id(self.target_id, obj)
        data = [(oid, self.target_id, obj, r["key"], r["hash"], r.get("location") or "", r.get("info") or "",
                 r["generation"], int(r.get("ordinal") or 0), now) for r in rows]
        return self.spark.createDataFrame(data, StructType.fromDDL(STATE_DDL))

    def keyed_frame(self, obj: str, keyed: Any, generation: str, ordinal: int) -> Any:
        """A large object's keyed rows (Spark: key, hash, location, info) in the state's columns."""
        from pyspark.sql import functions as F

        now = dt.datetime.now(dt.timezone.utc)
        return keyed.select(
            F.lit(object_id(self.target_id, obj)).alias("object_id"), F.lit(self.target_id).alias("target_id"),
            F.lit(obj).alias("object"), "key", "hash", "location", "info", F.lit(generation).alias("generation"),
            F.lit(int(ordinal)).alias("ordinal"), F.lit(now).cast("timestamp").alias("committed_at"))
