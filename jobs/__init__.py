"""The job registry: name → (module, one-line description). Modules are imported only when run, so
``--help`` and config errors answer without starting Python's Spark imports."""

from __future__ import annotations

JOBS: dict[str, tuple[str, str]] = {
    "sample": ("jobs.sample.job", "generate a sample dump in the real release layout (+ mbdump)"),
    "ingest": ("jobs.ingest.job", "Spotify SQLite dumps + MusicBrainz mbdump -> bronze Delta tables"),
    "cooccurrence": ("jobs.cooccurrence.job", "playlist pairs with PMI, Jaccard, score, LLR; top-K per track"),
    "xref": ("jobs.xref.job", "Spotify tracks -> MusicBrainz recordings (ISRC exact/normalized, metadata)"),
    "vectors": ("jobs.vectors.job", "13-dim audio vectors, tiers, facets, exact top-K neighbours"),
    "graph": ("jobs.graph.job", "artist similarity, track clusters and components, inferred artist genres"),
    "publish": ("jobs.publish.job", "gold tables -> D1, Vectorize, KV, R2 (or local files), exactly once"),
    "promote": ("jobs.promote.job", "tracks read often from the cold tier (track_access_log) -> Vectorize"),
    "report": ("jobs.report.job", "one self-contained HTML report of the warehouse and the run records"),
    "pipeline": ("jobs.pipeline.job", "sample (when missing) and every job above, in order"),
}

# Commands that inspect the warehouse without Spark (no JVM is started).
COMMANDS: dict[str, str] = {
    "check-tables": "open every Delta table at every version; report missing files or wrong row counts",
    "runs": "the run history from gold/_runs (--job J, --last N)",
}
