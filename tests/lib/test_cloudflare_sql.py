"""The one literal renderer and the INSERT packer, proven by round trips through real SQLite: whatever
Unicode, numbers or bytes go in come back out, statements stay within their byte limit, and no value can
end a statement early (an injection attempt is just text)."""

from __future__ import annotations

import math
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.cloudflare.sql import INT64_MAX, INT64_MIN, SqlRenderError, insert_statements, literal, row_literal

NASTY = ["'); DROP TABLE x; --", "\x00", "a\x00b", "\\", "\\'", "''", "😀🎵", "\n;\n", ";\n", "\r\n", "\u2028",
         "X'00'", "CAST(1 AS TEXT)", "--", "/*"]
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=INT64_MIN, max_value=INT64_MAX),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40), st.binary(max_size=40),
    st.sampled_from(NASTY),
)


def expected(value):
    """What SQLite hands back for a value publish renders."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def fresh() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (a, b, c)")  # no declared types: values keep their own type
    conn.execute("CREATE TABLE x (y)")
    return conn


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(VALUES, VALUES, VALUES), min_size=1, max_size=40))
def test_insert_file_round_trips_through_sqlite(rows):
    limit = 3000
    statements = list(insert_statements("t", ["a", "b", "c"], [row_literal(r) for r in rows], limit))
    assert sum(n for _, n in statements) == len(rows)
    for statement, count in statements:
        assert len(statement.encode()) <= limit
        assert len(statement.split("\n")) == count + 1  # one line per row: no literal holds a newline
    conn = fresh()
    conn.executescript("".join(s + "\n" for s, _ in statements))
    got = conn.execute("SELECT a, b, c FROM t ORDER BY rowid").fetchall()
    assert got == [tuple(expected(v) for v in row) for row in rows]
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'x'").fetchone() == (1,)


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_each_literal_is_one_value_of_the_right_type(value):
    conn = fresh()
    got = conn.execute(f"SELECT {literal(value)}").fetchone()
    assert got == (expected(value),)
    if isinstance(value, float) and math.isfinite(value):
        assert isinstance(got[0], float) and got[0] == value
    if isinstance(value, str):
        assert conn.execute(f"SELECT typeof({literal(value)})").fetchone() == ("text",)


def test_refuses_what_sqlite_cannot_hold_exactly():
    with pytest.raises(SqlRenderError, match="64-bit"):
        literal(2**63)
    with pytest.raises(SqlRenderError, match="surrogate"):
        literal("bad \ud800 text")
    with pytest.raises(SqlRenderError, match="no SQL literal"):
        literal(object())
    with pytest.raises(SqlRenderError, match="more than one 200-byte statement"):
        list(insert_statements("t", ["a"], [row_literal(["x" * 300])], 200))
    with pytest.raises(SqlRenderError, match="identifier"):
        list(insert_statements("t; DROP TABLE x", ["a"], ["(1)"]))
