"""The whole pipeline on a real Spark standalone cluster (scripts/local-cluster.sh: a master and two
1-core workers on 127.0.0.1) gives, table for table and row for row, what a ``local[2]`` run of the same
sample and configuration gives; and its tasks really ran in executors launched by the workers.

Marked ``cluster`` and left out of the default run (minutes, three extra JVMs):
``./test.sh -m cluster tests/test_cluster.py``. Both runs go through ``./spark-submit.sh`` as a user runs
them, and the tables are read with delta-rs, so nothing here depends on the jobs' internals.

Executors run in a different time zone than the driver, as nodes of a real cluster may.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from tests.support import publish_checks as checks

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parent.parent
CLUSTER_SCRIPT = ROOT / "scripts" / "local-cluster.sh"
SUBMIT = ROOT / "spark-submit.sh"
CONF = ROOT / "conf" / "standalone-local.toml"
SAMPLE_TRACKS = 2000
EXECUTOR_TZ = "Pacific/Chatham"  # UTC+12:45/+13:45: any time-zone dependence shows
RUN_TIMEOUT_S = 1500
# Columns that say when and in which run a row was written, not what it is.
RUN_SPECIFIC = {("bronze", "_rejects"): ("run_id", "rejected_at")}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK", "SPARK_")) and k != "PYTHONPATH"}
    env.setdefault("ARIA_VENV", sys.prefix)  # the environment running the tests, not a fresh .venv
    return {**env, **extra}


@dataclass(frozen=True)
class Cluster:
    url: str
    state: Path


def processes_in(folder: Path) -> list[int]:
    """Pids of processes whose working directory is ``folder`` or inside it (the daemons, the executors)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if cwd == str(folder) or cwd.startswith(f"{folder}/"):
            found.append(int(proc.name))
    return found


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("java not found (PATH or JAVA_HOME): the standalone cluster needs Java 17 or 21")
    state = tmp_path_factory.mktemp("standalone")
    env = clean_env(ARIA_CLUSTER_DIR=str(state))
    started = subprocess.run([str(CLUSTER_SCRIPT), "start"], capture_output=True, text=True, env=env, timeout=300)
    try:
        assert started.returncode == 0, f"local-cluster.sh start failed:\n{started.stdout}\n{started.stderr}"
        url = started.stdout.strip().splitlines()[-1]
        assert url.startswith("spark://127.0.0.1:"), started.stdout
        yield Cluster(url, state)
    finally:
        stopped = subprocess.run([str(CLUSTER_SCRIPT), "stop"], capture_output=True, text=True, env=env, timeout=120)
        assert stopped.returncode == 0, stopped.stderr
        assert processes_in(state) == [], "local-cluster.sh stop left processes behind"


def submit(cwd: Path, master: str, *sets: str) -> subprocess.CompletedProcess[str]:
    cwd.mkdir(parents=True, exist_ok=True)
    args = [str(SUBMIT), "pipeline", "--conf", str(CONF), "--master", master,
            "--set", f"sample.tracks={SAMPLE_TRACKS}", "--set", "similar.seed_count=500"]
    for item in sets:
        args += ["--set", item]
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=clean_env(), timeout=RUN_TIMEOUT_S)


def tail(result: subprocess.CompletedProcess[str]) -> str:
    """The end of a run's output (pyspark's launcher merges the driver's stderr into stdout)."""
    return (result.stdout + result.stderr)[-4000:]


