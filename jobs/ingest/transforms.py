"""Pure DataFrame → DataFrame steps of ingest: resolving the release's rowid links into Spotify ids,
parsing the spec layout's JSON arrays, and shaping the MusicBrainz tables. No I/O here."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

REJECT = "_reject"
DANGLING_TRACK = "track_rowid refers to no ingested track"
ONLY_AS_TRACK_REF = "tracks only as id_if_not_in_tracks_table"
# Counts noted (not quarantined) while resolving the tracks' links.
ARTISTS_UNRESOLVED = "artist links to no ingested artist"
LINKS_ORPHANED = "artist links of no ingested track"
ALBUM_UNRESOLVED = "album_rowid to no ingested album"


def ordered_values(order: str, value: str) -> Column:
    """collect_list in ``order`` (SQLite row order stands for list order in the release). The field is
    taken from the sorted structs by field access, not a ``transform`` lambda (interpreted, slower)."""
    return F.sort_array(F.collect_list(F.struct(order, value))).getField(value)


def genres_by_artist(artist_genres: DataFrame) -> DataFrame:
    """(artist_rowid, genres) with genres in artist_genres row order."""
    return artist_genres.groupBy("artist_rowid").agg(ordered_values("link_order", "genre").alias("genres"))


def attach_genres(artists: DataFrame, artist_genres: DataFrame) -> DataFrame:
    """Artists with their genre list; an artist without genres gets an empty list, not NULL."""
    genres = genres_by_artist(artist_genres)
    return (
        artists.join(genres, on="artist_rowid", how="left")
        .withColumn("genres", F.coalesce(F.col("genres"), F.array().cast("array<string>")))
    )


def artist_lists(track_artists: DataFrame, artist_ids: DataFrame) -> DataFrame:
    """(track_rowid, artist_ids, unresolved_artists): a track's artists as Spotify ids in link order
    (first = primary). Links to an artist row that is missing or quarantined are counted, not kept."""
    linked = track_artists.join(artist_ids, on="artist_rowid", how="left")
    return linked.groupBy("track_rowid").agg(
        ordered_values("link_order", "artist_id").alias("artist_ids_all"),
        F.count_if(F.col("artist_id").isNull()).alias("unresolved_artists"),
    ).select(
        "track_rowid",
        F.array_compact("artist_ids_all").alias("artist_ids"),
        "unresolved_artists",
    )


def resolve_tracks(tracks: DataFrame, album_ids: DataFrame, artists: DataFrame) -> DataFrame:
    """Tracks with album_id and artist_ids resolved from rowids; no track is lost.

    The artist lists are joined with a full outer join so that link rows of tracks that were not
    ingested (quarantined or missing) stay visible: they come out with ``track_id`` NULL for the caller
    to count and drop (``orphan_links``).
    """
    return (
        tracks.join(album_ids, on="album_rowid", how="left")
        .join(artists, on="track_rowid", how="full")
        .withColumn("artist_ids", F.coalesce(F.col("artist_ids"), F.array().cast("array<string>")))
        .withColumn("unresolved_artists", F.coalesce(F.col("unresolved_artists"), F.lit(0)))
        .withColumn("orphan_links", F.when(F.col("track_id").isNull(), F.size("artist_ids")).otherwise(0))
    )


def resolve_playlist_tracks(rows: DataFrame, track_ids: DataFrame) -> DataFrame:
    """track_id from track_rowid → tracks.id, else id_if_not_in_tracks_table (``track_ref``).

    A row whose track_rowid points at no ingested track (missing or quarantined) gets a ``_reject``
    reason instead of a guessed id. ``in_catalog`` tells whether the track is in the tracks table.
    """
    lookup = track_ids.select(F.col("track_rowid"), F.col("track_id").alias("catalog_id"))
    joined = rows.join(lookup, on="track_rowid", how="left")
    dangling = F.col("track_rowid").isNotNull() & F.col("catalog_id").isNull()
    return joined.select(
        "*",
        F.coalesce("catalog_id", "track_ref").alias("track_id"),
        F.col("catalog_id").isNotNull().alias("in_catalog"),
        F.when(dangling, F.lit(DANGLING_TRACK)).alias(REJECT),
    ).drop("catalog_id", "track_ref")


def parse_id_array(column: str, what: str) -> tuple[Column, Column]:
    """A JSON array of strings (the spec layout's artist_ids / genres) and the reject reason when the
    text is not one. NULL or empty text means an empty list."""
    parsed = F.from_json(F.col(column), "array<string>")
    empty = F.col(column).isNull() | (F.trim(F.col(column)) == "")
    value = F.when(empty, F.array().cast("array<string>")).otherwise(parsed)
    reason = F.when(~empty & parsed.isNull(), F.lit(f"{what} is not a JSON array of strings"))
    return value, reason


def spec_tracks(tracks: DataFrame) -> DataFrame:
    artist_ids, reason = parse_id_array("artist_ids_json", "artist_ids")
    return tracks.select(
        "*", artist_ids.alias("artist_ids"), reason.alias(REJECT), F.lit(None).cast("timestamp").alias("fetched_at")
    ).drop("artist_ids_json")


def spec_artists(artists: DataFrame) -> DataFrame:
    genres, reason = parse_id_array("genres_json", "genres")
    return artists.select("*", genres.alias("genres"), reason.alias(REJECT)).drop("genres_json")


def spec_playlist_tracks(rows: DataFrame) -> DataFrame:
    """added_at is ISO text in the spec layout; unparsable text becomes NULL (the row is kept)."""
    return rows.withColumn("added_at", F.try_to_timestamp(F.col("added_at_text"))).drop("added_at_text")


MB_TABLES: dict[str, tuple[str, tuple[tuple[str, str, str], ...]]] = {
    # bronze name: (dump table, ((dump column, bronze column, type), ...))
    "mb_isrc": ("isrc", (("isrc", "isrc", "string"), ("recording", "recording_id", "long"))),
    "mb_recording": (
        "recording",
        (("id", "recording_id", "long"), ("gid", "mbid", "string"), ("name", "name", "string"),
         ("artist_credit", "artist_credit_id", "long"), ("length", "length_ms", "long"),
         ("comment", "comment", "string"), ("video", "video", "boolean")),
    ),
    "mb_artist_credit": (
        "artist_credit",
        (("id", "artist_credit_id", "long"), ("name", "name", "string"), ("artist_count", "artist_count", "int")),
    ),
    "mb_artist_credit_name": (
        "artist_credit_name",
        (("artist_credit", "artist_credit_id", "long"), ("position", "position", "int"),
         ("artist", "artist_id", "long"), ("name", "name", "string"), ("join_phrase", "join_phrase", "string")),
    ),
    "mb_artist": (
        "artist",
        (("id", "artist_id", "long"), ("gid", "mbid", "string"), ("name", "name", "string"),
         ("sort_name", "sort_name", "string")),
    ),
}


def mb_rows(parsed: DataFrame, bronze_table: str) -> DataFrame:
    """Rename the dump's columns to the bronze contract; NULL keys are malformed."""
    _, columns = MB_TABLES[bronze_table]
    key = columns[0][1]
    renamed = parsed.select(*(F.col(src).alias(dst) for src, dst, _ in columns), REJECT, "_line")
    reason = F.coalesce(F.col(REJECT), F.when(F.col(key).isNull(), F.lit(f"{key} is NULL")))
    return renamed.withColumn(REJECT, reason).withColumnRenamed("_line", "raw_line")
