"""ingest on generated dumps: bronze row counts equal what the generator wrote (its manifest) minus the
documented exclusions; .sqlite3 and .sqlite3.zst give identical tables; the spec layout and the legacy
MusicBrainz isrc layout load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chispa import assert_df_equality

from jobs.ingest import job as ingest
from jobs.sample.generator import MANIFEST, SampleSpec, generate
from lib import delta
from tests.support.configs import make_config

TRACKS = 2000


def _ingest(spark, root: Path, spec: SampleSpec):
    generate(root / "spotify", root / "musicbrainz", spec)
    manifest = json.loads((root / "spotify" / MANIFEST).read_text())
    config = make_config(root, paths__spotify_layout=spec.layout, ingest__rows_per_task=5000)
    summary = ingest.run(spark, config)["metrics"]
    return config, manifest, summary


def _bronze(spark, config, table):
    return delta.read(spark, delta.table_path(config.paths.warehouse, "bronze", table))


@pytest.fixture(scope="module")
def plain(spark, tmp_path_factory):
    return _ingest(spark, tmp_path_factory.mktemp("plain"), SampleSpec(tracks=TRACKS))


def test_bronze_counts_equal_manifest_minus_exclusions(spark, plain):
    config, m, summary = plain
    tables = summary["tables"]
    pt = m["playlist_tracks"]
    expected_rows = {
        "spotify_tracks": m["tracks"]["valid"],
        "spotify_artists": m["artists"]["valid"],
        "spotify_albums": m["albums"]["rows"],
        "spotify_audio_features": m["audio_features"]["valid"] - m["audio_features"]["null_response"],
        "spotify_playlists": m["playlists"]["rows"],
        "spotify_playlist_tracks": pt["rows"] - pt["episodes"] - pt["locals"] - pt["unresolvable"]["total"],
        **{f"mb_{t}": n for t, n in m["musicbrainz"]["rows"].items()},
    }
    for table, rows in expected_rows.items():
        assert _bronze(spark, config, table).count() == rows, table
        assert tables[table]["rows"] == rows, table
    # Every row read is accounted for: kept, excluded by design, or quarantined.
    for table in ("spotify_tracks", "spotify_artists", "spotify_audio_features", "spotify_playlist_tracks"):
        entry = tables[table]
        left_out = sum(entry.get("excluded", {}).values()) + sum(entry.get("rejected", {}).values())
        assert entry["rows_read"] == entry["rows"] + left_out, table
    assert tables["spotify_playlist_tracks"]["excluded"] == {"episode": pt["episodes"], "local file": pt["locals"]}
    assert sum(tables["spotify_playlist_tracks"]["rejected"].values()) == pt["unresolvable"]["total"]
    assert sum(tables["spotify_tracks"]["rejected"].values()) == sum(m["tracks"]["malformed"].values())
    assert sum(tables["spotify_audio_features"]["rejected"].values()) == sum(m["audio_features"]["malformed"].values())
    orphans = m["track_artists"]["of_malformed_tracks"]
    assert tables["spotify_tracks"]["noted"] == {"artist links of no ingested track": orphans}
    ghosts = _bronze(spark, config, "spotify_playlist_tracks").where("NOT in_catalog").count()
    assert ghosts == pt["ghost"]


def test_zst_dump_and_legacy_mbdump_give_identical_bronze(spark, tmp_path, plain):
    config_plain, *_ = plain
    config, manifest, _ = _ingest(spark, tmp_path, SampleSpec(tracks=TRACKS, compress=True, mb_isrc_layout="legacy"))
    assert sorted(p.name for p in (tmp_path / "spotify").glob("*.sqlite3*")) == [
        "spotify_clean.sqlite3.zst", "spotify_clean_audio_features.sqlite3.zst", "spotify_clean_playlists.sqlite3.zst"]
    assert manifest["musicbrainz"]["isrc_columns"] == 6
    for table in ("spotify_tracks", "spotify_artists", "spotify_albums", "spotify_audio_features",
                  "spotify_playlists", "spotify_playlist_tracks", "mb_isrc", "mb_recording"):
        assert_df_equality(_bronze(spark, config, table), _bronze(spark, config_plain, table), ignore_row_order=True)


def test_spec_layout_dump_loads(spark, tmp_path):
    config, m, _ = _ingest(spark, tmp_path, SampleSpec(tracks=TRACKS, layout="spec"))
    tables = m["tables"]
    rows = tables["spotify_playlists.db"]["playlist_tracks"]
    assert _bronze(spark, config, "spotify_playlist_tracks").count() == rows
    assert _bronze(spark, config, "spotify_tracks").count() == m["tracks"]["valid"]
    assert _bronze(spark, config, "spotify_audio_features").count() == (
        tables["spotify_audio_features.db"]["audio_features"] - sum(m["audio_features"]["malformed"].values()))
    multi = _bronze(spark, config, "spotify_tracks").where("size(artist_ids) > 1").count()
    assert multi == m["tracks"]["multi_artist"]