@pytest.fixture(scope="module")
def runs(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The pipeline on the cluster (it generates the sample), then in local[2] on that same sample."""
    base = tmp_path_factory.mktemp("runs")
    events = base / "events"
    events.mkdir()
    on_cluster = submit(
        base / "cluster", cluster.url,
        "spark_conf.spark.eventLog.enabled=true", f"spark_conf.spark.eventLog.dir=file://{events}",
        "spark_conf.spark.eventLog.compress=false", "spark_conf.spark.eventLog.rolling.enabled=false",
        f"spark_conf.spark.executorEnv.TZ={EXECUTOR_TZ}",
        f"spark_conf.spark.executor.extraJavaOptions=-Duser.timezone={EXECUTOR_TZ}",
    )
    assert on_cluster.returncode == 0, f"pipeline on {cluster.url} failed:\n{tail(on_cluster)}"
    data = base / "cluster" / "data"
    local = submit(base / "local", "local[2]", f"paths.spotify={data}/spotify", f"paths.musicbrainz={data}/musicbrainz")
    assert local.returncode == 0, f"pipeline on local[2] failed:\n{tail(local)}"
    return {"cluster": data / "warehouse", "local": base / "local" / "data" / "warehouse", "events": events,
            "cluster_publish": data / "publish", "local_publish": base / "local" / "data" / "publish",
            "cluster_report": data / "report", "local_report": base / "local" / "data" / "report"}


# Bookkeeping, not results: run records and the publish ledger/state (keyed by the target's folder and run).
BOOKKEEPING = ("_runs", "_publish_ledger", "_publish_state")


def tables(warehouse: Path, layer: str) -> list[str]:
    return sorted(p.name for p in (warehouse / layer).iterdir()
                  if (p / "_delta_log").is_dir() and p.name not in BOOKKEEPING)


def sorted_rows(path: Path, drop: tuple[str, ...]) -> pa.Table:
    """The table's rows in one canonical order: sorted by every non-nested column (each gold table has a key
    among them)."""
    table = DeltaTable(str(path)).to_pyarrow_table()
    table = table.drop_columns([c for c in drop if c in table.column_names])
    keys = [f.name for f in table.schema if not pa.types.is_nested(f.type)]
    return table.sort_by([(k, "ascending") for k in keys])


def first_difference(name: str, cluster: pa.Table, local: pa.Table) -> str | None:
    if cluster.schema != local.schema:
        return f"{name}: schemas differ\ncluster: {cluster.schema}\nlocal[2]: {local.schema}"
    for offset in range(0, max(cluster.num_rows, local.num_rows), 10_000):
        a = cluster.slice(offset, 10_000).to_pylist()
        b = local.slice(offset, 10_000).to_pylist()
        for index, (row_a, row_b) in enumerate(zip(a, b)):
            if row_a != row_b:
                return f"{name}: row {offset + index} differs\ncluster:  {row_a}\nlocal[2]: {row_b}"
        if len(a) != len(b):
            longer, which = (a, "cluster") if len(a) > len(b) else (b, "local[2]")
            return (f"{name}: {cluster.num_rows} rows on the cluster, {local.num_rows} on local[2]; first extra "
                    f"row ({which}): {longer[min(len(a), len(b))]}")
    return None


@pytest.mark.parametrize("layer", ["gold", "bronze"])
def test_every_table_equals_the_local_run_row_for_row(runs: dict[str, Path], layer: str):
    names = tables(runs["cluster"], layer)
    assert names == tables(runs["local"], layer)
    if layer == "gold":
        assert {"playlist_cooccurrence", "cooccurrence_top", "spotify_mbid_xref", "audio_vectors",
                "precomputed_similar"} <= set(names)
    problems = []
    for name in names:
        drop = RUN_SPECIFIC.get((layer, name), ())
        cluster_rows = sorted_rows(runs["cluster"] / layer / name, drop)
        local_rows = sorted_rows(runs["local"] / layer / name, drop)
        assert cluster_rows.num_rows > 0 or name == "_rejects", f"{layer}/{name} is empty"
        problem = first_difference(f"{layer}/{name}", cluster_rows, local_rows)
        if problem:
            problems.append(problem)
    assert not problems, "\n".join(problems)


def test_run_records_name_the_master(runs: dict[str, Path], cluster: Cluster):
    for run, master in (("cluster", cluster.url), ("local", "local[2]")):
        records = DeltaTable(str(runs[run] / "gold" / "_runs")).to_pyarrow_table(
            columns=["job", "status", "spark_master"]).to_pylist()
        assert {r["job"] for r in records} >= {"ingest", "xref", "cooccurrence", "vectors", "pipeline"}
        # Each run writes a 'running' row when it starts (lib/runs.py), then its final row.
        assert {(r["status"], r["spark_master"]) for r in records if r["status"] != "running"} == {
            ("succeeded", master)}


def read_events(folder: Path) -> list[dict]:
    logs = [p for p in folder.iterdir() if p.is_file() and not p.name.endswith(".inprogress")]
    assert len(logs) == 1, f"expected one finished event log in {folder}: {logs}"
    return [json.loads(line) for line in logs[0].read_text().splitlines() if line]


def test_tasks_ran_in_executors_the_workers_launched(runs: dict[str, Path], cluster: Cluster):
    """Spark's event log of the cluster run: every task ran on an executor (never the driver), on
    127.0.0.1, both executors took tasks, and each executor's working folder lies in its worker's work dir."""
    events = read_events(runs["events"])
    app_id = next(e["App ID"] for e in events if e["Event"] == "SparkListenerApplicationStart")
    executors = {e["Executor ID"]: e["Executor Info"]["Host"] for e in events
                 if e["Event"] == "SparkListenerExecutorAdded"}
    task_executors = [e["Task Info"]["Executor ID"] for e in events if e["Event"] == "SparkListenerTaskEnd"]
    assert len(executors) >= 2 and set(executors.values()) == {"127.0.0.1"}
    assert "driver" not in task_executors and set(task_executors) <= set(executors)
    assert set(task_executors) == set(executors), "an executor ran no task"
    for executor in executors:
        folders = list(cluster.state.glob(f"worker-*/work/{app_id}/{executor}"))
        assert len(folders) == 1, f"executor {executor} of {app_id} has no folder in a worker's work dir"
        assert (folders[0] / "aria-app.zip").is_file(), "the executor did not fetch the --py-files zip"


def test_published_output_equals_the_local_run(runs: dict[str, Path]):
    """The local publish target written by executor tasks on the cluster holds what the local[2] run's holds:
    the D1 tables, the Vectorize records, the KV items and the R2 shard rows (the manifest but its time)."""
    cluster, local = str(runs["cluster_publish"]), str(runs["local_publish"])
    assert checks.d1_tables(os.path.join(cluster, "d1.sqlite")) == checks.d1_tables(os.path.join(local, "d1.sqlite"))
    assert checks.vectorize_contents(cluster) == checks.vectorize_contents(local)
    assert checks.kv_contents(cluster) == checks.kv_contents(local)
    (cluster_manifest, cluster_rows, _), (local_manifest, local_rows, _) = (checks.r2_contents(cluster),
                                                                         checks.r2_contents(local))
    assert cluster_rows == local_rows and cluster_rows

    def shard_ranges(manifest: dict) -> list[tuple]:
        return [(s["first_id"], s["last_id"], s["rows"]) for s in manifest["shards"]]

    assert shard_ranges(cluster_manifest) == shard_ranges(local_manifest)
    assert cluster_manifest["vectorize"] == local_manifest["vectorize"]
    for report in (runs["cluster_report"], runs["local_report"]):
        assert (report / "report.html").stat().st_size > 0
