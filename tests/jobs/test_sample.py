"""The sample-dump generator: layouts, exact bookkeeping, determinism, COPY format and xref ground truth.

Expected column lists are written out here from the reference documents (not imported from the
generator), so a drifting DDL fails the test.
"""

from __future__ import annotations

import collections
import json
import re
import sqlite3
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from jobs.sample import catalog, playlists
from jobs.sample.generator import MANIFEST, TRUTH, SampleSpec, compress_file, generate
from jobs.sample.mbdump import copy_text
from jobs.sample.vocab import norm_key

REAL_COLUMNS = {
    "spotify_clean.sqlite3": {
        "artists": ["rowid", "id", "fetched_at", "name", "followers_total", "popularity"],
        "artist_genres": ["artist_rowid", "genre"],
        "artist_images": ["artist_rowid", "width", "height", "url"],
        "artist_albums": ["artist_rowid", "album_rowid", "is_appears_on", "is_implicit_appears_on", "index_in_album"],
        "available_markets": ["rowid", "available_markets"],
        "albums": ["rowid", "id", "fetched_at", "name", "album_type", "available_markets_rowid", "external_id_upc",
                   "copyright_c", "copyright_p", "label", "popularity", "release_date", "release_date_precision",
                   "total_tracks", "external_id_amgid"],
        "album_images": ["album_rowid", "width", "height", "url"],
        "tracks": ["rowid", "id", "fetched_at", "name", "preview_url", "album_rowid", "track_number",
                   "external_id_isrc", "external_id_ean", "external_id_upc", "popularity", "available_markets_rowid",
                   "disc_number", "duration_ms", "explicit"],
        "track_artists": ["track_rowid", "artist_rowid"],
    },
    "spotify_clean_audio_features.sqlite3": {
        "track_audio_features": ["rowid", "track_id", "fetched_at", "null_response", "duration_ms", "time_signature",
                                 "tempo", "key", "mode", "danceability", "energy", "loudness", "speechiness",
                                 "acousticness", "instrumentalness", "liveness", "valence"],
    },
    "spotify_clean_playlists.sqlite3": {
        "playlists": ["rowid", "id", "snapshot_id", "fetched_at", "name", "description", "collaborative", "public",
                      "primary_color", "owner_id", "owner_display_name", "followers_total", "tracks_total"],
        "playlist_tracks": ["playlist_rowid", "position", "is_episode", "track_rowid", "id_if_not_in_tracks_table",
                            "added_at", "added_by_id", "primary_color", "video_thumbnail_url", "is_local",
                            "name_if_is_local", "uri_if_is_local", "album_name_if_is_local",
                            "artists_name_if_is_local", "duration_ms_if_is_local"],
    },
}
SPEC_COLUMNS = {
    "spotify_tracks.db": {"tracks": ["id", "name", "artist_ids", "album_id", "disc_number", "track_number",
                                     "duration_ms", "explicit", "isrc", "popularity", "preview_url", "external_urls"]},
    "spotify_artists.db": {"artists": ["id", "name", "genres", "followers", "popularity", "external_urls"]},
    "spotify_albums.db": {"albums": ["id", "name", "artist_ids", "release_date", "release_date_precision",
                                     "total_tracks", "album_type", "label", "upc", "external_urls"]},
    "spotify_audio_features.db": {"audio_features": ["id", "danceability", "energy", "key", "loudness", "mode",
                                                     "speechiness", "acousticness", "instrumentalness", "liveness",
                                                     "valence", "tempo", "duration_ms", "time_signature"]},
    "spotify_playlists.db": {
        "playlists": ["id", "name", "description", "owner_id", "followers", "public", "collaborative"],
        "playlist_tracks": ["playlist_id", "track_id", "position", "added_at"],
    },
}
MB_COLUMNS = {"isrc": 5, "recording": 9, "artist_credit": 7, "artist_credit_name": 5, "artist": 19}
FEATURES = ("danceability", "energy", "loudness", "speechiness", "acousticness", "instrumentalness", "liveness",
            "valence", "tempo", "key", "mode", "time_signature", "duration_ms")
VALID_ID = "length(id) = 22 AND id NOT GLOB '*[^0-9a-zA-Z]*'"
NOISE = re.compile(r"( \(feat\. .*\))?( - \d{4} Remaster| \(Remastered \d{4}\)| - Live| - Radio Edit)?$")
T = 3000


