"""Test helpers for the table contracts in lib/schemas.py."""

from __future__ import annotations

from lib.schemas import BRONZE, GOLD


def contract_columns(layer: str, table: str) -> list[str]:
    """The contract's column names in order, from its DDL (commas inside ``array<…>``/``struct<…>`` are not
    column separators), without a Spark session."""
    ddl = (BRONZE if layer == "bronze" else GOLD)[table]
    names, depth, start = [], 0, 0
    for index, char in enumerate(ddl + ","):
        if char == "<":
            depth += 1
        elif char == ">":
            depth -= 1
        elif char == "," and depth == 0:
            names.append(ddl[start:index].strip().split(" ")[0])
            start = index + 1
    return names
