"""Reading SQLite dumps in parallel: checks, zstd unpacking, range planning and ADBC range reads.

A table is read as key ranges (``rowid``, or the leading primary-key column of a ``WITHOUT ROWID``
table). Each range is one Spark task that opens the file read-only through the ADBC SQLite driver,
streams Arrow record batches and writes them to Parquet with pyarrow (``land_ranges``): no per-row
Python, no collect to the driver, no trip through the JVM, memory bounded by the batch size. The file
must sit on every executor's local disk or a shared mount (docs/cluster.md).

Every value is cast in SQL to its declared type, because SQLite stores whatever it is given (a
``tempo`` declared INTEGER holds REAL values, a REAL column may hold the text 'n/a') and the ADBC
driver infers one Arrow type per column from the first rows. A typed sentinel row is put first so the
inference always sees every column non-NULL (apache/arrow-adbc#581: an all-NULL first batch is
otherwise typed int64 and a later string fails). Row checks also run in SQL: ``_exclude`` names rows
that are left out by design (episodes, local files, null responses), ``_reject`` names malformed rows,
which go to the quarantine with their raw values.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import posixpath
import re
import shutil
import sqlite3
import struct
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lib import storage
from lib.errors import InputError
from lib.rejects import REJECT_COLUMN, RejectSink

SQLITE_MAGIC = b"SQLite format 3\x00"
# Rows per Arrow batch from ADBC: larger batches read ~25% faster than the default 1024 (measured on
# 2M rows: 1.62 s default, 1.24 s at 65,536) and stay a few MB per batch.
ADBC_BATCH_ROWS = 65_536
# Unpacked size assumed when a zstd frame does not declare its content size: the release's
# playlists file grows 28.5 GB -> 116 GB (4.1x); 5x leaves a margin.
ZSTD_EXPANSION_GUESS = 5.0
FREE_DISK_MARGIN = 1.05
# Landed Parquet: whole row groups of read windows, and dictionaries given up early on columns with many
# distinct values (ids, names). Measured on 480K playlist rows: 0.23 s per file written batch by batch with
# the default 1 MB dictionary page limit, 0.12 s so; files no larger (12.4 MB against 12.9 MB).
ROW_GROUP_ROWS = 1 << 19
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "dictionary_pagesize_limit": 64 << 10}

ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int": pa.int32(),
    "long": pa.int64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "timestamp_s": pa.timestamp("us", tz="UTC"),  # SQLite holds unix seconds
    "timestamp_ms": pa.timestamp("us", tz="UTC"),  # SQLite holds unix milliseconds
}
NUMERIC_TYPES = frozenset({"int", "long", "double", "boolean", "timestamp_s", "timestamp_ms"})


# ----------------------------------------------------------------------------------------------
# Checks before anything is read


@dataclass(frozen=True)
class TableRequirement:
    table: str
    columns: tuple[str, ...]


def _header_problem(path: Path) -> str | None:
    """Truncation shows in the header: the database size it records exceeds the file's size."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        header = handle.read(100)
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        return "not an SQLite database (bad header)"
    page_size = struct.unpack(">H", header[16:18])[0]
    page_size = 65_536 if page_size == 1 else page_size
    change_counter, page_count = struct.unpack(">II", header[24:32])
    valid_for = struct.unpack(">I", header[92:96])[0]
    if page_count and valid_for == change_counter and page_count * page_size > size:
        return (
            f"file is truncated: its header describes {page_count * page_size:,} bytes "
            f"({page_count:,} pages of {page_size:,}), the file has {size:,}"
        )
    if size % page_size:
        return f"file is truncated: {size:,} bytes is not a whole number of {page_size:,}-byte pages"
    return None


