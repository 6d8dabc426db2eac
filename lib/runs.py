"""Run records: every job run (from spark-submit, the pipeline or a notebook) leaves rows in ``gold/_runs``:
a ``running`` row when it starts and a final row (``succeeded`` / ``failed``) with the whole summary
(``lib.job.SUMMARY_KEYS``) when it ends. A run with no final row was killed; ``history`` shows it as
``interrupted`` once its driver process is gone. The report and the pipeline's skip logic read only this.

Records are appended with delta-rs directly (no Spark job: a record costs milliseconds and works for
commands without a session); columns added over time merge into the table's schema, so old rows stay readable.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import json
import os
import socket
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lib import delta
from lib.config import Config
from lib.log import get_logger

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lib.job import JobSpec

RUNS_TABLE = "_runs"
log = get_logger("runs")

_TS = pa.timestamp("us", tz="UTC")
RUNS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("job", pa.string()), ("status", pa.string()), ("started_at", _TS),
    ("finished_at", _TS), ("seconds", pa.float64()), ("error", pa.string()), ("metrics_json", pa.string()),
    ("config_json", pa.string()), ("spark_master", pa.string()), ("code_version", pa.string()),
    # added with the job frame (older rows read them as NULL)
    ("config_hash", pa.string()), ("inputs_json", pa.string()), ("outputs_json", pa.string()),
    ("left_out_json", pa.string()), ("steps_json", pa.string()), ("notes_json", pa.string()),
    ("driver", pa.string()), ("summary_json", pa.string()),
])
FINAL_STATUSES = ("succeeded", "failed", "skipped")


def runs_path(config: Config) -> str:
    return delta.table_path(config.paths.warehouse, "gold", RUNS_TABLE)


_CODE_VERSION: str | None = None


def code_version() -> str:
    """The git commit of the code that ran; with uncommitted changes to lib/ or jobs/, ``+`` and a hash of them,
    so equal versions mean equal code ('unknown' outside a checkout, e.g. from a zip on a cluster)."""
    global _CODE_VERSION
    if _CODE_VERSION is None:
        root = Path(__file__).resolve().parent.parent

        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                                  timeout=10).stdout

        try:
            head = git("rev-parse", "--short", "HEAD").strip()
            changes = git("diff", "HEAD", "--", "lib", "jobs")
            for name in git("ls-files", "--others", "--exclude-standard", "--", "lib", "jobs").split():
                changes += name + (root / name).read_text(errors="replace")
            suffix = "+" + hashlib.sha256(changes.encode()).hexdigest()[:8] if changes else ""
            _CODE_VERSION = head + suffix if head else "unknown"
        except (OSError, subprocess.SubprocessError):
            _CODE_VERSION = "unknown"
    return _CODE_VERSION


def load_job(name: str) -> Any:
    from jobs import JOBS

    return importlib.import_module(JOBS[name][0])


def run_job(spark: SparkSession | None, config: Config, name: str, record: bool | None = None) -> dict[str, Any]:
    """Run job ``name`` through the frame (recorded unless ``runs.record`` is false)."""
    from lib.job import execute

    return execute(load_job(name).JOB, spark, config, record=record)


def base_summary(spec: JobSpec, run_id: str, spark: SparkSession | None, config: Config) -> dict[str, Any]:
    from lib.job import SUMMARY_KEYS, config_hash, now

    summary: dict[str, Any] = dict.fromkeys(SUMMARY_KEYS)
    summary.update({
        "job": spec.name, "run_id": run_id, "status": "running", "started_at": now().isoformat(),
        "inputs": {}, "outputs": {}, "left_out": {}, "steps": {}, "notes": [], "metrics": {},
        "config_hash": config_hash(config, spec.config_sections), "code_version": code_version(),
        "spark_master": spark.sparkContext.master if spark is not None else "none",
    })
    return summary


def _timestamp(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def record(spark: SparkSession | None, config: Config, summary: dict[str, Any]) -> None:
    """Append one row for ``summary``; a failure to record is logged and never masks the job's outcome."""
    from deltalake import write_deltalake

    row = {
        "run_id": summary["run_id"], "job": summary["job"], "status": summary["status"],
        "started_at": _timestamp(summary["started_at"]), "finished_at": _timestamp(summary.get("finished_at")),
        "seconds": summary.get("seconds"), "error": summary.get("error"),
        "metrics_json": json.dumps(summary.get("metrics") or {}, default=str, sort_keys=True),
        "config_json": json.dumps(config.redacted(), sort_keys=True),
        "spark_master": summary.get("spark_master"), "code_version": summary.get("code_version"),
        "config_hash": summary.get("config_hash"),
        **{f"{key}_json": json.dumps(summary.get(key), default=str, sort_keys=True)
           for key in ("inputs", "outputs", "left_out", "steps", "notes")},
        "driver": f"{socket.gethostname()}:{os.getpid()}",
        "summary_json": json.dumps(summary, default=str, sort_keys=True),
    }
    try:
        write_deltalake(runs_path(config), pa.Table.from_pylist([row], schema=RUNS_SCHEMA), mode="append",
                        schema_mode="merge")
    except Exception as exc:  # recording is best effort by design
        log.warning("could not record run %s of %s: %s", summary["run_id"][:12], summary["job"], exc)


def _driver_alive(driver: str | None) -> bool:
    host, _, pid = (driver or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return host != socket.gethostname() and bool(host)  # another host: cannot tell, assume running
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def history(config: Config) -> list[dict[str, Any]]:
    """Every run, oldest first, one entry per run id: its final summary, or its start summary with status
    ``interrupted`` when it never finished and its driver is gone (``running`` while it lives)."""
    from deltalake import DeltaTable

    uri = runs_path(config)
    if not delta.exists(uri):
        return []
    rows = DeltaTable(uri).to_pyarrow_table().to_pylist()
    runs: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: (r["started_at"] or dt.datetime.min.replace(tzinfo=dt.timezone.utc),
                                           r["status"] in FINAL_STATUSES)):
        if row.get("summary_json"):
            summary = json.loads(row["summary_json"])
        else:  # a row from before the job frame
            summary = {"job": row["job"], "run_id": row["run_id"], "status": row["status"],
                       "started_at": row["started_at"].isoformat() if row["started_at"] else None,
                       "seconds": row["seconds"], "error": row["error"],
                       "metrics": json.loads(row["metrics_json"] or "{}"), "outputs": {}, "left_out": {},
                       "inputs": {}, "steps": {}, "notes": [], "code_version": row["code_version"],
                       "spark_master": row["spark_master"], "config_hash": None}
        summary["_driver"] = row.get("driver")
        previous = runs.get(row["run_id"])
        if previous is None or previous["status"] == "running":
            runs[row["run_id"]] = summary
    result = list(runs.values())
    for summary in result:
        if summary["status"] == "running" and not _driver_alive(summary.pop("_driver", None)):
            summary["status"] = "interrupted"
        summary.pop("_driver", None)
    return result
