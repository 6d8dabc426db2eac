"""The report's figures as small aggregates computed by Spark: histograms, counts per value and log-binned
distributions come back to the driver as at most a few hundred rows, whatever the size of the table.

Every function takes DataFrames and returns plain Python values (dataclasses, lists), so the figures and the
HTML never see Spark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

BUCKET = "_bucket"


@dataclass
class Histogram:
    """Equal-width bins over [lo, hi]; ``counts`` per group (one group ``""`` when not grouped)."""

    column: str
    edges: list[float]
    counts: dict[str, list[int]] = field(default_factory=dict)
    rows: int = 0

    @property
    def empty(self) -> bool:
        return self.rows == 0


@dataclass
class LogBins:
    """Counts of a positive integer quantity in power-of-two bins [2^k, 2^(k+1))."""

    column: str
    lows: list[int]
    counts: list[int]
    values: int = 0
    largest: int = 0

    @property
    def empty(self) -> bool:
        return self.values == 0


def histogram(frame: DataFrame, column: str, bins: int, by: str | None = None) -> Histogram:
    """Equal-width histogram of the non-NULL values of ``column``, split by ``by`` when given: one pass for
    the range, one grouped count."""
    values = frame.where(F.col(column).isNotNull() & ~F.isnan(F.col(column).cast("double")))
    stats = values.agg(F.min(column).alias("lo"), F.max(column).alias("hi"), F.count(F.lit(1)).alias("n")).first()
    assert stats is not None
    rows = int(stats["n"])
    if rows == 0:
        return Histogram(column, [], {}, 0)
    lo, hi = float(stats["lo"]), float(stats["hi"])
    if hi <= lo:  # every value equal: one bin around it
        lo, hi, bins = lo - 0.5, hi + 0.5, 1
    width = (hi - lo) / bins
    bucket = F.least(F.floor((F.col(column).cast("double") - F.lit(lo)) / F.lit(width)), F.lit(bins - 1))
    keys = [F.coalesce(F.col(by).cast("string"), F.lit("(none)")).alias("group")] if by else [F.lit("").alias("group")]
    grouped = values.select(*keys, bucket.cast("int").alias(BUCKET)).groupBy("group", BUCKET).count().collect()
    counts: dict[str, list[int]] = {}
    for row in grouped:
        counts.setdefault(row["group"], [0] * bins)[int(row[BUCKET])] += int(row["count"])
    edges = [lo + i * width for i in range(bins + 1)]
    return Histogram(column, edges, dict(sorted(counts.items())), rows)


def log_bins(frame: DataFrame, column: str) -> LogBins:
    """Power-of-two histogram of a positive integer column (degrees, cluster sizes): ~log2(max) rows back."""
    positive = frame.where(F.col(column) > 0)
    bucket = F.floor(F.log2(F.col(column).cast("double"))).cast("int")
    rows = positive.groupBy(bucket.alias(BUCKET)).agg(F.count(F.lit(1)).alias("n"), F.max(column).alias("top"))
    collected = sorted(rows.collect(), key=lambda r: r[BUCKET])
    if not collected:
        return LogBins(column, [], [], 0, 0)
    top = max(int(r[BUCKET]) for r in collected)
    counts = [0] * (top + 1)
    for row in collected:
        counts[int(row[BUCKET])] = int(row["n"])
    return LogBins(column, [2**k for k in range(top + 1)], counts, sum(counts),
                   max(int(r["top"]) for r in collected))


def value_counts(frame: DataFrame, column: str, limit: int | None = None) -> list[tuple[str, int]]:
    """Rows per value of ``column`` (NULL shown as ``(none)``), most frequent first."""
    counted = (frame.groupBy(F.coalesce(F.col(column).cast("string"), F.lit("(none)")).alias("value"))
               .count().orderBy(F.col("count").desc(), F.col("value")))
    if limit is not None:
        counted = counted.limit(limit)
    return [(row["value"], int(row["count"])) for row in counted.collect()]


def exploded_counts(frame: DataFrame, column: str, limit: int) -> tuple[list[tuple[str, int]], int, int]:
    """Counts of the elements of an array column, most frequent first; also the rows with at least one
    element and the rows with none (``limit`` values returned)."""
    sized = frame.select(F.coalesce(F.size(column), F.lit(0)).alias("n"))
    totals = sized.agg(F.count_if(F.col("n") > 0).alias("some"), F.count_if(F.col("n") <= 0).alias("none")).first()
    assert totals is not None
    values = frame.select(F.explode(column).alias("value"))
    return value_counts(values, "value", limit), int(totals["some"]), int(totals["none"])


def degrees(pairs: DataFrame, left: str = "track_a", right: str = "track_b") -> DataFrame:
    """Neighbours per track in an undirected pair table (each pair counts for both ends)."""
    ends = pairs.select(F.col(left).alias("track_id")).unionAll(pairs.select(F.col(right).alias("track_id")))
    return ends.groupBy("track_id").agg(F.count(F.lit(1)).alias("degree"))


def cluster_sizes(clusters: DataFrame) -> tuple[LogBins, list[tuple[str, int]], int]:
    """Distribution of cluster sizes (tracks per cluster_id), the largest clusters, and the cluster count."""
    sizes = clusters.groupBy("cluster_id").agg(F.count(F.lit(1)).alias("tracks")).persist()
    try:
        bins = log_bins(sizes, "tracks")
        largest = [(r["cluster_id"], int(r["tracks"]))
                   for r in sizes.orderBy(F.col("tracks").desc(), "cluster_id").limit(10).collect()]
        return bins, largest, sizes.count()
    finally:
        sizes.unpersist()


# -- example neighbours ------------------------------------------------------------------------------


@dataclass
class Example:
    track_id: str
    title: str | None
    artist: str | None
    popularity: int | None
    lists: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def catalog(tracks: DataFrame | None, artists: DataFrame | None, vectors: DataFrame | None) -> DataFrame | None:
    """``track_id, title, artist, popularity``: bronze tracks with their first artist's name when bronze is
    there, else the titles and artists carried by gold/audio_vectors."""
    if tracks is not None:
        named = tracks.select("track_id", F.col("name").alias("title"), F.col("artist_ids")[0].alias("artist_id"),
                              "popularity")
        if artists is None:
            return named.select("track_id", "title", F.col("artist_id").alias("artist"), "popularity")
        names = artists.select("artist_id", F.col("name").alias("artist")).dropDuplicates(["artist_id"])
        return named.join(names, "artist_id", "left").select("track_id", "title", "artist", "popularity")
    if vectors is not None:
        return vectors.select(F.col("spotify_id").alias("track_id"), "title", "artist", "popularity")
    return None


def _names(names: DataFrame | None, ids: DataFrame) -> dict[str, dict[str, Any]]:
    """Title, artist and popularity of a small set of ids (a broadcast semi-join of the catalog)."""
    if names is None:
        return {}
    rows = names.join(F.broadcast(ids.distinct()), "track_id", "left_semi").dropDuplicates(["track_id"]).collect()
    return {r["track_id"]: r.asDict() for r in rows}


def example_neighbours(lists: dict[str, tuple[DataFrame, str, str, str]], names: DataFrame | None, examples: int,
                       neighbours: int) -> list[Example]:
    """Neighbours of the ``examples`` most popular tracks that have a list in every given source (or, when no
    track has all of them, in any), ``neighbours`` per source. ``lists``: label → (frame, seed column,
    neighbour column, score column), each frame with a ``rank`` column."""
    if not lists:
        return []
    seed_sets = [frame.select(F.col(seed).alias("track_id")).distinct() for frame, seed, _, _ in lists.values()]
    common = seed_sets[0]
    for other in seed_sets[1:]:
        common = common.intersect(other)
    chosen = _most_popular(common, names, examples)
    if not chosen:
        anywhere = seed_sets[0]
        for other in seed_sets[1:]:
            anywhere = anywhere.union(other)
        chosen = _most_popular(anywhere.distinct(), names, examples)
    if not chosen:
        return []
    spark = next(iter(lists.values()))[0].sparkSession
    seeds = spark.createDataFrame([(t,) for t in chosen], "track_id string")
    found: dict[str, list[dict[str, Any]]] = {}
    for label, (frame, seed, neighbour, score) in lists.items():
        rows = (frame.join(F.broadcast(seeds.withColumnRenamed("track_id", seed)), seed, "left_semi")
                .where(F.col("rank") <= neighbours)
                .select(F.col(seed).alias("seed"), F.col(neighbour).alias("track_id"), "rank",
                        F.col(score).alias("score")).collect())
        for row in rows:
            found.setdefault(label, []).append(row.asDict())
    ids = {row["track_id"] for rows in found.values() for row in rows} | set(chosen)
    known = _names(names, spark.createDataFrame([(t,) for t in sorted(ids)], "track_id string"))
    result = []
    for track in chosen:
        info = known.get(track, {})
        example = Example(track, info.get("title"), info.get("artist"), info.get("popularity"))
        for label in lists:
            rows = sorted((r for r in found.get(label, []) if r["seed"] == track), key=lambda r: r["rank"])
            example.lists[label] = [{**r, "title": known.get(r["track_id"], {}).get("title"),
                                     "artist": known.get(r["track_id"], {}).get("artist")} for r in rows]
        result.append(example)
    return result


def _most_popular(ids: DataFrame, names: DataFrame | None, limit: int) -> list[str]:
    if names is None:
        return [r["track_id"] for r in ids.orderBy("track_id").limit(limit).collect()]
    popular = (ids.join(names.select("track_id", "popularity").dropDuplicates(["track_id"]), "track_id", "left")
               .orderBy(F.col("popularity").desc_nulls_last(), "track_id").limit(limit))
    return [r["track_id"] for r in popular.collect()]
