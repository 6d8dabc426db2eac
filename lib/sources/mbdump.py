"""The MusicBrainz full export: locate ``mbdump/`` (or unpack it from ``mbdump.tar.bz2``), detect the
``isrc`` layout, and read PostgreSQL ``COPY … TO stdout`` text files with Spark built-ins.

COPY text format: one row per line, TAB between fields, ``\\N`` for NULL, and inside values the escapes
``\\\\``, ``\\t``, ``\\n``, ``\\r``, ``\\b``, ``\\f``, ``\\v`` (PostgreSQL's COPY TO emits no other). Unescaping
is done without regular expressions: ``\\\\`` first becomes U+0000 (a character PostgreSQL text cannot
hold), then the single-letter escapes are replaced, then U+0000 becomes ``\\``. A naive TAB split
without this corrupts titles that contain tabs or backslashes. A string field with any other backslash
sequence (``\\q``, ``a\\Nb``, a trailing ``\\``) is not COPY TO output: its line is rejected, not decoded.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib.errors import InputError

TABLES = ("isrc", "recording", "artist_credit", "artist_credit_name", "artist")
META_FILES = ("SCHEMA_SEQUENCE", "TIMESTAMP", "REPLICATION_SEQUENCE")
# Schema sequence 31 (2026-05) dropped isrc.source; earlier dumps have it as the 4th column.
ISRC_SOURCE_DROPPED_IN = 31

# Column layouts (names in file order) of the tables we read; '*' columns are kept, others skipped.
LAYOUTS: dict[str, tuple[str, ...]] = {
    "isrc": ("id", "recording", "isrc", "edits_pending", "created"),
    "isrc_legacy": ("id", "recording", "isrc", "source", "edits_pending", "created"),
    "recording": ("id", "gid", "name", "artist_credit", "length", "comment", "edits_pending", "last_updated", "video"),
    "artist_credit": ("id", "name", "artist_count", "ref_count", "created", "edits_pending", "gid"),
    "artist_credit_name": ("artist_credit", "position", "artist", "name", "join_phrase"),
    "artist": (
        "id", "gid", "name", "sort_name", "begin_date_year", "begin_date_month", "begin_date_day",
        "end_date_year", "end_date_month", "end_date_day", "type", "area", "gender", "comment",
        "edits_pending", "last_updated", "ended", "begin_area", "end_area",
    ),
}
# Older artist_credit dumps end before gid; readers accept a known prefix of columns for these.
MIN_COLUMNS = {"artist_credit": 6}


@dataclass(frozen=True)
class MbDump:
    folder: Path
    isrc_layout: str  # "31" or "legacy"
    schema_sequence: int | None

    def table_file(self, table: str) -> Path:
        for name in (table, f"{table}_sanitised"):
            if (self.folder / name).is_file():
                return self.folder / name
        raise InputError(f"{self.folder}: MusicBrainz table file '{table}' is missing")


def _extract(archive: Path, work_dir: Path) -> Path:
    """Unpack only the tables we read (and the metadata files) from mbdump.tar.bz2, once."""
    target = work_dir / "mbdump"
    marker = work_dir / "mbdump.unpacked.json"
    stat = archive.stat()
    identity = {"source": str(archive.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if marker.exists() and target.is_dir():
        with contextlib.suppress(ValueError, OSError):
            if json.loads(marker.read_text()) == identity:
                return target
    wanted = {*TABLES, *(f"{t}_sanitised" for t in TABLES), *META_FILES}
    partial = work_dir / "mbdump.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                name = Path(member.name).name
                if member.isfile() and name in wanted:
                    source = tar.extractfile(member)
                    assert source is not None
                    with source, (partial / name).open("wb") as out:
                        shutil.copyfileobj(source, out, 8 << 20)
    except (tarfile.TarError, OSError, EOFError) as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise InputError(f"{archive}: cannot unpack ({exc})") from None
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    marker.write_text(json.dumps(identity))
    return target


def locate(musicbrainz_dir: Path, work_dir: Path) -> MbDump:
    """Find the dump: ``<dir>/mbdump/``, the table files in ``<dir>`` itself, or ``<dir>/mbdump.tar.bz2``."""
    candidates = [musicbrainz_dir / "mbdump", musicbrainz_dir]
    # A folder holding any of the table files is the dump, so a missing file is named rather than the folder.
    folder = next((c for c in candidates if c.is_dir() and any(_has_table(c, t) for t in TABLES)), None)
    if folder is None:
        archives = sorted(musicbrainz_dir.glob("mbdump*.tar.bz2")) if musicbrainz_dir.is_dir() else []
        archive = archives[0] if archives else None
        if archive is None:
            raise InputError(f"{musicbrainz_dir}: no mbdump/ folder and no mbdump.tar.bz2 found")
        folder = _extract(archive, work_dir)
    for table in TABLES:
        if not _has_table(folder, table):
            raise InputError(f"{folder}: MusicBrainz table file '{table}' is missing")
    sequence = None
    sequence_file = folder / "SCHEMA_SEQUENCE"
    if sequence_file.is_file():
        with contextlib.suppress(ValueError):
            sequence = int(sequence_file.read_text().strip())
    dump = MbDump(folder, "31", sequence)
    layout = _isrc_layout(dump, sequence)
    return MbDump(folder, layout, sequence)


def _has_table(folder: Path, table: str) -> bool:
    return (folder / table).is_file() or (folder / f"{table}_sanitised").is_file()


def _isrc_layout(dump: MbDump, sequence: int | None) -> str:
    """SCHEMA_SEQUENCE decides when present; otherwise the first line's column count does."""
    if sequence is not None:
        return "31" if sequence >= ISRC_SOURCE_DROPPED_IN else "legacy"
    with dump.table_file("isrc").open("rb") as handle:
        first = handle.readline().rstrip(b"\n")
    if not first:
        return "31"
    fields = first.count(b"\t") + 1
    if fields == len(LAYOUTS["isrc"]):
        return "31"
    if fields == len(LAYOUTS["isrc_legacy"]):
        return "legacy"
    raise InputError(f"{dump.table_file('isrc')}: first line has {fields} columns; expected 5 (schema 31) or 6")


