"""Empty and partial inputs end to end: a catalog whose audio-features and playlist tables are empty and whose
MusicBrainz isrc file is empty still goes through every job with exit 0, leaving empty tables with their
contract schemas and saying so in the notes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from deltalake import DeltaTable

from jobs.ingest import job as ingest
from jobs.sample.generator import SampleSpec, generate
from lib import delta
from lib.schemas import BRONZE, GOLD
from tests.support.cli import spark_submit
from tests.support.configs import make_config
from tests.support.contracts import contract_columns


def empty_tables(folder: Path, features: bool, playlists: bool) -> None:
    if features:
        with sqlite3.connect(folder / "spotify_clean_audio_features.sqlite3") as db:
            db.execute("DELETE FROM track_audio_features")
    if playlists:
        with sqlite3.connect(folder / "spotify_clean_playlists.sqlite3") as db:
            db.execute("DELETE FROM playlist_tracks")
            db.execute("DELETE FROM playlists")


def rows(uri: str) -> int:
    return DeltaTable(uri).to_pyarrow_table().num_rows


def test_pipeline_on_empty_features_playlists_and_isrc(tmp_path):
    """Through ./spark-submit.sh, as issue 11 asks of the empty-input cases: exit 0 and empty tables."""
    generate(tmp_path / "spotify", tmp_path / "musicbrainz", SampleSpec(tracks=300, seed=5))
    empty_tables(tmp_path / "spotify", features=True, playlists=True)
    (tmp_path / "musicbrainz" / "mbdump" / "isrc").write_bytes(b"")
    result = spark_submit(
        "pipeline", "--json", "--set", "spark.master=local[2]", "--set", "spark.shuffle_partitions=2",
        *(f"--set=paths.{key}={tmp_path / key}" for key in ("spotify", "musicbrainz", "warehouse", "work")),
        cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["status"] == "succeeded"
    warehouse = str(tmp_path / "warehouse")
    for layer, tables in (("bronze", BRONZE), ("gold", GOLD)):
        for table in tables:
            uri = delta.table_path(warehouse, layer, table)
            if not delta.exists(uri):
                continue  # gold tables of jobs that are not registered
            columns = [f.name for f in DeltaTable(uri).schema().fields]
            assert columns[: len(contract_columns(layer, table))] == contract_columns(layer, table), table
    for table in ("spotify_audio_features", "spotify_playlists", "spotify_playlist_tracks", "mb_isrc"):
        assert rows(delta.table_path(warehouse, "bronze", table)) == 0, table
    for table in ("audio_vectors", "precomputed_similar", "playlist_cooccurrence", "cooccurrence_top"):
        assert rows(delta.table_path(warehouse, "gold", table)) == 0, table
    assert rows(delta.table_path(warehouse, "gold", "spotify_mbid_xref")) > 0  # tracks remain, unmatched by ISRC
    notes = " ".join(summary["notes"])
    assert "bronze/spotify_audio_features is empty" in notes
    assert "bronze/spotify_playlist_tracks is empty" in notes


@pytest.mark.parametrize(("features", "playlists"), [(True, False), (False, True)])
def test_ingest_lands_an_empty_source_table_as_an_empty_bronze_table(spark, tmp_path, features, playlists):
    generate(tmp_path / "spotify", tmp_path / "musicbrainz", SampleSpec(tracks=200, seed=9))
    empty_tables(tmp_path / "spotify", features=features, playlists=playlists)
    cfg = make_config(tmp_path)
    summary = ingest.run(spark, cfg)
    empty = ["spotify_audio_features"] if features else ["spotify_playlists", "spotify_playlist_tracks"]
    for table in BRONZE:
        count = summary["outputs"][f"bronze/{table}"]["rows"]
        assert (count == 0) == (table in empty), table
    for table in empty:
        uri = delta.table_path(cfg.paths.warehouse, "bronze", table)
        assert [f.name for f in DeltaTable(uri).schema().fields][: len(contract_columns("bronze", table))] == \
            contract_columns("bronze", table)