def unescape(field: str) -> str | None:
    """Reference reader of one PostgreSQL COPY text field."""
    if field == "\\N":
        return None
    escapes = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\":
            out.append(escapes[field[i + 1]])
            i += 2
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def read_copy(path: Path) -> list[list[str | None]]:
    """Rows of a COPY file. A raw CR inside a value would end the row for PostgreSQL: none may appear."""
    data = path.read_bytes()
    assert b"\r" not in data and data.endswith(b"\n"), path
    return [[unescape(f) for f in line.split("\t")] for line in data.decode("utf-8").split("\n")[:-1]]


def query(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def scalar(db: Path, sql: str) -> object:
    return query(db, sql)[0][0]


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("real")
    manifest = generate(root / "spotify", root / "musicbrainz", SampleSpec(tracks=T, seed=42))
    return root / "spotify", root / "musicbrainz" / "mbdump", manifest


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("spec")
    manifest = generate(root / "spotify", root / "musicbrainz",
                        SampleSpec(tracks=T, seed=42, layout="spec", mb_isrc_layout="legacy"))
    return root / "spotify", root / "musicbrainz" / "mbdump", manifest


# ------------------------------------------------------------------------------------------- layouts


def test_real_layout_has_every_table_and_column_in_order(real: tuple[Path, Path, dict]) -> None:
    spotify, _, manifest = real
    assert sorted(p.name for p in spotify.glob("*.sqlite3")) == sorted(REAL_COLUMNS)
    for file, tables in REAL_COLUMNS.items():
        for table, columns in tables.items():
            got = [row[1] for row in query(spotify / file, f"PRAGMA table_info({table})")]
            assert got == columns, (file, table)
    playlists = spotify / "spotify_clean_playlists.sqlite3"
    without_rowid = {row[1]: row[4] for row in query(playlists, "PRAGMA table_list")}
    assert without_rowid["playlist_tracks"] == 1 and without_rowid["playlists"] == 0
    pk = {row[1]: row[5] for row in query(playlists, "PRAGMA table_info(playlist_tracks)")}
    assert pk["playlist_rowid"] == 1 and pk["position"] == 2
    clean = spotify / "spotify_clean.sqlite3"
    assert [row[2] for row in query(clean, "PRAGMA index_info(tracks_isrc)")] == ["external_id_isrc"]
    declared = {row[1]: row[2] for row in query(spotify / "spotify_clean_audio_features.sqlite3",
                                                "PRAGMA table_info(track_audio_features)")}
    assert declared["tempo"] == "INTEGER"
    assert manifest["files"]["spotify"] == sorted(REAL_COLUMNS)


def test_spec_layout_files_columns_and_keys(spec: tuple[Path, Path, dict]) -> None:
    spotify, _, manifest = spec
    assert sorted(p.name for p in spotify.glob("spotify_*")) == sorted(SPEC_COLUMNS)
    for file, tables in SPEC_COLUMNS.items():
        for table, columns in tables.items():
            got = [row[1] for row in query(spotify / file, f"PRAGMA table_info({table})")]
            assert got == columns, (file, table)
    info = {row[1]: row for row in query(spotify / "spotify_playlists.db", "PRAGMA table_info(playlist_tracks)")}
    assert info["playlist_id"][5] == 1 and info["track_id"][5] == 2
    assert info["playlist_id"][3] == 1 and info["track_id"][3] == 1  # NOT NULL
    assert info["added_at"][2] == "TEXT"
    tracks = spotify / "spotify_tracks.db"
    artist_ids = scalar(tracks, "SELECT artist_ids FROM tracks WHERE artist_ids LIKE '%,%' LIMIT 1")
    assert len(json.loads(artist_ids)) >= 2
    genres = [json.loads(g) for (g,) in query(spotify / "spotify_artists.db", "SELECT genres FROM artists")]
    assert any(len(g) >= 2 for g in genres) and any(g == [] for g in genres)
    assert not list(spotify.glob("*.sqlite3*"))
    assert manifest["files"]["spotify"] == sorted(SPEC_COLUMNS)


# --------------------------------------------------------------------------------------- bookkeeping


def test_manifest_table_counts_equal_count_star(real: tuple[Path, Path, dict], spec: tuple[Path, Path, dict]) -> None:
    for spotify, _, manifest in (real, spec):
        for file, tables in manifest["tables"].items():
            for table, expected in tables.items():
                assert scalar(spotify / file, f"SELECT COUNT(*) FROM {table}") == expected, (file, table)


def test_track_and_artist_categories_match_the_files(real: tuple[Path, Path, dict]) -> None:
    spotify, _, m = real
    clean = spotify / "spotify_clean.sqlite3"
    bad = m["tracks"]["malformed"]
    assert min(bad.values()) >= 3
    assert scalar(clean, "SELECT COUNT(*) FROM tracks WHERE id IS NULL") == bad["null_id"]
    assert scalar(clean, "SELECT COUNT(*) FROM tracks WHERE length(id) = 22 AND id GLOB '*[^0-9a-zA-Z]*'") == bad[
        "non_base62_id"]
    assert scalar(clean, "SELECT COUNT(*) FROM tracks WHERE length(id) <> 22") == bad["wrong_length_id"]
    assert scalar(clean, "SELECT COUNT(*) FROM tracks WHERE popularity > 100") == bad["popularity_too_high"]
    assert scalar(clean, "SELECT COUNT(*) FROM tracks WHERE popularity < 0") == bad["popularity_negative"]
    valid = f"{VALID_ID} AND popularity BETWEEN 0 AND 100"
    assert scalar(clean, f"SELECT COUNT(*) FROM tracks WHERE {valid}") == m["tracks"]["valid"] == T
    assert scalar(clean, "SELECT COUNT(DISTINCT id) FROM tracks") == m["tracks"]["rows"] - bad["null_id"]
    multi = scalar(clean, "SELECT COUNT(*) FROM (SELECT track_rowid FROM track_artists GROUP BY 1 HAVING COUNT(*) > 1)")
    assert multi == m["tracks"]["multi_artist"] > 0.1 * T
    assert scalar(clean, "SELECT COUNT(*) FROM tracks WHERE external_id_isrc IS NULL") == (
        m["tracks"]["isrc"]["null"] + m["tracks"]["rows"] - T)  # malformed tracks carry no ISRC
    assert scalar(clean, "SELECT COUNT(*) FROM artists WHERE NOT (" + VALID_ID + ")") == m["artists"]["malformed"][
        "bad_id"]
    assert scalar(clean, "SELECT COUNT(DISTINCT artist_rowid) FROM artist_genres") == m["artists"]["with_genres"]
    assert m["artists"]["without_genres"] > 0
    assert scalar(clean, "SELECT COUNT(*) FROM track_artists WHERE track_rowid > ?".replace("?", str(T))) == m[
        "track_artists"]["of_malformed_tracks"]
    # track_artists keeps the artist order: the first link of a track is its album's artist unless compilation.
    first_is_album_artist = scalar(clean, """
        SELECT AVG(ta.artist_rowid = aa.artist_rowid) FROM tracks t
        JOIN (SELECT track_rowid, MIN(rowid) AS r FROM track_artists GROUP BY 1) f ON f.track_rowid = t.rowid
        JOIN track_artists ta ON ta.rowid = f.r
        JOIN artist_albums aa ON aa.album_rowid = t.album_rowid
        JOIN albums a ON a.rowid = t.album_rowid WHERE a.album_type <> 'compilation'""")
    assert first_is_album_artist == 1.0


def test_audio_feature_categories_and_quirks(real: tuple[Path, Path, dict]) -> None:
    spotify, _, m = real
    db = spotify / "spotify_clean_audio_features.sqlite3"
    af = m["audio_features"]
    assert scalar(db, "SELECT COUNT(*) FROM track_audio_features WHERE null_response = 1") == af["null_response"] > 0
    any_feature = " OR ".join(f"{c} IS NOT NULL" for c in FEATURES)
    assert scalar(db, f"SELECT COUNT(*) FROM track_audio_features WHERE null_response = 1 AND ({any_feature})") == 0
    assert scalar(db, "SELECT COUNT(*) FROM track_audio_features WHERE key = -1") == af["key_minus_1"] > 0
    assert scalar(db, "SELECT COUNT(*) FROM track_audio_features WHERE typeof(energy) = 'text'") == af["malformed"][
        "non_numeric_feature"] >= 3
    assert scalar(db, "SELECT COUNT(*) FROM track_audio_features WHERE NOT (length(track_id) = 22 AND "
                      "track_id NOT GLOB '*[^0-9a-zA-Z]*')") == af["malformed"]["bad_track_id"] >= 3
    assert scalar(db, "SELECT COUNT(*) FROM track_audio_features WHERE typeof(tempo) = 'real'") > 0.9 * T
    lo, hi = query(db, "SELECT MIN(loudness), MAX(loudness) FROM track_audio_features")[0]
    assert -60 <= lo < hi <= 3
    assert scalar(db, "SELECT COUNT(*) FROM track_audio_features WHERE tempo > 220 OR tempo = 0") > 0
    # Every valid track has exactly one feature row, matched by base62 id; malformed rows match no track.
    with sqlite3.connect(db) as conn:
        conn.execute("ATTACH ? AS c", (str(spotify / "spotify_clean.sqlite3"),))
        joined = conn.execute("SELECT COUNT(*) FROM track_audio_features f JOIN c.tracks t ON t.id = f.track_id "
                              "WHERE t.popularity BETWEEN 0 AND 100").fetchone()[0]
    assert joined == T


def test_playlist_categories_match_the_files(real: tuple[Path, Path, dict]) -> None:
    spotify, _, m = real
    db = spotify / "spotify_clean_playlists.sqlite3"
    pt = m["playlist_tracks"]

    def count(where: str) -> int:
        return int(scalar(db, f"SELECT COUNT(*) FROM playlist_tracks WHERE {where}"))

    assert count("1") == pt["rows"]
    assert count("is_episode = 1") == pt["episodes"] > 0
    assert count("is_episode = 1 AND track_rowid IS NULL AND length(id_if_not_in_tracks_table) = 22") == pt[
        "episodes"]
    assert count("is_local = 1") == pt["locals"] > 0
    assert count("is_local = 1 AND track_rowid IS NULL AND id_if_not_in_tracks_table IS NULL AND name_if_is_local "
                 "IS NOT NULL AND uri_if_is_local LIKE 'spotify:local:%'") == pt["locals"]
    assert count("track_rowid IS NULL AND id_if_not_in_tracks_table IS NOT NULL AND is_episode = 0") == pt[
        "ghost"] > 0
    assert count("track_rowid IS NULL AND id_if_not_in_tracks_table IS NULL AND is_local = 0") == pt[
        "unresolvable"]["null_without_id"] >= 3
    assert count("track_rowid IS NOT NULL") == pt["with_track_rowid"]
    with sqlite3.connect(db) as conn:
        conn.execute("ATTACH ? AS c", (str(spotify / "spotify_clean.sqlite3"),))
        dangling = conn.execute("SELECT COUNT(*) FROM playlist_tracks p LEFT JOIN c.tracks t ON t.rowid = "
                                "p.track_rowid WHERE p.track_rowid IS NOT NULL AND t.rowid IS NULL").fetchone()[0]
        ghosts_in_tracks = conn.execute("SELECT COUNT(*) FROM playlist_tracks p JOIN c.tracks t ON t.id = "
                                        "p.id_if_not_in_tracks_table").fetchone()[0]
        to_malformed = conn.execute(f"SELECT COUNT(*) FROM playlist_tracks WHERE track_rowid BETWEEN {T + 1} AND "
                                    f"{m['tracks']['rows']}").fetchone()[0]
    assert dangling == pt["unresolvable"]["dangling_track_rowid"] >= 3
    assert ghosts_in_tracks == 0 and to_malformed == 0
    repeats = scalar(db, "SELECT COUNT(*) - COUNT(DISTINCT playlist_rowid || ':' || track_rowid) FROM playlist_tracks "
                         "WHERE track_rowid IS NOT NULL AND track_rowid <= " + str(T))
    assert repeats == pt["duplicate_track_occurrences"] > 0
    ghost_repeats = scalar(db, "SELECT COUNT(*) - COUNT(DISTINCT playlist_rowid || ':' || id_if_not_in_tracks_table) "
                               "FROM playlist_tracks WHERE track_rowid IS NULL AND is_episode = 0 AND is_local = 0 "
                               "AND id_if_not_in_tracks_table IS NOT NULL")
    assert ghost_repeats == pt["duplicate_ghost_occurrences"]
    recurring = scalar(db, "SELECT COUNT(*) FROM (SELECT id_if_not_in_tracks_table FROM playlist_tracks WHERE "
                           "is_episode = 0 AND track_rowid IS NULL AND id_if_not_in_tracks_table IS NOT NULL "
                           "GROUP BY 1 HAVING COUNT(DISTINCT playlist_rowid) > 1)")
    assert recurring > 0  # ghosts recur across playlists
    assert count("added_at = 0") == pt["added_at_zero"] > 0
    mismatched = scalar(db, "SELECT COUNT(*) FROM playlists p WHERE tracks_total <> (SELECT COUNT(*) FROM "
                            "playlist_tracks t WHERE t.playlist_rowid = p.rowid)")
    assert mismatched == 0
    assert scalar(db, "SELECT COUNT(*) FROM playlists WHERE tracks_total < 5") == m["playlists"]["length_lt_5"] > 0
    assert scalar(db, "SELECT COUNT(*) FROM playlists WHERE tracks_total > 500") == m["playlists"][
        "length_gt_500"] > 0
    assert scalar(db, "SELECT MAX(tracks_total) FROM playlists") <= 800


def test_realistic_shapes(real: tuple[Path, Path, dict]) -> None:
    spotify, _, _ = real
    clean = spotify / "spotify_clean.sqlite3"
    pops = np.array([p for (p,) in query(clean, "SELECT popularity FROM tracks WHERE rowid <= " + str(T))])
    assert 0.75 < (pops < 20).mean() < 0.93 and pops.max() >= 80
    names = [n for (n,) in query(clean, "SELECT name FROM tracks")]
    assert any(not n.isascii() for n in names)
    assert any(re.search(r"[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af]", n) for n in names)
    assert any(" - Radio Edit" in n or "Remaster" in n for n in names) and any("(feat. " in n for n in names)
    genres = {g for (g,) in query(clean, "SELECT DISTINCT genre FROM artist_genres")}
    assert {"deep house", "k-pop"} & genres and len(genres) > 40
    types = dict(query(clean, "SELECT album_type, COUNT(*) FROM albums GROUP BY 1"))
    assert set(types) == {"album", "single", "compilation"} and types["single"] > types["album"]
    assert scalar(clean, "SELECT COUNT(*) FROM albums WHERE album_type = 'single' AND total_tracks <> 1") == 0
    ids = [i for (i,) in query(clean, f"SELECT id FROM tracks WHERE {VALID_ID}")]
    assert len(set(ids)) == len(ids)
    artist_keys = [norm_key(n) for (n,) in query(clean, f"SELECT name FROM artists WHERE {VALID_ID}")]
    assert len(set(artist_keys)) == len(artist_keys)  # the xref truth relies on distinct artist names
    # Playlists favour popular tracks (Zipf over popularity rank).
    with sqlite3.connect(spotify / "spotify_clean_playlists.sqlite3") as conn:
        conn.execute("ATTACH ? AS c", (str(clean),))
        in_playlists = conn.execute("SELECT AVG(t.popularity) FROM playlist_tracks p JOIN c.tracks t ON t.rowid = "
                                    "p.track_rowid").fetchone()[0]
    assert in_playlists > pops.mean() + 10


# ------------------------------------------------------------------------------------------ MusicBrainz


def test_copy_escaping_round_trips() -> None:
    names = ["plain", "tab\there", "back\\slash", "new\nline", "carriage\rreturn", None, "\\N", "mixed\t\\\n", ""]
    text = bytes(copy_text([pa.array(range(len(names))), pa.array(names, pa.string()),
                            pa.array([1, None] * 4 + [3], pa.int64())])).decode()
    assert "\r" not in text
    lines = text.split("\n")
    assert lines[-1] == "" and len(lines) == len(names) + 1
    parsed = [[unescape(f) for f in line.split("\t")] for line in lines[:-1]]
    assert [row[1] for row in parsed] == names
    assert [row[0] for row in parsed] == [str(i) for i in range(len(names))]
    assert [row[2] for row in parsed] == ["1", None] * 4 + ["3"]
    assert "\\\\N" in text  # the text "\N" is escaped, so it cannot read back as NULL


def test_mbdump_files_format_and_counts(real: tuple[Path, Path, dict], spec: tuple[Path, Path, dict]) -> None:
    for (_, mb, manifest), isrc_columns, sequence in ((real, 5, "31"), (spec, 6, "30")):
        assert (mb / "SCHEMA_SEQUENCE").read_text().strip() == sequence
        assert (mb / "TIMESTAMP").read_text().strip() and (mb / "REPLICATION_SEQUENCE").read_text().strip().isdigit()
        for name, width in {**MB_COLUMNS, "isrc": isrc_columns}.items():
            rows = read_copy(mb / name)
            assert len(rows) == manifest["musicbrainz"]["rows"][name] > 0
            assert {len(r) for r in rows} == {width}, name
            ids = [r[0] for r in rows] if name != "artist_credit_name" else [(r[0], r[1]) for r in rows]
            assert len(set(ids)) == len(ids), name
        isrc = read_copy(mb / "isrc")
        if isrc_columns == 6:
            assert {r[3] for r in isrc} == {"0"}
        assert all(re.fullmatch(r"[A-Z]{2}[A-Z0-9]{3}\d{7}", r[2]) for r in isrc)
        recordings = read_copy(mb / "recording")
        gids = [r[1] for r in recordings]
        uuid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
        assert all(uuid.fullmatch(g) for g in gids)
        assert len(set(gids)) == len(gids)
        titles = [r[2] for r in recordings]
        for char in "\t\\\n\r":
            assert any(char in t for t in titles), repr(char)
        assert any(r[4] is None for r in recordings)
        credits = {r[0] for r in read_copy(mb / "artist_credit")}
        assert {r[3] for r in recordings} <= credits
        artists = {r[0] for r in read_copy(mb / "artist")}
        acn = read_copy(mb / "artist_credit_name")
        assert {r[2] for r in acn} <= artists and {r[0] for r in acn} == credits
        assert any(r[1] == "1" and r[4] == "" for r in acn)  # 0-based positions, last join phrase empty
        names = [r[1] for r in read_copy(mb / "artist_credit")]
        assert any(" feat. " in n for n in names)


def test_truth_file_agrees_with_the_musicbrainz_files(real: tuple[Path, Path, dict]) -> None:
    spotify, mb, m = real
    truth = pq.read_table(spotify / TRUTH).to_pylist()
    assert len(truth) == T == m["xref_truth"]["rows"]
    methods = collections.Counter(r["expected_method"] for r in truth)
    assert methods == m["xref_truth"]["by_method"]
    assert all(methods[x] > 0 for x in ("isrc_exact", "isrc_fuzzy", "metadata_match", "no_match"))
    assert all((r["expected_mbid"] is None) == (r["expected_method"] == "no_match") for r in truth)
    recording = {r[1]: r for r in read_copy(mb / "recording")}
    isrcs = collections.defaultdict(set)
    for r in read_copy(mb / "isrc"):
        isrcs[r[1]].add(r[2])
    durations = dict(query(spotify / "spotify_clean.sqlite3", "SELECT id, duration_ms FROM tracks"))
    for r in truth:
        if r["expected_mbid"] is None:
            continue
        rec = recording[r["expected_mbid"]]
        codes = isrcs[rec[0]]
        if r["expected_method"] == "isrc_exact":
            assert r["isrc_as_written"] in codes
        elif r["expected_method"] == "isrc_fuzzy":
            assert r["isrc_as_written"] not in codes
            assert re.sub(r"[^0-9A-Za-z]", "", r["isrc_as_written"]).upper() in codes
        else:
            assert r["isrc_as_written"] not in codes
            assert abs(int(rec[4]) - durations[r["spotify_id"]]) <= 3000


def test_a_reference_matcher_reproduces_the_truth(real: tuple[Path, Path, dict]) -> None:
    """The truth is achievable: ISRC exact → normalised ISRC → artist + cleaned title + ±3 s, closest length."""
    spotify, mb, _ = real
    recording = {r[0]: r for r in read_copy(mb / "recording")}
    by_isrc = collections.defaultdict(list)
    for r in read_copy(mb / "isrc"):
        by_isrc[r[2]].append(r[1])
    first_artist = {r[0]: r[3] for r in read_copy(mb / "artist_credit_name") if r[1] == "0"}
    by_key = collections.defaultdict(list)
    for rid, r in recording.items():
        by_key[(norm_key(first_artist[r[3]]), norm_key(r[2]))].append(rid)
    rows = query(spotify / "spotify_clean.sqlite3", f"""
        SELECT t.id, t.name, t.external_id_isrc, t.duration_ms, a.name FROM tracks t
        JOIN (SELECT track_rowid, MIN(rowid) AS r FROM track_artists GROUP BY 1) f ON f.track_rowid = t.rowid
        JOIN track_artists ta ON ta.rowid = f.r JOIN artists a ON a.rowid = ta.artist_rowid
        WHERE t.rowid <= {T}""")

    def closest(candidates: list[str], duration: int) -> str:
        best = min(candidates, key=lambda c: abs(int(recording[c][4]) - duration) if recording[c][4] else 10**12)
        return str(recording[best][1])

    found = {}
    for track_id, name, code, duration, artist in rows:
        normalised = re.sub(r"[^0-9A-Za-z]", "", code or "").upper()
        key = (norm_key(artist), norm_key(NOISE.sub("", name)))
        near = [c for c in by_key.get(key, []) if recording[c][4] and abs(int(recording[c][4]) - duration) <= 3000]
        if code in by_isrc:
            found[track_id] = ("isrc_exact", closest(by_isrc[code], duration))
        elif len(normalised) == 12 and normalised in by_isrc:
            found[track_id] = ("isrc_fuzzy", closest(by_isrc[normalised], duration))
        elif near:
            found[track_id] = ("metadata_match", closest(near, duration))
        else:
            found[track_id] = ("no_match", None)
    truth = {r["spotify_id"]: (r["expected_method"], r["expected_mbid"])
             for r in pq.read_table(spotify / TRUTH).to_pylist()}
    wrong = {k: (found[k], truth[k]) for k in truth if found[k] != truth[k]}
    assert not wrong, list(wrong.items())[:5]


# --------------------------------------------------------------------------- layouts agree, determinism


def test_spec_layout_holds_the_same_logical_content(real: tuple[Path, Path, dict], spec: tuple[Path, Path, dict]
                                                    ) -> None:
    r_dir, _, rm = real
    s_dir, _, sm = spec
    clean = r_dir / "spotify_clean.sqlite3"
    real_tracks = query(clean, "SELECT id, name, external_id_isrc, popularity, duration_ms FROM tracks ORDER BY rowid")
    spec_tracks = query(s_dir / "spotify_tracks.db",
                        "SELECT id, name, isrc, popularity, duration_ms FROM tracks ORDER BY rowid")
    assert real_tracks == spec_tracks
    assert query(clean, "SELECT id, name FROM artists ORDER BY rowid") == query(
        s_dir / "spotify_artists.db", "SELECT id, name FROM artists ORDER BY rowid")
    dropped = sm["spec_layout"]["dropped"]
    assert dropped["audio_features_null_response"] == rm["audio_features"]["null_response"]
    assert sm["tables"]["spotify_audio_features.db"]["audio_features"] == (
        rm["audio_features"]["rows"] - rm["audio_features"]["null_response"])
    features = r_dir / "spotify_clean_audio_features.sqlite3"
    assert query(features, "SELECT track_id, energy, tempo FROM track_audio_features WHERE null_response = 0 "
                           "ORDER BY track_id") == query(s_dir / "spotify_audio_features.db",
                                                         "SELECT id, energy, tempo FROM audio_features ORDER BY id")
    # Playlist rows: resolve the real layout's rowids, keep the first position of each (playlist, track).
    id_of = dict(query(clean, "SELECT rowid, id FROM tracks"))
    playlist_id = dict(query(r_dir / "spotify_clean_playlists.sqlite3", "SELECT rowid, id FROM playlists"))
    expected: dict[tuple[str, str], int] = {}
    for pl, pos, rowid, other, episode, local in query(
            r_dir / "spotify_clean_playlists.sqlite3",
            "SELECT playlist_rowid, position, track_rowid, id_if_not_in_tracks_table, is_episode, is_local "
            "FROM playlist_tracks ORDER BY playlist_rowid, position"):
        track = id_of.get(rowid) if rowid is not None else other
        if episode or local or track is None:
            continue
        expected.setdefault((playlist_id[pl], track), pos)
    got = {(p, t): pos for p, t, pos in query(s_dir / "spotify_playlists.db",
                                              "SELECT playlist_id, track_id, position FROM playlist_tracks")}
    assert got == expected
    pt = rm["playlist_tracks"]
    assert len(got) == pt["rows"] - pt["episodes"] - pt["locals"] - pt["unresolvable"]["total"] - pt[
        "duplicate_track_occurrences"] - pt["duplicate_ghost_occurrences"]
    assert rm["xref_truth"] == sm["xref_truth"]


def _contents(spotify: Path, mb: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    for db in sorted(spotify.glob("*.sqlite3")):
        for (table,) in query(db, "SELECT name FROM sqlite_master WHERE type = 'table'"):
            out[f"{db.name}/{table}"] = query(db, f"SELECT * FROM {table} ORDER BY 1, 2")
    for path in sorted(mb.iterdir()):
        out[f"mbdump/{path.name}"] = path.read_bytes()
    out["truth"] = pq.read_table(spotify / TRUTH).to_pylist()
    out["manifest"] = json.loads((spotify / MANIFEST).read_text())
    return out


def test_same_seed_same_content_other_seed_differs(tmp_path: Path) -> None:
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        generate(tmp_path / name / "sp", tmp_path / name / "mb", SampleSpec(tracks=1500, seed=seed))
        runs[name] = _contents(tmp_path / name / "sp", tmp_path / name / "mb" / "mbdump")
    assert len(runs["a"]) > 15
    assert runs["a"] == runs["b"]
    differing = [key for key in runs["a"] if runs["a"][key] != runs["c"].get(key)]
    assert "spotify_clean.sqlite3/tracks" in differing
    assert "spotify_clean_playlists.sqlite3/playlist_tracks" in differing and "mbdump/recording" in differing


def test_chunk_streams_do_not_depend_on_other_chunks() -> None:
    """A chunk is a function of (seed, chunk index): generating it twice, in any order, gives the same rows."""
    plan = catalog.build_plan(3, 2000, 400)
    first = playlists.playlist_chunk(plan, 0).playlist_tracks
    artists_first = catalog.artist_chunk(plan, 0)[0]
    assert playlists.playlist_chunk(plan, 0).playlist_tracks.equals(first)
    assert catalog.artist_chunk(plan, 0)[0].equals(artists_first)
    other = playlists.playlist_chunk(catalog.build_plan(4, 2000, 400), 0).playlist_tracks
    assert not other.equals(first)


# ------------------------------------------------------------------------------ compression, atomicity


def test_compressed_release_replaces_plain_files(tmp_path: Path) -> None:
    sp, mb = tmp_path / "sp", tmp_path / "mb"
    generate(sp, mb, SampleSpec(tracks=1000, seed=5))
    assert (sp / "spotify_clean.sqlite3").exists()
    manifest = generate(sp, mb, SampleSpec(tracks=1000, seed=5, compress=True))
    assert sorted(p.name for p in sp.iterdir() if not p.name.startswith("_")) == sorted(
        f + ".zst" for f in REAL_COLUMNS)
    for file in REAL_COLUMNS:
        out = tmp_path / file
        with (sp / (file + ".zst")).open("rb") as src, out.open("wb") as dst:
            zstandard.ZstdDecompressor().copy_stream(src, dst)
        assert scalar(out, "PRAGMA integrity_check") == "ok"
        for table, expected in manifest["tables"][file].items():
            assert scalar(out, f"SELECT COUNT(*) FROM {table}") == expected


def test_compress_file_streams_large_input(tmp_path: Path) -> None:
    src = tmp_path / "blob"
    payload = np.random.default_rng(0).integers(0, 4, 3 << 20, dtype=np.uint8).tobytes()
    src.write_bytes(payload)
    compress_file(src, tmp_path / "blob.zst", level=1)
    assert zstandard.ZstdDecompressor().decompress((tmp_path / "blob.zst").read_bytes()) == payload
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_a_crash_leaves_the_previous_sample_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sp, mb = tmp_path / "sp", tmp_path / "mb"
    before = generate(sp, mb, SampleSpec(tracks=800, seed=1))
    listing = sorted(p.name for p in sp.iterdir())

    def boom(*args: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(playlists, "playlist_chunk", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        generate(sp, mb, SampleSpec(tracks=900, seed=2))
    assert sorted(p.name for p in sp.iterdir()) == listing
    assert sorted(p.name for p in mb.iterdir()) == ["mbdump"]
    assert json.loads((sp / MANIFEST).read_text()) == before
    assert scalar(sp / "spotify_clean.sqlite3", "SELECT COUNT(*) FROM tracks") == before["tracks"]["rows"]


def test_invalid_specs_are_rejected(tmp_path: Path) -> None:
    for bad in (SampleSpec(layout="csv"), SampleSpec(mb_isrc_layout="29"), SampleSpec(layout="spec", compress=True),
                SampleSpec(tracks=0)):
        with pytest.raises(ValueError):
            generate(tmp_path / "sp", tmp_path / "mb", bad)


def test_job_run_uses_the_config(config: object) -> None:
    from jobs.sample.job import run

    cfg = config.with_overrides({"sample.tracks": 600, "sample.seed": 11, "sample.playlists": 50})
    summary = run(None, cfg)["metrics"]
    assert summary["tracks"] == 600 + 5 and summary["playlists"] == 50
    manifest = json.loads(Path(summary["manifest"]).read_text())
    assert manifest["spec"] == {"tracks": 600, "seed": 11, "playlists": 50, "layout": "real", "compress": False,
                                "mb_isrc_layout": "31"}
    assert all(Path(p).exists() for p in summary["spotify_files"])
    assert (Path(summary["musicbrainz_dir"]) / "isrc").exists()


@pytest.mark.parametrize("tracks", [1, 12])
def test_tiny_dumps_still_balance(tmp_path: Path, tracks: int) -> None:
    manifest = generate(tmp_path / "sp", tmp_path / "mb", SampleSpec(tracks=tracks, seed=9, playlists=2))
    for file, tables in manifest["tables"].items():
        for table, expected in tables.items():
            assert scalar(tmp_path / "sp" / file, f"SELECT COUNT(*) FROM {table}") == expected
    assert manifest["tracks"]["valid"] == tracks and manifest["xref_truth"]["rows"] == tracks
    for name, count in manifest["musicbrainz"]["rows"].items():
        assert sum(1 for _ in (tmp_path / "mb" / "mbdump" / name).open(encoding="utf-8")) == count
