"""A tiny warehouse made by the real jobs, shared by the report, notebook and Airflow tests: a generated
sample dump (a few hundred tracks) through sample → ingest → xref → cooccurrence → vectors, then vectors once
more with another tier threshold so gold/audio_vectors has two versions to time-travel between."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lib.config import Config
from lib.runs import run_job
from tests.support.configs import make_config

# Small and quick: ~400 tracks and 40 playlists still give pairs, tiers, genres and neighbours.
SAMPLE_SETTINGS: dict[str, Any] = {
    "sample.tracks": 400,
    "sample.seed": 7,
    "cooccurrence.min_cooccurrence": 2,
    "cooccurrence.top_k": 10,
    "similar.top_k": 10,
    "similar.seed_count": 50,
}
JOBS = ("sample", "ingest", "xref", "cooccurrence", "vectors")


def sample_config(base: Path, **keys: Any) -> Config:
    return make_config(base, {**SAMPLE_SETTINGS, "report.dir": str(base / "report"),
                              "publish.local_dir": str(base / "publish")}, **keys)


def build(spark: Any, base: Path) -> Config:
    """Run the jobs into ``base``; returns the config (the first tier threshold's)."""
    config = sample_config(base)
    for job in JOBS:
        summary = run_job(spark, config, job)
        assert summary["status"] == "succeeded", (job, summary.get("error"))
    changed = config.with_overrides({"vectors.tier_a_min_popularity": 40})
    assert run_job(spark, changed, "vectors")["status"] == "succeeded"
    return config
