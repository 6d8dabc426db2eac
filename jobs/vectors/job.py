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

from typing import Any

from jobs.vectors import knn, transforms
from lib.config import Config
from lib.job import Input, JobSpec, Run
from lib.spark import observed_counts

BRONZE_INPUTS = ("spotify_audio_features", "spotify_tracks", "spotify_artists", "spotify_albums")
XREF = "gold/spotify_mbid_xref"
XREF_COLUMNS = ("spotify_id", "mbid", "match_confidence")
# transforms.audio_vectors' duplicate counters → the table whose rows they count
DUPLICATES_OF = {
    "feature_duplicates": "bronze/spotify_audio_features", "track_duplicates": "bronze/spotify_tracks",
    "artist_duplicates": "bronze/spotify_artists", "album_duplicates": "bronze/spotify_albums",
    "xref_duplicates": XREF,
}
VECTORS = "gold/audio_vectors"
SIMILAR = "gold/precomputed_similar"


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


def build(run: Run) -> None:
    config = run.config
    assert run.spark is not None
    if run.input_rows("bronze/spotify_audio_features") == 0:
        run.note("bronze/spotify_audio_features is empty: both tables are written empty")
        run.write_empty(VECTORS)
        run.write_empty(SIMILAR)
        return
    bronze = {name: run.input(f"bronze/{name}") for name in BRONZE_INPUTS}
    xref = run.input(XREF) if run.has_input(XREF) else None
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
    with run.timed("audio_vectors"):
        vectors_staged = run.write(VECTORS, vectors)
    with run.timed("precomputed_similar"):
        written = run.read_staged(VECTORS)
        similar, plan = knn.exact_top_k(
            run.spark,
            transforms.seeds(written, config.similar.seed_count, column),
            transforms.candidates(written, column),
            search_options(config),
        )
        run.write(SIMILAR, similar)
    totals = observed_counts(observations.pop("totals"))
    duplicates = {name: observed_counts(obs, ("duplicates",))["duplicates"] for name, obs in observations.items()}
    for name, rows in duplicates.items():
        run.left_out(DUPLICATES_OF[name], "duplicate id (one row used)", rows)
    run.metrics.update({
        "audio_vectors": {"rows": vectors_staged.rows, **totals},
        "duplicates": duplicates,
        "precomputed_similar": {
            "seeds": plan.seeds, "candidates": plan.candidates, "broadcast": plan.broadcast, "blocks": plan.blocks,
            "vector": column, **plan.kernel_stats(),
        },
    })


JOB = JobSpec(
    name="vectors",
    body=build,
    inputs=(*(Input(f"bronze/{name}") for name in BRONZE_INPUTS),
            Input(XREF, XREF_COLUMNS, optional=True, hint="run xref first (contract of gold/spotify_mbid_xref)")),
    outputs=(VECTORS, SIMILAR),
    config_sections=("vectors", "similar"),
)


def run(spark: Any, config: Any) -> dict[str, Any]:
    """Notebook and test entry point: the job through the frame; returns the summary."""
    from lib.job import execute

    return execute(JOB, spark, config)