_PLACEHOLDER = "\u0000"
_ESCAPES = (("\\t", "\t"), ("\\n", "\n"), ("\\r", "\r"), ("\\b", "\b"), ("\\f", "\f"), ("\\v", "\v"))


def _hide_backslashes(column: Any) -> Any:
    """``\\\\`` → U+0000, so what remains of a backslash can only start a one-letter escape."""
    from pyspark.sql import functions as F

    return F.replace(column, F.lit("\\\\"), F.lit(_PLACEHOLDER))


def unescape(column: Any) -> Any:
    """A COPY text field as a Spark string column: ``\\N`` → NULL, escapes undone (built-ins only)."""
    from pyspark.sql import functions as F

    value = _hide_backslashes(column)
    for escape, char in _ESCAPES:
        value = F.replace(value, F.lit(escape), F.lit(char))
    value = F.replace(value, F.lit(_PLACEHOLDER), F.lit("\\"))
    return F.when(column == F.lit("\\N"), F.lit(None).cast("string")).otherwise(value)


def bad_escape(column: Any) -> Any:
    """True when a raw field holds a backslash sequence COPY TO never writes (``\\q``, ``a\\Nb``, a trailing
    ``\\``): such a line is not COPY output, and keeping the backslash would pass corrupt text on silently.
    The cheap ``contains`` runs first; only fields with a backslash reach the regular expression."""
    from pyspark.sql import functions as F

    letters = "".join(escape[1] for escape, _ in _ESCAPES)
    return (column.contains("\\") & (column != F.lit("\\N"))
            & _hide_backslashes(column).rlike(f"\\\\(?![{letters}])"))


def read_table(spark: Any, dump: MbDump, table: str, columns: Sequence[tuple[str, str]]) -> Any:
    """Read ``table`` as strings split into its layout's fields, returning the requested
    ``(name, spark type)`` columns plus ``_reject`` (why a line is malformed, else NULL) and
    ``_line`` (the raw line, for the quarantine)."""
    from pyspark.sql import functions as F

    layout_name = "isrc_legacy" if table == "isrc" and dump.isrc_layout == "legacy" else table
    layout = LAYOUTS[layout_name]
    path = dump.table_file(table)
    lines = spark.read.text(str(path)).withColumnRenamed("value", "_line")
    fields = F.split(F.col("_line"), "\t", -1)
    count = F.size(fields)
    minimum = MIN_COLUMNS.get(table, len(layout))
    projected = []
    reasons = [F.when((count < minimum) | (count > len(layout)),
                      F.concat(F.lit(f"expected {len(layout)} tab-separated fields, got "), count.cast("string")))]
    for name, spark_type in columns:
        field = F.get(fields, layout.index(name))
        raw = unescape(field)
        if spark_type == "boolean":
            typed = F.when(raw == "t", F.lit(True)).when(raw == "f", F.lit(False))
            reasons.append(F.when(raw.isNotNull() & typed.isNull(), F.lit(f"{name} is not t/f")))
        elif spark_type == "string":
            typed = raw
            reasons.append(F.when(bad_escape(field), F.lit(f"{name} has a backslash sequence COPY does not write")))
        else:
            typed = raw.try_cast(spark_type)
            reasons.append(F.when(raw.isNotNull() & typed.isNull(), F.lit(f"{name} is not {spark_type}")))
        projected.append(typed.alias(name))
    reject = F.coalesce(*reasons) if len(reasons) > 1 else reasons[0]
    return lines.select(*projected, reject.alias("_reject"), "_line")


