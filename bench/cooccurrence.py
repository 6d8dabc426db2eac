"""Benchmark: the cooccurrence job against DuckDB SQL and the naive Spark plan, on the same Parquet files.

    .venv/bin/python bench/cooccurrence.py                     # 0.5M, 2M and 8M playlist rows
    .venv/bin/python bench/cooccurrence.py 500000 --naive-max-rows 0

For each size a synthetic bronze/spotify_playlist_tracks Delta table is generated once (exact row count;
playlist lengths lognormal around 10 rows, clipped to 1..800; tracks drawn Zipf(1.05) mostly inside one
of many 2,000-track "communities", so pairs repeat as on real playlists; 22-character base62 ids
unrelated to popularity). Then, in this process and on the same files:

- job:        ``jobs.cooccurrence.job.run`` (both gold Delta tables, zstd Parquet), local[2] Spark;
- duckdb:     one SQL script over the same Parquet files (string ids, self-join, window top-K), both
              tables written as zstd Parquet; 2 threads;
- duckdb-int: the same with track ids integer-encoded first (what a DuckDB expert would write);
- naive:      reference.naive_pair_table (string ids, no pruning, self-join) + a window top-K, written
              as Parquet by the same Spark session.

All outputs are checked for equality with the job's (pair counts exact, metrics to 1e-9, top-K ranks).
Spark runs once untimed on a 100k-row table first (JIT warm-up), so the timed runs are steady state;
the cold run is printed too. Timings: wall seconds, and CPU seconds (Spark: the JVM and its Python
workers; DuckDB: this process) so a busy machine can be read as well.
"""

from __future__ import annotations

import argparse
import json
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
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

from bench.common import measure, spark_pid, timed, write_result  # noqa: E402
from jobs.sample.ids import base62_ids  # noqa: E402

SIZES = (500_000, 2_000_000, 8_000_000)
WARMUP_ROWS = 100_000
SEED = 7
MIN_PLAYLIST, MAX_PLAYLIST, MIN_COOCCURRENCE, TOP_K = 5, 500, 3, 100
# Synthetic playlists (see the module docstring).
MEAN_LENGTH, LENGTH_SIGMA, MAX_LENGTH = 10.0, 1.0, 800
TRACKS_PER_ROW, COMMUNITY, LOCAL_SHARE, ZIPF = 0.125, 2_000, 0.8, 1.05


# ------------------------------------------------------------------------------------------------
# Data


