"""Benchmark: the cooccurrence job as a whole ``./spark-submit.sh`` process against a DuckDB SQL script as
a whole process, on the same Parquet files, over data sizes × data shapes.

    .venv/bin/python bench/cooccurrence.py --sizes 500000 2000000 7400000 \
        --shapes zipf1.1 zipf1.3 zipf1.5 sample

Data (made once per size and shape, then reused): a synthetic bronze/spotify_playlist_tracks Delta table of
exactly ``size`` rows, ``size`` × 0.135 tracks (1M tracks at 7.4M rows), each row's track drawn Zipf(s)
over popularity ranks (``zipfS``: s = 1.1, 1.3, 1.5), playlist lengths lognormal (median 10, σ 1, clipped
to 1..800), or with ``sample`` the sample generator's length mix (jobs/sample/playlists.py: short, bulk
lognormal, long) with Zipf(1.3); 22-character base62 ids unrelated to popularity.

Per size and shape, each as a separate process, timed from outside with bench/common.run_process (wall,
CPU of the whole tree, peak resident memory of the tree):
- job: ``./spark-submit.sh cooccurrence --json`` (local[2], the job's defaults); *job s* is the summary's
  ``seconds`` (the job body, session already up), *process s* the whole command (JVM start, session,
  job, commit, exit);
- peer: bench/peers/cooccurrence_duckdb.py (DuckDB, threads = cores, preserve_insertion_order = false,
  memory limit, temp directory, integer ids); ``--peer-variants`` also times the string-id plan and the
  earlier bench's settings.
Both ratios divide by the peer's whole process. Every peer's output is compared with the job's (pair
counts exact, metrics to 1e-9, top-K neighbour per rank). Timings on a shared machine: the load average
before and after each size is printed and stored with the figures (bench/results/cooccurrence.jsonl).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import run_process, timed, write_result  # noqa: E402
from jobs.sample.ids import base62_ids  # noqa: E402

SIZES = (500_000, 2_000_000, 7_400_000)
SHAPES = ("zipf1.1", "zipf1.3", "zipf1.5", "sample")
SEED = 7
TRACKS_PER_ROW = 0.135
MEAN_LENGTH, LENGTH_SIGMA, MAX_LENGTH = 10.0, 1.0, 800
SAMPLE_ZIPF = 1.3
PEER = ROOT / "bench" / "peers" / "cooccurrence_duckdb.py"


# ------------------------------------------------------------------------------------------------
# Data


def _zipf_draws(rng: np.random.Generator, n: int, size: int, exponent: float) -> np.ndarray:
    cdf = np.cumsum(1.0 / np.arange(1, n + 1) ** exponent)
    return np.minimum(np.searchsorted(cdf / cdf[-1], rng.random(size)), n - 1)


def _lengths(rng: np.random.Generator, rows: int, shape: str) -> np.ndarray:
    """Playlist lengths summing to exactly ``rows``."""
    from jobs.sample.playlists import _playlist_lengths

    parts, total = [], 0
    while total < rows:
        if shape == "sample":
            chunk = _playlist_lengths(rng, 100_000, False)
        else:
            chunk = np.clip(np.rint(rng.lognormal(math.log(MEAN_LENGTH), LENGTH_SIGMA, 100_000)), 1, MAX_LENGTH)
        parts.append(chunk.astype(np.int64))
        total += int(parts[-1].sum())
    length = np.concatenate(parts)
    ends = np.cumsum(length)
    last = int(np.searchsorted(ends, rows))
    length = length[: last + 1].copy()
    length[-1] -= int(ends[last] - rows)
    return length[length > 0]


def playlist_rows(rows: int, shape: str, seed: int = SEED) -> pa.Table:
    """Exactly ``rows`` (playlist_id, position, track_id, added_at) rows of the given shape."""
    rng = np.random.default_rng(seed)
    exponent = SAMPLE_ZIPF if shape == "sample" else float(shape.removeprefix("zipf"))
    length = _lengths(rng, rows, shape)
    playlists = len(length)
    vocabulary = max(1_000, int(rows * TRACKS_PER_ROW))
    track = rng.permutation(vocabulary)[_zipf_draws(rng, vocabulary, rows, exponent)]  # ids unrelated to rank
    owner = np.repeat(np.arange(playlists), length)
    starts = np.concatenate(([0], np.cumsum(length)[:-1]))
    return pa.table({
        "playlist_id": base62_ids(seed, 4, np.arange(playlists, dtype=np.uint64)).take(pa.array(owner)),
        "position": pa.array((np.arange(rows) - starts[owner]).astype(np.int32)),
        "track_id": base62_ids(seed, 1, np.arange(vocabulary, dtype=np.uint64)).take(pa.array(track)),
        "added_at": pa.nulls(rows, pa.timestamp("us", tz="UTC")),
    })


def bronze_table(base: Path, rows: int, shape: str) -> Path:
    """The warehouse folder holding the generated bronze table (made once, then reused)."""
    from deltalake import write_deltalake

    from lib import delta

    warehouse = base / f"{shape}-rows{rows}" / "warehouse"
    uri = delta.table_path(str(warehouse), "bronze", "spotify_playlist_tracks")
    marker = warehouse / "_generated.json"
    wanted = {"rows": rows, "shape": shape, "seed": SEED, "generator": 2}
    if not (marker.exists() and json.loads(marker.read_text()) == wanted):
        shutil.rmtree(warehouse, ignore_errors=True)
        with timed() as generation:
            write_deltalake(uri, playlist_rows(rows, shape), mode="overwrite", target_file_size=16 << 20)
        marker.write_text(json.dumps(wanted))
        print(f"generated {shape} {rows:,} rows in {generation.wall:.1f} s -> {uri}", flush=True)
    return warehouse


def data_files(uri: str) -> list[str]:
    from deltalake import DeltaTable

    return [path.removeprefix("file://") for path in DeltaTable(uri).file_uris()]


# ------------------------------------------------------------------------------------------------
# Runs


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("ARIA_VENV", sys.prefix)
    return env


def run_job(warehouse: Path, work: Path, master: str) -> dict[str, Any]:
    """``./spark-submit.sh cooccurrence`` as a whole process: its measurement and the job's summary."""
    argv = [str(ROOT / "spark-submit.sh"), "cooccurrence", "--json",
            "--set", f"paths.warehouse={warehouse}", "--set", f"paths.work={work}",
            "--set", "runs.skip_unchanged=false", "--set", f"spark.master={master}"]
    out = work.parent / "job-summary.json"
    work.mkdir(parents=True, exist_ok=True)
    with out.open("w") as stdout, (work.parent / "job.log").open("w") as stderr:
        process = run_process(argv, cwd=ROOT, env=_env(), stdout=stdout, stderr=stderr)
    if process.returncode:
        raise SystemExit(f"job failed ({process.returncode}); see {work.parent / 'job.log'}")
    summary = json.loads(out.read_text())
    return {"process": process, "seconds": summary["seconds"], "steps": summary["steps"],
            "metrics": {k: v for k, v in summary["metrics"].items() if k != "step_detail"},
            "stages": sum(int(d.get("stages", 0)) for d in summary["metrics"].get("step_detail", {}).values())}