def connect_readonly(path: str | Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro&immutable=1", uri=True)


def check_database(path: Path, required: Sequence[TableRequirement], quick_check: bool = True) -> dict[str, list[str]]:
    """Open the file and verify it can be ingested; returns {table: columns}. Raises InputError naming
    the file and the problem (missing, truncated, corrupt, table or column missing)."""
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty")
    problem = _header_problem(path)
    if problem:
        raise InputError(f"{path}: {problem}")
    try:
        with contextlib.closing(connect_readonly(path)) as conn:
            if quick_check:
                result = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
                if result != ["ok"]:
                    raise InputError(f"{path}: SQLite quick_check failed: {'; '.join(result)}")
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            found: dict[str, list[str]] = {}
            for requirement in required:
                if requirement.table not in tables:
                    raise InputError(
                        f"{path}: required table '{requirement.table}' is missing "
                        f"(tables: {', '.join(sorted(tables)) or 'none'})"
                    )
                columns = [row[1] for row in conn.execute(f'PRAGMA table_info("{requirement.table}")')]
                missing = [c for c in requirement.columns if c not in columns]
                if missing:
                    raise InputError(f"{path}: table '{requirement.table}' lacks column(s) {', '.join(missing)}")
                found[requirement.table] = columns
            return found
    except sqlite3.DatabaseError as exc:
        raise InputError(f"{path}: cannot be read as SQLite ({exc})") from None


# ----------------------------------------------------------------------------------------------
# zstd


def _declared_size(path: Path) -> int | None:
    import zstandard

    with path.open("rb") as handle:
        head = handle.read(18)
    try:
        size = zstandard.frame_content_size(head)
    except zstandard.ZstdError:
        raise InputError(f"{path}: not a zstd file (bad frame header)") from None
    return size if size and size > 0 else None


def unpack_zstd(source: Path, work_dir: Path) -> Path:
    """Stream-decompress ``source`` (``x.sqlite3.zst``) into ``work_dir/x.sqlite3`` once.

    An intact earlier copy (a marker records the source's size and mtime) is reused. Free disk is
    checked up front. Frames are followed to the end: a truncated file, which a plain stream reader
    would end early without complaint, is reported instead.
    """
    import zstandard

    work_dir.mkdir(parents=True, exist_ok=True)
    target = work_dir / source.name.removesuffix(".zst")
    marker = target.with_name(target.name + ".unpacked.json")
    stat = source.stat()
    identity = {"source": str(source.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if target.exists() and marker.exists():
        with contextlib.suppress(ValueError, OSError):
            recorded = json.loads(marker.read_text())
            if recorded.get("source_identity") == identity and recorded.get("output_size") == target.stat().st_size:
                return target
    declared = _declared_size(source)
    needed = int((declared or stat.st_size * ZSTD_EXPANSION_GUESS) * FREE_DISK_MARGIN)
    free = shutil.disk_usage(work_dir).free
    if free < needed:
        raise InputError(
            f"{source}: not enough free disk in {work_dir} to unpack it: needs about {needed / 1e9:.1f} GB "
            f"({'declared' if declared else 'estimated'} unpacked size), {free / 1e9:.1f} GB free"
        )
    partial = target.with_name(f"{target.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with source.open("rb") as src, partial.open("wb") as dst:
            decompressor = zstandard.ZstdDecompressor().decompressobj()
            in_frame = False
            while True:
                chunk = src.read(8 << 20)
                if not chunk:
                    break
                while chunk:
                    dst.write(decompressor.decompress(chunk))
                    in_frame = not decompressor.eof
                    chunk = decompressor.unused_data if decompressor.eof else b""
                    if decompressor.eof:
                        decompressor = zstandard.ZstdDecompressor().decompressobj()
            if in_frame:
                raise InputError(f"{source}: zstd stream is truncated (the last frame does not end)")
        os.replace(partial, target)
    except zstandard.ZstdError as exc:
        raise InputError(f"{source}: corrupt zstd data ({exc})") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    marker.write_text(json.dumps({"source_identity": identity, "output_size": target.stat().st_size}))
    return target


# ----------------------------------------------------------------------------------------------
# Range queries
#
# Two ways to read the same rows. The *plain read* (``_read_plain``) selects source columns as they are
# (the ADBC driver types each column from the values of the batch) and does every check, cast and
# derivation vectorised in Arrow: SQLite only walks the b-tree (measured on 1M tracks: 1.1 CPU s plain
# against 5.4 s for the typed, checked SQL; a typed sentinel row put first with UNION ALL costs another
# 15-35%, so there is none). The *exact read* (``RangeQuery.sql``) does it all in SQL and handles any value
# SQLite may hold. A range is read in windows of about ``WINDOW_ROWS`` rows, each one batch; a window whose
# values the plain read cannot type (text in a numeric column, REAL in an INTEGER one: the driver raises
# or infers another type, ``_as_read``) is read again exactly, so both give the same rows, rejects and
# counts (tests/lib/test_sqlite_source.py compares them).

# Rows per plain-read window, so a window that falls back costs one batch of exact reading; the plain
# read's batches hold 4x that, so a window whose rows per key were underestimated is still one batch.
WINDOW_ROWS = ADBC_BATCH_ROWS - 1
PLAIN_BATCH_ROWS = 4 * ADBC_BATCH_ROWS
FIRST_WINDOW_KEYS = 1024  # keys of a range's first window, before its rows per key are known

READ_KINDS: dict[str, pa.DataType] = {"string": pa.string(), "long": pa.int64(), "double": pa.float64()}
_BARE_COLUMN = re.compile(r"(?:[A-Za-z_]\w*\.)?[A-Za-z_]\w*")


def read_kind(column_type: str) -> str:
    """How a plain read fetches a column of ``column_type`` (see ``ARROW_TYPES``) before conversion."""
    return column_type if column_type in ("string", "double") else "long"


@dataclass(frozen=True)
class ArrowExpr:
    """The Arrow twin of a SQL expression: ``fn`` applied to source expressions read plainly (``refs``:
    (SQL expression, read kind)), giving what the SQL expression gives on rows the plain read can type."""

    refs: tuple[tuple[str, str], ...]
    fn: Callable[..., pa.Array]

    def __call__(self, arrays: Mapping[tuple[str, str], pa.Array]) -> pa.Array:
        return self.fn(*(arrays[ref] for ref in self.refs))


@dataclass(frozen=True)
class Check:
    """A row condition: SQL for the exact read, its Arrow twin (a boolean mask, NULL = no) for the plain
    read. Unpacks as ``(reason, sql)`` like the plain tuples a query may also list; those are evaluated in
    SQL by the plain read too."""

    reason: str
    sql: str
    arrow: ArrowExpr | None = None

    def __iter__(self) -> Iterator[str]:
        return iter((self.reason, self.sql))


def _as_mask(values: pa.Array) -> pa.Array:
    return pc.fill_null(values, False)


@dataclass(frozen=True)
class Column:
    """One output column: a SQLite expression and the type it is cast to."""

    name: str
    expr: str
    type: str = "string"
    check_numeric: bool = True  # numeric columns holding text are rejected, not silently nulled
    arrow: ArrowExpr | None = None  # the plain read's twin of a computed ``expr`` (else read as it is)

    def typed_sql(self) -> str:
        e = self.expr
        if self.type == "string":
            return f"CAST({e} AS TEXT)"
        numeric = f"typeof({e}) IN ('integer', 'real')"
        if self.type == "double":
            return f"CASE WHEN {numeric} THEN CAST({e} AS REAL) END"
        return f"CASE WHEN {numeric} THEN CAST({e} AS INTEGER) END"

    def sentinel_sql(self) -> str:
        return {"string": "''", "double": "0.0"}.get(self.type, "0")

    def non_numeric_sql(self) -> str | None:
        if self.type in NUMERIC_TYPES and self.check_numeric:
            return f"typeof({self.expr}) NOT IN ('integer', 'real', 'null')"
        return None

    def plain(self) -> ArrowExpr:
        """What the plain read computes: the twin, else the expression read as it is."""
        return self.arrow or ArrowExpr(((self.expr, read_kind(self.type)),), _identity)


def _identity(values: pa.Array) -> pa.Array:
    return values


def _bad_base62(values: pa.Array) -> pa.Array:
    return _as_mask(pc.or_(pc.not_equal(pc.utf8_length(values), 22),
                           pc.match_substring_regex(values, "[^0-9A-Za-z]")))


def base62_id_rejects(expr: str, name: str, nullable: bool = False) -> list[Check]:
    """Spotify ids are 22 characters of [0-9A-Za-z]."""
    checks = [] if nullable else [null_check(f"{name} is NULL", expr)]
    malformed = f"{expr} IS NOT NULL AND (length({expr}) <> 22 OR {expr} GLOB '*[^0-9A-Za-z]*')"
    checks.append(Check(f"{name} is not a 22-character base62 id", malformed,
                        ArrowExpr(((expr, "string"),), _bad_base62)))
    return checks


@dataclass(frozen=True)
class _Outside:
    low: float
    high: float

    def __call__(self, values: pa.Array) -> pa.Array:
        return _as_mask(pc.or_(pc.less(values, self.low), pc.greater(values, self.high)))


def range_rejects(expr: str, name: str, low: float, high: float, kind: str = "long") -> Check:
    condition = f"typeof({expr}) IN ('integer', 'real') AND ({expr} < {low} OR {expr} > {high})"
    return Check(f"{name} outside {low:g}..{high:g}", condition, ArrowExpr(((expr, kind),), _Outside(low, high)))


def _any_null(*values: pa.Array) -> pa.Array:
    mask = pc.is_null(values[0])
    for more in values[1:]:
        mask = pc.or_(mask, pc.is_null(more))
    return mask


def _all_null(*values: pa.Array) -> pa.Array:
    mask = pc.is_null(values[0])
    for more in values[1:]:
        mask = pc.and_(mask, pc.is_null(more))
    return mask


def null_check(reason: str, *exprs: str | tuple[str, str], kind: str = "string", every: bool = False) -> Check:
    """Rows where any (``every``: all) of ``exprs`` is NULL; an expression may name its own read kind
    (``(expr, kind)``), else ``kind`` applies."""
    refs = tuple(e if isinstance(e, tuple) else (e, kind) for e in exprs)
    sql = (" AND " if every else " OR ").join(f"{e} IS NULL" for e, _ in refs)
    return Check(reason, sql, ArrowExpr(refs, _all_null if every else _any_null))


@dataclass(frozen=True)
class _Equals:
    value: int

    def __call__(self, values: pa.Array) -> pa.Array:
        return _as_mask(pc.equal(values, self.value))


def equals_check(reason: str, expr: str, value: int) -> Check:
    return Check(reason, f"{expr} = {value}", ArrowExpr(((expr, "long"),), _Equals(value)))


@dataclass(frozen=True)
class _NullIf:
    value: int

    def __call__(self, values: pa.Array) -> pa.Array:
        return pc.if_else(pc.equal(values, self.value), pa.scalar(None, values.type), values)


def null_if(expr: str, value: int) -> tuple[str, ArrowExpr]:
    """``NULLIF(expr, value)`` and its twin, for ``Column(name, *null_if(...), type)``-style use."""
    return f"NULLIF({expr}, {value})", ArrowExpr(((expr, "long"),), _NullIf(value))


@dataclass(frozen=True)
class KeyLookup:
    """For the plain read: columns ``{alias}.<column>`` of ``table``, whose rowid is the range key, taken by
    position from one read of the window's rowids instead of the per-row join the exact read does
    (``RangeQuery.plain_from`` then names the FROM clause without that join)."""

    alias: str
    table: str


@dataclass(frozen=True)
class RangeQuery:
    """A table (or a join inside one file) read in ranges of ``key``."""

    name: str  # the bronze table it feeds; names rejects and statistics
    db_path: str
    from_clause: str
    key: str  # an integer expression with an index: rowid, or a WITHOUT ROWID table's first PK column
    columns: tuple[Column, ...]
    rejects: tuple[tuple[str, str] | Check, ...] = ()  # (reason, condition), first match wins
    excludes: tuple[tuple[str, str] | Check, ...] = ()  # (reason, condition), rows left out by design
    key_columns: tuple[str, ...] = ()  # output columns that identify a rejected row
    where: str | None = None
    plain_from: str | None = None  # the plain read's FROM clause when ``lookups`` replace joins
    lookups: tuple[KeyLookup, ...] = ()

    def all_rejects(self) -> list[tuple[str, str]]:
        automatic = [(f"{c.name} is not numeric", c.non_numeric_sql()) for c in self.columns if c.non_numeric_sql()]
        return [*self.rejects, *automatic]  # type: ignore[list-item]

    def sql(self) -> str:
        """The exact read: every value typed and checked in SQL."""
        def case(pairs: Sequence[tuple[str, str] | Check]) -> str:
            if not pairs:
                return "NULL"
            whens = " ".join(f"WHEN {cond} THEN '{reason.replace(chr(39), chr(39) * 2)}'" for reason, cond in pairs)
            return f"CASE {whens} END"

        rejects = self.all_rejects()
        raw_fields = ", ".join(f"'{c.name}', {c.expr}" for c in self.columns)
        any_reject = " OR ".join(f"({cond})" for _, cond in rejects) or "0"
        sentinel = ", ".join(f"{c.sentinel_sql()} AS \"{c.name}\"" for c in self.columns)
        typed = ", ".join(f"{c.typed_sql()}" for c in self.columns)
        where = f" AND ({self.where})" if self.where else ""
        return (
            f"SELECT 1 AS _sentinel, {sentinel}, '' AS _exclude, '' AS _reject, '' AS _raw "
            f"UNION ALL "
            f"SELECT 0, {typed}, {case(self.excludes)}, {case(rejects)}, "
            f"CASE WHEN {any_reject} THEN json_object({raw_fields}) END "
            f"FROM {self.from_clause} WHERE {self.key} BETWEEN ? AND ?{where}"
        )

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([(c.name, ARROW_TYPES[c.type]) for c in self.columns])

    def spark_schema(self) -> Any:
        from pyspark.sql.pandas.types import from_arrow_schema

        return from_arrow_schema(self.arrow_schema())


def _checks_plain(checks: Sequence[tuple[str, str] | Check]) -> list[tuple[str, ArrowExpr]]:
    """Each check as an Arrow mask: its twin, or else its SQL condition read as a 0/1 column."""
    out = []
    for check in checks:
        reason, sql = check
        twin = check.arrow if isinstance(check, Check) else None
        out.append((reason, twin or ArrowExpr(((f"CASE WHEN {sql} THEN 1 ELSE 0 END", "long"),), _Equals(1))))
    return out


@dataclass(frozen=True)
class PlainPlan:
    """The plain read of one query: its SELECT, what each selected column is, and the lookups."""

    sql: str
    refs: tuple[tuple[str, str], ...]  # selected, in order after ``_sentinel``
    lookups: tuple[tuple[KeyLookup, str, tuple[tuple[str, str], ...]], ...]  # (lookup, its SQL, its refs)
    excludes: tuple[tuple[str, ArrowExpr], ...]
    rejects: tuple[tuple[str, ArrowExpr], ...]


def _text_columns(conn: Any, table: str) -> set[str]:
    """Columns of ``table`` with TEXT affinity (SQLite's rule: the declared type names CHAR, CLOB or TEXT,
    and no INT): they hold only text or NULL, which a plain read types exactly."""
    with contextlib.closing(conn.cursor()) as cursor:
        cursor.execute(f'PRAGMA table_info("{table}")')
        rows = cursor.fetchall()
    declared = {row[1]: (row[2] or "").upper() for row in rows}
    return {name for name, kind in declared.items()
            if "INT" not in kind and any(t in kind for t in ("CHAR", "CLOB", "TEXT"))}


def _select_sql(ref: str, kind: str, text_columns: set[str]) -> str:
    """A string read of a column that may hold numbers goes through CAST: the driver renders REAL values of
    a string column's first batch in its own format ('1.000000e-01'), not SQLite's."""
    if kind != "string" or (ref.rpartition(".")[2] in text_columns and _BARE_COLUMN.fullmatch(ref)):
        return ref
    return f"CAST({ref} AS TEXT)"


def plain_plan(query: RangeQuery, conn: Any) -> PlainPlan:
    from_clause = query.plain_from or query.from_clause
    excludes, rejects = _checks_plain(query.excludes), _checks_plain(query.rejects)
    wanted: dict[tuple[str, str], None] = {(query.key, "long"): None}
    for expr in (*(c.plain() for c in query.columns), *(e for _, e in excludes), *(e for _, e in rejects)):
        wanted.update(dict.fromkeys(expr.refs))
    by_alias = {lookup.alias: lookup for lookup in query.lookups}
    looked_up: dict[str, list[tuple[str, str]]] = {}
    selected = []
    for ref in wanted:
        alias, dot, _ = ref[0].partition(".")
        if dot and alias in by_alias and _BARE_COLUMN.fullmatch(ref[0]):
            looked_up.setdefault(alias, []).append(ref)
        else:
            selected.append(ref)
    words = from_clause.split()
    text_columns = _text_columns(conn, words[0]) if len(words) <= 2 else set()
    columns = ", ".join(_select_sql(ref, kind, text_columns) for ref, kind in selected)
    where = f" AND ({query.where})" if query.where else ""
    sql = f"SELECT {columns} FROM {from_clause} WHERE {query.key} BETWEEN ? AND ?{where}"
    lookups = []
    for alias, refs in looked_up.items():
        lookup = by_alias[alias]
        text = _text_columns(conn, lookup.table)
        names = [ref.partition(".")[2] for ref, _ in refs]
        body = ", ".join(_select_sql(name, kind, text) for name, (_, kind) in zip(names, refs))
        lookups.append((lookup, f"SELECT rowid, {body} FROM {lookup.table} WHERE rowid BETWEEN ? AND ?", tuple(refs)))
    return PlainPlan(sql, tuple(selected), tuple(lookups), tuple(excludes), tuple(rejects))


def _convert(values: pa.Array, column_type: str) -> pa.Array:
    """A read value (int64, float64 or string) in the column's target type."""
    if column_type == "timestamp_s":
        values = pc.multiply(values, 1_000_000)
    elif column_type == "timestamp_ms":
        values = pc.multiply(values, 1_000)
    elif column_type == "boolean":
        values = pc.not_equal(values, 0)
    return values.cast(ARROW_TYPES[column_type])


def _to_target(batch: pa.RecordBatch, query: RangeQuery) -> pa.RecordBatch:
    arrays = [_convert(batch.column(c.name), c.type) for c in query.columns]
    return pa.RecordBatch.from_arrays(arrays, schema=query.arrow_schema())


@dataclass
class RangeStats:
    read: int = 0
    kept: int = 0
    excluded: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    noted: dict[str, int] = field(default_factory=dict)  # kept rows worth a mention (see LinkResolver)
    read_exactly: int = 0  # rows of windows the plain read could not type (read by the exact SQL)

    def add(self, other: RangeStats) -> None:
        self.read += other.read
        self.kept += other.kept
        self.read_exactly += other.read_exactly
        for mine, theirs in ((self.excluded, other.excluded), (self.rejected, other.rejected),
                             (self.noted, other.noted)):
            for reason, count in theirs.items():
                mine[reason] = mine.get(reason, 0) + count

    def to_dict(self) -> dict[str, Any]:
        return {"read": self.read, "kept": self.kept, "excluded": self.excluded, "rejected": self.rejected,
                "noted": self.noted, "read_exactly": self.read_exactly}


def count_reasons(values: pa.Array, into: dict[str, int]) -> None:
    for item in pc.value_counts(values.drop_null()).to_pylist():
        into[item["values"]] = into.get(item["values"], 0) + item["counts"]


RangeChunk = tuple[pa.RecordBatch, list[dict[str, Any]], RangeStats]


def _first_reason(checks: Sequence[tuple[str, ArrowExpr]], arrays: Mapping[tuple[str, str], pa.Array],
                  rows: int) -> pa.Array | None:
    """The reason of the first check each row meets (NULL: none); None when no row meets any."""
    hits = [(reason, mask) for reason, mask in ((r, e(arrays)) for r, e in checks) if pc.any(mask).as_py()]
    if not hits:
        return None
    reason = pa.nulls(rows, pa.string())
    for text, mask in reversed(hits):
        reason = pc.if_else(mask, pa.scalar(text), reason)
    return reason


def _as_read(values: pa.ChunkedArray, kind: str) -> pa.Array | None:
    """A column as the plain read asked for it, or None when the driver typed it otherwise. The driver types
    each column from its values: an all-NULL column comes as int64 (any kind then), a REAL column holding
    only integers in a window as int64 (cast exactly, as SQLite's CAST AS REAL); text where a number was
    asked, or REAL where an integer was, is for the exact read."""
    values = values.chunk(0) if values.num_chunks == 1 else values.combine_chunks()  # one batch: no copy
    wanted = READ_KINDS[kind]
    if values.type == wanted:
        return values
    if values.null_count == len(values):
        return pa.nulls(len(values), wanted)
    if kind == "double" and values.type == pa.int64():
        return values.cast(pa.float64())
    return None


def _fetch(cursor: Any, sql: str, low: int, high: int, kinds: Sequence[str]) -> list[pa.Array] | None:
    """The columns of one plain SELECT as asked (``_as_read``); None when the driver cannot give them so."""
    import adbc_driver_sqlite.dbapi as adbc

    try:
        cursor.execute(sql, (low, high))
        table = cursor.fetch_arrow_table()
    except (adbc.Error, OSError, pa.ArrowException):
        return None
    columns = [_as_read(table.column(i), kind) for i, kind in enumerate(kinds)]
    return None if any(c is None for c in columns) else columns  # type: ignore[return-value]


def _read_plain(cursor: Any, plan: PlainPlan, query: RangeQuery, low: int, high: int) -> RangeChunk | None:
    """One window by the plain read; None when it must be read exactly."""
    columns = _fetch(cursor, plan.sql, low, high, [kind for _, kind in plan.refs])
    if columns is None:
        return None
    arrays: dict[tuple[str, str], pa.Array] = dict(zip(plan.refs, columns))
    rows = len(columns[0])
    for _, sql, refs in plan.lookups:
        side = _fetch(cursor, sql, low, high, ["long", *(kind for _, kind in refs)])
        if side is None:
            return None
        positions = np.full(high - low + 1, -1, dtype=np.int64)
        positions[side[0].to_numpy() - low] = np.arange(len(side[0]))
        keys = arrays[(query.key, "long")].to_numpy(zero_copy_only=False)
        found = positions[keys - low]
        take = pa.array(found, mask=found < 0)
        for i, ref in enumerate(refs):
            arrays[ref] = side[i + 1].take(take)
    stats = RangeStats(read=rows)
    keep = None
    excluded = _first_reason(plan.excludes, arrays, rows)
    if excluded is not None:
        count_reasons(excluded, stats.excluded)
        keep = pc.is_null(excluded)
    values = {c.name: c.plain()(arrays) for c in query.columns}
    rejected_rows: list[dict[str, Any]] = []
    reasons = _first_reason(plan.rejects, arrays, rows)
    if reasons is not None:
        if keep is not None:
            reasons = pc.if_else(keep, reasons, pa.scalar(None, pa.string()))
        bad = pc.is_valid(reasons)
        if pc.any(bad).as_py():
            count_reasons(reasons, stats.rejected)
            names = [c.name for c in query.columns]
            picked = pa.table({**{n: values[n].filter(bad) for n in names}, "_reject": reasons.filter(bad)})
            for row in picked.to_pylist():
                raw = {n: row[n] for n in names}
                rejected_rows.append({**row, "_raw": json.dumps(raw, separators=(",", ":"), ensure_ascii=False,
                                                               default=str)})
            good = pc.invert(bad)
            keep = good if keep is None else pc.and_(keep, good)
    if keep is not None:
        values = {name: array.filter(keep) for name, array in values.items()}
    batch = pa.RecordBatch.from_arrays([_convert(values[c.name], c.type) for c in query.columns],
                                       schema=query.arrow_schema())
    stats.kept = batch.num_rows
    return batch, rejected_rows, stats


def _read_exact(cursor: Any, query: RangeQuery, low: int, high: int) -> Iterator[RangeChunk]:
    cursor.execute(query.sql(), (low, high))
    for batch in cursor.fetch_record_batch():
        batch = batch.filter(pc.equal(batch.column("_sentinel"), 0))
        stats = RangeStats(read=batch.num_rows, read_exactly=batch.num_rows)
        excluded = pc.is_valid(batch.column("_exclude"))
        count_reasons(batch.column("_exclude"), stats.excluded)
        included = batch.filter(pc.invert(excluded))
        bad = pc.is_valid(included.column("_reject"))
        rejected: list[dict[str, Any]] = []
        if pc.any(bad).as_py():
            count_reasons(included.column("_reject"), stats.rejected)
            rejected = included.filter(bad).to_pylist()
            included = included.filter(pc.invert(bad))
        stats.kept = included.num_rows
        yield _to_target(included, query), rejected, stats


def _cursor(conn: Any, batch_rows: int) -> Any:
    cursor = conn.cursor()
    cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(batch_rows)})
    return cursor


def read_range(query: RangeQuery, low: int, high: int, plain: bool = True) -> Iterator[RangeChunk]:
    """Stream one key range: (good rows in the target schema, rejected rows as dicts, counts). Windows are
    read plainly where the driver can type them, else exactly (``plain=False``: every window exactly)."""
    import adbc_driver_sqlite.dbapi as adbc

    uri = f"file:{Path(query.db_path).resolve()}?mode=ro&immutable=1"
    with adbc.connect(uri) as conn, contextlib.ExitStack() as cursors:
        fast = cursors.enter_context(contextlib.closing(_cursor(conn, PLAIN_BATCH_ROWS)))
        exact = None
        plan = plain_plan(query, conn) if plain else None
        start, keys, rows_per_key = low, FIRST_WINDOW_KEYS, None
        while start <= high:
            end = min(high, start + keys - 1)
            chunk = _read_plain(fast, plan, query, start, end) if plan is not None else None
            if chunk is not None:
                yield chunk
                read = chunk[2].read
            else:
                if plan is not None:  # a failed statement leaves its cursor in no known state
                    fast = cursors.enter_context(contextlib.closing(_cursor(conn, PLAIN_BATCH_ROWS)))
                if exact is None:
                    exact = cursors.enter_context(contextlib.closing(_cursor(conn, ADBC_BATCH_ROWS)))
                read = 0
                for chunk in _read_exact(exact, query, start, end):
                    read += chunk[2].read
                    yield chunk
            if rows_per_key is None:
                rows_per_key = max(read, 1) / (end - start + 1)
                keys = max(1, int(WINDOW_ROWS / rows_per_key))
            start = end + 1


# ----------------------------------------------------------------------------------------------
# Range planning


def key_bounds(db_path: str, from_clause: str, key: str) -> tuple[int, int] | None:
    """(min, max) of an indexed key: two queries, since SQLite answers a lone min() or max() from the index
    but scans the whole table for both in one SELECT (1.9 s on 7.4M playlist rows, against milliseconds)."""
    with contextlib.closing(connect_readonly(db_path)) as conn:
        low = conn.execute(f"SELECT min({key}) FROM {from_clause}").fetchone()[0]
        high = conn.execute(f"SELECT max({key}) FROM {from_clause}").fetchone()[0]
    return None if low is None else (int(low), int(high))


def key_density(db_path: str, table: str, key: str, low: int, high: int, samples: int = 3) -> float:
    """Rows per key value, from a few indexed counts (≈1 for rowid tables, the mean playlist length
    for playlist_tracks), so planning costs milliseconds even on a 116 GB file."""
    span = high - low + 1
    window = max(1, min(span, 1000))
    starts = sorted({low + (span - window) * i // max(1, samples - 1) for i in range(samples)})
    with contextlib.closing(connect_readonly(db_path)) as conn:
        counted = sum(
            conn.execute(f"SELECT count(*) FROM {table} WHERE {key} BETWEEN ? AND ?", (start, start + window - 1)
                         ).fetchone()[0]
            for start in starts
        )
    return max(counted / (window * len(starts)), 1e-9)


def plan_ranges(db_path: str, table: str, key: str, rows_per_task: int) -> list[tuple[int, int]]:
    """Split ``table`` into key ranges of about ``rows_per_task`` rows each."""
    return [(low, high) for low, high, _ in plan_ranges_with_rows(db_path, table, key, rows_per_task)]


def plan_ranges_with_rows(db_path: str, table: str, key: str, rows_per_task: int) -> list[tuple[int, int, int]]:
    """(low, high, estimated rows) per range; the estimate orders the tasks, largest first."""
    bounds = key_bounds(db_path, table, key)
    if bounds is None:
        return []
    low, high = bounds
    density = key_density(db_path, table, key, low, high)
    span = high - low + 1
    keys_per_task = max(1, int(rows_per_task / density))
    tasks = max(1, math.ceil(span / keys_per_task))
    step = math.ceil(span / tasks)
    ranges = [(start, min(high, start + step - 1)) for start in range(low, high + 1, step)]
    return [(lo, hi, max(1, round((hi - lo + 1) * density))) for lo, hi in ranges]


# ----------------------------------------------------------------------------------------------
# Distributed reads: every range of every table is one task that writes one Parquet file


class LinkResolver(Protocol):
    """Resolves links inside a reading task (a lookup small enough for every worker to hold).

    Called per Arrow batch of good rows; returns the batch in ``output_schema`` (the rows kept), the rows
    that must be quarantined (dicts with ``_reject`` set to the reason) and counts worth noting."""

    def output_schema(self, schema: pa.Schema) -> pa.Schema: ...

    def __call__(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, list[dict[str, Any]], dict[str, int]]: ...


class RangeSource(Protocol):
    """What ``land_ranges`` runs: ranges (low, high, estimated rows) of one source, each read into Arrow
    chunks (rows kept, rows quarantined, counts) and written to ``data_dir``. ``Landing`` reads SQLite;
    jobs/ingest/musicbrainz.py reads mbdump COPY files by byte ranges."""

    ranges: tuple[tuple[int, int, int], ...]
    data_dir: str

    @property
    def name(self) -> str: ...

    @property
    def source(self) -> str: ...

    @property
    def key_columns(self) -> tuple[str, ...]: ...

    @property
    def arrow_schema(self) -> pa.Schema: ...

    def chunks(self, low: int, high: int) -> Iterator[RangeChunk]: ...


@dataclass(frozen=True)
class Landing:
    """One query read to zstd Parquet: its key ranges and the folder its files go to. (Intermediate files
    could use a cheaper codec, but measured on 21.7M rows none and snappy were no faster than zstd.)"""

    query: RangeQuery
    ranges: tuple[tuple[int, int, int], ...]  # (low, high, estimated rows)
    data_dir: str
    resolver: LinkResolver | None = None

    @property
    def name(self) -> str:
        return self.query.name

    @property
    def source(self) -> str:
        return self.query.db_path

    @property
    def key_columns(self) -> tuple[str, ...]:
        return self.query.key_columns

    @property
    def arrow_schema(self) -> pa.Schema:
        schema = self.query.arrow_schema()
        return self.resolver.output_schema(schema) if self.resolver else schema

    def chunks(self, low: int, high: int) -> Iterator[RangeChunk]:
        for good, bad, stats in read_range(self.query, low, high):
            if self.resolver is not None:
                good, unresolved, noted = self.resolver(good)
                stats.kept -= len(unresolved)
                for row in unresolved:
                    stats.rejected[row[REJECT_COLUMN]] = stats.rejected.get(row[REJECT_COLUMN], 0) + 1
                for what, count in noted.items():
                    stats.noted[what] = stats.noted.get(what, 0) + count
                bad = [*bad, *unresolved]
            yield good, bad, stats


def _write_stats(stats_dir: str, name: str, range_id: int, stats: RangeStats) -> None:
    storage.write_bytes(posixpath.join(stats_dir, f"{name}-r{range_id:06d}.json"), json.dumps(stats.to_dict()).encode())


def collect_stats(stats_dir: str, name: str) -> RangeStats:
    """Sum the per-range statistics of one query (one file per range, so retries do not double count)."""
    total = RangeStats()
    for entry in storage.list_names(stats_dir, ".json"):
        if entry.startswith(f"{name}-r"):
            data = json.loads(storage.read_bytes(posixpath.join(stats_dir, entry)))
            total.add(RangeStats(data["read"], data["kept"], data["excluded"], data["rejected"],
                                 data.get("noted", {}), data.get("read_exactly", 0)))
    return total


def _run_range(landing: RangeSource, sink: RejectSink, stats_dir: str, range_id: int, low: int, high: int
               ) -> Iterator[pa.RecordBatch]:
    total = RangeStats()
    rejected: list[dict[str, Any]] = []
    for good, bad, stats in landing.chunks(low, high):
        total.add(stats)
        rejected.extend(bad)
        if good.num_rows:
            yield good
    sink.write(landing.name, f"r{range_id:06d}", rejected, landing.source, landing.key_columns)
    _write_stats(stats_dir, landing.name, range_id, total)


def land_range(landing: RangeSource, sink: RejectSink, stats_dir: str, range_id: int, low: int, high: int) -> int:
    """What one task does: read one range and write it to ``part-r<range>.parquet`` in ``landing.data_dir``
    (a local path, shared mount or object store; a retried task replaces its own file), its rejects to
    ``sink`` and its counts to ``stats_dir``. A range without rows leaves no file."""
    target = posixpath.join(landing.data_dir, f"part-r{range_id:06d}.parquet")
    rows = 0
    with storage.atomic_output(target) as out:
        with pq.ParquetWriter(out.path, landing.arrow_schema, filesystem=out.fs, **PARQUET_OPTIONS) as writer:
            pending: list[pa.RecordBatch] = []
            for good in _run_range(landing, sink, stats_dir, range_id, low, high):
                pending.append(good)
                rows += good.num_rows
                if sum(b.num_rows for b in pending) >= ROW_GROUP_ROWS:
                    writer.write_table(pa.Table.from_batches(pending))
                    pending = []
            if pending:
                writer.write_table(pa.Table.from_batches(pending))
        out.keep = rows > 0
    return rows


def land_ranges(spark: Any, landings: Sequence[RangeSource], sink: RejectSink, stats_dir: str) -> dict[str, int]:
    """Read every range of every landing in one Spark job and write it to Parquet with pyarrow.

    Spark only schedules: one task per range, largest first so the last tasks are short and the cores
    stay busy (tables of very different sizes share the job, so a one-range table does not hold a core
    alone). The SQLite → Arrow → Parquet path keeps the rows out of the JVM entirely. Rejected rows go
    to ``sink``, counts to ``stats_dir``; returns rows written per query name.
    """
    work = [
        (rows, index, range_id, low, high)
        for index, landing in enumerate(landings)
        for range_id, (low, high, rows) in enumerate(landing.ranges)
    ]
    if not work:
        return {}
    work.sort(key=lambda item: -item[0])
    tasks = [(index, range_id, low, high) for _, index, range_id, low, high in work]

    def land(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for task in batch.column(0).to_pylist():
                index, range_id, low, high = tasks[task]
                rows = land_range(landings[index], sink, stats_dir, range_id, low, high)
                yield pa.RecordBatch.from_pydict({"landing": [index], "rows": [rows]},
                                                 schema=pa.schema([("landing", pa.int32()), ("rows", pa.int64())]))

    # One partition per task, numbered in the order above; a JVM-side range, so no Python worker
    # serialises the task list, and the few result rows come back without a shuffle.
    frame = spark.range(0, len(tasks), 1, numPartitions=len(tasks))
    written = {landing.name: 0 for landing in landings}
    for row in frame.mapInArrow(land, "landing int, rows long").collect():
        written[landings[row[0]].name] += int(row[1])
    return written
