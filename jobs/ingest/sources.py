"""What ingest reads: the files of both Spotify layouts, the tables and columns each must have, and
the range queries that turn them into bronze rows (typed, checked, rowid links still unresolved).

Real release (default; ../docs and reference/real-dump-layout.md): three SQLite files whose links go
by rowid. The spec's assumed layout: five ``.db`` files with JSON ``artist_ids``/``genres``.
Columns are always read by name, never by position (copies of the release differ in column order).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from lib.sources.sqlite import (
    ArrowExpr,
    Column,
    KeyLookup,
    RangeQuery,
    TableRequirement,
    base62_id_rejects,
    equals_check,
    null_check,
    null_if,
    range_rejects,
)

REAL_FILES = {
    "clean": "spotify_clean.sqlite3",
    "features": "spotify_clean_audio_features.sqlite3",
    "playlists": "spotify_clean_playlists.sqlite3",
}
SPEC_FILES = {
    "tracks": "spotify_tracks.db",
    "artists": "spotify_artists.db",
    "albums": "spotify_albums.db",
    "features": "spotify_audio_features.db",
    "playlists": "spotify_playlists.db",
}

REAL_REQUIRED: dict[str, tuple[TableRequirement, ...]] = {
    "clean": (
        TableRequirement("artists", ("id", "fetched_at", "name", "followers_total", "popularity")),
        TableRequirement("artist_genres", ("artist_rowid", "genre")),
        TableRequirement(
            "albums",
            ("id", "fetched_at", "name", "album_type", "external_id_upc", "label", "popularity", "release_date",
             "release_date_precision", "total_tracks"),
        ),
        TableRequirement(
            "tracks",
            ("id", "fetched_at", "name", "album_rowid", "track_number", "external_id_isrc", "popularity",
             "disc_number", "duration_ms", "explicit"),
        ),
        TableRequirement("track_artists", ("track_rowid", "artist_rowid")),
    ),
    "features": (
        TableRequirement(
            "track_audio_features",
            ("track_id", "fetched_at", "null_response", "duration_ms", "time_signature", "tempo", "key", "mode",
             "danceability", "energy", "loudness", "speechiness", "acousticness", "instrumentalness", "liveness",
             "valence"),
        ),
    ),
    "playlists": (
        TableRequirement(
            "playlists",
            ("id", "snapshot_id", "fetched_at", "name", "description", "collaborative", "public", "owner_id",
             "followers_total", "tracks_total"),
        ),
        TableRequirement(
            "playlist_tracks",
            ("playlist_rowid", "position", "is_episode", "track_rowid", "id_if_not_in_tracks_table", "added_at",
             "is_local"),
        ),
    ),
}

SPEC_REQUIRED: dict[str, tuple[TableRequirement, ...]] = {
    "tracks": (
        TableRequirement(
            "tracks",
            ("id", "name", "artist_ids", "album_id", "disc_number", "track_number", "duration_ms", "explicit", "isrc",
             "popularity"),
        ),
    ),
    "artists": (TableRequirement("artists", ("id", "name", "genres", "followers", "popularity")),),
    "albums": (
        TableRequirement(
            "albums",
            ("id", "name", "release_date", "release_date_precision", "total_tracks", "album_type", "label", "upc"),
        ),
    ),
    "features": (
        TableRequirement(
            "audio_features",
            ("id", "danceability", "energy", "key", "loudness", "mode", "speechiness", "acousticness",
             "instrumentalness", "liveness", "valence", "tempo", "duration_ms", "time_signature"),
        ),
    ),
    "playlists": (
        TableRequirement(
            "playlists", ("id", "name", "description", "owner_id", "followers", "public", "collaborative")
        ),
        TableRequirement("playlist_tracks", ("playlist_id", "track_id", "position", "added_at")),
    ),
}

# SQLite expression for the year of a release_date written YYYY, YYYY-MM or YYYY-MM-DD.
RELEASE_YEAR = (
    "CASE WHEN substr(release_date, 1, 4) GLOB '[0-9][0-9][0-9][0-9]' "
    "THEN CAST(substr(release_date, 1, 4) AS INTEGER) END"
)


def _release_year(release_date: pa.Array) -> pa.Array:
    """RELEASE_YEAR in Arrow."""
    head = pc.utf8_slice_codeunits(release_date, 0, 4)
    digits = pc.fill_null(pc.match_substring_regex(head, "^[0-9]{4}$"), False)
    return pc.if_else(digits, head, pa.scalar(None, pa.string())).cast(pa.int64())


RELEASE_YEAR_ARROW = ArrowExpr((("release_date", "string"),), _release_year)
ADDED_AT = null_if("pt.added_at", 0)  # playlist rows: unix seconds, 0 where the release did not know
POPULARITY = range_rejects("popularity", "popularity", 0, 100)

FEATURE_COLUMNS = (
    Column("danceability", "danceability", "double"),
    Column("energy", "energy", "double"),
    Column("key", "key", "int"),
    Column("loudness", "loudness", "double"),
    Column("mode", "mode", "int"),
    Column("speechiness", "speechiness", "double"),
    Column("acousticness", "acousticness", "double"),
    Column("instrumentalness", "instrumentalness", "double"),
    Column("liveness", "liveness", "double"),
    Column("valence", "valence", "double"),
    Column("tempo", "tempo", "double"),
    Column("duration_ms", "duration_ms", "int"),
    Column("time_signature", "time_signature", "int"),
)


@dataclass(frozen=True)
class RealQueries:
    albums: RangeQuery
    artists: RangeQuery
    artist_genres: RangeQuery
    tracks: RangeQuery
    track_artists: RangeQuery
    audio_features: RangeQuery
    playlists: RangeQuery
    playlist_tracks: RangeQuery


def real_queries(files: dict[str, Path]) -> RealQueries:
    clean, features, playlists = (str(files[k]) for k in ("clean", "features", "playlists"))
    return RealQueries(
        albums=RangeQuery(
            "spotify_albums", clean, "albums", "rowid",
            (
                Column("album_id", "id"), Column("name", "name"), Column("album_type", "album_type"),
                Column("label", "label"), Column("release_date", "release_date"),
                Column("release_date_precision", "release_date_precision"),
                Column("release_year", RELEASE_YEAR, "int", check_numeric=False, arrow=RELEASE_YEAR_ARROW),
                Column("total_tracks", "total_tracks", "int"), Column("upc", "external_id_upc"),
                Column("popularity", "popularity", "int"), Column("album_rowid", "rowid", "long"),
                Column("fetched_at", "fetched_at", "timestamp_ms"),
            ),
            rejects=(*base62_id_rejects("id", "album id"), POPULARITY),
            key_columns=("album_rowid", "album_id"),
        ),
        artists=RangeQuery(
            "spotify_artists", clean, "artists", "rowid",
            (
                Column("artist_id", "id"), Column("name", "name"), Column("followers", "followers_total", "long"),
                Column("popularity", "popularity", "int"), Column("artist_rowid", "rowid", "long"),
                Column("fetched_at", "fetched_at", "timestamp_ms"),
            ),
            rejects=(*base62_id_rejects("id", "artist id"), POPULARITY),
            key_columns=("artist_rowid", "artist_id"),
        ),
        artist_genres=RangeQuery(
            "artist_genres", clean, "artist_genres", "rowid",
            (Column("artist_rowid", "artist_rowid", "long"), Column("genre", "genre"),
             Column("link_order", "rowid", "long")),
            rejects=(null_check("artist_rowid is NULL", "artist_rowid", kind="long"),
                     null_check("genre is NULL", "genre")),
            key_columns=("link_order",),
        ),
        tracks=RangeQuery(
            "spotify_tracks", clean, "tracks", "rowid",
            (
                Column("track_id", "id"), Column("name", "name"), Column("album_rowid", "album_rowid", "long"),
                Column("isrc", "external_id_isrc"), Column("popularity", "popularity", "int"),
                Column("duration_ms", "duration_ms", "int"), Column("explicit", "explicit", "boolean"),
                Column("disc_number", "disc_number", "int"), Column("track_number", "track_number", "int"),
                Column("fetched_at", "fetched_at", "timestamp_ms"), Column("track_rowid", "rowid", "long"),
            ),
            rejects=(*base62_id_rejects("id", "track id"), POPULARITY),
            key_columns=("track_rowid", "track_id"),
        ),
        track_artists=RangeQuery(
            "track_artists", clean, "track_artists", "rowid",
            (Column("track_rowid", "track_rowid", "long"), Column("artist_rowid", "artist_rowid", "long"),
             Column("link_order", "rowid", "long")),
            rejects=(null_check("track_rowid or artist_rowid is NULL", "track_rowid", "artist_rowid", kind="long"),),
            key_columns=("link_order",),
        ),
        audio_features=RangeQuery(
            "spotify_audio_features", features, "track_audio_features", "rowid",
            (Column("track_id", "track_id"), *FEATURE_COLUMNS, Column("fetched_at", "fetched_at", "timestamp_ms")),
            rejects=tuple(base62_id_rejects("track_id", "track_id")),
            excludes=(equals_check("null_response", "null_response", 1),),
            key_columns=("track_id",),
        ),
        playlists=RangeQuery(
            "spotify_playlists", playlists, "playlists", "rowid",
            (
                Column("playlist_id", "id"), Column("name", "name"), Column("description", "description"),
                Column("owner_id", "owner_id"), Column("followers", "followers_total", "long"),
                Column("public", "public", "boolean"), Column("collaborative", "collaborative", "boolean"),
                Column("tracks_total", "tracks_total", "int"), Column("playlist_rowid", "rowid", "long"),
                Column("snapshot_id", "snapshot_id"), Column("fetched_at", "fetched_at", "timestamp_ms"),
            ),
            rejects=tuple(base62_id_rejects("id", "playlist id")),
            key_columns=("playlist_rowid", "playlist_id"),
        ),
        playlist_tracks=RangeQuery(
            "spotify_playlist_tracks", playlists,
            "playlist_tracks pt LEFT JOIN playlists p ON p.rowid = pt.playlist_rowid", "pt.playlist_rowid",
            (
                Column("playlist_id", "p.id"), Column("position", "pt.position", "int"),
                Column("track_rowid", "pt.track_rowid", "long"),
                Column("track_ref", "pt.id_if_not_in_tracks_table"),
                # added_at is unix seconds; 0 means the release did not know it.
                Column("added_at", ADDED_AT[0], "timestamp_s", arrow=ADDED_AT[1]),
                Column("playlist_rowid", "pt.playlist_rowid", "long"),
            ),
            rejects=(
                null_check("playlist_rowid has no playlist", "p.id"),
                null_check("neither track_rowid nor id_if_not_in_tracks_table",
                           ("pt.track_rowid", "long"), "pt.id_if_not_in_tracks_table", every=True),
                *base62_id_rejects("pt.id_if_not_in_tracks_table", "id_if_not_in_tracks_table", nullable=True),
            ),
            excludes=(equals_check("episode", "pt.is_episode", 1), equals_check("local file", "pt.is_local", 1)),
            key_columns=("playlist_rowid", "position"),
            # The plain read takes playlists.id by position instead of SQLite's per-row join.
            plain_from="playlist_tracks pt", lookups=(KeyLookup("p", "playlists"),),
        ),
    )


@dataclass(frozen=True)
class SpecQueries:
    albums: RangeQuery
    artists: RangeQuery
    tracks: RangeQuery
    audio_features: RangeQuery
    playlists: RangeQuery
    playlist_tracks: RangeQuery


def spec_queries(files: dict[str, Path]) -> SpecQueries:
    """The spec's layout: string ids everywhere, JSON arrays parsed later in Spark."""
    return SpecQueries(
        albums=RangeQuery(
            "spotify_albums", str(files["albums"]), "albums", "rowid",
            (
                Column("album_id", "id"), Column("name", "name"), Column("album_type", "album_type"),
                Column("label", "label"), Column("release_date", "release_date"),
                Column("release_date_precision", "release_date_precision"),
                Column("release_year", RELEASE_YEAR, "int", check_numeric=False, arrow=RELEASE_YEAR_ARROW),
                Column("total_tracks", "total_tracks", "int"), Column("upc", "upc"),
                Column("popularity", "NULL", "int"),
            ),
            rejects=tuple(base62_id_rejects("id", "album id")),
            key_columns=("album_id",),
        ),
        artists=RangeQuery(
            "spotify_artists", str(files["artists"]), "artists", "rowid",
            (
                Column("artist_id", "id"), Column("name", "name"), Column("followers", "followers", "long"),
                Column("popularity", "popularity", "int"), Column("genres_json", "genres"),
            ),
            rejects=(*base62_id_rejects("id", "artist id"), POPULARITY),
            key_columns=("artist_id",),
        ),
        tracks=RangeQuery(
            "spotify_tracks", str(files["tracks"]), "tracks", "rowid",
            (
                Column("track_id", "id"), Column("name", "name"), Column("album_id", "album_id"),
                Column("artist_ids_json", "artist_ids"), Column("isrc", "isrc"),
                Column("popularity", "popularity", "int"), Column("duration_ms", "duration_ms", "int"),
                Column("explicit", "explicit", "boolean"), Column("disc_number", "disc_number", "int"),
                Column("track_number", "track_number", "int"),
            ),
            rejects=(*base62_id_rejects("id", "track id"), POPULARITY),
            key_columns=("track_id",),
        ),
        audio_features=RangeQuery(
            "spotify_audio_features", str(files["features"]), "audio_features", "rowid",
            (Column("track_id", "id"), *FEATURE_COLUMNS),
            rejects=tuple(base62_id_rejects("id", "track_id")),
            key_columns=("track_id",),
        ),
        playlists=RangeQuery(
            "spotify_playlists", str(files["playlists"]), "playlists", "rowid",
            (
                Column("playlist_id", "id"), Column("name", "name"), Column("description", "description"),
                Column("owner_id", "owner_id"), Column("followers", "followers", "long"),
                Column("public", "public", "boolean"), Column("collaborative", "collaborative", "boolean"),
                Column("tracks_total", "(SELECT count(*) FROM playlist_tracks pt WHERE pt.playlist_id = playlists.id)",
                       "int", check_numeric=False),
            ),
            rejects=tuple(base62_id_rejects("id", "playlist id")),
            key_columns=("playlist_id",),
        ),
        playlist_tracks=RangeQuery(
            "spotify_playlist_tracks", str(files["playlists"]), "playlist_tracks", "rowid",
            (
                Column("playlist_id", "playlist_id"), Column("position", "position", "int"),
                Column("track_id", "track_id"), Column("added_at_text", "added_at"),
            ),
            rejects=(*base62_id_rejects("playlist_id", "playlist_id"), *base62_id_rejects("track_id", "track_id")),
            key_columns=("playlist_id", "position"),
        ),
    )
