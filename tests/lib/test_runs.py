"""Run records through the job frame: one summary shape, a running row first (so a killed run is visible as
interrupted), secrets redacted, old rows still readable after columns were added."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from lib import runs
from lib.job import SUMMARY_KEYS, JobSpec, execute
from tests.support.configs import make_config

ROOT = Path(__file__).resolve().parents[2]


def test_a_run_records_start_and_summary_with_secrets_redacted(tmp_path):
    config = make_config(tmp_path, {"spark_conf.spark.hadoop.fs.s3a.secret.key": "hunter2-very-secret",
                                    "spark_conf.spark.hadoop.fs.s3a.access.key": "AKIAEXAMPLE"})

    def body(run):
        run.note("nothing to do")
        run.left_out("bronze/t", "because", 3)

    summary = execute(JobSpec(name="probe", body=body), None, config)
    assert list(summary) == list(SUMMARY_KEYS)
    assert summary["status"] == "succeeded" and summary["left_out"] == {"bronze/t": {"because": 3}}
    table = DeltaTable(runs.runs_path(config)).to_pyarrow_table().to_pylist()
    assert sorted(row["status"] for row in table) == ["running", "succeeded"]
    raw = json.dumps(table, default=str)
    assert "hunter2-very-secret" not in raw and "AKIAEXAMPLE" not in raw
    stored = json.loads(table[0]["config_json"])["spark_conf"]
    assert stored["spark.hadoop.fs.s3a.secret.key"] == "***" and stored["spark.hadoop.fs.s3a.access.key"] == "***"
    (latest,) = runs.history(config)
    assert latest["status"] == "succeeded" and latest["notes"] == ["nothing to do"]


def test_a_failed_run_records_its_error(tmp_path):
    config = make_config(tmp_path)

    def body(run):
        raise RuntimeError("the body failed")

    with pytest.raises(RuntimeError):
        execute(JobSpec(name="probe", body=body), None, config)
    (latest,) = runs.history(config)
    assert latest["status"] == "failed" and "the body failed" in latest["error"]


def test_a_killed_run_shows_as_interrupted(tmp_path):
    config = make_config(tmp_path)
    script = (
        "import sys, time\n"
        "from lib.job import JobSpec, execute\n"
        "from tests.support.configs import make_config\n"
        "from pathlib import Path\n"
        f"config = make_config(Path({str(tmp_path)!r}))\n"
        "execute(JobSpec(name='sleeper', body=lambda run: time.sleep(120)), None, config,\n"
        "        on_start=lambda summary: print('started', flush=True))\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "started"
    (running,) = runs.history(config)
    assert running["status"] == "running"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    (killed,) = runs.history(config)
    assert killed["status"] == "interrupted" and killed["job"] == "sleeper"


def test_rows_from_before_the_frame_stay_readable(tmp_path):
    config = make_config(tmp_path)
    old_schema = pa.schema([(name, runs.RUNS_SCHEMA.field(name).type) for name in runs.RUNS_SCHEMA.names[:11]])
    old_row = {"run_id": "old1", "job": "xref", "status": "succeeded", "started_at": None, "finished_at": None,
               "seconds": 12.5, "error": None, "metrics_json": json.dumps({"rows": 7}), "config_json": "{}",
               "spark_master": "local[2]", "code_version": "abc1234"}
    write_deltalake(runs.runs_path(config), pa.Table.from_pylist([old_row], schema=old_schema))
    time.sleep(0.01)
    execute(JobSpec(name="probe", body=lambda run: None), None, config)
    history = runs.history(config)
    assert [(h["run_id"] == "old1", h["job"], h["status"]) for h in history] == [
        (True, "xref", "succeeded"), (False, "probe", "succeeded")]
    assert history[0]["metrics"] == {"rows": 7}
