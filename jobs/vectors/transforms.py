"""Pure DataFrame → DataFrame steps of the vectors job: the normalised audio vector (Spark built-ins
only), popularity tiers, the facets Vectorize stores as metadata, and the kNN seeds and candidates."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Observation, Window
from pyspark.sql import functions as F

from jobs.vectors.genres import detected_genres
from jobs.vectors.layout import VECTOR_COMPONENTS

AUDIO_FEATURE_COLUMNS = tuple(c.name for c in VECTOR_COMPONENTS if c.name != "popularity")


def component(raw: Column, low: float, high: float) -> Column:
    """(raw − low) / (high − low) clamped to [0, 1]; NULL (and NaN, which SQLite cannot hold but a
    Parquet input could) → 0.0."""
    value = F.nanvl(raw.cast("double"), F.lit(None).cast("double"))
    scaled = F.coalesce((value - F.lit(low)) / F.lit(high - low), F.lit(0.0))
    return F.least(F.greatest(scaled, F.lit(0.0)), F.lit(1.0))


def vector_column(popularity: Column | None = None) -> Column:
    """array<float> of the 13 components in Appendix B order, from the feature columns of the frame
    and ``popularity`` (default: the column of that name)."""
    parts = []
    for c in VECTOR_COMPONENTS:
        raw = popularity if (c.name == "popularity" and popularity is not None) else F.col(c.name)
        parts.append(component(raw, c.low, c.high))
    return F.array(*parts).cast("array<float>")


def tier_column(popularity: Column, tier_a_min: int, tier_b_min: int) -> Column:
    """A: popularity ≥ tier_a_min (pre-vectorised); B: ≥ tier_b_min (on demand); C: the rest."""
    return F.when(popularity >= tier_a_min, "A").when(popularity >= tier_b_min, "B").otherwise("C")


def decade_column(year: Column) -> Column:
    return (year - F.pmod(year, F.lit(10))).cast("int")


# ----------------------------------------------------------------------------------------------
# One row per key


def one_row_per_key(frame: DataFrame, key: str, preference: list[Column], name: str) -> tuple[DataFrame, Observation]:
    """Keep one row per ``key``: the first by ``preference``, then by every other column (so the choice
    never depends on file order). The Observation counts the rows set aside (``duplicates``) once the
    result has been computed; the job reports it."""
    rest = [F.col(c).asc_nulls_last() for c in frame.columns if c != key]
    ranked = frame.withColumn("_copy", F.row_number().over(Window.partitionBy(key).orderBy(*preference, *rest)))
    observation = Observation(name)
    ranked = ranked.observe(observation, F.count_if(F.col("_copy") > 1).alias("duplicates"))
    return ranked.where(F.col("_copy") == 1).drop("_copy"), observation


def non_null_features() -> Column:
    total = F.lit(0)
    for name in AUDIO_FEATURE_COLUMNS:
        total = total + F.col(name).isNotNull().cast("int")
    return total


def latest_features(features: DataFrame) -> tuple[DataFrame, Observation]:
    """One features row per track_id. The release can hold a track's features more than once (e.g.
    fetched twice); the vector of a track must be one vector, and Vectorize keys by id. Preference: the
    latest fetch (``fetched_at`` where bronze has it), then the row with the most non-NULL features."""
    preference = [F.col("fetched_at").desc_nulls_last()] if "fetched_at" in features.columns else []
    preference.append(non_null_features().desc())
    return one_row_per_key(features, "track_id", preference, "vectors_feature_duplicates")


# ----------------------------------------------------------------------------------------------
# gold/audio_vectors


def audio_vectors(
    features: DataFrame,
    tracks: DataFrame,
    artists: DataFrame,
    albums: DataFrame,
    xref: DataFrame | None,
    tier_a_min: int,
    tier_b_min: int,
    genre_rule: str = "spec",
) -> tuple[DataFrame, dict[str, Observation]]:
    """One row per distinct features track_id: vector, tier and facets (see the job docstring)."""
    feats, feature_dupes = latest_features(features.select("track_id", *AUDIO_FEATURE_COLUMNS,
                                                            *(["fetched_at"] if "fetched_at" in features.columns
                                                              else [])))
    track_cols = ["track_id", "name", "isrc", "popularity", "album_id", "artist_ids"]
    track_pref = [F.col("fetched_at").desc_nulls_last()] if "fetched_at" in tracks.columns else []
    track_rows, track_dupes = one_row_per_key(
        tracks.select(*track_cols, *(["fetched_at"] if track_pref else [])),
        "track_id",
        [*track_pref, F.col("popularity").desc_nulls_last()],
        "vectors_track_duplicates",
    )
    track_rows = track_rows.select(
        "track_id",
        F.col("name").alias("title"),
        "isrc",
        F.col("popularity").alias("track_popularity"),
        "album_id",
        F.get(F.col("artist_ids"), 0).alias("primary_artist_id"),
        F.lit(True).alias("_in_tracks"),
    )
    artist_rows, artist_dupes = one_row_per_key(
        artists.select("artist_id", "name", "genres", "popularity"),
        "artist_id",
        [F.col("popularity").desc_nulls_last()],
        "vectors_artist_duplicates",
    )
    artist_rows = artist_rows.select(
        F.col("artist_id").alias("primary_artist_id"), F.col("name").alias("artist"), F.col("genres").alias("_genres")
    )
    album_rows, album_dupes = one_row_per_key(
        albums.select("album_id", "release_year"), "album_id", [], "vectors_album_duplicates"
    )
    observations = {
        "feature_duplicates": feature_dupes,
        "track_duplicates": track_dupes,
        "artist_duplicates": artist_dupes,
        "album_duplicates": album_dupes,
    }

    joined = (
        feats.join(track_rows, on="track_id", how="left")
        .join(artist_rows, on="primary_artist_id", how="left")
        .join(album_rows, on="album_id", how="left")
    )
    if xref is not None:
        xref_rows, xref_dupes = one_row_per_key(
            xref.select(F.col("spotify_id").alias("track_id"), "mbid", "match_confidence").where(
                F.col("mbid").isNotNull()
            ),
            "track_id",
            [F.col("match_confidence").desc_nulls_last()],
            "vectors_xref_duplicates",
        )
        observations["xref_duplicates"] = xref_dupes
        joined = joined.join(xref_rows.select("track_id", "mbid"), on="track_id", how="left")
    else:
        joined = joined.withColumn("mbid", F.lit(None).cast("string"))

    popularity = F.coalesce(F.col("track_popularity"), F.lit(0))
    tier = tier_column(popularity, tier_a_min, tier_b_min)
    totals = Observation("vectors_totals")
    joined = joined.observe(
        totals,
        F.count(F.lit(1)).alias("rows"),
        F.count_if(F.col("_in_tracks").isNull()).alias("without_track"),
        F.count_if(F.col("mbid").isNotNull()).alias("with_mbid"),
        *(F.count_if(tier == name).alias(f"tier_{name}") for name in ("A", "B", "C")),
    )
    observations["totals"] = totals
    frame = joined.select(
        F.col("track_id").alias("spotify_id"),
        vector_column(popularity).alias("vector"),
        tier.alias("tier"),
        popularity.cast("int").alias("popularity"),
        "isrc",
        "title",
        "artist",
        F.coalesce(F.col("_genres"), F.array().cast("array<string>")).alias("genres"),
        F.col("release_year").cast("int").alias("year"),
        decade_column(F.col("release_year")).alias("decade"),
        "mbid",
    )
    return frame.withColumn("detected_genres", detected_genres(F.col("vector"), genre_rule)), observations


# ----------------------------------------------------------------------------------------------
# kNN inputs


def seeds(vectors: DataFrame, count: int, column: str = "vector") -> DataFrame:
    """(spotify_id, vector): the ``count`` most popular tracks that have vectors (popularity desc,
    spotify_id asc); ``column`` names the vector used (``vector`` or ``hybrid_vector``)."""
    return (
        vectors.orderBy(F.col("popularity").desc(), F.col("spotify_id").asc())
        .limit(count)
        .select("spotify_id", F.col(column).alias("vector"))
    )


def candidates(vectors: DataFrame, column: str = "vector") -> DataFrame:
    """Tier A: the population the spec keeps in Vectorize, so the one precomputed neighbours come from."""
    return vectors.where(F.col("tier") == "A").select("spotify_id", F.col(column).alias("vector"))
