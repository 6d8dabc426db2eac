"""pipeline: every job in dependency order in one SparkSession, each through the job frame and recorded in
gold/_runs, plus one record of the pipeline itself.

The sample dump is generated first when ``paths.spotify`` holds no dump yet (so the quick start is
one command on a fresh clone); an existing dump, generated or real, is used as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jobs import JOBS
from jobs.ingest.sources import REAL_FILES, SPEC_FILES
from lib.config import Config
from lib.console import rows_left_out, rows_out
from lib.errors import JobError
from lib.job import JobSpec, Run, execute, merge_left_out
from lib.log import get_logger
from lib.runs import load_job

log = get_logger("pipeline")

# Dependency order; jobs not (yet) registered are skipped.
ORDER = ("ingest", "xref", "cooccurrence", "vectors", "graph", "publish", "report")


def dump_present(config: Config) -> bool:
    names = REAL_FILES if config.paths.spotify_layout == "real" else SPEC_FILES
    folder = Path(config.paths.spotify)
    return all((folder / n).is_file() or (folder / f"{n}.zst").is_file() for n in names.values())


def planned_jobs(config: Config) -> list[str]:
    """The jobs to run, in order: sample when no dump is present, then ``ORDER``, narrowed by
    ``pipeline.only`` and started at ``pipeline.from``."""
    jobs = ([] if dump_present(config) else ["sample"]) + [name for name in ORDER if name in JOBS]
    chosen, start = config.pipeline.only, config.pipeline["from"]
    for name in (*chosen, *([start] if start else [])):
        if name not in ("sample", *ORDER) or name not in JOBS:
            raise JobError(f"pipeline: unknown job '{name}' (jobs: {', '.join(['sample', *ORDER])})")
    if chosen:
        jobs = [name for name in jobs if name in chosen]
    if start:
        jobs = jobs[jobs.index(start):] if start in jobs else []
    return jobs


def build(run: Run) -> None:
    jobs: dict[str, dict[str, Any]] = {}
    run.metrics["jobs"] = jobs
    for name in planned_jobs(run.config):
        if name == "sample":
            run.note(f"no dump in {run.config.paths.spotify}: generated the sample first")
        summary = execute(load_job(name).JOB, run.spark, run.config)
        jobs[name] = {
            "status": summary["status"], "seconds": summary["seconds"], "run_id": summary["run_id"],
            "rows_out": rows_out(summary["outputs"]),
            "rows_left_out": rows_left_out(summary["left_out"]),
            "outputs": summary["outputs"],
        }
        run.steps[name] = summary["seconds"]
        merge_left_out(run.left, summary["left_out"])
        run.notes.extend(f"{name}: {note}" for note in summary["notes"])


JOB = JobSpec(name="pipeline", body=build, skippable=False)


def run(spark: Any, config: Config) -> dict[str, Any]:
    """Notebook and test entry point: every job in order; returns the pipeline's summary."""
    return execute(JOB, spark, config)
