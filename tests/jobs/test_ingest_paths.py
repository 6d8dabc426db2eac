"""The two ways ingest resolves the release's links (inside the reading tasks, or Spark joins for a catalog
above ``ingest.in_task_lookup_max_tracks``) give the same bronze tables, quarantine and summary, every table
included (tests/jobs/test_ingest.py compares tracks and playlist rows in detail)."""

from __future__ import annotations

from pathlib import Path

from chispa import assert_df_equality
from pyspark.sql import functions as F

from jobs.ingest import job as ingest
from lib import delta
from lib.schemas import BRONZE
from tests.support.configs import make_config
from tests.support.real_dump import build_real_dump

MB_FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "musicbrainz"


def test_in_task_and_join_paths_give_the_same_bronze(spark, tmp_path):
    build_real_dump(tmp_path / "spotify")
    runs = {}
    # The memory rule with room for the lookups, and a fixed limit of 0 tracks (always Spark joins).
    for name, limit in (("in_task", -1), ("joins", 0)):
        config = make_config(tmp_path, paths__spotify=str(tmp_path / "spotify"), paths__musicbrainz=str(MB_FIXTURE),
                             paths__warehouse=str(tmp_path / name), ingest__rows_per_task=50,
                             ingest__in_task_lookup_max_tracks=limit, ingest__worker_memory_mb=1024)
        runs[name] = (config, ingest.run(spark, config)["metrics"])
        assert runs[name][1]["link_resolution"]["path"] == ("in_task" if limit else "spark_joins")

    def table(name: str, which: str):
        return delta.read(spark, delta.table_path(runs[which][0].paths.warehouse, "bronze", name))

    for name in BRONZE:
        assert_df_equality(table(name, "in_task"), table(name, "joins"), ignore_row_order=True), name
    columns = ["table", "reason", "source_key", "record"]
    assert_df_equality(table("_rejects", "in_task").select(columns), table("_rejects", "joins").select(columns),
                       ignore_row_order=True)
    assert runs["in_task"][1]["tables"] == runs["joins"][1]["tables"]
    genres = table("spotify_artists", "in_task").where(F.size("genres") > 0).first()
    assert genres is not None and genres.genres == ["pop", "dance pop"]


def test_memory_rule(spark):
    """In-task lookups when the worker holds its base plus ~170 bytes per catalog track, else joins; the
    local-mode figure is a share of this machine's memory."""
    from jobs.ingest.track_lookup import BYTES_PER_TRACK, WORKER_BASE_BYTES, lookup_memory

    room_mb = (WORKER_BASE_BYTES + BYTES_PER_TRACK * 10_000_000) >> 20
    assert lookup_memory(spark, 9_000_000, -1, room_mb + 1).fits
    assert not lookup_memory(spark, 11_000_000, -1, room_mb).fits
    assert lookup_memory(spark, 5, 5, 0).fits and not lookup_memory(spark, 6, 5, 0).fits
    local = lookup_memory(spark, 1, -1, 0)
    assert local.source.startswith("local mode") and 0 < local.worker_bytes < 2**50
