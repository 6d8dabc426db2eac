"""ingest end to end on a real-layout dump built from real playlists (tests/support/real_dump.py), ingested once
per session (the ``real_ingest`` fixture in tests/conftest.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from jobs.ingest import job as ingest
from lib import delta
from lib.errors import InputError
from lib.schemas import BRONZE
from tests.support.contracts import contract_columns
from tests.support.real_dump import GHOST_ID, MB_FIXTURE, REAL_NAMES, build_spec_dump


def _config(config, tmp: Path, spotify: Path, **extra):
    overrides = {
        "paths.spotify": str(spotify),
        "paths.musicbrainz": str(MB_FIXTURE),
        "paths.warehouse": str(tmp / "warehouse"),
        "paths.work": str(tmp / "work"),
        "ingest.rows_per_task": 100,  # several ranges per table even on a small dump
        **extra,
    }
    return config.with_overrides(overrides)


def _bronze(spark, cfg, table):
    return delta.read(spark, delta.table_path(cfg.paths.warehouse, "bronze", table))


def test_every_bronze_table_follows_its_contract(spark, real_ingest):
    cfg, *_ = real_ingest
    for table in BRONZE:
        frame = _bronze(spark, cfg, table)
        contract = contract_columns("bronze", table)
        assert frame.columns[: len(contract)] == contract, table
        assert frame.count() > 0, table


def test_playlist_rows_resolve_to_ids_in_order(spark, real_ingest):
    cfg, expected, summary, _ = real_ingest
    rows = _bronze(spark, cfg, "spotify_playlist_tracks")
    ordered = rows.groupBy("playlist_id").agg(
        F.transform(F.sort_array(F.collect_list(F.struct("position", "track_id"))), lambda s: s["track_id"]).alias("t")
    )
    assert {r.playlist_id: r.t for r in ordered.collect()} == expected.playlist_tracks
    ghost = rows.where(F.col("track_id") == GHOST_ID).first()
    assert ghost is not None and ghost.in_catalog is False
    assert rows.where("position = 0").where("added_at IS NOT NULL").count() == 0  # added_at 0 means unknown
    entry = summary["tables"]["spotify_playlist_tracks"]
    assert entry["excluded"] == {"episode": 1, "local file": 1}
    assert set(entry["rejected"]) == expected.rejected["spotify_playlist_tracks"]
    assert entry["rows"] == sum(len(v) for v in expected.playlist_tracks.values())


def test_track_artists_keep_link_order(spark, real_ingest):
    cfg, expected, *_ = real_ingest
    tracks = {r.track_id: r.artist_ids for r in _bronze(spark, cfg, "spotify_tracks").collect()}
    assert tracks == expected.track_artists
    albums = _bronze(spark, cfg, "spotify_albums")
    assert {r.release_year for r in albums.collect()} == {2019, 2020, 2021}
    assert _bronze(spark, cfg, "spotify_tracks").where("album_id IS NULL").count() == 0


def test_features_typed_and_null_responses_excluded(spark, real_ingest):
    cfg, expected, summary, _ = real_ingest
    features = _bronze(spark, cfg, "spotify_audio_features")
    assert {r.track_id for r in features.collect()} == expected.features
    assert features.schema["tempo"].dataType.simpleString() == "double"
    assert sorted({r.tempo for r in features.collect()}) == [120.0, 121.5]
    assert features.where("key = -1").count() == 1
    assert summary["tables"]["spotify_audio_features"]["excluded"] == {"null_response": expected.null_response}


def test_malformed_rows_are_quarantined_with_reason_and_raw_values(spark, real_ingest):
    cfg, expected, summary, _ = real_ingest
    rejects = _bronze(spark, cfg, "_rejects")
    reasons = {}
    for row in rejects.collect():
        reasons.setdefault(row.table, set()).add(row.reason)
    for table, wanted in expected.rejected.items():
        assert reasons.get(table) == wanted, table
        assert set(summary["tables"][table]["rejected"]) == wanted
    energy = rejects.where("reason = 'energy is not numeric'").first()
    assert '"energy": "n/a"' in energy.record and energy.source.endswith(REAL_NAMES["features"])


def test_musicbrainz_tables_from_the_real_fixture(spark, real_ingest):
    cfg, *_ = real_ingest
    counts = {t: _bronze(spark, cfg, t).count() for t in BRONZE if t.startswith("mb_")}
    assert counts == {"mb_isrc": 17, "mb_recording": 126, "mb_artist_credit": 13,
                      "mb_artist_credit_name": 14, "mb_artist": 14}
    recording = _bronze(spark, cfg, "mb_recording").where("mbid = '44704dda-b877-4551-a2a8-c1f764476e65'").first()
    assert (recording.name, recording.length_ms, recording.video) == ("On My Bus", 267560, False)


def test_zst_input_gives_identical_bronze(spark, config, tmp_path, real_ingest):
    from jobs.sample.generator import compress_file

    cfg_plain, *_ = real_ingest
    packed = tmp_path / "packed"
    packed.mkdir()
    for name in REAL_NAMES.values():
        compress_file(Path(cfg_plain.paths.spotify) / name, packed / f"{name}.zst")
    cfg = _config(config, tmp_path, packed)
    ingest.run(spark, cfg)
    for table in ("spotify_tracks", "spotify_playlist_tracks", "spotify_audio_features", "spotify_artists"):
        assert_df_equality(_bronze(spark, cfg, table), _bronze(spark, cfg_plain, table),
                           ignore_row_order=True, ignore_column_order=False)
    # The unpacked copy is reused on the next run (the marker matches), not unpacked again.
    unpacked = Path(cfg.paths.work) / "unpacked" / REAL_NAMES["clean"]
    before = unpacked.stat().st_mtime_ns
    ingest.prepare_spotify(cfg)
    assert unpacked.stat().st_mtime_ns == before


def test_spark_join_path_gives_the_same_bronze_quarantine_and_counts(spark, config, tmp_path, real_ingest):
    """A catalog too big for the in-task lookups lands tracks and playlist rows first and joins in Spark."""
    cfg_lookup, _, summary_lookup, _ = real_ingest
    cfg = _config(config, tmp_path, Path(cfg_lookup.paths.spotify), **{"ingest.in_task_lookup_max_tracks": 0})
    summary = ingest.run(spark, cfg)["metrics"]
    for table in ("spotify_tracks", "spotify_playlist_tracks"):
        assert_df_equality(_bronze(spark, cfg, table), _bronze(spark, cfg_lookup, table), ignore_row_order=True)
        columns = ["reason", "source_key", "record"]
        rejects = _bronze(spark, cfg, "_rejects").where(F.col("table") == table).select(columns)
        assert_df_equality(rejects, _bronze(spark, cfg_lookup, "_rejects").where(F.col("table") == table).select(
            columns), ignore_row_order=True)
        entry, entry_lookup = summary["tables"][table], summary_lookup["tables"][table]
        assert entry == entry_lookup
    assert _bronze(spark, cfg, "_rejects").where(F.col("reason").contains("no ingested track")).count() > 0
    assert summary["tables"]["spotify_playlist_tracks"]["noted"] == {"tracks only as id_if_not_in_tracks_table": 1}


def test_spec_layout_gives_the_same_bronze(spark, config, tmp_path, real_ingest):
    cfg_real, *_ = real_ingest
    build_spec_dump(Path(cfg_real.paths.spotify), tmp_path / "spec")
    cfg = _config(config, tmp_path, tmp_path / "spec", **{"paths.spotify_layout": "spec"})
    ingest.run(spark, cfg)
    pick = ["track_id", "name", "album_id", "artist_ids", "isrc", "popularity", "duration_ms"]
    assert_df_equality(_bronze(spark, cfg, "spotify_tracks").select(pick),
                       _bronze(spark, cfg_real, "spotify_tracks").select(pick), ignore_row_order=True)
    rows = _bronze(spark, cfg, "spotify_playlist_tracks").select("playlist_id", "position", "track_id")
    assert_df_equality(rows, _bronze(spark, cfg_real, "spotify_playlist_tracks").select(rows.columns),
                       ignore_row_order=True)
    assert ("pop", "dance pop") in {tuple(r.genres) for r in _bronze(spark, cfg, "spotify_artists").collect()}


def _versions(cfg) -> dict[str, int | None]:
    return {t: delta.version(delta.table_path(cfg.paths.warehouse, "bronze", t)) for t in [*BRONZE, "_rejects"]}


def test_truncated_file_fails_cleanly_and_changes_no_table(spark, config, tmp_path, real_ingest):
    cfg_real, *_ = real_ingest
    copy = tmp_path / "copy"
    shutil.copytree(cfg_real.paths.spotify, copy)
    cfg = _config(config, tmp_path, copy)
    shutil.copytree(cfg_real.paths.warehouse, cfg.paths.warehouse)  # the warehouse after one ingest of the dump
    before = _versions(cfg)
    assert set(before.values()) == {0}
    victim = copy / REAL_NAMES["playlists"]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    with pytest.raises(InputError, match=rf"{victim}: file is truncated"):
        ingest.run(spark, cfg)
    assert _versions(cfg) == before


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("drop_column", r"table 'tracks' lacks column\(s\) external_id_isrc"),
        ("drop_table", r"required table 'track_audio_features' is missing"),
        ("missing_file", r"spotify_clean_playlists.sqlite3: file not found"),
        ("truncated_zst", r"zstd stream is truncated"),
        ("not_sqlite", r"not an SQLite database"),
    ],
)
def test_bad_inputs_are_named(config, tmp_path, real_ingest, damage, message):
    import sqlite3

    from jobs.sample.generator import compress_file

    cfg_real, *_ = real_ingest
    copy = tmp_path / "copy"
    shutil.copytree(cfg_real.paths.spotify, copy)
    if damage == "drop_column":
        with sqlite3.connect(copy / REAL_NAMES["clean"]) as conn:
            conn.execute("DROP INDEX tracks_isrc")
            conn.execute("ALTER TABLE tracks DROP COLUMN external_id_isrc")
    elif damage == "drop_table":
        with sqlite3.connect(copy / REAL_NAMES["features"]) as conn:
            conn.execute("DROP TABLE track_audio_features")
    elif damage == "missing_file":
        (copy / REAL_NAMES["playlists"]).unlink()
    elif damage == "truncated_zst":
        source = copy / REAL_NAMES["clean"]
        packed = copy / f"{REAL_NAMES['clean']}.zst"
        compress_file(source, packed)
        source.unlink()
        packed.write_bytes(packed.read_bytes()[: packed.stat().st_size * 2 // 3])
    elif damage == "not_sqlite":
        (copy / REAL_NAMES["features"]).write_bytes(b"PK\x03\x04 this is a zip, not a database" * 200)
    with pytest.raises(InputError, match=message):
        ingest.prepare_spotify(_config(config, tmp_path, copy))
