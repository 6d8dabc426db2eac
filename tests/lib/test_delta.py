"""The Delta table layer's guarantees, each shown on a real table written by Spark and committed by
delta-rs, and read back by Spark, delta-rs and polars."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from chispa import assert_df_equality
from deltalake import DeltaTable
from pyspark.sql import functions as F

from lib import delta

ROWS = [
    (1, "a", 2020, dt.datetime(2021, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)),
    (2, "b", 2020, dt.datetime(2021, 6, 1, tzinfo=dt.timezone.utc)),
    (3, None, 2021, dt.datetime(2022, 1, 1, tzinfo=dt.timezone.utc)),
    (4, "d d", None, None),
]
DDL = "id long, name string, year int, seen_at timestamp"


@pytest.fixture
def frame(spark):
    return spark.createDataFrame(ROWS, DDL)


def _log_entries(uri: str, version: int) -> list[dict]:
    with open(os.path.join(uri, "_delta_log", f"{version:020d}.json")) as handle:
        return [json.loads(line) for line in handle]


def test_round_trip_and_other_readers(spark, tmp_path, frame):
    uri = str(tmp_path / "t")
    assert delta.write(frame, uri) == 0
    assert_df_equality(delta.read(spark, uri), frame, ignore_row_order=True, ignore_nullable=True)
    # delta-rs and polars read the same rows from the same log.
    arrow = DeltaTable(uri).to_pyarrow_table().sort_by("id")
    assert arrow.column("id").to_pylist() == [1, 2, 3, 4]
    assert arrow.column("name").to_pylist() == ["a", "b", None, "d d"]
    polars_rows = pl.read_delta(uri).sort("id")
    assert polars_rows["year"].to_list() == [2020, 2020, 2021, None]
    assert polars_rows["seen_at"].to_list()[0] == dt.datetime(2021, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    # Standard protocol only, so every reader can open it.
    protocol = DeltaTable(uri).protocol()
    assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2)


def test_partitioned_round_trip_with_null_and_space(spark, tmp_path, frame):
    uri = str(tmp_path / "p")
    delta.write(frame, uri, partition_by=["name"])
    assert DeltaTable(uri).metadata().partition_columns == ["name"]
    assert_df_equality(delta.read(spark, uri), frame, ignore_row_order=True, ignore_nullable=True)
    assert sorted(pl.read_delta(uri)["name"].to_list(), key=str) == sorted(["a", "b", None, "d d"], key=str)


def test_stats_from_footers_are_in_the_log(tmp_path, frame):
    uri = str(tmp_path / "s")
    delta.write(frame.coalesce(1), uri)
    adds = [entry["add"] for entry in _log_entries(uri, 0) if "add" in entry]
    assert len(adds) == 1
    stats = json.loads(adds[0]["stats"])
    assert stats["numRecords"] == len(ROWS)
    assert stats["minValues"]["id"] == min(r[0] for r in ROWS)
    assert stats["maxValues"]["id"] == max(r[0] for r in ROWS)
    assert stats["nullCount"] == {"id": 0, "name": 1, "year": 1, "seen_at": 1}
    assert stats["minValues"]["name"] == "a" and stats["maxValues"]["name"] == "d d"
    assert stats["minValues"]["seen_at"].startswith("2021-01-02T03:04:05")
    # delta-rs parses them: its add-action view exposes the same min/max.
    actions = pa.table(DeltaTable(uri).get_add_actions(flatten=True)).to_pylist()
    assert actions[0]["min.year"] == 2020 and actions[0]["max.year"] == 2021


def test_overwrite_hides_old_rows_and_time_travel_keeps_them(spark, tmp_path, frame):
    uri = str(tmp_path / "o")
    delta.write(frame, uri)
    old_files = set(DeltaTable(uri).file_uris())
    replacement = spark.createDataFrame([(9, "z", 1999, None)], DDL)
    assert delta.write(replacement, uri, mode="overwrite") == 1
    assert [r.id for r in delta.read(spark, uri).collect()] == [9]
    # The old files are removed in the same commit that adds the new one.
    removed = {entry["remove"]["path"] for entry in _log_entries(uri, 1) if "remove" in entry}
    assert {os.path.join(uri, p) for p in removed} == old_files
    # ...but stay on disk for time travel until vacuum.
    assert sorted(r.id for r in delta.read(spark, uri, version=0).collect()) == [1, 2, 3, 4]
    with pytest.raises(delta.TableMissingError, match="no version 5"):
        delta.read(spark, uri, version=5)


def test_append_and_schema_check(spark, tmp_path, frame):
    uri = str(tmp_path / "a")
    delta.write(frame, uri)
    delta.write(spark.createDataFrame([(5, "e", 2022, None)], DDL), uri, mode="append")
    assert delta.read(spark, uri).count() == len(ROWS) + 1
    wrong_type = spark.createDataFrame([(6, "f", "2022", None)], "id long, name string, year string, seen_at timestamp")
    with pytest.raises(delta.SchemaMismatchError, match="column 'year' is string but the table has int"):
        delta.write(wrong_type, uri, mode="append")
    missing = spark.createDataFrame([(7, "g")], "id long, name string")
    with pytest.raises(delta.SchemaMismatchError, match=r"missing columns \['year', 'seen_at'\]"):
        delta.write(missing, uri, mode="append")
    assert delta.version(uri) == 1
    # Columns in another order are matched by name.
    reordered = spark.createDataFrame([(None, 2023, "h", 8)], "seen_at timestamp, year int, name string, id long")
    delta.write(reordered, uri, mode="append")
    assert delta.read(spark, uri).where("id = 8").first().year == 2023


def test_replace_a_partition_set(spark, tmp_path):
    uri = str(tmp_path / "r")
    base = spark.createDataFrame([(i, f"n{i}", year, None) for i, year in enumerate([2019, 2020, 2020, 2021])], DDL)
    delta.write(base, uri, partition_by=["year"])
    new_2020 = spark.createDataFrame([(100, "new", 2020, None)], DDL)
    delta.write(new_2020, uri, mode="overwrite", partition_filters=[("year", "in", ["2020"])])
    grouped = delta.read(spark, uri).groupBy("year").agg(F.sort_array(F.collect_list("id")).alias("ids"))
    by_year = {r.year: r.ids for r in grouped.collect()}
    assert by_year == {2019: [0], 2020: [100], 2021: [3]}
    outside = spark.createDataFrame([(101, "x", 2022, None)], DDL)
    with pytest.raises(delta.DeltaLayerError, match="partition year=2022, outside the partitions being replaced"):
        delta.write(outside, uri, mode="overwrite", partition_filters=[("year", "=", "2020")])
    assert delta.version(uri) == 1


def test_failed_write_leaves_table_unchanged(spark, tmp_path, frame):
    uri = str(tmp_path / "f")
    delta.write(frame, uri)
    files_before = sorted(str(p) for p in Path(uri).rglob("*.parquet"))
    failing = spark.range(0, 1000, numPartitions=4).select(
        F.when(F.col("id") == 777, F.raise_error(F.lit("boom"))).otherwise(F.col("id")).alias("id"),
        F.lit("x").alias("name"), F.lit(1).alias("year"), F.current_timestamp().alias("seen_at"),
    )
    with pytest.raises(Exception, match="boom"):
        delta.write(failing, uri, mode="overwrite")
    assert delta.version(uri) == 0
    assert sorted(r.id for r in delta.read(spark, uri).collect()) == [1, 2, 3, 4]
    # Nothing of the failed write is left: no new data files, no staging folder.
    assert sorted(str(p) for p in Path(uri).rglob("*.parquet")) == files_before
    assert not any((Path(uri) / delta.STAGING_DIR).glob("*"))


def test_staged_writes_are_invisible_until_commit(spark, tmp_path, frame):
    uri = str(tmp_path / "v")
    delta.write(frame, uri)
    staged = delta.stage(spark.createDataFrame([(42, "x", 1, None)], DDL), uri, mode="overwrite")
    assert delta.read(spark, uri).count() == len(ROWS)
    assert staged.commit() == 1
    assert [r.id for r in delta.read(spark, uri).collect()] == [42]


def test_concurrent_overwrites_conflict(spark, tmp_path, frame):
    uri = str(tmp_path / "c")
    delta.write(frame, uri)
    first = delta.stage(spark.createDataFrame([(10, "first", 1, None)], DDL), uri, mode="overwrite")
    second = delta.stage(spark.createDataFrame([(20, "second", 2, None)], DDL), uri, mode="overwrite")
    assert first.commit() == 1
    with pytest.raises(delta.DeltaConflictError, match="concurrent write to .* after version 0"):
        second.commit()
    assert [r.name for r in delta.read(spark, uri).collect()] == ["first"]
    # The loser's files were cleaned up.
    live = {os.path.basename(u) for u in DeltaTable(uri).file_uris()}
    assert not any(os.path.basename(a.path) in live for a in second.adds)


def test_overwrite_conflicts_with_a_concurrent_append(spark, tmp_path, frame):
    uri = str(tmp_path / "ca")
    delta.write(frame, uri)
    overwrite = delta.stage(spark.createDataFrame([(10, "ow", 1, None)], DDL), uri, mode="overwrite")
    delta.write(spark.createDataFrame([(11, "app", 1, None)], DDL), uri, mode="append")
    with pytest.raises(delta.DeltaConflictError):
        overwrite.commit()
    assert delta.read(spark, uri).count() == len(ROWS) + 1


def test_create_mode_error_and_empty_frames(spark, tmp_path, frame):
    uri = str(tmp_path / "e")
    empty = spark.createDataFrame([], DDL)
    assert delta.write(empty, uri, mode="error") == 0
    assert delta.read(spark, uri).count() == 0
    assert delta.read(spark, uri).schema.fieldNames() == ["id", "name", "year", "seen_at"]
    with pytest.raises(delta.DeltaLayerError, match="already exists"):
        delta.write(frame, uri, mode="error")


def test_compact_then_vacuum(spark, tmp_path):
    uri = str(tmp_path / "m")
    for i in range(4):
        mode = "overwrite" if i == 0 else "append"
        delta.write(spark.createDataFrame([(i, f"n{i}", 2000, None)], DDL).coalesce(1), uri, mode=mode)
    assert len(DeltaTable(uri).file_uris()) == 4
    compacted_version = delta.compact(spark, uri, target_file_bytes=64 * 1024 * 1024)
    assert compacted_version == 4
    assert len(DeltaTable(uri).file_uris()) == 1
    assert sorted(r.id for r in delta.read(spark, uri).collect()) == [0, 1, 2, 3]
    entries = _log_entries(uri, 4)
    assert all(not e["add"]["dataChange"] for e in entries if "add" in e)
    assert sum("remove" in e for e in entries) == 4
    # Nothing left to compact.
    assert delta.compact(spark, uri) is None
    # An orphan from a crashed writer and the removed files go away with vacuum; live data stays.
    orphan = Path(uri) / "part-orphan.parquet"
    orphan.write_bytes(b"not referenced")
    on_disk = len(list(Path(uri).glob("*.parquet")))
    assert on_disk == 6
    removed = delta.vacuum(uri, retention_hours=0)
    assert len(removed) == 5
    assert [p.name for p in Path(uri).glob("*.parquet")] == [os.path.basename(DeltaTable(uri).file_uris()[0])]
    assert sorted(r.id for r in delta.read(spark, uri).collect()) == [0, 1, 2, 3]


def test_read_input_names_missing_tables_and_columns(spark, tmp_path, frame):
    from lib.errors import InputError

    uri = str(tmp_path / "t")
    with pytest.raises(InputError, match=f"{uri}: run xref first"):
        delta.read_input(spark, uri, ("id",), hint="run xref first")
    delta.write(frame, uri)
    delta.write(frame.where("id > 2"), uri, mode="overwrite")
    with pytest.raises(InputError, match=r"no column\(s\) artist, genre; run ingest first"):
        delta.read_input(spark, uri, ("id", "artist", "genre"))
    latest = delta.read_input(spark, uri, ("name", "id"))
    assert latest.columns == ["name", "id"]
    assert sorted(row.id for row in latest.collect()) == [3, 4]
    assert sorted(row.id for row in delta.read_input(spark, uri, ("id",), version=0).collect()) == [1, 2, 3, 4]
