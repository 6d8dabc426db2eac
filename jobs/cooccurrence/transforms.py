"""The DataFrame steps of the co-occurrence job (job.py runs them as resumable steps).

1. ``playlist_track_sets``: one shuffle of the raw rows by playlist; each playlist becomes the set of its
   distinct track ids, kept when its size lies in [min_playlist_size, max_playlist_size].
2. ``track_marginals`` / ``track_dictionary``: c(t) from *all* qualifying playlists; only tracks with
   c(t) ≥ min_cooccurrence can be in a kept pair (c(a,b) ≤ min(c(a), c(b))), and only they get a dense
   int id. Ids follow the string order of the track ids, so ``a < b`` on ids is ``a < b`` on strings.
3. ``encode_playlists``: each playlist becomes the sorted array of its kept track ids (pruned before
   any pair exists).
4. ``pair_tails`` / ``count_pairs``: instead of one shuffled row per pair, each (playlist, track a)
   emits one row ``(a, [kept tracks after a])``, shuffled by ``a``: a pair costs 4 bytes of array in the
   shuffle, and every pair (a, b) lands in the task of ``a``, where a numpy kernel sorts the packed keys
   and counts runs (kernels.py says why not ``groupBy().count()``).
5. ``with_marginals`` / ``pair_scores`` / ``top_neighbours`` / ``decode``: metrics and the top-K on int
   ids, then back to string ids.

No Python UDFs: the steps are Spark built-ins, and the counting kernel is an Arrow batch function
(``mapInArrow``), not a per-row UDF.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
from pyspark import Broadcast
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.cooccurrence import kernels

# The spec's playlistCooccurrenceScore: 0.6 · normalize(pmi, -5, 10) + 0.4 · jaccard, where
# normalize(x, lo, span) = clamp((x - lo) / span, 0, 1).
SCORE_PMI_WEIGHT = 0.6
SCORE_JACCARD_WEIGHT = 0.4
SCORE_PMI_LOW = -5.0
SCORE_PMI_SPAN = 15.0

# cooccurrence.rank_by → the column cooccurrence_top is ordered by (then count desc, neighbour id asc).
RANK_COLUMNS: dict[str, str] = {
    "score": "score",
    "pmi": "pmi_score",
    "llr": "llr_score",
    "jaccard": "jaccard_score",
}

METRIC_COLUMNS = ("cooccurrence_count", "pmi_score", "jaccard_score", "score", "llr_score")


def playlist_track_sets(rows: DataFrame, min_size: int, max_size: int, *extra: Column) -> DataFrame:
    """(playlist_id, tracks, extra…): the distinct track ids of each qualifying playlist.

    ``rows`` holds (playlist_id, track_id) without NULLs. A track listed twice counts once, both for the
    size test and for c(t). ``extra`` aggregates ride along in the same shuffle (the graph job collects
    each playlist's primary artists here, so artist pairs use exactly these qualifying playlists).
    """
    tracks = F.collect_set("track_id")
    return (
        rows.groupBy("playlist_id")
        .agg(tracks.alias("tracks"), *extra)
        .where(F.size("tracks").between(min_size, max_size))
    )


def track_marginals(playlists: DataFrame) -> DataFrame:
    """(track_id, playlist_count): c(t), the number of qualifying playlists holding t."""
    return (
        playlists.select(F.explode("tracks").alias("track_id"))
        .groupBy("track_id")
        .agg(F.count(F.lit(1)).alias("playlist_count"))
    )


def track_dictionary(marginals: DataFrame, min_cooccurrence: int) -> DataFrame:
    """(tid, track_id, playlist_count) for the tracks that can be in a kept pair.

    ``tid`` is dense (0..K-1) and follows the byte order of ``track_id`` (Spark compares strings as UTF-8
    bytes, like Python and DuckDB), so int order is string order. The global ``row_number`` sorts the
    kept tracks in one task: at the real release's scale (tens of millions of ids) that is one sort of
    about a gigabyte that Spark spills as needed (docs/scaling.md).
    """
    by_id = Window.orderBy("track_id")
    return marginals.where(F.col("playlist_count") >= min_cooccurrence).select(
        (F.row_number().over(by_id) - 1).cast("int").alias("tid"), "track_id", "playlist_count"
    )


def _maybe_broadcast(frame: DataFrame, broadcast: bool) -> DataFrame:
    return F.broadcast(frame) if broadcast else frame


def encode_playlists(playlists: DataFrame, dictionary: DataFrame, broadcast: bool = True) -> DataFrame:
    """(pid, tids): each playlist's kept tracks as a sorted int array; fewer than 2 make no pair.

    ``playlists`` holds (pid, tracks) with a unique ``pid`` per playlist. The inner join drops the pruned
    tracks; with ``broadcast`` the dictionary is hashed on every executor, without it the join shuffles
    by track id (dictionaries too large to broadcast).
    """
    ids = _maybe_broadcast(dictionary.select("track_id", "tid"), broadcast)
    return (
        playlists.select("pid", F.explode("tracks").alias("track_id"))
        .join(ids, on="track_id", how="inner")
        .groupBy("pid")
        .agg(F.sort_array(F.collect_list("tid")).alias("tids"))
        .where(F.size("tids") >= 2)
    )


def dictionary_ids(dictionary: DataFrame) -> pa.Array:
    """The dictionary's track ids in tid order (position = tid), collected for ``encoded_tails``."""
    table = dictionary.select("tid", "track_id").toArrow()
    order = pc.sort_indices(table.column("tid"))
    if len(order) and table.column("tid")[order[-1].as_py()].as_py() != len(order) - 1:
        raise ValueError("cooccurrence dictionary: tid is not dense 0..K-1")
    ids = table.column("track_id").take(order)
    return ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids


def encoded_tails(playlists: DataFrame, ids: Broadcast) -> DataFrame:
    """(track_a, later) from (pid, tracks) playlists in one Arrow pass (kernels.encode_tails), with the
    broadcast dictionary ids (``dictionary_ids``): the same rows as ``pair_tails(encode_playlists(…))``
    without the explode, the join and the shuffle by playlist that re-assembles the encoded sets."""

    def kernel(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        return kernels.encode_tails(batches, ids.value)

    return playlists.select("tracks").mapInArrow(kernel, kernels.TAIL_DDL)


def pair_tails(encoded: DataFrame) -> DataFrame:
    """(track_a, later): for each kept track a of a playlist, the playlist's kept tracks after a.

    The pairs (a, b) with a < b of a playlist are exactly ``a × later(a)``; ``size(later)`` summed over
    the rows is the number of pairs generated.
    """
    return (
        encoded.select(F.posexplode("tids").alias("position", "track_a"), "tids")
        .select("track_a", F.slice("tids", F.col("position") + 2, F.size("tids")).alias("later"))
        .where(F.size("later") > 0)
    )


def count_pairs(tails: DataFrame, min_cooccurrence: int, partitions: int) -> DataFrame:
    """(track_a, track_b, cooccurrence_count) with count ≥ ``min_cooccurrence`` (1: additive partial
    counts, for chunks).

    The tails are shuffled by ``track_a`` into ``partitions`` tasks (an explicit count, which AQE keeps),
    so every pair (a, b) is counted in the task of ``a`` by the numpy kernel (kernels.count_tail_pairs).
    """
    kernel = functools.partial(kernels.count_tail_pairs, min_count=min_cooccurrence)
    return tails.repartition(partitions, "track_a").mapInArrow(kernel, kernels.PAIR_COUNT_DDL)


def combine_pair_counts(partials: DataFrame, min_cooccurrence: int, partitions: int) -> DataFrame:
    """Sum partial (track_a, track_b, cooccurrence_count) rows (one per chunk and pair) and keep the
    totals ≥ ``min_cooccurrence``."""
    kernel = functools.partial(kernels.sum_pair_counts, min_count=min_cooccurrence)
    return partials.repartition(partitions, "track_a").mapInArrow(kernel, kernels.PAIR_COUNT_DDL)


def with_marginals(counts: DataFrame, dictionary: DataFrame, broadcast: bool = True) -> DataFrame:
    """Int pair counts + count_a = c(track_a), count_b = c(track_b) from the dictionary."""
    margins = dictionary.select("tid", "playlist_count")
    side_a = _maybe_broadcast(margins.select(F.col("tid").alias("track_a"), F.col("playlist_count").alias("count_a")),
                              broadcast)
    side_b = _maybe_broadcast(margins.select(F.col("tid").alias("track_b"), F.col("playlist_count").alias("count_b")),
                              broadcast)
    return counts.join(side_a, on="track_a", how="inner").join(side_b, on="track_b", how="inner")


def decode(frame: DataFrame, dictionary: DataFrame, columns: tuple[str, ...], broadcast: bool = True) -> DataFrame:
    """Replace each int id column in ``columns`` by its track_id string (same name, same position)."""
    out = frame
    for column in columns:
        ids = _maybe_broadcast(
            dictionary.select(F.col("tid").alias(f"_{column}_tid"), F.col("track_id").alias(f"_{column}_id")),
            broadcast,
        )
        out = out.join(ids, on=F.col(column) == F.col(f"_{column}_tid"), how="inner")
    return out.select(*(F.col(f"_{name}_id").alias(name) if name in columns else F.col(name) for name in frame.columns))


def _x_log_x(x: Column) -> Column:
    """x·ln(x) with 0·ln(0) = 0."""
    return F.when(x > 0, x * F.log(x)).otherwise(F.lit(0.0))


def _unnormalized_entropy(*counts: Column) -> Column:
    total = counts[0]
    for count in counts[1:]:
        total = total + count
    result = _x_log_x(total)
    for count in counts:
        result = result - _x_log_x(count)
    return result


def log_likelihood_ratio(k11: Column, k12: Column, k21: Column, k22: Column) -> Column:
    """Dunning's G² for a 2×2 contingency table, as Mahout's ``LogLikelihood.logLikelihoodRatio``:
    2·(H(rows) + H(columns) − H(matrix)) with unnormalised entropies H(k…) = xlnx(Σk) − Σ xlnx(k),
    natural logs; a negative value (round-off) becomes 0."""
    row_entropy = _unnormalized_entropy(k11 + k12, k21 + k22)
    column_entropy = _unnormalized_entropy(k11 + k21, k12 + k22)
    # k12 and k21 are summed first so a transposed table (the same pair seen from the other track) gives
    # a bit-identical value, and ties in the llr top-K stay ties.
    matrix_entropy = (
        _x_log_x(k11 + k12 + k21 + k22) - _x_log_x(k11) - (_x_log_x(k12) + _x_log_x(k21)) - _x_log_x(k22)
    )
    llr = F.lit(2.0) * (row_entropy + column_entropy - matrix_entropy)
    return F.greatest(llr, F.lit(0.0))


def pair_scores(pairs: DataFrame, playlists_total: Column) -> DataFrame:
    """Add pmi_score, jaccard_score, score and llr_score to pairs with count_a / count_b.

    ``playlists_total`` is N (a column, e.g. from a one-row cross join, or a literal).
    """
    c_ab = F.col("cooccurrence_count").cast("double")
    c_a = F.col("count_a").cast("double")
    c_b = F.col("count_b").cast("double")
    n = playlists_total.cast("double")
    pmi = F.log2(c_ab * n / (c_a * c_b))
    jaccard = c_ab / (c_a + c_b - c_ab)
    normalized_pmi = F.least(F.greatest((pmi - F.lit(SCORE_PMI_LOW)) / F.lit(SCORE_PMI_SPAN), F.lit(0.0)), F.lit(1.0))
    llr = log_likelihood_ratio(c_ab, c_a - c_ab, c_b - c_ab, n - c_a - c_b + c_ab)
    return pairs.select(
        "track_a",
        "track_b",
        "cooccurrence_count",
        pmi.alias("pmi_score"),
        jaccard.alias("jaccard_score"),
        (F.lit(SCORE_PMI_WEIGHT) * normalized_pmi + F.lit(SCORE_JACCARD_WEIGHT) * jaccard).alias("score"),
        llr.alias("llr_score"),
    )


def directed_pairs(pairs: DataFrame) -> DataFrame:
    """Each pair in both directions: (track_id, neighbor_id, metrics…), from one pass over the pairs."""
    directions = F.array(
        F.struct(F.col("track_a").alias("track_id"), F.col("track_b").alias("neighbor_id")),
        F.struct(F.col("track_b").alias("track_id"), F.col("track_a").alias("neighbor_id")),
    )
    return pairs.select(F.inline(directions), *METRIC_COLUMNS)


def top_neighbours(pairs: DataFrame, top_k: int, rank_by: str = "score") -> DataFrame:
    """(track_id, neighbor_id, rank, metrics…): each track's best ``top_k`` partners from both sides of
    the pairs, ordered by the ``rank_by`` metric desc, cooccurrence_count desc, neighbor_id asc.

    ``row_number`` over that full ordering gives exactly min(top_k, neighbours) rows per track, ties
    included. Run on dictionary ids (int order = string order) the sort is on primitives; Spark also
    pushes the ``rank <= top_k`` limit below the shuffle (WindowGroupLimit).
    """
    if rank_by not in RANK_COLUMNS:
        raise ValueError(f"rank_by must be one of {', '.join(RANK_COLUMNS)}; got {rank_by!r}")
    order = Window.partitionBy("track_id").orderBy(
        F.col(RANK_COLUMNS[rank_by]).desc(), F.col("cooccurrence_count").desc(), F.col("neighbor_id").asc()
    )
    return (
        directed_pairs(pairs)
        .withColumn("rank", F.row_number().over(order))
        .where(F.col("rank") <= top_k)
        .select("track_id", "neighbor_id", "rank", *METRIC_COLUMNS)
    )
