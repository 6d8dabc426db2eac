"""The DataFrame steps of the graph job (job.py runs them as resumable steps).

Artist similarity counts artist pairs with the co-occurrence job's own transforms (jobs.cooccurrence.
transforms: dictionary, pruning, pair tails, the numpy counting kernel, scores, top-K). Those transforms
count *items* held by sets in a column named ``tracks`` with dictionary columns ``tid`` / ``track_id``;
here the items are primary artists, so ``playlist_artist_sets`` puts each playlist's artist set in that
column and ``artist_neighbours`` renames the result at the end. Because a playlist contributes a *set* of
artists, each playlist counts once per artist pair however many tracks of the two artists it holds, and
an artist never pairs with itself.

The track graph is the undirected graph of ``gold/cooccurrence_top`` edges (weight = score), on int ids
in string order (so "smallest label" in lib.graph is the smallest track id).
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from jobs.cooccurrence import transforms as pairs
from jobs.vectors.transforms import one_row_per_key

# Spec ("top 3"): genres kept per inferred artist.
MAX_INFERRED_GENRES = 3
SOURCE_SPOTIFY = "spotify"
SOURCE_INFERRED = "inferred"

# ------------------------------------------------------------------------------------------------
# Artist similarity


def primary_artists(tracks: DataFrame) -> DataFrame:
    """(track_id, artist_id): each track's first listed artist (bronze keeps Spotify's order, primary
    first). Tracks without artists have none. A track id listed twice with different primaries (not
    seen in the release) takes the smallest, so the choice never depends on file order."""
    return (
        tracks.where(F.col("track_id").isNotNull() & (F.size("artist_ids") > 0))
        .select("track_id", F.element_at("artist_ids", 1).alias("artist_id"))
        .where(F.col("artist_id").isNotNull())
        .groupBy("track_id")
        .agg(F.min("artist_id").alias("artist_id"))
    )


def playlist_artist_sets(rows: DataFrame, primary: DataFrame, min_size: int, max_size: int) -> DataFrame:
    """(pid, tracks): every qualifying playlist (the co-occurrence definition: distinct tracks in
    [min_size, max_size]) with the set of its tracks' primary artists in ``tracks`` (the item column of
    the co-occurrence transforms). Tracks not in bronze/spotify_tracks count for the size but add no
    artist. One row per qualifying playlist, so the row count is N."""
    linked = rows.join(primary, on="track_id", how="left")
    artists = F.collect_set("artist_id").alias("artists")
    return pairs.playlist_track_sets(linked, min_size, max_size, artists).select(
        F.col("playlist_id").alias("pid"), F.col("artists").alias("tracks")
    )


def artist_pair_tails(sets: DataFrame, dictionary: DataFrame, broadcast: bool) -> DataFrame:
    """(track_a, later) on artist dictionary ids: each playlist's kept artists as a sorted int array, one
    row per artist with the artists after it (co-occurrence's pair tails; ``pairs.count_pairs`` counts
    them with the numpy kernel)."""
    return pairs.pair_tails(pairs.encode_playlists(sets, dictionary, broadcast))


def artist_neighbours(counts: DataFrame, dictionary: DataFrame, playlists_total: int, top_k: int,
                      broadcast: bool) -> DataFrame:
    """(artist_id, similar_artist_id, rank, cooccurrence_count, pmi_score, jaccard_score, score, llr_score):
    every artist's best ``top_k`` partners by score desc, count desc, id asc (both directions of each pair,
    so the metrics of (a, b) and (b, a) are the same values)."""
    scored = pairs.pair_scores(pairs.with_marginals(counts, dictionary, broadcast), F.lit(playlists_total))
    top = pairs.top_neighbours(scored, top_k, "score")
    top = pairs.decode(top, dictionary, ("track_id", "neighbor_id"), broadcast)
    return top.select(
        F.col("track_id").alias("artist_id"), F.col("neighbor_id").alias("similar_artist_id"), "rank",
        *pairs.METRIC_COLUMNS,
    )


def artists_once(artists: DataFrame) -> DataFrame:
    """One row per artist_id (the most popular row, then most followers, then the other columns)."""
    unique, _ = one_row_per_key(
        artists.select("artist_id", "popularity", "followers", "genres").where(F.col("artist_id").isNotNull()),
        "artist_id",
        [F.col("popularity").desc_nulls_last(), F.col("followers").desc_nulls_last()],
        "graph_artist_duplicates",
    )
    return unique


def popular_artists(artists: DataFrame, count: int) -> DataFrame:
    """(artist_id) of the ``count`` most popular artists: popularity desc, followers desc, id asc."""
    order = [F.col("popularity").desc_nulls_last(), F.col("followers").desc_nulls_last(), F.col("artist_id").asc()]
    return artists.orderBy(*order).limit(count).select("artist_id")


def artist_similarity(neighbours: DataFrame, seeds: DataFrame) -> DataFrame:
    """The neighbour rows of the seed artists only."""
    return neighbours.join(F.broadcast(seeds), on="artist_id", how="inner")


# ------------------------------------------------------------------------------------------------
# Inferred genres


def _known_genres(artists: DataFrame) -> DataFrame:
    """(artist_id, genre, share): each listed genre of an artist once, share = 1 / its number of genres."""
    listed = artists.select(
        "artist_id", F.array_distinct(F.filter(F.coalesce("genres", F.array()), lambda g: g.isNotNull())).alias("g")
    ).where(F.size("g") > 0)
    return listed.select(
        "artist_id", F.explode("g").alias("genre"), (F.lit(1.0) / F.size("g")).alias("share")
    )


def genre_votes(neighbours: DataFrame, artists: DataFrame, min_confidence: float,
                max_genres: int = MAX_INFERRED_GENRES) -> DataFrame:
    """(artist_id, genre, confidence) for every artist with neighbours, from its neighbours' Spotify genres
    only (the artist's own genres take no part, so on an artist with genres this is a leave-one-out guess).

    Each neighbour spreads its score evenly over its genres; an artist's confidence in a genre is the
    genre's share of the total score of *all* its neighbours (those without genres count in the total), so
    an artist's confidences sum to ≤ 1. Kept: the best ``max_genres`` above ``min_confidence``, ties by
    genre name.
    """
    scores = neighbours.select("artist_id", "similar_artist_id", F.col("score").cast("double").alias("score"))
    totals = scores.groupBy("artist_id").agg(F.sum("score").alias("total")).where(F.col("total") > 0)
    known = _known_genres(artists).select(F.col("artist_id").alias("similar_artist_id"), "genre", "share")
    votes = (
        scores.join(known, on="similar_artist_id", how="inner")
        .groupBy("artist_id", "genre")
        .agg(F.sum(F.col("score") * F.col("share")).alias("votes"))
        .join(totals, on="artist_id", how="inner")
        .select("artist_id", "genre", (F.col("votes") / F.col("total")).alias("confidence"))
    )
    order = Window.partitionBy("artist_id").orderBy(F.col("confidence").desc(), F.col("genre").asc())
    return (
        votes.where(F.col("confidence") > min_confidence)
        .withColumn("_rank", F.row_number().over(order))
        .where(F.col("_rank") <= max_genres)
        .drop("_rank")
    )


def artist_genres(artists: DataFrame, votes: DataFrame) -> DataFrame:
    """(artist_id, genre, confidence, source): Spotify's genres as they are (confidence 1, "spotify"), and
    for artists without any, the voted genres ("inferred"). One row per (artist, genre)."""
    known = _known_genres(artists)
    spotify = known.select("artist_id", "genre", F.lit(1.0).alias("confidence"), F.lit(SOURCE_SPOTIFY).alias("source"))
    inferred = votes.join(known.select("artist_id").distinct(), on="artist_id", how="left_anti").select(
        "artist_id", "genre", "confidence", F.lit(SOURCE_INFERRED).alias("source")
    )
    return spotify.unionByName(inferred)


# ------------------------------------------------------------------------------------------------
# Track graph


def track_edges(top: DataFrame) -> DataFrame:
    """(track_a, track_b, weight): the undirected edges of cooccurrence_top (a pair appears once whether
    one or both of its tracks rank the other), weight = score."""
    return (
        top.where(F.col("track_id") != F.col("neighbor_id"))
        .select(
            F.least("track_id", "neighbor_id").alias("track_a"),
            F.greatest("track_id", "neighbor_id").alias("track_b"),
            F.col("score").cast("double").alias("weight"),
        )
        .groupBy("track_a", "track_b")
        .agg(F.max("weight").alias("weight"))
    )


def vertex_dictionary(edges: DataFrame) -> DataFrame:
    """(tid, track_id): every track of an edge, dense int ids in string order (the co-occurrence
    dictionary's convention, so its ``decode`` applies)."""
    ends = edges.select(F.col("track_a").alias("track_id")).union(edges.select(F.col("track_b").alias("track_id")))
    by_id = Window.orderBy("track_id")
    return ends.distinct().select((F.row_number().over(by_id) - 1).cast("int").alias("tid"), "track_id")


def encode_edges(edges: DataFrame, dictionary: DataFrame, broadcast: bool) -> DataFrame:
    """(src, dst, weight) on dictionary ids."""
    ids = dictionary.select("track_id", "tid")
    if broadcast:
        ids = F.broadcast(ids)
    side_a = ids.select(F.col("track_id").alias("track_a"), F.col("tid").alias("src"))
    side_b = ids.select(F.col("track_id").alias("track_b"), F.col("tid").alias("dst"))
    return (
        edges.join(side_a, on="track_a", how="inner").join(side_b, on="track_b", how="inner")
        .select("src", "dst", "weight")
    )


def clusters_table(labels: DataFrame, dictionary: DataFrame, broadcast: bool) -> DataFrame:
    """(spotify_id, cluster_id, cluster_size, iteration_converged) from (id, label, iteration): a cluster is
    named by its smallest member track id (the label's own track may have moved to another cluster)."""
    cluster = Window.partitionBy("label")
    sized = labels.select(
        F.col("id").cast("int").alias("spotify_id"),
        F.min("id").over(cluster).cast("int").alias("cluster_id"),
        F.count(F.lit(1)).over(cluster).alias("cluster_size"),
        F.col("iteration").alias("iteration_converged"),
    )
    return pairs.decode(sized, dictionary, ("spotify_id", "cluster_id"), broadcast)


def components_table(components: DataFrame, dictionary: DataFrame, broadcast: bool) -> DataFrame:
    """(spotify_id, component_id): the component is named by its smallest track id."""
    ids = components.select(F.col("id").cast("int").alias("spotify_id"),
                            F.col("component").cast("int").alias("component_id"))
    return pairs.decode(ids, dictionary, ("spotify_id", "component_id"), broadcast)
