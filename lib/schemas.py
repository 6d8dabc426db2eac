"""The table contracts, in one place: every bronze and gold table's required columns and types.

Jobs pass their output through ``conform`` so a table always carries its contract columns first, in
this order and with these types; extra columns may follow. Other jobs, tests and the publish step rely
on these names.
"""

from __future__ import annotations

from typing import Any

from lib.errors import JobError

BRONZE: dict[str, str] = {
    "spotify_tracks": (
        "track_id string, name string, album_id string, artist_ids array<string>, isrc string, popularity int, "
        "duration_ms int, explicit boolean, disc_number int, track_number int, fetched_at timestamp"
    ),
    "spotify_artists": "artist_id string, name string, followers long, popularity int, genres array<string>",
    "spotify_albums": (
        "album_id string, name string, album_type string, label string, release_date string, "
        "release_date_precision string, release_year int, total_tracks int, upc string, popularity int"
    ),
    "spotify_audio_features": (
        "track_id string, danceability double, energy double, key int, loudness double, mode int, "
        "speechiness double, acousticness double, instrumentalness double, liveness double, valence double, "
        "tempo double, duration_ms int, time_signature int"
    ),
    "spotify_playlists": (
        "playlist_id string, name string, description string, owner_id string, followers long, public boolean, "
        "collaborative boolean, tracks_total int"
    ),
    "spotify_playlist_tracks": "playlist_id string, position int, track_id string, added_at timestamp",
    "mb_isrc": "isrc string, recording_id long",
    "mb_recording": (
        "recording_id long, mbid string, name string, artist_credit_id long, length_ms long, comment string, "
        "video boolean"
    ),
    "mb_artist_credit": "artist_credit_id long, name string, artist_count int",
    "mb_artist_credit_name": "artist_credit_id long, position int, artist_id long, name string, join_phrase string",
    "mb_artist": "artist_id long, mbid string, name string, sort_name string",
}

GOLD: dict[str, str] = {
    "playlist_cooccurrence": (
        "track_a string, track_b string, cooccurrence_count long, pmi_score double, jaccard_score double, "
        "score double, llr_score double"
    ),
    "cooccurrence_top": (
        "track_id string, neighbor_id string, rank int, cooccurrence_count long, pmi_score double, "
        "jaccard_score double, score double"
    ),
    "spotify_mbid_xref": "spotify_id string, isrc string, mbid string, match_confidence double, match_method string",
    "audio_vectors": (
        "spotify_id string, vector array<float>, tier string, popularity int, isrc string, title string, "
        "artist string, genres array<string>, year int, decade int, mbid string, detected_genres array<string>"
    ),
    "precomputed_similar": "seed_spotify_id string, similar_spotify_id string, similarity_score double, rank int",
    "artist_similarity": (
        "artist_id string, similar_artist_id string, cooccurrence_count long, pmi_score double, jaccard_score double, "
        "score double, rank int"
    ),
    "track_clusters": "spotify_id string, cluster_id string, cluster_size long, iteration_converged int",
    "track_components": "spotify_id string, component_id string",
    "artist_genres_inferred": "artist_id string, genre string, confidence double, source string",
}


def contract(layer: str, table: str) -> Any:
    from pyspark.sql.types import StructType

    tables = BRONZE if layer == "bronze" else GOLD
    return StructType.fromDDL(tables[table])


def conform(frame: Any, layer: str, table: str) -> Any:
    """Contract columns first (cast to the contract's types), then any extra columns as they are."""
    from pyspark.sql import functions as F

    wanted = contract(layer, table)
    missing = [f.name for f in wanted.fields if f.name not in frame.columns]
    if missing:
        raise JobError(f"{layer}/{table}: the job produced no column(s) {', '.join(missing)} (contract)")
    extras = [c for c in frame.columns if c not in wanted.fieldNames()]
    return frame.select(*(F.col(f.name).cast(f.dataType).alias(f.name) for f in wanted.fields), *extras)
