"""Ingest throughput against the peer a user would try first: a raw single-process ADBC read.

The raw peer reads, in one process, every table ingest reads with the same typed SQL through the ADBC
driver into Arrow batches, and writes nothing. (A plain ``SELECT *`` through ADBC fails on the release's
mixed-type columns: "Type mismatch in column 10: expected DOUBLE but got STRING".) Ingest reads the same
tables range by range on the executors, resolves the rowid links, writes Parquet and commits Delta
tables. It runs twice: with the default in-task lookups for tracks and playlist rows (a catalog this
size fits every worker), and with the Spark joins the release's 256M tracks need
(``ingest.in_task_lookup_max_tracks = 0``). Goal from the issue:
ingest rows/s >= 0.5 x (raw rows/s x cores).

    .venv/bin/python bench/ingest.py --tracks 2000000 --data /work/benchdata/t2m

``--data`` is reused when it already holds a generated dump of that size (generation is not timed).
MusicBrainz is the small real fixture, so the figures are about the Spotify files.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Timing, measure, spark_pid, timed, write_result  # noqa: E402
from jobs.ingest.sources import REAL_FILES, real_queries  # noqa: E402
from jobs.sample.generator import MANIFEST, SampleSpec, generate  # noqa: E402
from lib.config import load_config  # noqa: E402

WARMUP_TRACKS = 20_000
MB_FIXTURE = ROOT / "tests" / "fixtures" / "musicbrainz"


def ensure_dump(data: Path, tracks: int) -> None:
    manifest = data / "spotify" / MANIFEST
    if manifest.exists() and json.loads(manifest.read_text())["spec"]["tracks"] == tracks:
        return
    with timed() as generation:
        generate(data / "spotify", data / "musicbrainz", SampleSpec(tracks=tracks))
    print(f"generated {tracks:,} tracks in {generation.wall:.1f} s", flush=True)


def raw_read(data: Path) -> tuple[int, Timing]:
    from dataclasses import fields

    from lib.sources.sqlite import key_bounds, read_range

    queries = real_queries({key: data / "spotify" / name for key, name in REAL_FILES.items()})
    rows = 0
    with timed() as timing:
        for field in fields(queries):
            query = getattr(queries, field.name)
            table = query.from_clause.split()[0]
            key = "playlist_rowid" if table == "playlist_tracks" else "rowid"
            low, high = key_bounds(query.db_path, table, key)
            for _, _, stats in read_range(query, low, high):
                rows += stats.read
    return rows, timing


def run_ingest(spark, data: Path, in_task_lookup: bool, rows_per_task: int = 500_000) -> tuple[int, Timing, dict]:
    from jobs.ingest import job

    warehouse = data / f"bench-warehouse-{'lookup' if in_task_lookup else 'join'}"
    shutil.rmtree(warehouse, ignore_errors=True)
    config = load_config(use_default_file=False, base_dir=data).with_overrides({
        "runs.skip_unchanged": False,  # benchmarks rerun jobs on unchanged data on purpose
        "paths.spotify": str(data / "spotify"), "paths.musicbrainz": str(MB_FIXTURE),
        "paths.warehouse": str(warehouse), "paths.work": str(data / "work"),
        "ingest.quick_check": False, "ingest.rows_per_task": rows_per_task,
        **({} if in_task_lookup else {"ingest.in_task_lookup_max_tracks": 0}),
    })
    timing, summary = measure(lambda: job.run(spark, config)["metrics"], spark_pid(spark))
    rows = sum(t.get("rows_read", 0) for name, t in summary["tables"].items() if not name.startswith("mb_"))
    shutil.rmtree(warehouse, ignore_errors=True)
    return rows, timing, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, default=2_000_000)
    parser.add_argument("--data", type=Path, default=Path("data/bench-ingest"))
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--rows-per-task", type=int, default=500_000, help="ingest.rows_per_task")
    args = parser.parse_args()
    data = args.data.resolve()
    ensure_dump(data, args.tracks)

    raw_rows, raw = raw_read(data)
    raw_rate = raw_rows / raw.wall
    print(f"raw ADBC read (1 process): {raw_rows:,} rows in {raw} = {raw_rate:,.0f} rows/s", flush=True)
    record: dict = {"tracks": args.tracks, "cores_assumed": args.cores, "rows_per_task": args.rows_per_task,
                    "raw": {"rows": raw_rows, "timing": raw, "rows_per_s": round(raw_rate)}}

    from lib.spark import build_session

    config = load_config(use_default_file=False).with_overrides(
        {"spark.master": f"local[{args.cores}]", "spark.driver_memory": "8g", "spark.log_level": "ERROR"})
    spark = build_session(config, "bench-ingest")
    # Warm-up (untimed): an ingest of a small dump, so neither timed run pays for the JIT and the first
    # Python workers.
    warmup = data.parent / f"{data.name}-warmup"
    ensure_dump(warmup, WARMUP_TRACKS)
    run_ingest(spark, warmup, True)
    for in_task_lookup in (True, False):
        rows, timing, _ = run_ingest(spark, data, in_task_lookup, args.rows_per_task)
        rate = rows / timing.wall
        ratio = rate / (raw_rate * args.cores)
        label = "in-task lookups (default)" if in_task_lookup else "Spark joins (in_task_lookup_max_tracks = 0)"
        record["in_task_lookup" if in_task_lookup else "spark_joins"] = {
            "rows": rows, "timing": timing, "rows_per_s": round(rate), "ratio_to_raw_x_cores": round(ratio, 3)}
        print(f"ingest ({label}): {rows:,} rows in {timing} = {rate:,.0f} rows/s; "
              f"ratio to raw x {args.cores} cores = {ratio:.2f}", flush=True)
    spark.stop()
    write_result("ingest", record)


if __name__ == "__main__":
    main()
