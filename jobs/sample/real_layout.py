"""The release as users download it: three ``spotify_clean*.sqlite3`` files (see real-dump-layout.md).

Column names and order follow the reference. Nothing is declared NOT NULL on ids or popularity, so the
malformed rows ingest must quarantine can be stored, exactly as in the wild. ``tempo`` is declared INTEGER
but holds REAL values (SQLite keeps a non-integral REAL in an INTEGER column).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from jobs.sample.sinks import LayoutWriter, SqliteSink

CLEAN = "spotify_clean.sqlite3"
AUDIO_FEATURES = "spotify_clean_audio_features.sqlite3"
PLAYLISTS = "spotify_clean_playlists.sqlite3"
FILES = (CLEAN, AUDIO_FEATURES, PLAYLISTS)

CLEAN_DDL = (
    "CREATE TABLE artists (rowid INTEGER PRIMARY KEY, id TEXT, fetched_at INTEGER, name TEXT, "
    "followers_total INTEGER, popularity INTEGER)",
    "CREATE TABLE artist_genres (artist_rowid INTEGER, genre TEXT)",
    "CREATE TABLE artist_images (artist_rowid INTEGER, width INTEGER, height INTEGER, url TEXT)",
    "CREATE TABLE artist_albums (artist_rowid INTEGER, album_rowid INTEGER, is_appears_on INTEGER, "
    "is_implicit_appears_on INTEGER, index_in_album INTEGER)",
    "CREATE TABLE available_markets (rowid INTEGER PRIMARY KEY, available_markets TEXT)",
    "CREATE TABLE albums (rowid INTEGER PRIMARY KEY, id TEXT, fetched_at INTEGER, name TEXT, album_type TEXT, "
    "available_markets_rowid INTEGER, external_id_upc TEXT, copyright_c TEXT, copyright_p TEXT, label TEXT, "
    "popularity INTEGER, release_date TEXT, release_date_precision TEXT, total_tracks INTEGER, "
    "external_id_amgid TEXT)",
    "CREATE TABLE album_images (album_rowid INTEGER, width INTEGER, height INTEGER, url TEXT)",
    "CREATE TABLE tracks (rowid INTEGER PRIMARY KEY, id TEXT, fetched_at INTEGER, name TEXT, preview_url TEXT, "
    "album_rowid INTEGER, track_number INTEGER, external_id_isrc TEXT, external_id_ean TEXT, "
    "external_id_upc TEXT, popularity INTEGER, available_markets_rowid INTEGER, disc_number INTEGER, "
    "duration_ms INTEGER, explicit INTEGER)",
    "CREATE TABLE track_artists (track_rowid INTEGER, artist_rowid INTEGER)",
)
CLEAN_POST = ("CREATE INDEX tracks_isrc ON tracks (external_id_isrc)",)

AUDIO_FEATURES_DDL = (
    "CREATE TABLE track_audio_features (rowid INTEGER PRIMARY KEY, track_id TEXT, fetched_at INTEGER, "
    "null_response INTEGER, duration_ms INTEGER, time_signature INTEGER, tempo INTEGER, key INTEGER, "
    "mode INTEGER, danceability REAL, energy REAL, loudness REAL, speechiness REAL, acousticness REAL, "
    "instrumentalness REAL, liveness REAL, valence REAL)",
)

PLAYLISTS_DDL = (
    "CREATE TABLE playlists (rowid INTEGER PRIMARY KEY, id TEXT, snapshot_id TEXT, fetched_at INTEGER, name TEXT, "
    "description TEXT, collaborative INTEGER, public INTEGER, primary_color TEXT, owner_id TEXT, "
    "owner_display_name TEXT, followers_total INTEGER, tracks_total INTEGER)",
    "CREATE TABLE playlist_tracks (playlist_rowid INTEGER, position INTEGER, "
    "is_episode INTEGER, track_rowid INTEGER, id_if_not_in_tracks_table TEXT, added_at INTEGER, "
    "added_by_id TEXT, primary_color TEXT, video_thumbnail_url TEXT, is_local INTEGER, name_if_is_local TEXT, "
    "uri_if_is_local TEXT, album_name_if_is_local TEXT, artists_name_if_is_local TEXT, "
    "duration_ms_if_is_local INTEGER, PRIMARY KEY (playlist_rowid, position)) WITHOUT ROWID",
)

TABLES = {
    CLEAN: ("artists", "artist_genres", "artist_images", "artist_albums", "available_markets", "albums",
            "album_images", "tracks", "track_artists"),
    AUDIO_FEATURES: ("track_audio_features",),
    PLAYLISTS: ("playlists", "playlist_tracks"),
}


class RealLayoutWriter(LayoutWriter):
    """Routes logical chunks (already in the real layout) to the three files."""

    tables = TABLES

    def __init__(self, directory: Path) -> None:
        self.clean = SqliteSink(directory / CLEAN, CLEAN_DDL, CLEAN_POST)
        self.features = SqliteSink(directory / AUDIO_FEATURES, AUDIO_FEATURES_DDL)
        self.playlists = SqliteSink(directory / PLAYLISTS, PLAYLISTS_DDL)
        self.sinks = {CLEAN: self.clean, AUDIO_FEATURES: self.features, PLAYLISTS: self.playlists}

    def available_markets(self, table: pa.Table) -> None:
        self.clean.put("available_markets", table)

    def artists(self, artists: pa.Table, genres: pa.Table, genres_json: pa.Array) -> None:
        self.clean.put("artists", artists)
        self.clean.put("artist_genres", genres)

    def tracks(self, tracks: pa.Table, track_artists: pa.Table, albums: pa.Table, artist_albums: pa.Table) -> None:
        self.clean.put("albums", albums)
        self.clean.put("artist_albums", artist_albums)
        self.clean.put("tracks", tracks)
        self.clean.put("track_artists", track_artists)

    def audio_features(self, table: pa.Table) -> None:
        self.features.put("track_audio_features", table)

    def playlists_chunk(self, playlists: pa.Table, rows: pa.Table, kind: np.ndarray, repeat: np.ndarray) -> None:
        self.playlists.put("playlists", playlists)
        self.playlists.put("playlist_tracks", rows)
