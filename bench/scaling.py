"""Benchmark: the cooccurrence and vectors jobs at one size on local[1], local[2] and the 2-worker
standalone cluster of scripts/local-cluster.sh; speed-up and efficiency against local[1].

    .venv/bin/python bench/scaling.py                          # 300,000 tracks, one round
    .venv/bin/python bench/scaling.py --tracks 100000 --rounds 2
    .venv/bin/python bench/scaling.py --tracks 200000 --rows-per-task 50000   # bronze tables of many files

A bronze table is one Parquet file per ingest task (``ingest.rows_per_task`` rows), and a Spark scan task
per file (or row group): at 200,000 tracks the default of 500,000 rows gives one file per table, so a scan
has one task whatever the cores. ``--rows-per-task`` ingests smaller files, as a full-size dump has many,
to show whether the work then spreads over the cores.

The inputs are made once per size under ``--dir``: ``./spark-submit.sh sample`` then ``ingest`` (local[2]),
so every run reads the same bronze tables. Each job then runs through ``./spark-submit.sh`` exactly as a
user runs it (a fresh driver JVM per run, conf/standalone-local.toml, its own ``paths.work``), rounds
interleaving the three masters so load on a shared machine spreads over all of them. The figure is the
job's own time from its ``gold/_runs`` record (JVM and session start-up excluded; the wall time of the
whole command is printed too, with the machine's busy CPU seconds during it: "local[1]" limits Spark's task
slots, not the driver JVM's threads, its GC or the Python workers of ``mapInArrow``).
Speed-up = local[1] seconds / seconds; efficiency = speed-up / cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from deltalake import DeltaTable

ROOT = Path(__file__).resolve().parent.parent
SUBMIT = ROOT / "spark-submit.sh"
CLUSTER = ROOT / "scripts" / "local-cluster.sh"
CONF = ROOT / "conf" / "standalone-local.toml"
JOBS = ("cooccurrence", "vectors")
LOCAL_MASTERS = {"local[1]": 1, "local[2]": 2}
CLUSTER_CORES = 2  # two workers of one core each


def env() -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK", "SPARK_")) and k != "PYTHONPATH"}
    clean.setdefault("ARIA_VENV", sys.prefix)
    return clean


def machine_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy (user + nice + system + irq + softirq, /proc/stat): the
    cluster's executors are not children of spark-submit, so the command's own rusage would miss them."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def submit(job: str, master: str, cwd: Path, sets: list[str]) -> tuple[float, float]:
    """Run one job (``--force``: its inputs are unchanged since the last round, which would otherwise skip
    it); returns the wall seconds of the whole command and the machine's busy CPU seconds during it."""
    args = [str(SUBMIT), job, "--conf", str(CONF), "--master", master, "--force"]
    for item in sets:
        args += ["--set", item]
    cpu_before, started = machine_cpu_seconds(), time.perf_counter()
    result = subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=env())
    if result.returncode != 0:
        raise SystemExit(f"{job} on {master} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return time.perf_counter() - started, machine_cpu_seconds() - cpu_before


def last_run_seconds(warehouse: Path, job: str) -> float:
    records = DeltaTable(str(warehouse / "gold" / "_runs")).to_pyarrow_table(
        columns=["job", "status", "started_at", "seconds"]).to_pylist()
    last = max((r for r in records if r["job"] == job), key=lambda r: r["started_at"])
    if last["status"] != "succeeded":
        raise SystemExit(f"{job}: the last run record says {last['status']!r}, not a measured run")
    return last["seconds"]


def prepare(base: Path, tracks: int, rows_per_task: int, sets: list[str]) -> None:
    """The sample dump and its bronze tables, once per size."""
    marker = base / "inputs.done"
    if marker.exists():
        return
    base.mkdir(parents=True, exist_ok=True)
    for job in ("sample", "ingest"):
        seconds, _ = submit(job, "local[2]", base,
                            [f"sample.tracks={tracks}", f"ingest.rows_per_task={rows_per_task}", *sets])
        print(f"prepared: {job} in {seconds:.0f} s", flush=True)
    marker.touch()


def start_cluster(state: Path) -> str:
    result = subprocess.run([str(CLUSTER), "start"], capture_output=True, text=True,
                            env={**env(), "ARIA_CLUSTER_DIR": str(state)})
    if result.returncode != 0:
        raise SystemExit(f"local-cluster.sh start failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1]


def stop_cluster(state: Path) -> None:
    subprocess.run([str(CLUSTER), "stop"], env={**env(), "ARIA_CLUSTER_DIR": str(state)}, check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=300_000, help="sample.tracks of the generated dump")
    parser.add_argument("--seeds", type=int, default=20_000, help="similar.seed_count of the vectors job")
    parser.add_argument("--rows-per-task", type=int, default=500_000,
                        help="ingest.rows_per_task of the bronze tables (rows per Parquet file)")
    parser.add_argument("--rounds", type=int, default=1, help="runs per job and master (median reported)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "aria-bench" / "scaling")
    parser.add_argument("--out", type=Path, default=None,
                        help="results JSON (default bench/results/scaling[-rROWS].json)")
    args = parser.parse_args(argv)

    suffix = "" if args.rows_per_task == 500_000 else f"-r{args.rows_per_task}"
    base = (args.dir / f"t{args.tracks}{suffix}").resolve()
    sets = [f"similar.seed_count={args.seeds}"]
    prepare(base, args.tracks, args.rows_per_task, sets)
    warehouse = base / "data" / "warehouse"
    state = base / "cluster"
    url = start_cluster(state)
    masters = {**LOCAL_MASTERS, url: CLUSTER_CORES}
    label = {url: "standalone 2×1"}
    seconds: dict[tuple[str, str], list[float]] = {}
    walls: dict[tuple[str, str], list[float]] = {}
    cpus: dict[tuple[str, str], list[float]] = {}
    try:
        for round_no in range(args.rounds):
            for master in masters:
                for job in JOBS:
                    work = base / "work" / f"{job}-{len(seconds.get((job, master), []))}"
                    wall, cpu = submit(job, master, base, [*sets, f"paths.work={work}"])
                    took = last_run_seconds(warehouse, job)
                    seconds.setdefault((job, master), []).append(took)
                    walls.setdefault((job, master), []).append(wall)
                    cpus.setdefault((job, master), []).append(cpu)
                    print(f"round {round_no + 1}: {job:<13} {label.get(master, master):<15} {took:7.1f} s "
                          f"(command {wall:.1f} s, machine CPU {cpu:.1f} s = {cpu / wall:.2f} cores busy)",
                          flush=True)
    finally:
        stop_cluster(state)

    results: list[dict[str, Any]] = []
    print("\n| job | master | cores | job s | command s | machine CPU s | cores busy | speed-up | efficiency |\n"
          "|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for job in JOBS:
        single = statistics.median(seconds[(job, "local[1]")])
        for master, cores in masters.items():
            took = statistics.median(seconds[(job, master)])
            wall = statistics.median(walls[(job, master)])
            cpu = statistics.median(cpus[(job, master)])
            speedup = single / took
            results.append({"job": job, "master": label.get(master, master), "cores": cores, "seconds": took,
                            "runs": seconds[(job, master)], "command_seconds": wall, "machine_cpu_seconds": cpu,
                            "cores_busy": cpu / wall, "speedup": speedup,
                            "efficiency": speedup / cores, "tracks": args.tracks, "seeds": args.seeds,
                            "rows_per_task": args.rows_per_task})
            print(f"| {job} | {label.get(master, master)} | {cores} | {took:.1f} | {wall:.1f} | {cpu:.1f} | "
                  f"{cpu / wall:.2f} | {speedup:.2f} | {speedup / cores:.2f} |")
    out = args.out or ROOT / "bench" / "results" / f"scaling{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
