"""The layout the spec wrongly assumed (section "R2 SQLite Schema"): five ``spotify_*.db`` files.

Same logical content as the real layout for the same seed (same IDs, names, values), converted from the
real-layout chunks. What the spec's DDL cannot express is dropped, and counted in the manifest:
episodes, local files and unresolvable playlist rows (``track_id`` is NOT NULL and a base62 ID), later
occurrences of a track already in the playlist (PRIMARY KEY (playlist_id, track_id): the first position
wins), and audio-feature rows with ``null_response = 1``. ``added_at`` becomes ISO-8601 text, NULL when
the release says 0.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jobs.sample import ids
from jobs.sample.catalog import json_string_lists
from jobs.sample.playlists import EPISODE, GHOST, LOCAL, TRACK
from jobs.sample.sinks import LayoutWriter, SqliteSink
from jobs.sample.vocab import join

TRACKS = "spotify_tracks.db"
ARTISTS = "spotify_artists.db"
ALBUMS = "spotify_albums.db"
AUDIO_FEATURES = "spotify_audio_features.db"
PLAYLISTS = "spotify_playlists.db"
FILES = (TRACKS, ARTISTS, ALBUMS, AUDIO_FEATURES, PLAYLISTS)

# Verbatim from the spec.
DDL = {
    TRACKS: ("""CREATE TABLE tracks (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  artist_ids TEXT,
  album_id TEXT,
  disc_number INTEGER,
  track_number INTEGER,
  duration_ms INTEGER,
  explicit INTEGER,
  isrc TEXT,
  popularity INTEGER,
  preview_url TEXT,
  external_urls TEXT
)""",),
    ARTISTS: ("""CREATE TABLE artists (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  genres TEXT,
  followers INTEGER,
  popularity INTEGER,
  external_urls TEXT
)""",),
    ALBUMS: ("""CREATE TABLE albums (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  artist_ids TEXT,
  release_date TEXT,
  release_date_precision TEXT,
  total_tracks INTEGER,
  album_type TEXT,
  label TEXT,
  upc TEXT,
  external_urls TEXT
)""",),
    AUDIO_FEATURES: ("""CREATE TABLE audio_features (
  id TEXT PRIMARY KEY,
  danceability REAL,
  energy REAL,
  key INTEGER,
  loudness REAL,
  mode INTEGER,
  speechiness REAL,
  acousticness REAL,
  instrumentalness REAL,
  liveness REAL,
  valence REAL,
  tempo REAL,
  duration_ms INTEGER,
  time_signature INTEGER
)""",),
    PLAYLISTS: ("""CREATE TABLE playlists (
  id TEXT PRIMARY KEY,
  name TEXT,
  description TEXT,
  owner_id TEXT,
  followers INTEGER,
  public INTEGER,
  collaborative INTEGER
)""", """CREATE TABLE playlist_tracks (
  playlist_id TEXT NOT NULL,
  track_id TEXT NOT NULL,
  position INTEGER,
  added_at TEXT,
  PRIMARY KEY (playlist_id, track_id)
)"""),
}
TABLES = {TRACKS: ("tracks",), ARTISTS: ("artists",), ALBUMS: ("albums",), AUDIO_FEATURES: ("audio_features",),
          PLAYLISTS: ("playlists", "playlist_tracks")}

AF_COLUMNS = ("danceability", "energy", "key", "loudness", "mode", "speechiness", "acousticness",
              "instrumentalness", "liveness", "valence", "tempo", "duration_ms", "time_signature")


def _urls(kind: str, id_column: pa.Array) -> pa.Array:
    return join('{"spotify":"https://open.spotify.com/', kind, "/", id_column, '"}')


def _rowid_ids(seed: int, namespace: int, rowid: pa.Array | np.ndarray) -> pa.Array:
    return ids.base62_ids(seed, namespace, np.asarray(rowid, dtype=np.int64) - 1)


class SpecLayoutWriter(LayoutWriter):
    """Converts real-layout chunks into the spec's tables."""

    tables = TABLES

    def __init__(self, directory: Path, seed: int) -> None:
        self.seed = seed
        self.sinks = {name: SqliteSink(directory / name, DDL[name]) for name in FILES}
        self.dropped: Counter = Counter()

    def available_markets(self, table: pa.Table) -> None:
        """The spec has no markets table."""

    def artists(self, artists: pa.Table, genres: pa.Table, genres_json: pa.Array) -> None:
        self.sinks[ARTISTS].put("artists", pa.table({
            "id": artists["id"],
            "name": artists["name"],
            "genres": genres_json,
            "followers": artists["followers_total"],
            "popularity": artists["popularity"],
            "external_urls": _urls("artist", artists["id"]),
        }))

    def tracks(self, tracks: pa.Table, track_artists: pa.Table, albums: pa.Table, artist_albums: pa.Table) -> None:
        # track_artists rows are grouped by track, in track order, every track has at least one.
        link_track = track_artists["track_rowid"].to_numpy()
        first = int(tracks["rowid"][0].as_py())
        counts = np.bincount(link_track - first, minlength=tracks.num_rows)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        artist_ids = _rowid_ids(self.seed, ids.NS_ARTIST, track_artists["artist_rowid"])
        self.sinks[TRACKS].put("tracks", pa.table({
            "id": tracks["id"],
            "name": tracks["name"],
            "artist_ids": json_string_lists(offsets, artist_ids),
            "album_id": _rowid_ids(self.seed, ids.NS_ALBUM, tracks["album_rowid"]),
            "disc_number": tracks["disc_number"],
            "track_number": tracks["track_number"],
            "duration_ms": tracks["duration_ms"],
            "explicit": tracks["explicit"],
            "isrc": tracks["external_id_isrc"],
            "popularity": tracks["popularity"],
            "preview_url": tracks["preview_url"],
            "external_urls": _urls("track", tracks["id"]),
        }))
        if albums.num_rows:
            album_artist = _rowid_ids(self.seed, ids.NS_ARTIST, artist_albums["artist_rowid"])
            self.sinks[ALBUMS].put("albums", pa.table({
                "id": albums["id"],
                "name": albums["name"],
                "artist_ids": join('["', album_artist, '"]'),
                "release_date": albums["release_date"],
                "release_date_precision": albums["release_date_precision"],
                "total_tracks": albums["total_tracks"],
                "album_type": albums["album_type"],
                "label": albums["label"],
                "upc": albums["external_id_upc"],
                "external_urls": _urls("album", albums["id"]),
            }))

    def audio_features(self, table: pa.Table) -> None:
        keep = pc.equal(table["null_response"], 0)
        self.dropped["audio_features_null_response"] += table.num_rows - int(pc.sum(keep).as_py() or 0)
        kept = table.filter(keep)
        self.sinks[AUDIO_FEATURES].put("audio_features", pa.table(
            {"id": kept["track_id"], **{c: kept[c] for c in AF_COLUMNS}}))

    def playlists_chunk(self, playlists: pa.Table, rows: pa.Table, kind: np.ndarray, repeat: np.ndarray) -> None:
        self.sinks[PLAYLISTS].put("playlists", pa.table({
            "id": playlists["id"],
            "name": playlists["name"],
            "description": playlists["description"],
            "owner_id": playlists["owner_id"],
            "followers": playlists["followers_total"],
            "public": playlists["public"],
            "collaborative": playlists["collaborative"],
        }))
        keep = ((kind == TRACK) | (kind == GHOST)) & ~repeat
        self.dropped["playlist_tracks_episode"] += int((kind == EPISODE).sum())
        self.dropped["playlist_tracks_local"] += int((kind == LOCAL).sum())
        self.dropped["playlist_tracks_unresolvable"] += int((kind > LOCAL).sum())
        self.dropped["playlist_tracks_repeat"] += int(repeat.sum())
        kept = rows.filter(pa.array(keep))
        is_track = kind[keep] == TRACK
        rowid = kept["track_rowid"].fill_null(1).to_numpy()
        track_id = pc.if_else(pa.array(is_track), _rowid_ids(self.seed, ids.NS_TRACK, rowid),
                              kept["id_if_not_in_tracks_table"])
        added = kept["added_at"].to_numpy()
        # "YYYY-MM-DD hh:mm:ss" from a cast is 7x cheaper than strftime; make it ISO-8601 UTC.
        iso = join(pc.replace_substring(pc.cast(pa.array(added, pa.timestamp("s")), pa.string()), " ", "T"), "Z")
        table = pa.table({
            "playlist_id": playlists["id"].take(pc.subtract(kept["playlist_rowid"], playlists["rowid"][0])),
            "track_id": track_id,
            "position": kept["position"],
            "added_at": pc.if_else(pa.array(added == 0), pa.scalar(None, pa.string()), iso),
        })
        # Key order: the primary-key index then grows in runs instead of random single-row inserts.
        self.sinks[PLAYLISTS].put("playlist_tracks", table.sort_by([("playlist_id", "ascending"),
                                                                    ("track_id", "ascending")]))
