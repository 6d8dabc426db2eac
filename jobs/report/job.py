"""report: one self-contained HTML file (``report.dir/report.html``) describing the warehouse.

Figures (matplotlib PNGs embedded as data URIs) and tables from the gold tables at their pinned versions,
aggregated by Spark so nothing large reaches the driver, and from the run records (``gold/_runs``): match
rates, score distributions, degrees, tiers, genres, clusters, example neighbours, rows left out, run times,
the published footprint and its monthly cost (``lib.cloudflare.pricing``). Every input is optional: a
section whose table is absent says which job fills it.

``gold/_runs`` is read as it is, not declared as an input: every run appends to it, so pinning it would make
the report's inputs change on every pipeline run and defeat the incremental skip. ``gold/_publish_state`` is
declared (not read) so that a publish that changed the targets reruns the report.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from jobs.report import publishing, sections
from jobs.report.html import count_images, document
from lib import runs
from lib.job import Input, JobSpec, Run, now

HINT = "run the pipeline first"
INPUTS: dict[str, tuple[str, ...]] = {
    "gold/spotify_mbid_xref": ("match_method", "match_confidence"),
    "gold/playlist_cooccurrence": ("track_a", "track_b", "pmi_score", "jaccard_score", "score"),
    "gold/cooccurrence_top": ("track_id", "neighbor_id", "rank", "score"),
    "gold/audio_vectors": ("spotify_id", "tier", "popularity", "title", "artist", "detected_genres"),
    "gold/precomputed_similar": ("seed_spotify_id", "similar_spotify_id", "similarity_score", "rank"),
    "gold/track_clusters": ("spotify_id", "cluster_id"),
    "bronze/spotify_tracks": ("track_id", "name", "artist_ids", "popularity"),
    "bronze/spotify_artists": ("artist_id", "name"),
}
# Not read: declared so that a publish that changed the targets makes the report's inputs change too.
PUBLISH_STATE = "gold/_publish_state"
FILE_NAME = "report.html"


def write_atomically(folder: str, name: str, text: str) -> str:
    """Write ``folder/name`` through a temporary file and a rename, so a reader never sees half a report."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=target, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temp, 0o644)
        os.replace(temp, target / name)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return str(target / name)


def build(run: Run) -> None:
    config = run.config
    history = runs.history(config)
    inputs = sections.Inputs(
        frames={table: run.input(table) if run.has_input(table) else None for table in INPUTS},
        history=history,
        settings={"examples": config.report.examples, "neighbours": config.report.neighbours,
                  "history_runs": config.report.history_runs, "local_dir": config.publish.local_dir,
                  "tier_a": config.vectors.tier_a_min_popularity, "tier_b": config.vectors.tier_b_min_popularity},
    )
    built = []
    for builder in sections.BUILDERS:
        with run.timed(builder.__name__):
            built.append(builder(inputs))
    with run.timed("publish"):
        footprint = publishing.footprint(history, config.publish.local_dir, config.publish.d1_max_bytes)
        built += [sections.publish(inputs, footprint), sections.costs(inputs, footprint)]
    absent = [table for table, frame in inputs.frames.items() if frame is None]
    meta = [("generated (UTC)", now().strftime("%Y-%m-%d %H:%M:%S")), ("warehouse", config.paths.warehouse),
            ("code version", runs.code_version()), ("report run", run.run_id[:12]),
            *((f"{table} version", version) for table, version in run.input_versions.items() if version is not None)]
    path = write_atomically(config.report.dir, FILE_NAME,
                            document("aria-signals: warehouse report", meta, built))
    for table in absent:
        run.note(f"{table} is absent: its section says so")
    run.metrics.update({"report": path, "bytes": os.path.getsize(path), "sections": len(built),
                        "figures": count_images(built), "absent_inputs": absent,
                        "published_from": footprint.source if footprint else None})
    run.note(f"report written to {path}")


JOB = JobSpec(
    name="report",
    body=build,
    inputs=(*(Input(table, columns, optional=True, hint=HINT) for table, columns in INPUTS.items()),
            Input(PUBLISH_STATE, optional=True)),
    outputs=(),
    config_sections=("report", "publish", "vectors"),
)


def run(spark: Any, config: Any) -> dict[str, Any]:
    """Notebook and test entry point: the job through the frame; returns the summary."""
    from lib.job import execute

    return execute(JOB, spark, config)