# ----------------------------------------------------------------------------------------------
# The Arrow reader ingest uses: the rows and reasons of ``read_table`` (tests/lib/test_mbdump_arrow.py
# compares the two on generated lines), computed with pyarrow in a task instead of a Spark plan per table.
# A Spark plan costs seconds of analysis and code generation per table even on a few hundred rows; the
# Arrow reader costs milliseconds there and reads the full dump's files in parallel byte ranges.

SPLIT_BYTES = 128 << 20  # bytes of a file per task
BLOCK_BYTES = 32 << 20  # bytes parsed at once inside a task (whole lines)
# Spark's string → integer cast trims these (UTF8String.trimAll: Character.isWhitespace or isISOControl of
# each *byte*, so U+0000–U+0020 and U+007F; the C1 controls U+0080–U+009F are two UTF-8 bytes and stay) and
# accepts an optional sign and ASCII digits only.
_CAST_TRIM = "".join(chr(c) for c in range(0x21)) + "\x7f"
_INTEGER_RANGES = {"long": (-(2**63), 2**63 - 1), "int": (-(2**31), 2**31 - 1)}
ARROW_KINDS = {"string": "string", "long": "int64", "int": "int32", "boolean": "bool"}


def plan_splits(path: Path, split_bytes: int = SPLIT_BYTES) -> list[tuple[int, int, int]]:
    """(start, end, estimated lines) byte ranges of ``path``, each starting right after a ``\\n`` (a line
    start whatever the line ends are), so every line is read by exactly one range."""
    size = path.stat().st_size
    if size == 0:
        return []
    bounds = [0]
    with path.open("rb") as handle:
        sample = handle.read(1 << 16)
        bytes_per_line = len(sample) / max(1, sample.count(b"\n"))
        nominal = split_bytes
        while nominal < size:
            handle.seek(nominal)
            position = nominal
            while True:
                chunk = handle.read(1 << 16)
                newline = chunk.find(b"\n")
                if not chunk or newline >= 0:
                    break
                position += len(chunk)
            if not chunk or position + newline + 1 >= size:
                break
            bounds.append(position + newline + 1)
            nominal = bounds[-1] + split_bytes
    bounds.append(size)
    return [(a, b, max(1, round((b - a) / bytes_per_line))) for a, b in itertools.pairwise(bounds)]


