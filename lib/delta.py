"""The Delta table layer: Spark writes the Parquet files, delta-rs commits them to the Delta log.

Why this split: the delta-spark jars cannot be fetched where no Maven repository is reachable, but
pyspark and delta-rs (``deltalake``, maintained by the Delta Lake project) both install from PyPI. The
result is standard Delta (reader v1 / writer v2, no table features), readable by delta-rs, polars,
DuckDB and Spark-with-Delta alike.

A write has two phases so that a job can prepare several tables and publish them together at the end:

1. ``stage``: Spark writes the DataFrame into ``<table>/_staging/<write id>/`` (a hidden folder no
   reader looks at), the files are moved to their final place in the table folder (a rename on one
   file system), and an ``add`` action is built per file with statistics (numRecords, min/max/nullCount)
   read from the Parquet footers, so readers can skip files.
2. ``commit``: one delta-rs transaction against the version the stage started from. Until then no
   reader sees anything; a failure at any point leaves the table at its previous version (the staged
   files are deleted, or, if the process died, are unreferenced and removed by ``vacuum``). If another
   writer committed in between, delta-rs' conflict check decides: overwrites and partition replaces
   that read removed data fail with ``DeltaConflictError``; blind appends both land (Delta semantics).

Reads ask delta-rs for the snapshot's active files and read exactly those, never the folder, which
also holds removed files until vacuum.

The invariant every writer relies on: **a data file, once referenced by a committed version, is never
overwritten, moved or deleted** except by ``vacuum`` after its retention. So every staged file is renamed to a
name carrying its write id before it enters the table folder (writers that name files by position, such as the
SQLite landing tasks, would otherwise collide with the previous version's files), a move onto an existing
path is refused, and ``abort`` deletes only the files its own write created, and none that a committed version
references (a commit that raised after it landed is recognised by the write id in its commit info).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import posixpath
import shutil
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import DeltaTable, Schema
from deltalake import transaction as delta_tx
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import ArrayType, DataType, MapType, StructField, StructType

from lib.spark import read_parquet, select_names

STAGING_DIR = "_staging"
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
# Delta-spark truncates string statistics to 32 characters; a truncated max would be wrong, so a
# longer max is left out (readers then simply cannot skip on it).
STRING_STATS_PREFIX = 32
WRITE_MODES = ("overwrite", "append", "error")
WRITE_ID_KEY = "aria.write_id"  # commit info entry naming the write that made a version
LOG_DIR = "_delta_log"


class DeltaLayerError(RuntimeError):
    """A table operation that cannot proceed; the message names the table."""


class DeltaConflictError(DeltaLayerError):
    """Another writer committed to the table after this write started."""


class SchemaMismatchError(DeltaLayerError):
    """An append whose columns or types differ from the table's."""


class TableMissingError(DeltaLayerError):
    """The table (or the requested version) does not exist."""


# ----------------------------------------------------------------------------------------------
# Paths and file system


def table_path(warehouse: str, layer: str, name: str) -> str:
    """``<warehouse>/<layer>/<name>``: the warehouse layout (layer is bronze or gold)."""
    return posixpath.join(warehouse.rstrip("/"), layer, name)


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """pyarrow file system and path for a table location (local paths, file://, s3://, hdfs://)."""
    if "://" not in uri:
        return pafs.LocalFileSystem(), uri
    return pafs.FileSystem.from_uri(uri.replace("s3a://", "s3://", 1))


def exists(uri: str) -> bool:
    return DeltaTable.is_deltatable(uri)


def check_warehouse(warehouse: str) -> None:
    """The warehouse root must be a folder (or not exist yet); checked before any job starts."""
    fs, path = filesystem(warehouse)
    if fs.get_file_info(path).type == pafs.FileType.File:
        raise DeltaLayerError(f"{warehouse}: the warehouse (paths.warehouse) is a file, not a folder")


