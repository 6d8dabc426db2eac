"""One tiny warehouse made by the real pipeline, shared by the tests that read a whole warehouse.

The pipeline runs once per test session on a generated sample dump (a few hundred tracks): sample → ingest →
xref → cooccurrence → vectors → graph → publish → report, in the session's SparkSession with exactly the
config ``./spark-submit.sh pipeline`` builds from the same ``--set`` values (``pipeline_config``), so it
pays no JVM start-up and no cold JIT of its own. Building it costs about as much as all the tests reading it
together, so it is built once:

- tests/test_pipeline.py checks that first run and goes on in its folder through ``./spark-submit.sh`` (a
  second run that skips everything, ``--force --only``, a changed source file): the skip compares the
  config, paths included, so it must run where the first run did — and it proves that the command line
  builds the same config as the in-process run.
- right after the first run the folder is copied (``snapshot``), before test_pipeline changes it: the
  graph and xref-sample tests read the snapshot; ``sample_warehouse`` (report, notebook) is a copy of it
  in which vectors ran once more with another tier threshold, so gold/audio_vectors has two versions to
  time-travel between.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib.config import Config, load_config
from lib.runs import run_job
from tests.support.cli import spark_submit
from tests.support.configs import make_config

# Small and quick: ~400 tracks and 40 playlists still give pairs, tiers, genres, clusters and neighbours.
SAMPLE_SETTINGS: dict[str, Any] = {
    "sample.tracks": 400,
    "sample.seed": 7,
    "cooccurrence.min_cooccurrence": 2,
    "cooccurrence.top_k": 10,
    "similar.top_k": 10,
    "similar.seed_count": 50,
    "graph.artist_count": 60,  # fewer seeds than artists: tests/jobs/test_graph.py checks the seed choice too
    "graph.artist_top_k": 10,
}
PATHS = ("spotify", "musicbrainz", "warehouse", "work")


def sample_config(base: Path, **keys: Any) -> Config:
    """The config of a warehouse under ``base`` (the settings the pipeline ran with, for in-process jobs)."""
    return make_config(base, {**SAMPLE_SETTINGS, **folders(base)}, **keys)


def folders(base: Path) -> dict[str, str]:
    return {"report.dir": str(base / "report"), "publish.local_dir": str(base / "publish")}


def cli_settings(base: Path) -> list[str]:
    """``--set`` arguments for ./spark-submit.sh on the warehouse under ``base``."""
    values = {**{f"paths.{key}": str(base / key) for key in PATHS}, **SAMPLE_SETTINGS, **folders(base),
              "spark.master": "local[2]", "spark.shuffle_partitions": 2}
    return [f"--set={key}={value}" for key, value in values.items()]


def pipeline_cli(base: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``./spark-submit.sh ARGS`` on the warehouse under ``base`` (run from ``base``)."""
    return spark_submit(*args, *cli_settings(base), cwd=base, timeout=900)


def pipeline_config(base: Path) -> Config:
    """The config ``./spark-submit.sh pipeline`` builds for the warehouse under ``base`` (lib/cli.py: the
    default conf file, then the ``--set`` values of ``cli_settings``)."""
    return load_config(None, [s.removeprefix("--set=") for s in cli_settings(base)], base_dir=base)


@dataclass(frozen=True)
class PipelineRun:
    base: Path  # where the pipeline ran (test_pipeline goes on here)
    summary: dict[str, Any]  # the first run's summary
    snapshot: Path  # a copy of ``base`` right after the first run; read it, do not change it

    def snapshot_config(self, **keys: Any) -> Config:
        return sample_config(self.snapshot, **keys)


def run_pipeline(spark: Any, root: Path) -> PipelineRun:
    base, snapshot = root / "run", root / "snapshot"
    base.mkdir()
    summary = run_job(spark, pipeline_config(base), "pipeline")
    assert summary["status"] == "succeeded", summary.get("error")
    shutil.copytree(base, snapshot)
    return PipelineRun(base, summary, snapshot)


def build(spark: Any, pipeline: PipelineRun, base: Path) -> Config:
    """A copy of the pipeline's snapshot in ``base`` with a second audio_vectors version; returns the config
    (the first tier threshold's)."""
    shutil.copytree(pipeline.snapshot, base, dirs_exist_ok=True)
    config = sample_config(base)
    changed = config.with_overrides({"vectors.tier_a_min_popularity": 40})
    assert run_job(spark, changed, "vectors")["status"] == "succeeded"
    return config