def _lines(data: bytes) -> Any:
    """The lines of ``data`` (whole lines) as Spark's text source splits them: at ``\\n``, ``\\r\\n`` and
    ``\\r``, empty lines kept, no line after a final line end. Invalid UTF-8 becomes U+FFFD (Spark keeps the
    bytes; PostgreSQL writes only valid UTF-8)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        text = pa.array([data], pa.large_binary()).cast(pa.large_string())
    except pa.ArrowInvalid:
        text = pa.array([data.decode("utf-8", "replace")], pa.large_string())
    parts = pc.split_pattern_regex(text, r"\r\n|\r|\n") if b"\r" in data else pc.split_pattern(text, "\n")
    lines = parts.flatten()
    if data.endswith((b"\n", b"\r")):
        lines = lines.slice(0, len(lines) - 1)
    return lines.cast(pa.string())


def read_lines(path: Path, start: int, end: int, block_bytes: int = BLOCK_BYTES) -> Iterator[Any]:
    """The lines of bytes ``start``..``end`` of ``path`` (a range of ``plan_splits``), in blocks of whole lines."""
    with path.open("rb") as handle:
        handle.seek(start)
        remaining, carry = end - start, b""
        while remaining > 0:
            block = handle.read(min(block_bytes, remaining))
            if not block:
                break
            remaining -= len(block)
            data = carry + block
            if remaining > 0:
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    carry = data
                    continue
                data, carry = data[:cut], data[cut:]
            else:
                carry = b""
            yield _lines(data)
        if carry:
            yield _lines(carry)


def _field(values: Any, offsets: Any, counts: Any, index: int) -> Any:
    """Field ``index`` of every line (NULL where the line has fewer fields), like ``F.get``."""
    import numpy as np
    import pyarrow as pa

    inside = index < counts
    positions = np.where(inside, offsets[:-1] + index, 0)
    return values.take(pa.array(positions, mask=~inside))


def unescape_arrow(field: Any) -> Any:
    """``unescape`` in Arrow."""
    import pyarrow as pa
    import pyarrow.compute as pc

    value = pc.replace_substring(field, "\\\\", _PLACEHOLDER)
    for escape, char in _ESCAPES:
        value = pc.replace_substring(value, escape, char)
    value = pc.replace_substring(value, _PLACEHOLDER, "\\")
    return pc.if_else(pc.equal(field, "\\N"), pa.scalar(None, pa.string()), value)


def bad_escape_arrow(field: Any) -> Any:
    """``bad_escape`` in Arrow (RE2 has no lookahead: a backslash followed by no escape letter, or last)."""
    import pyarrow.compute as pc

    letters = "".join(escape[1] for escape, _ in _ESCAPES)
    hidden = pc.replace_substring(field, "\\\\", _PLACEHOLDER)
    return pc.and_(pc.and_(pc.match_substring(field, "\\"), pc.not_equal(field, "\\N")),
                   pc.match_substring_regex(hidden, f"\\\\([^{letters}]|$)"))


def spark_integer(raw: Any, kind: str) -> Any:
    """``raw.try_cast(kind)`` for ``long``/``int`` with Spark's rules: trimmed of chars <= U+0020 and U+007F,
    an optional sign and ASCII digits, NULL outside the type's range."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    trimmed = pc.utf8_trim(raw, _CAST_TRIM)
    valid = pc.fill_null(pc.match_substring_regex(trimmed, r"^[+-]?[0-9]+$"), False)
    text = pc.replace_substring_regex(pc.if_else(valid, trimmed, pa.scalar(None, pa.string())), r"^\+", "")
    low, high = _INTEGER_RANGES[kind]
    long_enough = pc.fill_null(pc.greater_equal(pc.utf8_length(text), 19), False)  # checked one by one
    if pc.any(long_enough).as_py():
        values = text.to_pylist()
        for i in np.flatnonzero(long_enough.to_numpy(zero_copy_only=False)):
            values[i] = values[i] if low <= int(values[i]) <= high else None
        text = pa.array(values, pa.string())
    numbers = text.cast(pa.int64())
    if kind == "int":
        inside = pc.and_(pc.greater_equal(numbers, low), pc.less_equal(numbers, high))
        numbers = pc.if_else(inside, numbers, pa.scalar(None, pa.int64())).cast(pa.int32())
    return numbers


def parse_lines(lines: Any, dump: MbDump, table: str, columns: Sequence[tuple[str, str]]) -> tuple[dict[str, Any], Any]:
    """``read_table`` on Arrow lines: ({column: typed values}, the reason a line is malformed or NULL)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    layout_name = "isrc_legacy" if table == "isrc" and dump.isrc_layout == "legacy" else table
    layout = LAYOUTS[layout_name]
    minimum = MIN_COLUMNS.get(table, len(layout))
    lists = pc.split_pattern(lines, "\t")
    offsets = np.asarray(lists.offsets)
    values, counts = lists.values, np.diff(offsets)
    no_reason = pa.scalar(None, pa.string())
    reasons = []
    wrong_count = (counts < minimum) | (counts > len(layout))
    if wrong_count.any():
        said = pc.binary_join_element_wise(f"expected {len(layout)} tab-separated fields, got ",
                                           pa.array(counts).cast(pa.string()), "")
        reasons.append(pc.if_else(pa.array(wrong_count), said, no_reason))
    typed: dict[str, Any] = {}
    for name, spark_type in columns:
        field = _field(values, offsets, counts, layout.index(name))
        raw = unescape_arrow(field)
        if spark_type == "boolean":
            value = pc.if_else(pc.equal(raw, "t"), True,
                               pc.if_else(pc.equal(raw, "f"), False, pa.scalar(None, pa.bool_())))
            bad, why = pc.and_(pc.is_valid(raw), pc.is_null(value)), f"{name} is not t/f"
        elif spark_type == "string":
            value, bad, why = raw, bad_escape_arrow(field), f"{name} has a backslash sequence COPY does not write"
        else:
            value = spark_integer(raw, spark_type)
            bad, why = pc.and_(pc.is_valid(raw), pc.is_null(value)), f"{name} is not {spark_type}"
        bad = pc.fill_null(bad, False)
        if pc.any(bad).as_py():
            reasons.append(pc.if_else(bad, pa.scalar(why), no_reason))
        typed[name] = value
    reject = pc.coalesce(*reasons) if reasons else pa.nulls(len(lines), pa.string())
    return typed, reject