def check_location(uri: str) -> None:
    """Refuse, before any write, a table location of the wrong type: a folder on the way (the warehouse,
    its layer) or the table folder itself that is a file, or a folder with data but no Delta log."""
    fs, path = filesystem(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File:
        raise DeltaLayerError(f"{uri}: is a file, not a Delta table folder")
    if info.type == pafs.FileType.NotFound:
        if isinstance(fs, pafs.LocalFileSystem):
            parent = os.path.dirname(os.path.abspath(path))
            while parent and not os.path.exists(parent):
                parent = os.path.dirname(parent)
            if parent and not os.path.isdir(parent):
                raise DeltaLayerError(f"{parent}: is a file, not a folder (needed for the table {uri})")
        return
    entries = fs.get_file_info(pafs.FileSelector(path))
    # Names starting with "_" or "." are hidden from a Delta table by the protocol (staging, write-ahead
    # records kept beside a table): only other entries make a folder without a log "data".
    data = {entry.base_name for entry in entries if not entry.base_name.startswith(("_", "."))}
    if LOG_DIR not in {entry.base_name for entry in entries} and data:
        raise DeltaLayerError(f"{uri}: the folder holds files but is not a Delta table (no {LOG_DIR}/)")


def _open(uri: str, version: int | None = None) -> DeltaTable | None:
    try:
        return DeltaTable(uri, version=version)
    except TableNotFoundError:
        return None


def open_table(uri: str, version: int | None = None) -> DeltaTable:
    table = _open(uri)
    if table is None:
        raise TableMissingError(f"no Delta table at {uri}")
    if version is not None:
        latest = table.version()
        if version < 0 or version > latest:
            raise TableMissingError(f"table {uri} has no version {version} (versions 0..{latest})")
        try:
            table.load_as_version(version)
        except DeltaError as exc:
            raise TableMissingError(f"table {uri} cannot be read at version {version}: {exc}") from None
    return table


def version(uri: str) -> int | None:
    table = _open(uri)
    return None if table is None else table.version()


def history(uri: str, limit: int | None = None) -> list[dict[str, Any]]:
    return open_table(uri).history(limit)


def column_names(uri: str, version: int | None = None) -> list[str]:
    """Top-level column names of the table at ``version``, from the log (no Spark)."""
    return [f.name for f in open_table(uri, version).schema().fields]


def row_count(uri: str, version: int | None = None) -> int:
    """Rows of the table at ``version``: the sum of its files' ``numRecords`` in the log (no Spark)."""
    actions = open_table(uri, version).get_add_actions(flatten=True)
    column = pa.table(actions).column("num_records") if actions.num_rows else None
    return int(sum(v or 0 for v in column.to_pylist())) if column is not None else 0


# ----------------------------------------------------------------------------------------------
# Schemas


def spark_schema(table: DeltaTable) -> StructType:
    return StructType.fromJson(json.loads(table.schema().to_json()))


def _nullable(data_type: DataType) -> DataType:
    if isinstance(data_type, StructType):
        return StructType([StructField(f.name, _nullable(f.dataType), True, f.metadata) for f in data_type.fields])
    if isinstance(data_type, ArrayType):
        return ArrayType(_nullable(data_type.elementType), True)
    if isinstance(data_type, MapType):
        return MapType(data_type.keyType, _nullable(data_type.valueType), True)
    return data_type


def delta_schema(schema: StructType) -> Schema:
    """Spark's StructType JSON is Delta's schema serialisation; columns are stored nullable because
    Spark writes every Parquet column as optional."""
    return Schema.from_json(_nullable(schema).json())


def _check_append_schema(uri: str, table_schema: StructType, df_schema: StructType) -> None:
    table_fields = {f.name: f.dataType for f in table_schema.fields}
    df_fields = {f.name: f.dataType for f in df_schema.fields}
    problems = []
    missing = [name for name in table_fields if name not in df_fields]
    extra = [name for name in df_fields if name not in table_fields]
    if missing:
        problems.append(f"missing columns {missing}")
    if extra:
        problems.append(f"unexpected columns {extra}")
    for name, data_type in df_fields.items():
        if name in table_fields and _nullable(table_fields[name]) != _nullable(data_type):
            problems.append(
                f"column '{name}' is {data_type.simpleString()} but the table has {table_fields[name].simpleString()}"
            )
    if problems:
        raise SchemaMismatchError(f"cannot append to {uri}: " + "; ".join(problems))


# ----------------------------------------------------------------------------------------------
# Statistics from Parquet footers


def _stat_value(value: Any, *, is_max: bool) -> Any:
    """A footer statistic as Delta stats JSON, or None when it cannot be stated exactly."""
    if isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        if len(value) <= STRING_STATS_PREFIX:
            return value
        return None if is_max else value[:STRING_STATS_PREFIX]
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return None


def file_stats(fs: pafs.FileSystem, path: str) -> tuple[int, dict[str, Any]]:
    """numRecords and per-column minValues/maxValues/nullCount for top-level primitive columns."""
    meta = pq.read_metadata(path, filesystem=fs)
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    unknown: set[str] = set()
    for rg_index in range(meta.num_row_groups):
        row_group = meta.row_group(rg_index)
        for col_index in range(row_group.num_columns):
            column = row_group.column(col_index)
            name = column.path_in_schema
            if "." in name:  # nested (array/struct/map) leaf: no top-level stats
                continue
            stats = column.statistics
            if stats is None or not stats.has_null_count:
                unknown.add(name)
                continue
            nulls[name] = nulls.get(name, 0) + stats.null_count
            if stats.has_min_max:
                lo, hi = stats.min, stats.max
                if name not in mins or lo < mins[name]:
                    mins[name] = lo
                if name not in maxs or hi > maxs[name]:
                    maxs[name] = hi
            elif stats.null_count != row_group.num_rows:
                unknown.add(name)
    result: dict[str, Any] = {"numRecords": meta.num_rows, "minValues": {}, "maxValues": {}, "nullCount": {}}
    for name, count in nulls.items():
        if name in unknown:
            continue
        result["nullCount"][name] = count
        if name in mins:
            lo = _stat_value(mins[name], is_max=False)
            hi = _stat_value(maxs[name], is_max=True)
            if lo is not None:
                result["minValues"][name] = lo
            if hi is not None:
                result["maxValues"][name] = hi
    return meta.num_rows, result


def _partition_values(relative_path: str, partition_by: Sequence[str]) -> dict[str, str | None]:
    """Partition values from Spark's ``col=value/`` folder names (percent-escaped by Spark)."""
    values: dict[str, str | None] = {}
    for segment in relative_path.split("/")[:-1]:
        key, sep, raw = segment.partition("=")
        if sep and key in partition_by:
            decoded = unquote(raw)
            values[key] = None if decoded == HIVE_NULL else decoded
    missing = [col for col in partition_by if col not in values]
    if missing:
        raise DeltaLayerError(f"file {relative_path} lies outside partition folders for {missing}")
    return values


# ----------------------------------------------------------------------------------------------
# Staged writes


@dataclass
class StagedWrite:
    """Files in the table folder that no version references yet; ``commit`` publishes them."""

    uri: str
    mode: str
    schema: StructType
    partition_by: list[str]
    partition_filters: list[tuple[str, str, Any]] | None
    base_version: int | None
    adds: list[delta_tx.AddAction]
    removes: list[delta_tx.RemoveAction] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    committed_version: int | None = None
    write_id: str = ""
    created: list[str] = field(default_factory=list)  # paths (relative) this write put into the table folder

    def commit(self) -> int:
        if self.committed_version is not None:
            return self.committed_version
        properties = delta_tx.CommitProperties(
            custom_metadata={"writer": "aria-signals (spark + delta-rs)", "rows": str(self.rows), **self.metadata,
                             WRITE_ID_KEY: self.write_id},
            # Blind appends commute, so delta-rs may rebase them on a newer version. Anything that
            # removes files must have read the latest version: delta-rs would otherwise let an
            # overwrite land on top of a concurrent append and keep the appended rows.
            max_commit_retries=None if self.mode == "append" and not self.removes else 0,
        )
        try:
            if self.base_version is None:
                delta_tx.create_table_with_add_actions(
                    self.uri,
                    delta_schema(self.schema),
                    self.adds,
                    mode="error",
                    partition_by=self.partition_by or None,
                    commit_properties=properties,
                )
            else:
                table = DeltaTable(self.uri, version=self.base_version)
                table.create_write_transaction(
                    [*self.adds, *self.removes],
                    "append" if self.removes else self.mode,
                    delta_schema(self.schema),
                    partition_by=self.partition_by or None,
                    partition_filters=self.partition_filters,
                    commit_properties=properties,
                )
        except CommitFailedError as exc:
            self.abort()
            raise DeltaConflictError(
                f"concurrent write to {self.uri}: another writer committed after version "
                f"{self.base_version}; this {self.mode} was not applied ({exc})".replace("\n", " ")
            ) from None
        except DeltaError as exc:
            self.abort()
            if self.base_version is None and exists(self.uri):
                raise DeltaConflictError(
                    f"concurrent write to {self.uri}: the table was created by another writer meanwhile"
                ) from None
            raise DeltaLayerError(f"commit to {self.uri} failed: {exc}") from None
        self.committed_version = version(self.uri)
        assert self.committed_version is not None
        return self.committed_version

    def abort(self) -> None:
        """Delete the files this write created, unless a committed version references them (a commit that
        landed although it raised). Files of other writes are never touched."""
        if self.committed_version is not None or self._landed():
            return
        fs, root = filesystem(self.uri)
        for relative in self.created:
            with contextlib.suppress(OSError):
                fs.delete_file(posixpath.join(root, relative))
        self.created = []
        self.adds = []

    def _landed(self) -> bool:
        """Whether a version after ``base_version`` was committed by this write (its id in the commit info)."""
        if not self.write_id or not self.created:
            return False
        table = _open(self.uri)
        if table is None:
            return False
        newer = table.version() - (-1 if self.base_version is None else self.base_version)
        if newer <= 0:
            return False
        return any(entry.get(WRITE_ID_KEY) == self.write_id for entry in table.history(newer))


@dataclass
class WritePlan:
    """What a write will do, decided (and checked) before any file is written."""

    uri: str
    mode: str
    schema: StructType
    partition_by: list[str]
    partition_filters: list[tuple[str, str, Any]] | None
    base_version: int | None
    metadata: dict[str, Any]


def plan_write(
    uri: str,
    schema: StructType,
    mode: str = "overwrite",
    partition_by: Sequence[str] = (),
    partition_filters: list[tuple[str, str, Any]] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> WritePlan:
    """Check a write against the table as it is now; the version read here is the one the commit
    is validated against. For appends and partition replaces the schema is the table's."""
    if mode not in WRITE_MODES:
        raise DeltaLayerError(f"unknown write mode '{mode}' for {uri} (use {', '.join(WRITE_MODES)})")
    check_location(uri)
    existing = _open(uri)
    base_version = existing.version() if existing is not None else None
    partition_by = list(partition_by)
    unknown = [col for col in partition_by if col not in schema.fieldNames()]
    if unknown:
        raise DeltaLayerError(f"partition columns {unknown} are not columns of the data for {uri}")
    if existing is not None:
        table_partitions = list(existing.metadata().partition_columns)
        if mode == "error":
            raise DeltaLayerError(f"table {uri} already exists (mode 'error')")
        if mode == "append" or partition_filters:
            table_schema = spark_schema(existing)
            _check_append_schema(uri, table_schema, schema)
            schema = StructType([schema[name] for name in table_schema.fieldNames()])
            if partition_by != table_partitions:
                if partition_by:
                    raise DeltaLayerError(
                        f"table {uri} is partitioned by {table_partitions}, the write by {partition_by}"
                    )
                partition_by = table_partitions
    if partition_filters and base_version is None:
        raise TableMissingError(f"cannot replace partitions of {uri}: the table does not exist")
    if partition_filters and not partition_by:
        raise DeltaLayerError(f"cannot replace partitions of {uri}: the table is not partitioned")
    return WritePlan(uri, mode, schema, partition_by, partition_filters, base_version, dict(metadata or {}))


def new_write_id() -> str:
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}"


def staging_path(uri: str, write_id: str) -> str:
    """Folder under the table where a write's files wait until they are published."""
    return posixpath.join(uri, STAGING_DIR, write_id)


def stage(
    df: DataFrame,
    uri: str,
    mode: str = "overwrite",
    partition_by: Sequence[str] = (),
    partition_filters: list[tuple[str, str, Any]] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> StagedWrite:
    """Write ``df`` as not-yet-visible files of the table at ``uri``.

    mode ``overwrite`` replaces the whole table (or, with ``partition_filters`` such as
    ``[("year", "in", ["2019", "2020"])]``, exactly those partitions; rows outside them are refused);
    ``append`` adds rows after a schema check; ``error`` creates the table and fails if it exists.
    """
    plan = plan_write(uri, df.schema, mode, partition_by, partition_filters, metadata)
    df = select_names(df, plan.schema.fieldNames())
    write_id = new_write_id()
    try:
        writer = df.write.mode("errorifexists")
        if plan.partition_by:
            writer = writer.partitionBy(*plan.partition_by)
        writer.parquet(staging_path(uri, write_id))
    except BaseException:
        drop_staging(uri, write_id)
        raise
    return stage_files(plan, write_id)


def stage_files(plan: WritePlan, write_id: str) -> StagedWrite:
    """Move the Parquet files in ``staging_path(plan.uri, write_id)`` into the table folder and describe
    them as add actions. Besides ``stage`` (Spark's writer), executor tasks that write files themselves
    (Arrow-native writers, quarantine side files) publish this way; make the plan before the tasks start
    so the commit is checked against the version they read."""
    fs, root = filesystem(plan.uri)
    staged = StagedWrite(
        uri=plan.uri,
        mode=plan.mode,
        schema=plan.schema,
        partition_by=plan.partition_by,
        partition_filters=plan.partition_filters,
        base_version=plan.base_version,
        adds=[],
        metadata=plan.metadata,
        write_id=write_id,
    )
    try:
        staged.adds = _publish_files(fs, root, posixpath.join(root, STAGING_DIR, write_id), plan.partition_by, staged)
        if plan.partition_filters:
            _check_inside_partitions(plan.uri, staged.adds, plan.partition_filters)
    except BaseException:
        staged.abort()
        raise
    finally:
        drop_staging(plan.uri, write_id)
    return staged


def drop_staging(uri: str, write_id: str) -> None:
    """Remove the files of a write that will not be staged (a failed or abandoned task set)."""
    fs, root = filesystem(uri)
    with contextlib.suppress(OSError):
        fs.delete_dir(posixpath.join(root, STAGING_DIR, write_id))


def _publish_files(
    fs: pafs.FileSystem, root: str, staging: str, partition_by: Sequence[str], staged: StagedWrite
) -> list[delta_tx.AddAction]:
    """Move the staged Parquet files into the table folder and describe each as an add action."""
    # A landing whose tasks wrote no file (an empty source table) leaves no staging folder: an empty table.
    infos = fs.get_file_info(pafs.FileSelector(staging, recursive=True, allow_not_found=True))
    data_files = sorted(
        info.path for info in infos if info.type == pafs.FileType.File and info.base_name.endswith(".parquet")
    )
    moved: list[tuple[str, str]] = []
    for source in data_files:
        relative = unique_name(posixpath.relpath(source, staging), staged.write_id)
        target = posixpath.join(root, relative)
        fs.create_dir(posixpath.dirname(target), recursive=True)
        _move_new(fs, source, target, staged.uri)
        moved.append((relative, target))
        staged.created.append(relative)

    def describe(entry: tuple[str, str]) -> tuple[int, delta_tx.AddAction]:
        relative, target = entry
        info = fs.get_file_info(target)
        rows, stats = file_stats(fs, target)
        mtime_ms = int(info.mtime.timestamp() * 1000) if info.mtime else int(time.time() * 1000)
        values = _partition_values(relative, partition_by)
        return rows, delta_tx.AddAction(relative, info.size, values, mtime_ms, True, json.dumps(stats))

    with ThreadPoolExecutor(max_workers=8) as pool:
        described = list(pool.map(describe, moved))
    # Spark writes an empty file for an empty input; a file without rows is not worth a log entry.
    for rows, add in described:
        if rows == 0:
            fs.delete_file(posixpath.join(root, add.path))
            staged.created.remove(add.path)
    adds = [add for rows, add in described if rows > 0]
    staged.rows = sum(rows for rows, _ in described)
    staged.bytes = sum(add.size for add in adds)
    return adds


def unique_name(relative: str, write_id: str) -> str:
    """The file's name in the table folder: its staged name prefixed by the write id, so no two writes can
    produce the same path (landing tasks name files by range position, Spark by task and a uuid)."""
    folder, name = posixpath.split(relative)
    if not write_id or name.startswith(f"{write_id}-"):
        return relative
    return posixpath.join(folder, f"{write_id}-{name}")


def _move_new(fs: pafs.FileSystem, source: str, target: str, uri: str) -> None:
    """Move ``source`` to ``target``, refusing (not performing) a move onto an existing file. On a local
    file system a hard link makes the check and the move one step (``link`` fails when the target exists)."""
    if isinstance(fs, pafs.LocalFileSystem):
        try:
            os.link(source, target)
        except FileExistsError:
            raise DeltaLayerError(f"{uri}: refusing to overwrite the existing data file {target}") from None
        except OSError:  # no hard links here (some network file systems): check, then rename
            if os.path.exists(target):
                raise DeltaLayerError(f"{uri}: refusing to overwrite the existing data file {target}") from None
            os.rename(source, target)
            return
        os.unlink(source)
        return
    if fs.get_file_info(target).type != pafs.FileType.NotFound:
        raise DeltaLayerError(f"{uri}: refusing to overwrite the existing data file {target}")
    fs.move(source, target)


def _check_inside_partitions(uri: str, adds: Iterable[delta_tx.AddAction], filters: list[tuple[str, str, Any]]) -> None:
    for add in adds:
        for column, op, value in filters:
            actual = add.partition_values.get(column)
            allowed = [str(v) for v in value] if op == "in" else [str(value)]
            if op not in ("=", "in"):
                raise DeltaLayerError(f"partition filter operator '{op}' is not supported (use '=' or 'in')")
            if actual not in allowed:
                raise DeltaLayerError(
                    f"write to {uri} has rows in partition {column}={actual}, outside the partitions being replaced"
                )


def write(
    df: DataFrame,
    uri: str,
    mode: str = "overwrite",
    partition_by: Sequence[str] = (),
    partition_filters: list[tuple[str, str, Any]] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> int:
    """Stage and commit in one go; returns the new table version."""
    return stage(df, uri, mode, partition_by, partition_filters, metadata).commit()


def commit_all(writes: Sequence[StagedWrite]) -> list[int]:
    """Commit several staged writes in order. Delta has no multi-table transactions: a failure
    commits nothing after it and aborts the rest, so staging everything first keeps the window short."""
    versions: list[int] = []
    for index, staged in enumerate(writes):
        try:
            versions.append(staged.commit())
        except BaseException:
            for rest in writes[index + 1 :]:
                rest.abort()
            raise
    return versions


def abort_all(writes: Iterable[StagedWrite]) -> None:
    for staged in writes:
        staged.abort()


# ----------------------------------------------------------------------------------------------
# Reads


def read(
    spark: SparkSession,
    uri: str,
    version: int | None = None,
    partition_filters: list[tuple[str, str, Any]] | None = None,
) -> DataFrame:
    """The table's rows at ``version`` (latest by default), from exactly the snapshot's files."""
    table = open_table(uri, version)
    return _read_files(spark, uri, table.file_uris(partition_filters), spark_schema(table),
                       list(table.metadata().partition_columns))


def read_input(
    spark: SparkSession,
    uri: str,
    columns: Sequence[str] | None = None,
    hint: str = "run ingest first",
    version: int | None = None,
) -> DataFrame:
    """A job's input table at ``version`` (latest by default), narrowed to ``columns`` (all when None). A
    missing table or column is an ``InputError`` naming the table and the step that makes it (``hint``)."""
    from lib.errors import InputError

    if not exists(uri):
        raise InputError(f"{uri}: {hint}")
    frame = read(spark, uri, version=version)
    if columns is None:
        return frame
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise InputError(f"{uri}: no column(s) {', '.join(missing)}; {hint}")
    return frame.select(*columns)


def read_staged(spark: SparkSession, staged: StagedWrite) -> DataFrame:
    """The rows of a staged (not yet committed) write, e.g. to use one bronze table while building the
    next before either is published."""
    files = [posixpath.join(staged.uri, add.path) for add in staged.adds]
    return _read_files(spark, staged.uri, files, _nullable(staged.schema), staged.partition_by)


def _read_files(
    spark: SparkSession, uri: str, files: Sequence[str], schema: StructType, partition_by: Sequence[str]
) -> DataFrame:
    if not files:
        return spark.createDataFrame([], schema)
    reader = spark.read.schema(schema)
    if partition_by:
        reader = reader.option("basePath", uri)
    return select_names(read_parquet(reader, spark, files), schema.fieldNames())


# ----------------------------------------------------------------------------------------------
# Maintenance


def compact(
    spark: SparkSession, uri: str, target_file_bytes: int = 128 * 1024 * 1024, min_files: int = 2
) -> int | None:
    """Rewrite the small files of each partition into files near ``target_file_bytes``.

    Distributed (a Spark rewrite), committed as dataChange=false adds and removes against the version it
    read, so a concurrent overwrite makes it fail rather than resurrect rows. Returns the new version,
    or None when no partition had ``min_files`` small files.
    """
    table = open_table(uri)
    base_version = table.version()
    partition_by = list(table.metadata().partition_columns)
    actions = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for action in actions:
        if action["size_bytes"] >= target_file_bytes // 2:
            continue
        key = tuple(action.get(f"partition.{col}") for col in partition_by)
        groups.setdefault(key, []).append(action)
    chosen = [group for group in groups.values() if len(group) >= min_files]
    if not chosen:
        return None
    schema = spark_schema(table)
    files = [posixpath.join(uri, a["path"]) for group in chosen for a in group]
    total_bytes = sum(a["size_bytes"] for group in chosen for a in group)
    frame = _read_files(spark, uri, files, schema, partition_by)
    out_files = max(1, math.ceil(total_bytes / target_file_bytes))
    frame = frame.repartition(out_files, *partition_by) if partition_by else frame.coalesce(out_files)
    staged = stage(frame, uri, "append", partition_by)
    staged.base_version = base_version
    now_ms = int(time.time() * 1000)
    staged.adds = [
        delta_tx.AddAction(a.path, a.size, a.partition_values, a.modification_time, False, a.stats)
        for a in staged.adds
    ]
    staged.removes = [
        delta_tx.RemoveAction(
            a["path"],
            False,
            now_ms,
            a["size_bytes"],
            {col: _partition_string(a.get(f"partition.{col}")) for col in partition_by},
        )
        for group in chosen
        for a in group
    ]
    staged.metadata["aria.operation"] = "compact"
    return staged.commit()


def _partition_string(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def vacuum(uri: str, retention_hours: int = 168, dry_run: bool = False) -> list[str]:
    """Delete files no version newer than ``retention_hours`` needs, unreferenced files left by
    failed writes, and abandoned staging folders. Time travel to versions older than the retention
    is lost, as in Delta."""
    table = open_table(uri)
    removed = table.vacuum(
        retention_hours=retention_hours, dry_run=dry_run, enforce_retention_duration=False, full=True
    )
    fs, root = filesystem(uri)
    staging_root = posixpath.join(root, STAGING_DIR)
    cutoff = time.time() - retention_hours * 3600
    try:
        entries = fs.get_file_info(pafs.FileSelector(staging_root, allow_not_found=True))
    except OSError:
        entries = []
    for entry in entries:
        if entry.type == pafs.FileType.Directory and entry.mtime and entry.mtime.timestamp() <= cutoff:
            removed.append(entry.path)
            if not dry_run:
                if isinstance(fs, pafs.LocalFileSystem):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    fs.delete_dir(entry.path)
    return removed


# ----------------------------------------------------------------------------------------------
# Inspection


@dataclass
class VersionCheck:
    version: int
    files: int
    missing: list[str] = field(default_factory=list)
    wrong_counts: list[str] = field(default_factory=list)
    vacuumed: bool = False  # older than a vacuum: missing files are expected there, not damage

    @property
    def intact(self) -> bool:
        return not self.missing and not self.wrong_counts


def check_table(uri: str) -> list[VersionCheck]:
    """Open the table at every version in its history and check that every file it references exists and
    holds the log's ``numRecords`` rows (from the Parquet footer). Each file is checked once."""
    table = open_table(uri)
    fs, root = filesystem(uri)
    entries = table.history()
    vacuums = [e["version"] for e in entries if str(e.get("operation", "")).startswith("VACUUM")]
    last_vacuum = max(vacuums, default=-1)
    rows_of: dict[str, int | None] = {}
    results: list[VersionCheck] = []
    for version_number in sorted(e["version"] for e in entries):
        try:
            snapshot = DeltaTable(uri, version=version_number)
        except DeltaError:
            continue  # the log entry itself is gone (log retention): nothing to read there
        actions = pa.table(snapshot.get_add_actions(flatten=True)).to_pylist()
        check = VersionCheck(version_number, len(actions), vacuumed=version_number < last_vacuum)
        for action in actions:
            path = unquote(action["path"])
            if path not in rows_of:
                full = posixpath.join(root, path)
                if fs.get_file_info(full).type == pafs.FileType.NotFound:
                    rows_of[path] = None
                else:
                    try:
                        rows_of[path] = pq.read_metadata(full, filesystem=fs).num_rows
                    except (OSError, pa.ArrowInvalid):
                        rows_of[path] = -1
            actual, logged = rows_of[path], action.get("num_records")
            if actual is None:
                check.missing.append(path)
            elif logged is not None and actual != logged:
                check.wrong_counts.append(f"{path} ({actual} rows, log says {logged})")
        results.append(check)
    return results


def find_tables(warehouse: str) -> list[str]:
    """Every Delta table under ``<warehouse>/<layer>/`` (bronze, gold, ...), sorted."""
    fs, root = filesystem(warehouse)
    found: list[str] = []
    for layer in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True)):
        if layer.type != pafs.FileType.Directory:
            continue
        for entry in fs.get_file_info(pafs.FileSelector(layer.path)):
            uri = posixpath.join(warehouse.rstrip("/"), layer.base_name, entry.base_name)
            if entry.type == pafs.FileType.Directory and exists(uri):
                found.append(uri)
    return sorted(found)
