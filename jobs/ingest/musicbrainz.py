"""The MusicBrainz tables as landing tasks: each table file is read by byte ranges (``mbdump.plan_splits``)
in the same Spark job as the Spotify tables, parsed with the Arrow reader (``mbdump.parse_lines``) and
written straight into its bronze staging folder, with ``transforms.mb_rows``'s naming and NULL-key check.
A tiny table costs a few milliseconds of one task instead of a Spark plan of its own (seconds each)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from jobs.ingest.transforms import MB_TABLES, REJECT
from lib.sources import mbdump
from lib.sources.sqlite import RangeChunk, RangeStats, count_reasons


def arrow_schema(table: str) -> pa.Schema:
    """The rows bronze ``table`` gets (its contract, from the dump columns' types)."""
    return pa.schema([(dst, mbdump.ARROW_KINDS[kind]) for _, dst, kind in MB_TABLES[table][1]])


@dataclass(frozen=True)
class MbLanding:
    """One mbdump table to bronze ``name`` (a ``RangeSource`` for ``land_ranges``)."""

    name: str
    dump: mbdump.MbDump
    ranges: tuple[tuple[int, int, int], ...]  # (first byte, end byte, estimated lines)
    data_dir: str

    @property
    def dump_table(self) -> str:
        return MB_TABLES[self.name][0]

    @property
    def columns(self) -> tuple[tuple[str, str, str], ...]:
        return MB_TABLES[self.name][1]

    @property
    def source(self) -> str:
        return str(self.dump.table_file(self.dump_table))

    @property
    def key_columns(self) -> tuple[str, ...]:
        return (self.columns[0][1],)

    @property
    def arrow_schema(self) -> pa.Schema:
        return arrow_schema(self.name)

    def chunks(self, low: int, high: int) -> Iterator[RangeChunk]:
        schema, (key,) = self.arrow_schema, self.key_columns
        for lines in mbdump.read_lines(self.dump.table_file(self.dump_table), low, high):
            typed, reject = mbdump.parse_lines(lines, self.dump, self.dump_table,
                                               [(src, kind) for src, _, kind in self.columns])
            values = {dst: typed[src] for src, dst, _ in self.columns}
            null_key = pc.if_else(pc.is_null(values[key]), pa.scalar(f"{key} is NULL"), pa.scalar(None, pa.string()))
            reject = pc.coalesce(reject, null_key)
            stats = RangeStats(read=len(lines))
            rejected: list[dict[str, Any]] = []
            bad = pc.is_valid(reject)
            if pc.any(bad).as_py():
                count_reasons(reject, stats.rejected)
                rejected = pa.table({**values, "raw_line": lines, REJECT: reject}).filter(bad).to_pylist()
                keep = pc.invert(bad)
                values = {name: array.filter(keep) for name, array in values.items()}
            batch = pa.RecordBatch.from_arrays([values[f.name] for f in schema], schema=schema)
            stats.kept = batch.num_rows
            yield batch, rejected, stats


def landing(dump: mbdump.MbDump, table: str, data_dir: str) -> MbLanding:
    path = dump.table_file(MB_TABLES[table][0])
    return MbLanding(table, dump, tuple(mbdump.plan_splits(path)), data_dir)