def _zipf_draws(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** ZIPF
    cdf = np.cumsum(weights)
    return np.minimum(np.searchsorted(cdf / cdf[-1], rng.random(size)), n - 1)


def playlist_rows(rows: int, seed: int = SEED) -> pa.Table:
    """Exactly ``rows`` (playlist_id, position, track_id, added_at) rows."""
    rng = np.random.default_rng(seed)
    lengths, total = [], 0
    while total < rows:
        chunk = np.clip(np.rint(rng.lognormal(np.log(MEAN_LENGTH), LENGTH_SIGMA, 100_000)), 1, MAX_LENGTH)
        lengths.append(chunk.astype(np.int64))
        total += int(chunk.sum())
    length = np.concatenate(lengths)
    ends = np.cumsum(length)
    last = int(np.searchsorted(ends, rows))
    length = length[: last + 1].copy()
    length[-1] -= int(ends[last] - rows)
    length = length[length > 0]
    playlists = len(length)
    vocabulary = max(COMMUNITY, int(rows * TRACKS_PER_ROW))
    community = rng.integers(0, max(1, vocabulary // COMMUNITY), playlists)
    owner = np.repeat(np.arange(playlists), length)
    local = community[owner] * COMMUNITY + _zipf_draws(rng, COMMUNITY, rows)
    track = np.where(rng.random(rows) < LOCAL_SHARE, local, _zipf_draws(rng, vocabulary, rows)) % vocabulary
    track = rng.permutation(vocabulary)[track]  # id order unrelated to popularity
    starts = np.concatenate(([0], np.cumsum(length)[:-1]))
    return pa.table({
        "playlist_id": base62_ids(seed, 4, np.arange(playlists, dtype=np.uint64)).take(pa.array(owner)),
        "position": pa.array((np.arange(rows) - starts[owner]).astype(np.int32)),
        "track_id": base62_ids(seed, 1, np.arange(vocabulary, dtype=np.uint64)).take(pa.array(track)),
        "added_at": pa.nulls(rows, pa.timestamp("us", tz="UTC")),
    })


def bronze_table(base: Path, rows: int) -> Path:
    """The warehouse folder holding the generated bronze table (made once, then reused)."""
    from deltalake import write_deltalake

    from lib import delta

    warehouse = base / f"rows{rows}" / "warehouse"
    uri = delta.table_path(str(warehouse), "bronze", "spotify_playlist_tracks")
    marker = warehouse / "_generated.json"
    wanted = {"rows": rows, "seed": SEED, "generator": 1}
    if not (marker.exists() and json.loads(marker.read_text()) == wanted):
        shutil.rmtree(warehouse, ignore_errors=True)
        with timed() as generation:
            write_deltalake(uri, playlist_rows(rows), mode="overwrite", target_file_size=16 << 20)
        marker.write_text(json.dumps(wanted))
        print(f"generated {rows:,} rows in {generation.wall:.1f} s -> {uri}", flush=True)
    return warehouse


def data_files(uri: str) -> list[str]:
    from deltalake import DeltaTable

    return [path.removeprefix("file://") for path in DeltaTable(uri).file_uris()]


# ------------------------------------------------------------------------------------------------
# Peers


DUCKDB_SETUP = """
CREATE OR REPLACE MACRO xlogx(x) AS CASE WHEN x > 0 THEN x * ln(x) ELSE 0 END;
CREATE OR REPLACE MACRO llr(k11, k12, k21, k22) AS greatest(2 * (
    (xlogx(k11 + k12 + k21 + k22) - xlogx(k11 + k12) - xlogx(k21 + k22))
  + (xlogx(k11 + k12 + k21 + k22) - xlogx(k11 + k21) - xlogx(k12 + k22))
  - (xlogx(k11 + k12 + k21 + k22) - xlogx(k11) - xlogx(k12) - xlogx(k21) - xlogx(k22))), 0);
"""

# Pair counts from (playlist, track) rows; {key} is the track column (string id or int code).
DUCKDB_COUNTS = """
CREATE OR REPLACE TEMP TABLE pair_counts AS
WITH playlist_tracks AS (
    SELECT DISTINCT playlist_id, {key} AS track FROM source
),
qualifying AS (
    SELECT playlist_id FROM playlist_tracks GROUP BY playlist_id
    HAVING count(*) BETWEEN {min_playlist} AND {max_playlist}
),
qualifying_tracks AS (
    SELECT * FROM playlist_tracks SEMI JOIN qualifying USING (playlist_id)
),
marginals AS (
    SELECT track, count(*) AS playlists FROM qualifying_tracks GROUP BY track
),
kept AS (
    SELECT * FROM qualifying_tracks
    SEMI JOIN (SELECT track FROM marginals WHERE playlists >= {min_cooccurrence}) USING (track)
),
pairs AS (
    SELECT x.track AS track_a, y.track AS track_b, count(*) AS cooccurrence_count
    FROM kept x
    JOIN kept y ON x.playlist_id = y.playlist_id AND x.track < y.track
    GROUP BY x.track, y.track
    HAVING count(*) >= {min_cooccurrence}
)
SELECT p.track_a, p.track_b, p.cooccurrence_count, m_a.playlists AS count_a, m_b.playlists AS count_b, n.n
FROM pairs p
JOIN marginals m_a ON m_a.track = p.track_a
JOIN marginals m_b ON m_b.track = p.track_b
CROSS JOIN (SELECT count(*) AS n FROM qualifying) n;
"""

DUCKDB_OUTPUT = """
CREATE OR REPLACE TEMP TABLE pairs AS
WITH decoded AS ({decoded}),
metrics AS (
    SELECT track_a, track_b, cooccurrence_count,
           log2(cooccurrence_count::DOUBLE * n / (count_a::DOUBLE * count_b)) AS pmi_score,
           cooccurrence_count::DOUBLE / (count_a + count_b - cooccurrence_count) AS jaccard_score,
           llr(cooccurrence_count::DOUBLE, (count_a - cooccurrence_count)::DOUBLE,
               (count_b - cooccurrence_count)::DOUBLE, (n - count_a - count_b + cooccurrence_count)::DOUBLE)
               AS llr_score
    FROM decoded
)
SELECT track_a, track_b, cooccurrence_count, pmi_score, jaccard_score,
       0.6 * least(greatest((pmi_score + 5) / 15, 0), 1) + 0.4 * jaccard_score AS score, llr_score
FROM metrics;
COPY pairs TO '{out}/pairs.parquet' (FORMAT parquet, COMPRESSION zstd);
COPY (
    WITH directed AS (
        SELECT track_a AS track_id, track_b AS neighbor_id, * EXCLUDE (track_a, track_b) FROM pairs
        UNION ALL
        SELECT track_b AS track_id, track_a AS neighbor_id, * EXCLUDE (track_a, track_b) FROM pairs
    )
    SELECT track_id, neighbor_id,
           row_number() OVER (PARTITION BY track_id
                              ORDER BY score DESC, cooccurrence_count DESC, neighbor_id) AS rank,
           cooccurrence_count, pmi_score, jaccard_score, score, llr_score
    FROM directed
    QUALIFY rank <= {top_k}
) TO '{out}/top.parquet' (FORMAT parquet, COMPRESSION zstd);
"""


def run_duckdb(files: list[str], out: Path, integer_ids: bool) -> None:
    import duckdb

    out.mkdir(parents=True, exist_ok=True)
    params = {"min_playlist": MIN_PLAYLIST, "max_playlist": MAX_PLAYLIST, "min_cooccurrence": MIN_COOCCURRENCE,
              "top_k": TOP_K, "out": out}
    with duckdb.connect() as con:
        con.execute("SET threads = 2")
        con.execute(DUCKDB_SETUP)
        file_list = ", ".join(f"'{path}'" for path in files)
        rows = (f"SELECT playlist_id, track_id FROM read_parquet([{file_list}]) "
                "WHERE playlist_id IS NOT NULL AND track_id IS NOT NULL")
        if integer_ids:
            # Dense codes in string order, so "<" on codes is "<" on ids.
            con.execute(f"CREATE OR REPLACE TEMP TABLE raw AS {rows}")
            con.execute("CREATE OR REPLACE TEMP TABLE dictionary AS SELECT track_id, row_number() OVER "
                        "(ORDER BY track_id)::INTEGER AS code FROM (SELECT DISTINCT track_id FROM raw)")
            con.execute("CREATE OR REPLACE TEMP VIEW source AS SELECT playlist_id, code FROM raw JOIN dictionary "
                        "USING (track_id)")
            con.execute(DUCKDB_COUNTS.format(key="code", **params))
            decoded = ("SELECT a.track_id AS track_a, b.track_id AS track_b, p.* EXCLUDE (track_a, track_b) "
                       "FROM pair_counts p JOIN dictionary a ON a.code = p.track_a "
                       "JOIN dictionary b ON b.code = p.track_b")
        else:
            con.execute(f"CREATE OR REPLACE TEMP VIEW source AS {rows}")
            con.execute(DUCKDB_COUNTS.format(key="track_id", **params))
            decoded = "SELECT * FROM pair_counts"
        con.execute(DUCKDB_OUTPUT.format(decoded=decoded, **params))


def run_naive(spark: Any, files: list[str], out: Path) -> None:
    from jobs.cooccurrence.reference import naive_pair_table
    from jobs.cooccurrence.transforms import top_neighbours

    rows = spark.read.parquet(*files).select("playlist_id", "track_id")
    pairs_path = str(out / "pairs")
    naive_pair_table(rows, MIN_PLAYLIST, MAX_PLAYLIST, MIN_COOCCURRENCE).write.mode("overwrite").parquet(pairs_path)
    top_neighbours(spark.read.parquet(pairs_path), TOP_K, "score").write.mode("overwrite").parquet(str(out / "top"))


def run_job(spark: Any, warehouse: Path, work: Path) -> dict[str, Any]:
    from jobs.cooccurrence import job
    from lib.config import load_config

    config = load_config(use_default_file=False).with_overrides({
        "runs.skip_unchanged": False,  # benchmarks rerun jobs on unchanged data on purpose
        "paths.warehouse": str(warehouse), "paths.work": str(work), "spark.master": "local[2]",
    })
    summary = job.run(spark, config)
    return {**summary["metrics"], "phases": summary["metrics"].get("step_detail", {})}


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=list(SIZES), help="playlist rows per workload")
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "aria-bench", "cooccurrence"),
                        help="where generated tables and outputs live (kept between runs)")
    parser.add_argument("--naive-max-rows", type=int, default=max(SIZES),
                        help="skip the naive plan above this many rows")
    parser.add_argument("--no-warmup", action="store_true", help="time a cold JVM (no untimed first run)")
    args = parser.parse_args(argv)

    from lib import delta
    from lib.config import load_config
    from lib.spark import build_session

    base = Path(args.dir)
    spark = build_session(load_config(use_default_file=False).with_overrides({"spark.master": "local[2]"}),
                          "bench-cooccurrence")
    jvm = spark_pid(spark)
    if not args.no_warmup:
        warehouse = bronze_table(base, WARMUP_ROWS)
        timing, _ = measure(lambda: run_job(spark, warehouse, base / f"rows{WARMUP_ROWS}" / "work"), jvm)
        print(f"warm-up job run ({WARMUP_ROWS:,} rows, cold JVM): {timing.wall:.1f} s wall, {timing.cpu:.1f} s CPU",
              flush=True)

    results = []
    for rows in args.sizes:
        warehouse = bronze_table(base, rows)
        files = data_files(delta.table_path(str(warehouse), "bronze", "spotify_playlist_tracks"))
        out = base / f"rows{rows}" / "peers"
        line: dict[str, Any] = {"rows": rows}
        job_timing, summary = measure(lambda warehouse=warehouse, rows=rows: run_job(
            spark, warehouse, base / f"rows{rows}" / "work"), jvm)
        line["job"] = job_timing
        line["summary"] = summary
        job_pairs = data_files(delta.table_path(str(warehouse), "gold", "playlist_cooccurrence"))
        job_top = data_files(delta.table_path(str(warehouse), "gold", "cooccurrence_top"))
        for name, integer_ids in (("duckdb", False), ("duckdb-int", True)):
            timing, _ = measure(lambda name=name, integer_ids=integer_ids, files=files, out=out: run_duckdb(
                files, out / name, integer_ids))
            timing.extra = mismatches(job_pairs, job_top, str(out / name / "pairs.parquet"),
                                      str(out / name / "top.parquet"))
            line[name] = timing
        if rows <= args.naive_max_rows:
            timing, _ = measure(lambda out=out, files=files: run_naive(spark, files, out / "naive"), jvm)
            timing.extra = mismatches(job_pairs, job_top, str(out / "naive" / "pairs" / "*.parquet"),
                                      str(out / "naive" / "top" / "*.parquet"))
            line["naive"] = timing
        results.append(line)
        report_size(line)
        write_result("cooccurrence", line)
    report_table(results)
    spark.stop()
    return 0


