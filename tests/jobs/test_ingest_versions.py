"""Re-ingesting into the same warehouse keeps every earlier version intact: time travel returns the first
ingest's rows, and a re-ingest that fails after its files entered the table folders damages nothing."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from deltalake import DeltaTable

from jobs.ingest import job as ingest
from lib import delta
from lib.cli import check_tables
from tests.support.configs import make_config
from tests.support.real_dump import MB_FIXTURE, REAL_NAMES, build_real_dump


def snapshot(warehouse: str) -> dict[str, list[str]]:
    """Every bronze table's rows at its latest version, read by delta-rs (independent of our reader)."""
    tables = {}
    for uri in delta.find_tables(warehouse):
        if "/bronze/" not in uri:
            continue  # gold/_runs: the run records grow with every run
        rows = DeltaTable(uri).to_pyarrow_table().to_pylist()
        tables[uri] = sorted(repr(sorted(row.items())) for row in rows)
    return tables


def rows_at(uri: str, version: int) -> list[str]:
    rows = DeltaTable(uri, version=version).to_pyarrow_table().to_pylist()
    return sorted(repr(sorted(row.items())) for row in rows)


def change_the_dump(folder: Path) -> None:
    with sqlite3.connect(folder / REAL_NAMES["clean"]) as clean:
        clean.execute("UPDATE albums SET name = name || ' (second ingest)'")
        clean.execute("UPDATE tracks SET name = name || ' (second ingest)'")
    with sqlite3.connect(folder / REAL_NAMES["features"]) as features:
        features.execute("UPDATE track_audio_features SET tempo = tempo + 1")
    with sqlite3.connect(folder / REAL_NAMES["playlists"]) as playlists:
        playlists.execute("UPDATE playlists SET name = name || ' (second ingest)'")


def test_reingest_then_a_failed_reingest_keep_every_version(spark, tmp_path, monkeypatch, real_ingest):
    source, *_ = real_ingest  # the session's first ingest of this dump, copied: the dump will change
    spotify = tmp_path / "spotify"
    shutil.copytree(source.paths.spotify, spotify)
    shutil.copytree(source.paths.warehouse, tmp_path / "warehouse")
    cfg = make_config(tmp_path, paths__musicbrainz=str(MB_FIXTURE), ingest__rows_per_task=100)
    first = snapshot(cfg.paths.warehouse)
    assert first and all(delta.version(uri) == 0 for uri in first)

    change_the_dump(spotify)
    ingest.run(spark, cfg)
    second = snapshot(cfg.paths.warehouse)
    changed = [uri for uri in first if second[uri] != first[uri]]
    assert {Path(uri).name for uri in changed} >= {
        "spotify_albums", "spotify_tracks", "spotify_audio_features", "spotify_playlists"}
    for uri, rows in first.items():
        assert rows_at(uri, 0) == rows, uri

    # A third ingest fails after every table was staged and some were committed.
    real_commit_all = delta.commit_all

    def commit_some_then_fail(writes):
        real_commit_all(writes[:3])
        raise RuntimeError("injected failure after staging")

    monkeypatch.setattr(delta, "commit_all", commit_some_then_fail)
    change_the_dump(spotify)
    with pytest.raises(RuntimeError, match="injected failure"):
        ingest.run(spark, cfg)
    monkeypatch.setattr(delta, "commit_all", real_commit_all)
    for uri, rows in first.items():
        assert rows_at(uri, 0) == rows, uri
        assert rows_at(uri, 1) == second[uri], uri
        assert all(check.intact for check in delta.check_table(uri)), uri
    assert check_tables(cfg) == 0


def test_a_table_folder_that_is_a_file_stops_ingest_before_any_table_changes(spark, tmp_path):
    spotify = tmp_path / "spotify"
    build_real_dump(spotify)
    warehouse = tmp_path / "warehouse"
    cfg = make_config(tmp_path, paths__musicbrainz=str(MB_FIXTURE))
    other = delta.table_path(str(warehouse), "gold", "unrelated")
    delta.write(spark.createDataFrame([(1, "kept")], "id long, name string"), other)
    blocker = Path(delta.table_path(str(warehouse), "bronze", "spotify_albums"))
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where a table folder belongs")
    with pytest.raises(delta.DeltaLayerError, match=f"{blocker}: is a file"):
        ingest.run(spark, cfg)
    assert delta.find_tables(str(warehouse)) == [other]
    assert rows_at(other, 0) == [repr([("id", 1), ("name", "kept")])]
    assert blocker.read_text() == "a file where a table folder belongs"
