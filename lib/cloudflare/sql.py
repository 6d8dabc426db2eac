"""SQL text for D1 import files: ONE function renders every literal, one builder packs rows into statements.

D1's import API takes SQL text, so values must be literals (``/query`` uses bound parameters instead).
``literal`` is the only place a value becomes SQL:

- ``None`` → ``NULL``; ``bool`` → ``1``/``0``; integers as decimals (outside SQLite's 64-bit range they
  are refused, since SQLite would silently turn them into a REAL);
- floats exactly: SQLite's own text-to-double conversion is not correctly rounded (3.40, as shipped with
  Debian 12 and Python here, reads about 1 in 7,000 decimals — ``8.31994e-06`` is one — one unit in the last
  place off), but its REAL arithmetic is IEEE double. So a decimal literal only when it is the double's exact
  value (``0.5``, integers below 2^53 as ``123.0``); else the shortest decimal's digits over a power of ten,
  ``123.0/1000`` (both exact doubles, one correctly rounded division: the nearest double, the value itself);
  else, when the digits exceed 2^53 or the power 10^18, the odd significand divided (or multiplied) by powers
  of two, ``3740524296224425.0/4503599627370496`` (no rounding at all); NaN and ±∞ → ``NULL`` (SQLite has no
  NaN, and a literal ``Inf`` is not SQL);
- text in single quotes with ``'`` doubled — the only escape SQL knows (a backslash is an ordinary
  character). Text holding a control character (NUL, newline, …) is written as ``CAST(X'…' AS TEXT)``
  instead: a NUL would end the statement inside SQLite's C API, and with no newline inside any literal
  every ``;\\n`` in a file is a statement boundary, so the file is safe to split by line;
- ``bytes`` as a blob literal ``X'…'``.

``insert_statements`` packs rendered rows into multi-row ``INSERT`` statements, each at most
``D1_MAX_STATEMENT_BYTES`` (UTF-8) long — D1's most reported import failure is "statement too long".
Import files carry no ``BEGIN``/``COMMIT`` (D1's import wraps the file itself).
"""

from __future__ import annotations

import io
import math
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

from lib.cloudflare.limits import D1_MAX_STATEMENT_BYTES

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
STATEMENT_END = ";\n"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class SqlRenderError(ValueError):
    """A value or row that cannot become SQL text within D1's limits; the message says which."""


def literal(value: Any) -> str:
    """The SQL literal of one value (see the module docstring for each type)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise SqlRenderError(f"integer {value} is outside SQLite's 64-bit range")
        return str(value)
    if isinstance(value, float):
        return _real(value) if math.isfinite(value) else "NULL"
    if isinstance(value, str):
        if _CONTROL.search(value):
            return f"CAST(X'{_utf8(value).hex().upper()}' AS TEXT)"
        _utf8(value)  # refuse lone surrogates here, not in the middle of a file write
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"X'{bytes(value).hex().upper()}'"
    # numpy / pyarrow scalars arrive from Arrow batches
    item = getattr(value, "item", None)
    if callable(item):
        return literal(item())
    raise SqlRenderError(f"no SQL literal for a value of type {type(value).__name__}")


_POWER_STEP = 62  # 2**62 is the largest power of two an INTEGER literal holds
_MAX_POWER_OF_TEN = 18  # 10**18: an INTEGER literal, and an exact double


def _real(value: float) -> str:
    """A finite double as SQL text that every SQLite reads back to exactly this double."""
    if value.is_integer() and abs(value) < 2**53:
        return f"{int(value)}.0"
    text = repr(value)
    if "e" not in text and Decimal(text) == Decimal(value):
        return text  # the decimal is the double's exact value: the parser's division is exact too
    sign, digits, exponent = Decimal(text).as_tuple()
    significand = int("".join(map(str, digits)))
    if significand < 2**53 and -_MAX_POWER_OF_TEN <= int(exponent) < 0:
        return f"{'-' if sign else ''}{significand}.0/{10 ** -int(exponent)}"
    numerator, denominator = value.as_integer_ratio()  # value == numerator / 2**j, numerator odd
    if denominator == 1:  # an integer of 2**53 or more: odd significand times a power of two
        shift = (numerator & -numerator).bit_length() - 1
        significand, operator, exponent = numerator >> shift, "*", shift
    else:
        significand, operator, exponent = numerator, "/", denominator.bit_length() - 1
    parts = [f"{significand}.0"]
    while exponent > _POWER_STEP:
        parts.append(str(2**_POWER_STEP))
        exponent -= _POWER_STEP
    parts.append(str(2**exponent))
    return operator.join(parts)


def _utf8(value: str) -> bytes:
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SqlRenderError(f"text is not valid Unicode (lone surrogate at {exc.start}): {value[:40]!r}") from None


def identifier(name: str) -> str:
    """A table or column name, checked (names come from the schema, never from data)."""
    if not _IDENTIFIER.match(name):
        raise SqlRenderError(f"'{name}' is not a plain SQL identifier")
    return name


def row_literal(values: Sequence[Any]) -> str:
    """``(v1,v2,…)``: one row of a multi-row VALUES list."""
    return "(" + ",".join(literal(v) for v in values) + ")"


def insert_prefix(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {identifier(table)} ({','.join(identifier(c) for c in columns)}) VALUES\n"


def insert_statements(
    table: str,
    columns: Sequence[str],
    rows: Iterable[str],
    max_statement_bytes: int = D1_MAX_STATEMENT_BYTES,
) -> Iterator[tuple[str, int]]:
    """Multi-row INSERTs of already rendered rows (``row_literal``), each statement — including its
    terminating ``;`` — at most ``max_statement_bytes`` bytes of UTF-8. Yields (statement without the
    trailing newline, rows in it). A single row too long for any statement is an error naming the table."""
    prefix = insert_prefix(table, columns)
    base = len(prefix.encode()) + 1  # + ";"
    parts: list[str] = []
    size = base
    for row in rows:
        row_bytes = len(row.encode())
        if base + row_bytes > max_statement_bytes:
            raise SqlRenderError(
                f"a row of {table} renders to {row_bytes} bytes, more than one {max_statement_bytes}-byte "
                f"statement holds: {row[:80]}…")
        extra = row_bytes + (2 if parts else 0)  # ",\n" between rows
        if parts and size + extra > max_statement_bytes:
            yield prefix + ",\n".join(parts) + ";", len(parts)
            parts, size, extra = [], base, row_bytes
        parts.append(row)
        size += extra
    if parts:
        yield prefix + ",\n".join(parts) + ";", len(parts)


def file_statements(source: bytes | str) -> Iterator[str]:
    """The statements of an import file (its bytes, or a local file path), each ending in its ``;``, in order —
    split where SQLite itself sees a statement end (``sqlite3.complete_statement`` at each ``;\\n``), so a
    reader does not depend on how the file was built; streaming, so a file of D1's 5 GB is never in memory."""
    with (io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else open(source, "rb")) as lines:
        pending: list[bytes] = []
        for line in lines:
            pending.append(line)
            if not line.endswith(b";\n"):
                continue
            text = b"".join(pending).decode()
            if sqlite3.complete_statement(text):
                pending = []
                if text.strip(" \n;"):
                    yield text.rstrip("\n")
        text = b"".join(pending).decode()
        if text.strip(" \n;"):
            if not sqlite3.complete_statement(text):
                raise ValueError(f"import file ends inside a statement: {text[:80]!r}")
            yield text.rstrip("\n")