def report_size(line: dict[str, Any]) -> None:
    summary = line["summary"]
    print(f"\n== {line['rows']:,} playlist rows: N={summary['playlists_qualifying']:,} playlists, "
          f"{summary['tracks']:,} tracks ({summary['tracks_kept']:,} kept), "
          f"{summary['pairs_generated']:,} pairs generated, {summary['pairs_kept']:,} kept, "
          f"shuffle {summary['shuffle_write_bytes'] / 1e6:.0f} MB", flush=True)
    for name in ("job", "duckdb", "duckdb-int", "naive"):
        if name in line:
            timing = line[name]
            check = f"  mismatches {timing.extra}" if timing.extra else ""
            print(f"   {name:11s} {timing.wall:7.1f} s wall {timing.cpu:7.1f} s CPU{check}")
    for step, metrics in summary["phases"].items():
        print(f"      job step {step:20s} {metrics['seconds']:6.1f} s  shuffle "
              f"{metrics.get('shuffle_write_bytes', 0) / 1e6:7.1f} MB")


def report_table(results: list[dict[str, Any]]) -> None:
    print("\n| rows | pairs generated | pairs kept | job s (CPU s) | DuckDB s (CPU s) | DuckDB int s (CPU s) "
          "| naive s (CPU s) | job/DuckDB | job/DuckDB int | naive/job | job µs per pair |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for line in results:
        summary, job_timing = line["summary"], line["job"]
        cells = [f"{line['rows']:,}", f"{summary['pairs_generated']:,}", f"{summary['pairs_kept']:,}"]
        for name in ("job", "duckdb", "duckdb-int", "naive"):
            timing = line.get(name)
            cells.append(f"{timing.wall:.1f} ({timing.cpu:.0f})" if timing else "-")
        cells.append(f"{job_timing.wall / line['duckdb'].wall:.1f}x")
        cells.append(f"{job_timing.wall / line['duckdb-int'].wall:.1f}x")
        cells.append(f"{line['naive'].wall / job_timing.wall:.1f}x" if "naive" in line else "-")
        cells.append(f"{job_timing.wall * 1e6 / max(summary['pairs_generated'], 1):.2f}")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
