"""Builds a small dump in the release's real layout (and the spec's layout) from real playlists.

The playlists, tracks, artists and albums come from ``tests/fixtures/mackorone_playlists_subset.csv``
(real Spotify ids and titles). What the CSV lacks is made up deterministically (popularity, features).
Edge cases are planted on purpose, and ``Expected`` records what ingest must make of them, computed
from the CSV here, independently of the ingest code.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "mackorone_playlists_subset.csv"
MB_FIXTURE = FIXTURE.parent / "musicbrainz"  # real MusicBrainz rows (tests/fixtures/README.md), ingested with the dump
GHOST_ID = "0GhostTrackNotInTable1"  # 22 base62 characters
EPISODE_ID = "0EpisodeIdNotAMusicRow"


@dataclass
class Expected:
    playlist_tracks: dict[str, list[str]] = field(default_factory=dict)  # playlist id → track ids in order
    track_artists: dict[str, list[str]] = field(default_factory=dict)  # track id → artist ids in order
    tracks: set[str] = field(default_factory=set)
    features: set[str] = field(default_factory=set)  # track ids whose features row is kept
    null_response: int = 0
    rejected: dict[str, set[str]] = field(default_factory=dict)  # bronze table → reasons
    excluded: dict[str, int] = field(default_factory=dict)


def _load() -> list[dict[str, str]]:
    with FIXTURE.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _duration_ms(length: str) -> int:
    minutes, seconds = length.split(":")
    return (int(minutes) * 60 + int(seconds)) * 1000


REAL_DDL = {
    "clean": """
        CREATE TABLE artists (rowid INTEGER PRIMARY KEY, id TEXT, fetched_at INTEGER, name TEXT,
            followers_total INTEGER, popularity INTEGER);
        CREATE TABLE artist_genres (artist_rowid INTEGER, genre TEXT);
        CREATE TABLE albums (rowid INTEGER PRIMARY KEY, id TEXT, fetched_at INTEGER, name TEXT, album_type TEXT,
            available_markets_rowid INTEGER, external_id_upc TEXT, copyright_c TEXT, copyright_p TEXT, label TEXT,
            popularity INTEGER, release_date TEXT, release_date_precision TEXT, total_tracks INTEGER,
            external_id_amgid TEXT);
        CREATE TABLE tracks (rowid INTEGER PRIMARY KEY, id TEXT, fetched_at INTEGER, name TEXT, preview_url TEXT,
            album_rowid INTEGER, track_number INTEGER, external_id_isrc TEXT, external_id_ean TEXT,
            external_id_upc TEXT, popularity INTEGER, available_markets_rowid INTEGER, disc_number INTEGER,
            duration_ms INTEGER, explicit INTEGER);
        CREATE INDEX tracks_isrc ON tracks (external_id_isrc);
        CREATE TABLE track_artists (track_rowid INTEGER, artist_rowid INTEGER);
    """,
    "features": """
        CREATE TABLE track_audio_features (rowid INTEGER PRIMARY KEY, track_id TEXT, fetched_at INTEGER,
            null_response INTEGER, duration_ms INTEGER, time_signature INTEGER, tempo INTEGER, key INTEGER,
            mode INTEGER, danceability REAL, energy REAL, loudness REAL, speechiness REAL, acousticness REAL,
            instrumentalness REAL, liveness REAL, valence REAL);
    """,
    "playlists": """
        CREATE TABLE playlists (rowid INTEGER PRIMARY KEY, id TEXT, snapshot_id TEXT, fetched_at INTEGER,
            name TEXT, description TEXT, collaborative INTEGER, public INTEGER, primary_color TEXT, owner_id TEXT,
            owner_display_name TEXT, followers_total INTEGER, tracks_total INTEGER);
        CREATE TABLE playlist_tracks (playlist_rowid INTEGER, position INTEGER, is_episode INTEGER,
            track_rowid INTEGER, id_if_not_in_tracks_table TEXT, added_at INTEGER, added_by_id TEXT,
            primary_color TEXT, video_thumbnail_url TEXT, is_local INTEGER, name_if_is_local TEXT,
            uri_if_is_local TEXT, album_name_if_is_local TEXT, artists_name_if_is_local TEXT,
            duration_ms_if_is_local INTEGER, PRIMARY KEY (playlist_rowid, position)) WITHOUT ROWID;
    """,
}
REAL_NAMES = {
    "clean": "spotify_clean.sqlite3",
    "features": "spotify_clean_audio_features.sqlite3",
    "playlists": "spotify_clean_playlists.sqlite3",
}


def build_real_dump(folder: Path) -> Expected:
    rows = _load()
    folder.mkdir(parents=True, exist_ok=True)
    expected = Expected()
    conns = {}
    for key, name in REAL_NAMES.items():
        path = folder / name
        path.unlink(missing_ok=True)
        conns[key] = sqlite3.connect(path)
        conns[key].executescript(REAL_DDL[key])

    # Artists: rowids assigned in *reverse* order of first appearance, so that artist rowid order is
    # not the artist order of a track (a wrong ORDER BY would show).
    artist_names: dict[str, str] = {}
    for row in rows:
        for artist_id, name in zip(row["artist_ids"].split(";"), row["artist_names"].split(";")):
            artist_names.setdefault(artist_id, name)
    artist_rowid = {aid: i + 1 for i, aid in enumerate(reversed(list(artist_names)))}
    clean = conns["clean"]
    clean.executemany(
        "INSERT INTO artists VALUES (?, ?, ?, ?, ?, ?)",
        [(rid, aid, 1_700_000_000_000, artist_names[aid], 1000 + rid, (rid * 7) % 101)
         for aid, rid in artist_rowid.items()],
    )
    clean.executemany(
        "INSERT INTO artist_genres VALUES (?, ?)",
        [(rid, genre) for aid, rid in artist_rowid.items() for genre in (["pop", "dance pop"] if rid % 3 == 0 else [])],
    )
    # A malformed artist (bad id) nobody links to.
    clean.execute("INSERT INTO artists VALUES (?, 'not-a-valid-id', 0, 'Broken', 1, 5)", (len(artist_rowid) + 1,))
    expected.rejected.setdefault("spotify_artists", set()).add("artist id is not a 22-character base62 id")

    albums: dict[str, str] = {}
    for row in rows:
        albums.setdefault(row["album_id"], row["album_name"])
    album_rowid = {aid: i + 1 for i, aid in enumerate(albums)}
    clean.executemany(
        "INSERT INTO albums (rowid, id, fetched_at, name, album_type, external_id_upc, label, popularity,"
        " release_date, release_date_precision, total_tracks) VALUES (?, ?, ?, ?, 'album', ?, 'Label', ?, ?, ?, ?)",
        [
            (rid, aid, 1_700_000_000_000, albums[aid], f"00{rid:010d}", rid % 90,
             ["2019", "2020-05", "2021-06-07"][rid % 3], ["year", "month", "day"][rid % 3], 10)
            for aid, rid in album_rowid.items()
        ],
    )

    track_rowid: dict[str, int] = {}
    for row in rows:
        if row["track_id"] in track_rowid:
            continue
        rid = len(track_rowid) + 1
        track_rowid[row["track_id"]] = rid
        artists = row["artist_ids"].split(";")
        expected.track_artists[row["track_id"]] = artists
        expected.tracks.add(row["track_id"])
        clean.execute(
            "INSERT INTO tracks (rowid, id, fetched_at, name, album_rowid, track_number, external_id_isrc,"
            " popularity, disc_number, duration_ms, explicit) VALUES (?, ?, ?, ?, ?, 1, ?, ?, 1, ?, ?)",
            (rid, row["track_id"], 1_700_000_000_000, row["track_name"], album_rowid[row["album_id"]],
             f"USAAA21{rid:05d}", rid % 100, _duration_ms(row["length"]), rid % 2),
        )
        clean.executemany("INSERT INTO track_artists VALUES (?, ?)", [(rid, artist_rowid[a]) for a in artists])
    # Malformed tracks (quarantined), one referenced by a playlist row: popularity out of range, id too short.
    bad_popularity = len(track_rowid) + 1
    clean.execute("INSERT INTO tracks (rowid, id, name, popularity) VALUES (?, '7zzzzzzzzzzzzzzzzzzzzz', 'x', 150)",
                  (bad_popularity,))
    clean.execute("INSERT INTO tracks (rowid, id, name, popularity) VALUES (?, 'short', 'y', 5)", (bad_popularity + 1,))
    expected.rejected.setdefault("spotify_tracks", set()).update(
        {"popularity outside 0..100", "track id is not a 22-character base62 id"}
    )

    features = conns["features"]
    for i, track_id in enumerate(track_rowid):
        if i < 2:
            features.execute(
                "INSERT INTO track_audio_features (track_id, fetched_at, null_response) VALUES (?, 0, 1)", (track_id,)
            )
            expected.null_response += 1
            continue
        tempo = 120 if i % 2 else 121.5  # the INTEGER column holds REAL values too
        key = -1 if i == 2 else i % 12
        features.execute(
            "INSERT INTO track_audio_features VALUES (NULL, ?, 0, 0, 200000, 4, ?, ?, ?, 0.5, 0.6, -7.5, 0.05,"
            " 0.2, 0.0, 0.1, 0.4)",
            (track_id, tempo, key, i % 2),
        )
        expected.features.add(track_id)
    features.execute("INSERT INTO track_audio_features VALUES (NULL, '4uLU6hMCjMI75M1A2tKUQC', 0, 0, 1, 4, 100,"
                     " 1, 1, 0.5, 'n/a', -5, 0.1, 0.1, 0.1, 0.1, 0.1)")
    expected.rejected.setdefault("spotify_audio_features", set()).add("energy is not numeric")

    playlists = conns["playlists"]
    by_playlist: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_playlist.setdefault(row["playlist_id"], []).append(row)
    for prow, (playlist_id, entries) in enumerate(by_playlist.items(), start=1):
        extra = 6 if prow == 1 else 0
        playlists.execute(
            "INSERT INTO playlists VALUES (?, ?, 'snap', 0, ?, 'desc', 0, 1, NULL, 'spotify', 'Spotify', 1000, ?)",
            (prow, playlist_id, entries[0]["playlist_name"], len(entries) + extra),
        )
        ordered = []
        for position, entry in enumerate(entries):
            playlists.execute(
                "INSERT INTO playlist_tracks (playlist_rowid, position, is_episode, track_rowid, added_at, is_local)"
                " VALUES (?, ?, 0, ?, ?, 0)",
                (prow, position, track_rowid[entry["track_id"]], 1_600_000_000 if position else 0),
            )
            ordered.append(entry["track_id"])
        if prow == 1:
            n = len(entries)
            playlists.executemany(
                "INSERT INTO playlist_tracks (playlist_rowid, position, is_episode, track_rowid,"
                " id_if_not_in_tracks_table, added_at, is_local, name_if_is_local) VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
                [
                    (prow, n, 1, None, EPISODE_ID, 0, None),  # a podcast episode
                    (prow, n + 1, 0, None, None, 1, "my file.mp3"),  # a local file
                    (prow, n + 2, 0, None, GHOST_ID, 0, None),  # a track only known by id
                    (prow, n + 3, 0, None, None, 0, None),  # nothing to resolve
                    (prow, n + 4, 0, bad_popularity, None, 0, None),  # a quarantined track
                    (prow, n + 5, 0, 10**6, None, 0, None),  # a track row that does not exist
                ],
            )
            ordered.append(GHOST_ID)
        expected.playlist_tracks[playlist_id] = ordered
    expected.excluded["spotify_playlist_tracks"] = 2
    expected.rejected["spotify_playlist_tracks"] = {
        "neither track_rowid nor id_if_not_in_tracks_table", "track_rowid refers to no ingested track"}
    for conn in conns.values():
        conn.commit()
        conn.close()
    return expected


SPEC_DDL = {
    "spotify_tracks.db": """CREATE TABLE tracks (id TEXT PRIMARY KEY, name TEXT NOT NULL, artist_ids TEXT,
        album_id TEXT, disc_number INTEGER, track_number INTEGER, duration_ms INTEGER, explicit INTEGER, isrc TEXT,
        popularity INTEGER, preview_url TEXT, external_urls TEXT);""",
    "spotify_artists.db": """CREATE TABLE artists (id TEXT PRIMARY KEY, name TEXT NOT NULL, genres TEXT,
        followers INTEGER, popularity INTEGER, external_urls TEXT);""",
    "spotify_albums.db": """CREATE TABLE albums (id TEXT PRIMARY KEY, name TEXT NOT NULL, artist_ids TEXT,
        release_date TEXT, release_date_precision TEXT, total_tracks INTEGER, album_type TEXT, label TEXT,
        upc TEXT, external_urls TEXT);""",
    "spotify_audio_features.db": """CREATE TABLE audio_features (id TEXT PRIMARY KEY, danceability REAL,
        energy REAL, key INTEGER, loudness REAL, mode INTEGER, speechiness REAL, acousticness REAL,
        instrumentalness REAL, liveness REAL, valence REAL, tempo REAL, duration_ms INTEGER,
        time_signature INTEGER);""",
    "spotify_playlists.db": """CREATE TABLE playlists (id TEXT PRIMARY KEY, name TEXT, description TEXT,
        owner_id TEXT, followers INTEGER, public INTEGER, collaborative INTEGER);
        CREATE TABLE playlist_tracks (playlist_id TEXT NOT NULL, track_id TEXT NOT NULL, position INTEGER,
        added_at TEXT, PRIMARY KEY (playlist_id, track_id));""",
}


def build_spec_dump(real_folder: Path, folder: Path) -> None:
    """The same content in the spec's layout, converted from a real-layout dump with SQL."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, ddl in SPEC_DDL.items():
        (folder / name).unlink(missing_ok=True)
        with sqlite3.connect(folder / name) as conn:
            conn.executescript(ddl)
    clean = sqlite3.connect(real_folder / REAL_NAMES["clean"])
    artist_ids = dict(clean.execute("SELECT rowid, id FROM artists"))
    links: dict[int, list[str]] = {}
    for track, artist in clean.execute("SELECT track_rowid, artist_rowid FROM track_artists ORDER BY rowid"):
        links.setdefault(track, []).append(artist_ids[artist])
    genres: dict[int, list[str]] = {}
    for artist, genre in clean.execute("SELECT artist_rowid, genre FROM artist_genres ORDER BY rowid"):
        genres.setdefault(artist, []).append(genre)
    with sqlite3.connect(folder / "spotify_artists.db") as out:
        out.executemany("INSERT INTO artists VALUES (?, ?, ?, ?, ?, NULL)", [
            (aid, name, json.dumps(genres.get(rid, [])), followers, pop)
            for rid, aid, name, followers, pop in clean.execute(
                "SELECT rowid, id, name, followers_total, popularity FROM artists WHERE length(id) = 22")
        ])
    album_ids = dict(clean.execute("SELECT rowid, id FROM albums"))
    with sqlite3.connect(folder / "spotify_albums.db") as out:
        out.executemany("INSERT INTO albums VALUES (?, ?, '[]', ?, ?, ?, ?, ?, ?, NULL)", list(clean.execute(
            "SELECT id, name, release_date, release_date_precision, total_tracks, album_type, label, external_id_upc"
            " FROM albums")))
    with sqlite3.connect(folder / "spotify_tracks.db") as out:
        out.executemany("INSERT INTO tracks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)", [
            (tid, name, json.dumps(links.get(rid, [])), album_ids.get(album), disc, number, dur, explicit, isrc, pop)
            for rid, tid, name, album, disc, number, dur, explicit, isrc, pop in clean.execute(
                "SELECT rowid, id, name, album_rowid, disc_number, track_number, duration_ms, explicit,"
                " external_id_isrc, popularity FROM tracks WHERE popularity BETWEEN 0 AND 100 AND length(id) = 22")
        ])
    track_ids = dict(clean.execute(
        "SELECT rowid, id FROM tracks WHERE popularity BETWEEN 0 AND 100 AND length(id) = 22"))
    clean.close()
    features = sqlite3.connect(real_folder / REAL_NAMES["features"])
    with sqlite3.connect(folder / "spotify_audio_features.db") as out:
        out.executemany("INSERT INTO audio_features VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", list(
            features.execute(
                "SELECT track_id, danceability, energy, key, loudness, mode, speechiness, acousticness,"
                " instrumentalness, liveness, valence, tempo, duration_ms, time_signature FROM track_audio_features"
                " WHERE null_response = 0 AND typeof(energy) = 'real'")))
    features.close()
    playlists = sqlite3.connect(real_folder / REAL_NAMES["playlists"])
    playlist_ids = dict(playlists.execute("SELECT rowid, id FROM playlists"))
    with sqlite3.connect(folder / "spotify_playlists.db") as out:
        out.executemany("INSERT INTO playlists VALUES (?, ?, ?, ?, ?, ?, ?)", list(playlists.execute(
            "SELECT id, name, description, owner_id, followers_total, public, collaborative FROM playlists")))
        for prow, position, track, ref, added in playlists.execute(
            "SELECT playlist_rowid, position, track_rowid, id_if_not_in_tracks_table, added_at FROM playlist_tracks"
            " WHERE is_episode = 0 AND is_local = 0 AND (track_rowid IS NOT NULL OR id_if_not_in_tracks_table"
            " IS NOT NULL) ORDER BY playlist_rowid, position"
        ):
            if track is not None and track not in track_ids:
                continue  # the real layout quarantines rows of tracks it did not ingest
            when = None if not added else "2020-09-13T12:26:40Z"
            out.execute("INSERT OR IGNORE INTO playlist_tracks VALUES (?, ?, ?, ?)",
                        (playlist_ids[prow], track_ids.get(track, ref), position, when))
    playlists.close()
