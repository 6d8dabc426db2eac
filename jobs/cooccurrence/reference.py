"""Straightforward versions of the contract, to check the job against (tests) and to race it (bench).

- ``reference_tables``: plain Python (sets, ``itertools.combinations``, ``math``), written from the
  definitions in job.py and sharing no code with the job. LLR uses the textbook G² sum
  2·Σ k·ln(k·N / (row·column)) instead of the job's entropy form, so the two formulas check each other.
- ``naive_pair_table``: the plan a first Spark version would use: string ids, no pruning, every pair of a
  playlist produced by a self-join on playlist_id and counted by ``groupBy``. Same output as the job.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.cooccurrence import transforms

RANK_KEYS = {"score": "score", "pmi": "pmi_score", "llr": "llr_score", "jaccard": "jaccard_score"}


def _rounded(value: float) -> float:
    return float(f"{value:.12g}")


def g_squared(k11: int, k12: int, k21: int, k22: int) -> float:
    """Dunning's log-likelihood ratio as 2·Σ k·ln(k·N / (row sum · column sum)), with 0·ln(…) = 0."""
    total = k11 + k12 + k21 + k22
    rows = (k11 + k12, k21 + k22)
    columns = (k11 + k21, k12 + k22)
    cells = ((k11, 0, 0), (k12, 0, 1), (k21, 1, 0), (k22, 1, 1))
    result = 0.0
    for k, row, column in cells:
        if k > 0:
            result += k * math.log(k * total / (rows[row] * columns[column]))
    return max(2.0 * result, 0.0)


def reference_tables(
    rows: Iterable[tuple[str | None, str | None]],
    min_playlist_size: int = 5,
    max_playlist_size: int = 500,
    min_cooccurrence: int = 3,
    top_k: int = 100,
    rank_by: str = "score",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, int]]:
    """(pair rows, top rows, counts) from (playlist_id, track_id) rows, by the definitions."""
    playlists: dict[str, set[str]] = defaultdict(set)
    for playlist_id, track_id in rows:
        if playlist_id is not None and track_id is not None:
            playlists[playlist_id].add(track_id)
    qualifying = [tracks for tracks in playlists.values() if min_playlist_size <= len(tracks) <= max_playlist_size]
    n = len(qualifying)
    single: Counter[str] = Counter()
    both: Counter[tuple[str, str]] = Counter()
    for tracks in qualifying:
        single.update(tracks)
        both.update(itertools.combinations(sorted(tracks), 2))
    pairs = []
    for (a, b), c_ab in both.items():
        if c_ab < min_cooccurrence:
            continue
        c_a, c_b = single[a], single[b]
        pmi = math.log2(c_ab * n / (c_a * c_b))
        jaccard = c_ab / (c_a + c_b - c_ab)
        normalized = min(max((pmi + 5) / 15, 0.0), 1.0)
        pairs.append({
            "track_a": a,
            "track_b": b,
            "cooccurrence_count": c_ab,
            "pmi_score": pmi,
            "jaccard_score": jaccard,
            "score": 0.6 * normalized + 0.4 * jaccard,
            "llr_score": g_squared(c_ab, c_a - c_ab, c_b - c_ab, n - c_a - c_b + c_ab),
        })
    neighbours: dict[str, list[dict[str, Any]]] = defaultdict(list)
    metrics = ("cooccurrence_count", "pmi_score", "jaccard_score", "score", "llr_score")
    for pair in pairs:
        values = {name: pair[name] for name in metrics}
        neighbours[pair["track_a"]].append({"track_id": pair["track_a"], "neighbor_id": pair["track_b"], **values})
        neighbours[pair["track_b"]].append({"track_id": pair["track_b"], "neighbor_id": pair["track_a"], **values})
    key = RANK_KEYS[rank_by]
    top = []
    for candidates in neighbours.values():
        # Rounded to 12 digits: values equal in exact arithmetic (two pairs with the same counts) are ties
        # here even when another formula's last bit differs.
        candidates.sort(key=lambda row: (-_rounded(row[key]), -row["cooccurrence_count"], row["neighbor_id"]))
        for rank, row in enumerate(candidates[:top_k], start=1):
            top.append({**row, "rank": rank})
    counts = {
        "playlists_qualifying": n,
        "tracks": len(single),
        "tracks_kept": sum(1 for c in single.values() if c >= min_cooccurrence),
        "pairs_kept": len(pairs),
    }
    return pairs, top, counts


def naive_pair_table(
    rows: DataFrame, min_playlist_size: int, max_playlist_size: int, min_cooccurrence: int
) -> DataFrame:
    """The pair table from (playlist_id, track_id) rows by a self-join of string ids, without pruning."""
    distinct = (
        rows.where(F.col("playlist_id").isNotNull() & F.col("track_id").isNotNull())
        .select("playlist_id", "track_id")
        .distinct()
    )
    sizes = distinct.groupBy("playlist_id").agg(F.count(F.lit(1)).alias("size"))
    qualifying_ids = sizes.where(F.col("size").between(min_playlist_size, max_playlist_size)).select("playlist_id")
    qualifying = distinct.join(qualifying_ids, on="playlist_id", how="left_semi")
    marginals = qualifying.groupBy("track_id").agg(F.count(F.lit(1)).alias("playlist_count"))
    left, right = qualifying.alias("x"), qualifying.alias("y")
    counts = (
        left.join(
            right,
            on=(F.col("x.playlist_id") == F.col("y.playlist_id")) & (F.col("x.track_id") < F.col("y.track_id")),
            how="inner",
        )
        .groupBy(F.col("x.track_id").alias("track_a"), F.col("y.track_id").alias("track_b"))
        .agg(F.count(F.lit(1)).alias("cooccurrence_count"))
        .where(F.col("cooccurrence_count") >= min_cooccurrence)
    )
    with_counts = counts.join(
        marginals.select(F.col("track_id").alias("track_a"), F.col("playlist_count").alias("count_a")),
        on="track_a",
        how="inner",
    ).join(
        marginals.select(F.col("track_id").alias("track_b"), F.col("playlist_count").alias("count_b")),
        on="track_b",
        how="inner",
    )
    total = qualifying_ids.agg(F.count(F.lit(1)).alias("playlists_total"))
    return transforms.pair_scores(with_counts.join(total, how="cross"), F.col("playlists_total"))