def run_peer(files: list[str], out: Path, *options: str) -> Any:
    env = _env()
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        env.pop(name, None)
    argv = [sys.executable, str(PEER), str(out), *files, *options]
    process = run_process(argv, cwd=ROOT, env=env)
    if process.returncode:
        raise SystemExit(f"peer {' '.join(options)} failed ({process.returncode})")
    return process


# ------------------------------------------------------------------------------------------------
# Checks


def mismatches(job_pairs: list[str], job_top: list[str], other_pairs: str, other_top: str) -> dict[str, int]:
    """Rows that differ between the job's tables and another run's (0 and 0 when equal)."""
    import duckdb

    def source(paths: list[str] | str) -> str:
        listed = paths if isinstance(paths, list) else [paths]
        return "read_parquet([" + ", ".join(f"'{p}'" for p in listed) + "])"

    with duckdb.connect() as con:
        pair_diff = con.execute(f"""
            SELECT count(*) FROM {source(job_pairs)} j FULL JOIN {source(other_pairs)} o USING (track_a, track_b)
            WHERE j.cooccurrence_count IS DISTINCT FROM o.cooccurrence_count
               OR abs(j.score - o.score) > 1e-9 OR abs(j.pmi_score - o.pmi_score) > 1e-9
               OR abs(j.jaccard_score - o.jaccard_score) > 1e-9 OR abs(j.llr_score - o.llr_score) > 1e-6
        """).fetchone()[0]
        top_diff = con.execute(f"""
            SELECT count(*) FROM {source(job_top)} j FULL JOIN {source(other_top)} o USING (track_id, rank)
            WHERE j.neighbor_id IS DISTINCT FROM o.neighbor_id
        """).fetchone()[0]
    return {"pairs": int(pair_diff), "top": int(top_diff)}


