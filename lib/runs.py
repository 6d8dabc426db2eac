"""Run records: every job run (from spark-submit, the pipeline or a notebook) leaves one row in
``gold/_runs`` with its timing, status, metrics and configuration, so schedulers and the report can
see what ran, when, with which settings and how it ended."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import subprocess
import time
import traceback
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lib import delta
from lib.config import Config
from lib.log import get_logger

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

RUNS_TABLE = "_runs"
log = get_logger("runs")

RUNS_DDL = (
    "run_id string, job string, status string, started_at timestamp, finished_at timestamp, "
    "seconds double, error string, metrics_json string, config_json string, spark_master string, "
    "code_version string"
)


def runs_path(config: Config) -> str:
    return delta.table_path(config.paths.warehouse, "gold", RUNS_TABLE)


def code_version() -> str:
    """The git commit of the code that ran (or 'unknown' outside a checkout, e.g. on a cluster)."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def load_job(name: str) -> Any:
    from jobs import JOBS

    return importlib.import_module(JOBS[name][0])


def run_job(spark: SparkSession, config: Config, name: str, record: bool = True) -> dict[str, Any]:
    """Run job ``name`` and record the run. Re-raises the job's exception after recording it."""
    run_id = uuid.uuid4().hex
    started = dt.datetime.now(dt.timezone.utc)
    clock = time.perf_counter()
    log.info("job %s started (run %s)", name, run_id[:12])
    status, error, metrics = "failed", None, {}
    try:
        metrics = load_job(name).run(spark, config) or {}
        status = "succeeded"
        return metrics
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, (KeyboardInterrupt, SystemExit)):
            log.debug("job %s failed:\n%s", name, traceback.format_exc())
        raise
    finally:
        seconds = time.perf_counter() - clock
        log.info("job %s %s in %.1f s", name, status, seconds)
        if record:
            _record(spark, config, {
                "run_id": run_id,
                "job": name,
                "status": status,
                "started_at": started,
                "finished_at": dt.datetime.now(dt.timezone.utc),
                "seconds": seconds,
                "error": error,
                "metrics_json": json.dumps(metrics, default=str, sort_keys=True),
                "config_json": config.to_json(),
                "spark_master": spark.sparkContext.master,
                "code_version": code_version(),
            })


def _record(spark: SparkSession, config: Config, row: dict[str, Any]) -> None:
    """Append the run record; a failure to record is logged, never masks the job's own outcome."""
    try:
        frame = spark.createDataFrame([row], RUNS_DDL).coalesce(1)
        delta.write(frame, runs_path(config), mode="append")
    except Exception as exc:  # recording is best effort by design
        log.warning("could not record run %s of %s: %s", row["run_id"][:12], row["job"], exc)
