"""pipeline: every job in dependency order in one SparkSession, each recorded in gold/_runs.

The sample dump is generated first when ``paths.spotify`` holds no dump yet (so the quick start is
one command on a fresh clone); an existing dump, generated or real, is used as it is.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from jobs import JOBS
from jobs.ingest.sources import REAL_FILES, SPEC_FILES
from lib.config import Config
from lib.log import get_logger
from lib.runs import run_job

log = get_logger("pipeline")

# Dependency order; jobs not (yet) registered are skipped.
ORDER = ("ingest", "xref", "cooccurrence", "vectors", "graph", "publish", "report")


def dump_present(config: Config) -> bool:
    names = REAL_FILES if config.paths.spotify_layout == "real" else SPEC_FILES
    folder = Path(config.paths.spotify)
    return all((folder / n).is_file() or (folder / f"{n}.zst").is_file() for n in names.values())


def run(spark: SparkSession, config: Config) -> dict[str, Any]:
    started = time.perf_counter()
    results: dict[str, Any] = {}
    if not dump_present(config):
        log.info("no dump in %s: generating the sample first", config.paths.spotify)
        results["sample"] = run_job(spark, config, "sample")
    for name in ORDER:
        if name in JOBS:
            results[name] = run_job(spark, config, name)
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results