# ------------------------------------------------------------------------------------------------
# Main


PEER_VARIANTS = {"duckdb": ("--ids", "int"), "duckdb-string": ("--ids", "string"), "duckdb-legacy": ("--legacy",)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES), help="playlist rows per workload")
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=SHAPES)
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "aria-bench", "cooccurrence"),
                        help="where generated tables and outputs live (kept between runs)")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--peer-variants", action="store_true",
                        help="also time the string-id plan and the earlier peer's settings")
    parser.add_argument("--no-check", action="store_true", help="skip comparing the outputs")
    args = parser.parse_args(argv)

    from lib import delta

    base = Path(args.dir)
    results = []
    for rows in args.sizes:
        for shape in args.shapes:
            warehouse = bronze_table(base, rows, shape)
            files = data_files(delta.table_path(str(warehouse), "bronze", "spotify_playlist_tracks"))
            folder = warehouse.parent
            line: dict[str, Any] = {"rows": rows, "shape": shape, "load_before": list(os.getloadavg())}
            line["job"] = run_job(warehouse, folder / "work", args.master)
            job_pairs = data_files(delta.table_path(str(warehouse), "gold", "playlist_cooccurrence"))
            job_top = data_files(delta.table_path(str(warehouse), "gold", "cooccurrence_top"))
            names = PEER_VARIANTS if args.peer_variants else {"duckdb": PEER_VARIANTS["duckdb"]}
            for name, options in names.items():
                out = folder / "peers" / name
                shutil.rmtree(out, ignore_errors=True)
                line[name] = {"process": run_peer(files, out, *options)}
                if not args.no_check:
                    line[name]["mismatches"] = mismatches(job_pairs, job_top, str(out / "pairs.parquet"),
                                                          str(out / "top.parquet"))
            line["load_after"] = list(os.getloadavg())
            results.append(line)
            report_line(line)
            write_result("cooccurrence", line)
    report_table(results)
    return 0


def _gb(process: Any) -> str:
    return f"{process.peak_rss_bytes / 1e9:.1f}"


def report_line(line: dict[str, Any]) -> None:
    job, metrics = line["job"], line["job"]["metrics"]
    print(f"\n== {line['shape']} {line['rows']:,} rows: N={metrics['playlists_qualifying']:,}, "
          f"{metrics['tracks']:,} tracks ({metrics['tracks_kept']:,} kept), {metrics['pairs_generated']:,} pairs "
          f"generated, {metrics['pairs_kept']:,} kept; {job['stages']} Spark stages; load "
          f"{line['load_before'][0]:.1f} → {line['load_after'][0]:.1f}", flush=True)
    print(f"   job {job['seconds']:.1f} s, process {job['process'].wall:.1f} s wall / {job['process'].cpu:.1f} s CPU, "
          f"peak {_gb(job['process'])} GB; steps {job['steps']}")
    for name in PEER_VARIANTS:
        if name in line:
            process = line[name]["process"]
            print(f"   {name:14s} {process.wall:.1f} s wall / {process.cpu:.1f} s CPU, peak {_gb(process)} GB, "
                  f"mismatches {line[name].get('mismatches')}")


def report_table(results: list[dict[str, Any]]) -> None:
    print("\n| shape | rows | pairs generated | pairs kept | job s | process s (CPU s) | peak GB | "
          "DuckDB s (CPU s) | peak GB | job ÷ DuckDB | process ÷ DuckDB | load |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for line in results:
        job, peer = line["job"], line["duckdb"]["process"]
        metrics = job["metrics"]
        print(f"| {line['shape']} | {line['rows']:,} | {metrics['pairs_generated']:,} | {metrics['pairs_kept']:,} "
              f"| {job['seconds']:.1f} | {job['process'].wall:.1f} ({job['process'].cpu:.0f}) | {_gb(job['process'])} "
              f"| {peer.wall:.1f} ({peer.cpu:.0f}) | {_gb(peer)} | {job['seconds'] / peer.wall:.1f} "
              f"| {job['process'].wall / peer.wall:.1f} | {line['load_before'][0]:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
