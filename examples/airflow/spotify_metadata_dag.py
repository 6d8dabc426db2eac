"""Weekly aria-signals run for Airflow: one task per job, in the pipeline's order, each through
``./spark-submit.sh <job> --json`` (the same command a person runs; it validates the config, builds the
SparkSession and records the run in ``gold/_runs``).

A rerun is cheap because every job skips itself when its input table versions, config hash and code version
equal those of its last successful run (the job frame's incremental skip), so a weekly run over an unchanged
dump takes seconds per task; a task that fails is retried with exponential back-off, and a retry resumes the
job's finished steps.

The first task, ``sample``, follows the pipeline's rule: it generates the sample dump only when
``paths.spotify`` holds no dump (``./spark-submit.sh pipeline --only sample``), and does nothing otherwise.

The Airflow Variable ``aria_signals_conf`` (Admin → Variables, or ``airflow variables set``) names the TOML
file handed to ``--conf``; empty or unset, the repository's ``conf/local.toml`` is used.

Trigger with the run configuration ``{"force": true}`` to pass ``--force`` (rerun unchanged jobs).

The repository is the one holding this file (two folders up), or ``ARIA_SIGNALS_REPO``; the worker needs the
repository's own virtualenv (``./spark-submit.sh`` bootstraps it, or set ``ARIA_VENV``), not Airflow's.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import shlex
from pathlib import Path

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.x
    from airflow import DAG
    from airflow.operators.bash import BashOperator

REPO = Path(os.environ.get("ARIA_SIGNALS_REPO") or Path(__file__).resolve().parents[2])
# jobs.pipeline.job.ORDER after the optional sample; the DAG test checks that the two agree.
ORDER = ("ingest", "xref", "cooccurrence", "vectors", "graph", "publish", "report")


def registered_jobs(repo: Path) -> set[str]:
    """Job names of the repository's registry. jobs/__init__.py imports nothing, so it is loaded on its own
    (under another name, without putting the repository on sys.path): parsing the DAG needs no Spark."""
    spec = importlib.util.spec_from_file_location("aria_signals_registry", repo / "jobs" / "__init__.py")
    assert spec is not None and spec.loader is not None
    registry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(registry)
    return set(registry.JOBS)


JOBS = [job for job in ORDER if job in registered_jobs(REPO)]

# --conf only when the Variable names a file; the Variable is read when the task runs, not when the DAG is parsed.
CONF = "{% set conf = var.value.get('aria_signals_conf', '') %}{% if conf %} --conf '{{ conf }}'{% endif %}"
SUBMIT = f"cd {shlex.quote(str(REPO))} && ./spark-submit.sh"


FORCE = "{% if params.force %} --force{% endif %}"


def job_command(job: str) -> str:
    # --json: the job's whole summary is the last line of stdout, which BashOperator pushes as the task's XCom.
    return f"{SUBMIT} {job}{CONF}{FORCE} --json"


# The pipeline plans sample only when paths.spotify holds no dump; narrowed to it, it runs sample or nothing.
SAMPLE_COMMAND = f"{SUBMIT} pipeline --only sample{CONF} --json"

with DAG(
    dag_id="spotify_metadata",
    description="aria-signals: Spotify + MusicBrainz dumps -> Delta gold tables -> Cloudflare, weekly",
    schedule="@weekly",
    start_date=dt.datetime(2026, 1, 4, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,  # runs share one warehouse
    params={"force": False},
    default_args={
        "retries": 3,
        "retry_delay": dt.timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(hours=1),
        "execution_timeout": dt.timedelta(hours=12),
    },
    tags=["aria-signals", "spark"],
) as dag:
    previous = BashOperator(task_id="sample", bash_command=SAMPLE_COMMAND, skip_on_exit_code=None)
    for job in JOBS:
        task = BashOperator(task_id=job, bash_command=job_command(job), skip_on_exit_code=None)
        previous >> task
        previous = task
