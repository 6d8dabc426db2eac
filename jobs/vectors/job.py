"""vectors: bronze audio features → ``gold/audio_vectors`` and ``gold/precomputed_similar``.

``gold/audio_vectors``: one row per track with audio features — the 13-component vector of Appendix B
(each component clamped to [0, 1], NULL → 0.0; no further normalisation is stored), its popularity
tier (A ≥ ``vectors.tier_a_min_popularity``, B ≥ ``vectors.tier_b_min_popularity``, else C), the
Vectorize metadata (isrc, title, primary artist and its genres, year, decade, mbid from
``gold/spotify_mbid_xref`` when that table exists) and the genres detected from the features.
When bronze holds several feature rows for one track, one is used (latest fetch, then most non-NULL
features; counted in the summary as ``feature_duplicates``): a track has one vector. Likewise one row
per id of tracks, artists, albums and xref (best match_confidence) is joined, so joins never multiply
rows. A track whose features are all NULL still has its popularity component; only with popularity 0
is its vector the zero vector, whose cosine with anything is 0.

``gold/precomputed_similar``: for the ``similar.seed_count`` most popular tracks, their exact
``similar.top_k`` nearest tier-A tracks by cosine (``knn``). Both tables are committed together at
the end; a failure leaves both at their previous version.

With ``vectors.hybrid`` audio_vectors also carries ``hybrid_vector`` (``hybrid``), and with
``similar.vector = "hybrid"`` the neighbours are computed on it instead of the audio vector.
"""

from __future__ import annotations

import time
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from jobs.vectors import knn, transforms
from lib import delta
from lib.config import Config
from lib.errors import InputError, JobError
from lib.log import get_logger
from lib.schemas import conform
from lib.spark import observed_counts

log = get_logger("vectors")

BRONZE_INPUTS = ("spotify_audio_features", "spotify_tracks", "spotify_artists", "spotify_albums")
XREF_TABLE = "spotify_mbid_xref"
XREF_COLUMNS = ("spotify_id", "mbid", "match_confidence")


def read_inputs(spark: SparkSession, config: Config) -> tuple[dict[str, DataFrame], DataFrame | None]:
    warehouse = config.paths.warehouse
    bronze = {
        name: delta.read_input(spark, delta.table_path(warehouse, "bronze", name)) for name in BRONZE_INPUTS
    }
    xref_uri = delta.table_path(warehouse, "gold", XREF_TABLE)
    xref = delta.read(spark, xref_uri) if delta.exists(xref_uri) else None
    if xref is not None:
        missing = [c for c in XREF_COLUMNS if c not in xref.columns]
        if missing:
            raise InputError(f"{xref_uri}: no column(s) {', '.join(missing)} (contract of gold/{XREF_TABLE})")
    return bronze, xref


def search_options(config: Config) -> knn.SearchOptions:
    s = config.similar
    return knn.SearchOptions(
        k=s.top_k,
        block_rows=s.block_rows,
        seed_batch=s.seed_batch,
        margin=s.search_margin,
        threads=s.faiss_threads,
        broadcast=s.broadcast,
    )


def run(spark: SparkSession, config: Config) -> dict[str, Any]:
    started = time.perf_counter()
    if config.similar.vector == "hybrid" and not config.vectors.hybrid:
        raise JobError("config key 'similar.vector' is 'hybrid' but 'vectors.hybrid' is false (no hybrid vectors)")
    bronze, xref = read_inputs(spark, config)
    vectors, observations = transforms.audio_vectors(
        bronze["spotify_audio_features"],
        bronze["spotify_tracks"],
        bronze["spotify_artists"],
        bronze["spotify_albums"],
        xref,
        config.vectors.tier_a_min_popularity,
        config.vectors.tier_b_min_popularity,
        config.vectors.genre_rule,
    )
    if config.vectors.hybrid:
        from jobs.vectors import hybrid

        vectors = hybrid.with_hybrid_vectors(vectors, config.vectors.hybrid_text_weight)
    column = "hybrid_vector" if config.similar.vector == "hybrid" else "vector"
    warehouse = config.paths.warehouse
    staged: list[delta.StagedWrite] = []
    try:
        vectors_uri = delta.table_path(warehouse, "gold", "audio_vectors")
        staged.append(delta.stage(conform(vectors, "gold", "audio_vectors"), vectors_uri))
        vectors_seconds = time.perf_counter() - started
        log.info("staged gold/audio_vectors: %d rows in %.1f s", staged[0].rows, vectors_seconds)

        knn_started = time.perf_counter()
        written = delta.read_staged(spark, staged[0])
        similar, plan = knn.exact_top_k(
            spark,
            transforms.seeds(written, config.similar.seed_count, column),
            transforms.candidates(written, column),
            search_options(config),
        )
        similar_uri = delta.table_path(warehouse, "gold", "precomputed_similar")
        staged.append(delta.stage(conform(similar, "gold", "precomputed_similar"), similar_uri))
        knn_seconds = time.perf_counter() - knn_started
        log.info(
            "staged gold/precomputed_similar: %d rows (%d seeds × top %d of %d tier-A candidates, "
            "broadcast %s, %d blocks) in %.1f s",
            staged[1].rows, plan.seeds, config.similar.top_k, plan.candidates, plan.broadcast, plan.blocks,
            knn_seconds,
        )
        versions = delta.commit_all(staged)
    except BaseException:
        delta.abort_all(staged)
        raise

    totals = observed_counts(observations.pop("totals"))
    summary: dict[str, Any] = {
        "audio_vectors": {"rows": staged[0].rows, "version": versions[0], **totals},
        **{name: observed_counts(obs, ("duplicates",))["duplicates"] for name, obs in observations.items()},
        "precomputed_similar": {
            "rows": staged[1].rows,
            "version": versions[1],
            "seeds": plan.seeds,
            "candidates": plan.candidates,
            "broadcast": plan.broadcast,
            "blocks": plan.blocks,
            "vector": column,
            **plan.kernel_stats(),
        },
        "seconds": {
            "audio_vectors": round(vectors_seconds, 2),
            "precomputed_similar": round(knn_seconds, 2),
            "total": round(time.perf_counter() - started, 2),
        },
    }
    return summary
