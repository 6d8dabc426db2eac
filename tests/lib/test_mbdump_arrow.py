"""The Arrow reader of mbdump COPY text (what ingest uses) against the Spark reader (``read_table``): the same
lines, typed values and reasons, on generated lines and on the edge cases of Spark's text source and casts."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from lib.sources import mbdump
from tests.lib.test_properties_mbdump import COLUMNS, LINES, RAW_FIELD
from tests.support.properties import SPARK

KINDS = [("id", "long"), ("gid", "string"), ("name", "string"), ("artist_credit", "int"), ("length", "long"),
         ("comment", "string"), ("video", "boolean")]


def _both(spark, data: bytes, columns=KINDS, split_bytes: int = mbdump.SPLIT_BYTES, block_bytes: int = 1 << 20):
    """(Spark rows, Arrow rows) of a recording file holding ``data``, each row a tuple of the columns,
    ``_reject`` and ``_line``; the Arrow reader in ranges of ``split_bytes`` and blocks of ``block_bytes``."""
    with tempfile.TemporaryDirectory(prefix="mbdump-arrow-") as folder:
        path = Path(folder) / "recording"
        path.write_bytes(data)
        dump = mbdump.MbDump(Path(folder), "31", 31)
        names = [name for name, _ in columns]
        frame = mbdump.read_table(spark, dump, "recording", columns)
        spark_rows = [tuple(row[n] for n in [*names, "_reject", "_line"]) for row in frame.collect()]
        arrow_rows = []
        for start, end, _ in mbdump.plan_splits(path, split_bytes):
            for lines in mbdump.read_lines(path, start, end, block_bytes):
                typed, reject = mbdump.parse_lines(lines, dump, "recording", columns)
                table = pa.table({**typed, "_reject": reject, "_line": lines})
                arrow_rows.extend(tuple(row.values()) for row in table.to_pylist())
    return spark_rows, arrow_rows


@SPARK
@given(LINES, st.sampled_from([7, 64, 1 << 20]))
def test_arrow_reader_gives_what_spark_gives_on_any_lines(spark, lines, split_bytes):
    spark_rows, arrow_rows = _both(spark, "".join(line + "\n" for line in lines).encode(), split_bytes=split_bytes,
                                   block_bytes=max(8, split_bytes // 2))
    assert arrow_rows == spark_rows


NUMBERS = [" 12", "12 ", "+12", "-0", "1.5", "1.", ".5", "1e3", "0x10", "", " ", "\u00a012", "\u200912", "\\b12",
           "12\\v", "\x0112", "\x1f12", "\x7f0", "12\x7f", "\x7f", "\x800", "\u008512",
           "9223372036854775807", "9223372036854775808", "-9223372036854775808",
           "-9223372036854775809", "2147483647", "2147483648", "-2147483648", "-2147483649", "-", "+", "+-1",
           "00012", "-00000000000000000000012", "１２", "12a", "1_000", "\u3000 12", "\\N"]


@SPARK
@given(st.lists(st.sampled_from(NUMBERS), min_size=5, max_size=30), st.lists(RAW_FIELD, min_size=5, max_size=30))
def test_integer_casts_and_booleans_follow_spark(spark, numbers, texts):
    flags = texts + ["t", "f"] * 30
    lines = [f"{a}\tg\tn\t{b}\t{a}\tc\t0\t\\N\t{t}" for a, b, t in zip(numbers, reversed(numbers), flags)]
    spark_rows, arrow_rows = _both(spark, "".join(line + "\n" for line in lines).encode())
    assert arrow_rows == spark_rows


def test_line_ends_and_empty_lines_as_spark_splits_them(spark):
    fields = "\t".join(["1", *(["x"] * (len(COLUMNS) - 1))])
    data = f"{fields}\r{fields}\r\n\n{fields}\n\r\r{fields}".encode()
    for split_bytes in (3, 10, 1 << 20):
        spark_rows, arrow_rows = _both(spark, data, split_bytes=split_bytes, block_bytes=16)
        assert arrow_rows == spark_rows
    assert [row[-1] for row in spark_rows] == [fields, fields, "", fields, "", "", fields]
    assert _both(spark, b"") == ([], [])


def test_escapes_as_spark_reads_them(spark):
    """Backslash sequences COPY writes and ones it never writes, NULL and its lookalikes."""
    texts = ["trailing\\", "\\q", "a\\Nb", "\\\\N", "\\\\", "\\\\\\", "\\t\\b\\f\\v\\r\\n", "\\N", "N", "", "é\\人",
             "\\\\\\t", "\\\\q"]
    lines = [f"{i}\t{text}\t{text}\t1\t\\N\t{text}\t0\t\\N\tt" for i, text in enumerate(texts)]
    spark_rows, arrow_rows = _both(spark, "".join(line + "\n" for line in lines).encode())
    assert arrow_rows == spark_rows
    assert sum(row[-2] is not None for row in spark_rows) == 5
