"""Quarantine: malformed rows go to ``bronze/_rejects`` with a reason, never silently away.

Rejected rows are found inside executor tasks (by the SQLite readers, or by ``split_rejects`` after a
Spark transformation) and written there as small Parquet side files, one per task, named by the task's
input split so a retried task overwrites its own file instead of duplicating rows. The driver then
publishes all side files of a run as one Delta commit, replacing the rejects of the tables that were
re-ingested (the table is partitioned by ``table``).
"""

from __future__ import annotations

import datetime as dt
import json
import posixpath
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lib import delta, storage

REJECTS_TABLE = "_rejects"
REJECT_COLUMN = "_reject"

# The Parquet files hold every column but the partition column ``table``, which lives in the path.
FILE_SCHEMA = pa.schema(
    [
        ("reason", pa.string()),
        ("source", pa.string()),
        ("source_key", pa.string()),
        ("record", pa.string()),
        ("run_id", pa.string()),
        ("rejected_at", pa.timestamp("us", tz="UTC")),
    ]
)
SPARK_DDL = (
    "reason string, source string, source_key string, record string, run_id string, "
    "rejected_at timestamp, table string"
)


@dataclass(frozen=True)
class RejectSink:
    """Where one run's side files go: ``<rejects table>/_staging/<run>/table=<name>/``."""

    table_uri: str
    write_id: str
    run_id: str

    @classmethod
    def new(cls, warehouse: str, run_id: str) -> RejectSink:
        uri = delta.table_path(warehouse, "bronze", REJECTS_TABLE)
        return cls(uri, f"rejects-{run_id}-{uuid.uuid4().hex[:8]}", run_id)

    @property
    def staging_dir(self) -> str:
        return posixpath.join(self.table_uri, delta.STAGING_DIR, self.write_id)

    def write(self, table: str, split: str, rows: Sequence[dict[str, Any]], source: str, key_columns: Sequence[str],
              reason_column: str = REJECT_COLUMN) -> int:
        """Write rejected rows of one input split (overwriting an earlier attempt of the same split)."""
        if not rows:
            return 0
        now = dt.datetime.now(dt.timezone.utc)
        records = []
        for row in rows:
            payload = {k: v for k, v in row.items() if not k.startswith("_")}
            raw = row.get("_raw")
            if raw:
                payload["_raw"] = json.loads(raw) if isinstance(raw, str) else raw
            records.append(
                {
                    "reason": row[reason_column],
                    "source": source,
                    "source_key": ",".join(f"{k}={row.get(k)}" for k in key_columns),
                    "record": json.dumps(payload, default=str, ensure_ascii=False, sort_keys=True),
                    "run_id": self.run_id,
                    "rejected_at": now,
                }
            )
        target = posixpath.join(self.staging_dir, f"table={table}", f"part-{split}.parquet")
        with storage.atomic_output(target) as out:
            pq.write_table(pa.Table.from_pylist(records, schema=FILE_SCHEMA), out.path, filesystem=out.fs)
        return len(records)

    def stage(self, spark: Any, tables: Sequence[str]) -> delta.StagedWrite:
        """Publish this run's side files, replacing earlier rejects of ``tables``."""
        from pyspark.sql.types import StructType

        schema = StructType.fromDDL(SPARK_DDL)
        filters = [("table", "in", list(tables))] if delta.exists(self.table_uri) else None
        plan = delta.plan_write(self.table_uri, schema, "overwrite", ["table"], filters)
        return delta.stage_files(plan, self.write_id)


def split_rejects(frame: Any, table: str, sink: RejectSink, source: str, key_columns: Sequence[str],
                  reason_column: str = REJECT_COLUMN) -> Any:
    """Rows whose ``reason_column`` is set go to the sink; the rest continue without that column.

    For checks that need a Spark transformation first (a join that fails to resolve an id). Side files
    are named by stage and partition id, so a retried task overwrites its own file.
    """
    from pyspark import TaskContext

    kept = [f for f in frame.schema.fields if f.name != reason_column]
    from pyspark.sql.types import StructType

    out_schema = StructType(kept)
    names = [f.name for f in kept]

    def split(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow.compute as pc

        context = TaskContext.get()
        split_id = f"{table}-s{context.stageId()}-p{context.partitionId()}" if context else uuid.uuid4().hex
        rejected: list[dict[str, Any]] = []
        for batch in batches:
            bad = pc.is_valid(batch.column(reason_column))
            if pc.any(bad).as_py():
                rejected.extend(batch.filter(bad).to_pylist())
                batch = batch.filter(pc.invert(bad))
            yield batch.select(names)
        sink.write(table, split_id, rejected, source, key_columns, reason_column)

    return frame.mapInArrow(split, out_schema)


def counts_by_reason(staged: delta.StagedWrite) -> dict[str, dict[str, int]]:
    """{table: {reason: rows}} of a staged rejects write, from the ``reason`` column of its side files read
    with pyarrow: a run's rejects are a few small files, not worth a Spark job."""
    import pyarrow.compute as pc

    fs, root = delta.filesystem(staged.uri)
    result: dict[str, dict[str, int]] = {}
    for add in staged.adds:
        table = add.partition_values["table"]
        assert table is not None
        reasons = pq.read_table(posixpath.join(root, add.path), columns=["reason"], filesystem=fs).column("reason")
        counts = result.setdefault(table, {})
        for item in pc.value_counts(reasons).to_pylist():
            counts[item["values"]] = counts.get(item["values"], 0) + item["counts"]
    return result
