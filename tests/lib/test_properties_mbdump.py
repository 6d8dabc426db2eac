"""Properties of the mbdump COPY-text reader: whatever PostgreSQL's ``COPY … TO`` writes comes back as the
values it was given, and every other line is kept and reported, never dropped or silently mis-decoded.

The escaper and the validity check below follow the PostgreSQL documentation (COPY, "Text Format"), not
lib/sources/mbdump.py: NULL is written ``\\N``; a backslash is written ``\\\\``; backspace, form feed,
newline, carriage return, tab and vertical tab are written ``\\b \\f \\n \\r \\t \\v``; COPY TO emits no other
backslash sequence (no octal or hex escapes) and every other character as itself; each row ends with a
Unix newline. PostgreSQL text cannot hold U+0000, so the generated values never contain it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from lib.sources import mbdump
from tests.support.properties import SPARK

COPY_ESCAPES = {"\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
COLUMNS = mbdump.LAYOUTS["recording"]


def copy_field(value: str | None) -> str:
    """One field as COPY TO writes it in text format."""
    if value is None:
        return "\\N"
    return "".join(COPY_ESCAPES.get(char, char) for char in value)


def is_copy_field(field: str) -> bool:
    """True when COPY TO could have written ``field``: ``\\N``, or every backslash starts one of its escapes."""
    if field == "\\N":
        return True
    i = 0
    while i < len(field):
        if field[i] == "\\":
            if field[i + 1:i + 2] not in ("\\", "b", "f", "n", "r", "t", "v"):
                return False
            i += 2
        else:
            i += 1
    return True


# The characters COPY treats specially, lookalikes of its escapes, other control and line-separator
# characters, and any other character UTF-8 can encode (not surrogates).
TRICKY = st.sampled_from(["\\", "\t", "\n", "\r", "\b", "\f", "\v", "N", "\\N", "\\t", "t", "\x01", "\x1b",
                          "\x7f", "\x85", "\u2028", "é", "人", "\U0001f600"])
PIECE = st.one_of(TRICKY, st.characters(codec="utf-8", exclude_characters="\x00"))
VALUE = st.one_of(st.none(), st.lists(PIECE, max_size=10).map("".join))
ROWS = st.lists(st.lists(VALUE, min_size=len(COLUMNS) - 1, max_size=len(COLUMNS) - 1), min_size=10, max_size=40)


def _read(spark, lines: list[str]) -> list:
    """The recording table holding ``lines``, read back with every column as a string."""
    with tempfile.TemporaryDirectory(prefix="props-mbdump-") as folder:
        path = Path(folder) / "recording"
        path.write_bytes("".join(line + "\n" for line in lines).encode("utf-8"))
        dump = mbdump.MbDump(Path(folder), "31", 31)
        frame = mbdump.read_table(spark, dump, "recording", [(name, "string") for name in COLUMNS])
        return frame.collect()


@SPARK
@given(ROWS)
def test_what_copy_writes_reads_back_as_the_same_values(spark, rows):
    lines = ["\t".join([str(i), *(copy_field(v) for v in values)]) for i, values in enumerate(rows)]
    got = sorted(_read(spark, lines), key=lambda r: int(r.id))
    assert len(got) == len(rows)
    for row, values in zip(got, rows):
        assert row._reject is None, (row._line, row._reject)
        assert [row[name] for name in COLUMNS[1:]] == values


# Raw lines: any number of tab-separated fields of any text (no line breaks: they end a line), some of them
# well-formed COPY fields, others with backslashes COPY never writes ("\q", "a\Nb", a trailing "\").
RAW_PIECE = st.one_of(TRICKY.filter(lambda piece: piece not in ("\n", "\r")),
                      st.characters(codec="utf-8", exclude_characters="\x00\n\r"))
RAW_FIELD = st.one_of(VALUE.map(copy_field), st.lists(RAW_PIECE, max_size=8).map("".join))
FIELDS = st.one_of(st.lists(RAW_FIELD, min_size=len(COLUMNS), max_size=len(COLUMNS)),
                   st.lists(RAW_FIELD, max_size=len(COLUMNS) + 2))
LINES = st.lists(FIELDS.map("\t".join), min_size=10, max_size=40)


@SPARK
@given(LINES)
def test_every_line_is_kept_and_malformed_ones_are_reported(spark, lines):
    got = _read(spark, lines)
    assert sorted(r._line for r in got) == sorted(lines)  # none dropped, none split
    for row in got:
        fields = row._line.split("\t")
        well_formed = len(fields) == len(COLUMNS) and all(is_copy_field(f) for f in fields)
        assert (row._reject is None) == well_formed, (row._line, row._reject)
        if len(fields) != len(COLUMNS):
            assert row._reject == f"expected {len(COLUMNS)} tab-separated fields, got {len(fields)}"
