"""The example Airflow DAG with real Airflow, in its own virtualenv (scripts/airflow-venv.sh; Airflow pins too
many packages to share the project's lock): the DagBag loads it with no import error, its tasks are the
pipeline's jobs in the pipeline's order, and ``dag.test()`` runs it end to end on a tiny sample through
``./spark-submit.sh``, and a second run skips every job. Marked ``airflow``; skipped when that virtualenv is
absent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

from jobs.pipeline.job import planned_jobs
from lib import delta, runs
from lib.config import load_config
from tests.support.configs import make_config
from tests.support.warehouse import SAMPLE_SETTINGS

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_VENV = Path(os.environ.get("AIRFLOW_VENV") or ROOT / ".venv-airflow")
AIRFLOW_PY = AIRFLOW_VENV / "bin" / "python"
DAG_FOLDER = ROOT / "examples" / "airflow"
DAG_ID = "spotify_metadata"
CHECK = ROOT / "tests" / "support" / "airflow_check.py"

pytestmark = [
    pytest.mark.airflow,
    pytest.mark.skipif(not AIRFLOW_PY.is_file(), reason=f"no Airflow virtualenv at {AIRFLOW_VENV} "
                       "(build it with scripts/airflow-venv.sh, or set AIRFLOW_VENV)"),
]


def airflow_env(home: Path) -> dict[str, str]:
    """Airflow's own home and SQLite metadata database in the test's folder; the project's virtualenv for
    ./spark-submit.sh (ARIA_VENV as the caller has it, else the virtualenv running the tests)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYSPARK", "SPARK_"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAG_FOLDER),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "ARIA_VENV": os.environ.get("ARIA_VENV") or sys.prefix,
    })
    return env


def check(tmp: Path, *args: str) -> dict:
    out = tmp / f"airflow-{len(list(tmp.glob('airflow-*.json')))}.json"
    env = airflow_env(tmp / "airflow-home")
    if not (tmp / "airflow-home" / "airflow.db").exists():
        migrate = subprocess.run([str(AIRFLOW_VENV / "bin" / "airflow"), "db", "migrate"], env=env,
                                 capture_output=True, text=True, timeout=600)
        assert migrate.returncode == 0, migrate.stderr[-3000:]
    result = subprocess.run([str(AIRFLOW_PY), str(CHECK), str(DAG_FOLDER), DAG_ID, "--out", str(out), *args],
                            env=env, cwd=tmp, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-5000:])
    return json.loads(out.read_text())


def write_conf(tmp: Path) -> Path:
    lines = ["[paths]", *(f'{key} = "{tmp / key}"' for key in ("spotify", "musicbrainz", "warehouse", "work")),
             "[spark]", 'master = "local[2]"', "shuffle_partitions = 2", 'driver_memory = "1g"',
             "[report]", f'dir = "{tmp / "report"}"', "[publish]", f'local_dir = "{tmp / "publish"}"']
    sections: dict[str, list[str]] = {}
    for dotted, value in SAMPLE_SETTINGS.items():
        section, key = dotted.split(".")
        sections.setdefault(section, []).append(f"{key} = {value!r}")
    for section, keys in sections.items():
        lines += [f"[{section}]", *keys]
    conf = tmp / "aria.toml"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def test_dag_loads_with_the_pipelines_order_and_runs_end_to_end(tmp_path):
    loaded = check(tmp_path)
    assert loaded["import_errors"] == {}
    assert loaded["dag_ids"] == [DAG_ID]
    config = make_config(tmp_path)  # paths.spotify holds no dump: the pipeline would generate the sample first
    assert loaded["tasks"] == planned_jobs(config)
    assert loaded["task_count"] == len(loaded["tasks"])  # one chain, every task on it
    assert loaded["schedule"] == "@weekly"
    assert all(loaded["retries"][job] > 0 and loaded["exponential_backoff"][job] for job in loaded["tasks"][1:])
    assert all(f"./spark-submit.sh {job}" in loaded["commands"][job] for job in loaded["tasks"][1:])
    assert "./spark-submit.sh pipeline --only sample" in loaded["commands"]["sample"]

    variables = tmp_path / "variables.json"
    conf = write_conf(tmp_path)
    variables.write_text(json.dumps({"aria_signals_conf": str(conf)}))
    ran = check(tmp_path, "--test", "--variables", str(variables))
    assert ran["run_state"] == "success", ran
    assert ran["states"] == dict.fromkeys(loaded["tasks"], "success")
    warehouse = str(tmp_path / "warehouse")
    for table in ("spotify_mbid_xref", "cooccurrence_top", "audio_vectors"):
        assert DeltaTable(delta.table_path(warehouse, "gold", table)).to_pyarrow_table().num_rows > 0, table
    if "report" in loaded["tasks"]:
        assert (tmp_path / "report" / "report.html").stat().st_size > 0

    # A second run changes nothing: the dump is there (no sample), every job skips itself, the DAG succeeds.
    again = check(tmp_path, "--test", "--variables", str(variables))
    assert again["run_state"] == "success", again
    history = runs.history(load_config(conf, use_default_file=False))
    assert [s["status"] for s in history if s["job"] == "sample"] == ["succeeded"]
    latest = {s["job"]: s["status"] for s in history if s["job"] not in ("sample", "pipeline")}
    assert latest == dict.fromkeys(loaded["tasks"][1:], "skipped")
