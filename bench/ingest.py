"""Ingest against the peer an expert would write: ADBC ``SELECT *`` of the same tables into Arrow, whole
processes both, with peak memory.

    .venv/bin/python bench/ingest.py --tracks 1000000 --playlists 104000 --data data/bench/t1m
    .venv/bin/python bench/ingest.py --tracks 2000000 --data data/bench/t2m --joins   # the release path

Data: the sample generator's real-layout dump (``jobs.sample``; generated once per ``--data`` folder, not
timed); 1M tracks with 104K playlists gives 7.4M playlist rows, 11.3M rows in the eight Spotify tables.
MusicBrainz: the small real fixture (tests/fixtures/musicbrainz), so the figures are about the Spotify
files; ingest still lands and commits its five tables.

- peer: one Python process (``bench/ingest.py peer``) with as many threads as cores (``--cores``), each
  taking the next key range of a table (largest first; a quarter of the rows per core, so the big
  table is shared) and running ``SELECT * FROM t WHERE rowid BETWEEN ? AND ?`` through the ADBC SQLite
  driver (65,536-row batches) into an Arrow table, which it then drops. A column the driver cannot type
  (the release's REAL columns hold the text 'n/a': "Type mismatch in column 10") is read
  ``CAST(… AS TEXT)``, found by an untimed probe before the timed run. Also run on one thread: "raw × cores"
  below is that rate times the cores, the reference of the release-path goal.
- ingest: ``./spark-submit.sh ingest --json --force`` (``local[cores]``, ``ingest.quick_check`` off, a fresh
  warehouse each run): JVM start, session, the job, the run records and shutdown. Job time is the
  summary's ``seconds``. ``--joins`` adds a run with ``ingest.in_task_lookup_max_tracks = 0``, the Spark
  joins a catalog above the threshold uses.

Every figure is the best of ``--repeat`` runs (the machine is shared), with the load average printed; peak
memory is the largest sum of the process tree's resident memory (bench/common.py). Ratios are speeds
(peer seconds ÷ ingest seconds, so 1.0 = as fast as the peer; goal ≥ 0.5): whole process against the peer's
whole process, and the job alone against the peer's whole process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import ProcessRun, run_process, write_result  # noqa: E402

MB_FIXTURE = ROOT / "tests" / "fixtures" / "musicbrainz"
# Every table ingest reads, by file, with the key its ranges split on.
TABLES: dict[str, dict[str, str]] = {
    "spotify_clean.sqlite3": {"albums": "rowid", "artists": "rowid", "artist_genres": "rowid", "tracks": "rowid",
                              "track_artists": "rowid"},
    "spotify_clean_audio_features.sqlite3": {"track_audio_features": "rowid"},
    "spotify_clean_playlists.sqlite3": {"playlists": "rowid", "playlist_tracks": "playlist_rowid"},
}
PIECES_PER_CORE = 4
MISMATCH = re.compile(r"Type mismatch in column (\d+)")


# ------------------------------------------------------------------------------------------------
# The peer (runs in its own process: `bench/ingest.py peer`)


def _uri(path: Path) -> str:
    return f"file:{path.resolve()}?mode=ro&immutable=1"


def _read(db: Path, sql: str, params: tuple[int, int]) -> tuple[int, int]:
    import adbc_driver_sqlite.dbapi as adbc

    with adbc.connect(_uri(db)) as conn, conn.cursor() as cursor:
        cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": "65536"})
        cursor.execute(sql, params)
        table = cursor.fetch_arrow_table()
    return table.num_rows, table.nbytes


def peer(spotify: Path, queries: dict[str, str], threads: int) -> dict[str, Any]:
    """Read every table in key ranges on ``threads`` threads; rows and Arrow bytes read."""
    from concurrent.futures import ThreadPoolExecutor

    tasks = []
    for file, tables in TABLES.items():
        with sqlite3.connect(_uri(spotify / file), uri=True) as conn:
            for table, key in tables.items():
                low, high = conn.execute(f"SELECT min({key}), max({key}) FROM {table}").fetchone()
                if low is None:
                    continue
                step = (high - low) // (PIECES_PER_CORE * threads) + 1
                sql = f"{queries[table]} WHERE {key} BETWEEN ? AND ?"
                tasks += [(high - low, spotify / file, sql, (start, min(high, start + step - 1)))
                          for start in range(low, high + 1, step)]
    tasks.sort(key=lambda task: -task[0])
    with ThreadPoolExecutor(threads) as pool:
        done = list(pool.map(lambda task: _read(*task[1:]), tasks))
    return {"rows": sum(rows for rows, _ in done), "arrow_bytes": sum(size for _, size in done)}


def peer_queries(spotify: Path) -> dict[str, str]:
    """``SELECT * FROM t`` per table, with ``CAST(c AS TEXT)`` for each column the driver cannot type (found
    by reading the table; untimed, in the bench process)."""
    queries = {}
    for file, tables in TABLES.items():
        db = spotify / file
        with sqlite3.connect(_uri(db), uri=True) as conn:
            for table in tables:
                columns = [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]
                as_text: set[int] = set()
                while True:
                    select = ", ".join(f'CAST("{c}" AS TEXT) AS "{c}"' if i in as_text else f'"{c}"'
                                       for i, c in enumerate(columns))
                    sql = f"SELECT * FROM {table}" if not as_text else f"SELECT {select} FROM {table}"
                    try:
                        _read(db, f"{sql} WHERE 1 BETWEEN ? AND ?", (1, 1))
                        break
                    except OSError as exc:
                        found = MISMATCH.search(str(exc))
                        if not found or int(found.group(1)) in as_text:
                            raise
                        as_text.add(int(found.group(1)))
                queries[table] = sql
    return queries


# ------------------------------------------------------------------------------------------------
# The bench


def ensure_dump(data: Path, tracks: int, playlists: int) -> None:
    from jobs.sample.generator import MANIFEST, SampleSpec, generate

    manifest = data / "spotify" / MANIFEST
    if manifest.exists():
        spec = json.loads(manifest.read_text())["spec"]
        if spec["tracks"] == tracks and spec.get("playlists", 0) == playlists:
            return
    started = time.perf_counter()
    generate(data / "spotify", data / "musicbrainz", SampleSpec(tracks=tracks, playlists=playlists))
    print(f"generated {tracks:,} tracks in {time.perf_counter() - started:.1f} s", flush=True)


def _figures(run: ProcessRun) -> dict[str, Any]:
    return {"wall_s": round(run.wall, 2), "cpu_s": round(max(run.cpu, run.tree_cpu), 2),
            "peak_rss_mb": round(run.peak_rss_bytes / 2**20),
            "max_process_hwm_mb": round(run.max_process_hwm_bytes / 2**20)}


def run_peer(data: Path, queries: dict[str, str], threads: int) -> dict[str, Any]:
    out = data / f"peer-{threads}.json"
    argv = [sys.executable, str(Path(__file__).resolve()), "peer", "--data", str(data), "--cores", str(threads),
            "--queries", json.dumps(queries), "--out", str(out)]
    run = run_process(argv, cwd=ROOT)
    if run.returncode != 0:
        raise SystemExit(f"peer failed (exit {run.returncode})")
    return {**json.loads(out.read_text()), **_figures(run)}


def run_ingest(data: Path, cores: int, joins: bool) -> dict[str, Any]:
    warehouse, work = data / "bench-warehouse", data / "bench-work"
    shutil.rmtree(warehouse, ignore_errors=True)
    sets = {"paths.spotify": data / "spotify", "paths.musicbrainz": MB_FIXTURE, "paths.warehouse": warehouse,
            "paths.work": work, "spark.master": f"local[{cores}]", "ingest.quick_check": "false",
            **({"ingest.in_task_lookup_max_tracks": 0} if joins else {})}
    argv = [str(ROOT / "spark-submit.sh"), "ingest", "--json", "--force"]
    for key, value in sets.items():
        argv += ["--set", f"{key}={value}"]
    out = data / "ingest-summary.json"
    with out.open("w") as stdout:
        run = run_process(argv, cwd=ROOT, stdout=stdout, stderr=subprocess.DEVNULL)
    if run.returncode != 0:
        raise SystemExit(f"ingest failed (exit {run.returncode}); rerun: {' '.join(argv)}")
    summary = json.loads(out.read_text())
    tables = summary["metrics"]["tables"]
    shutil.rmtree(warehouse, ignore_errors=True)
    return {"job_s": summary["seconds"], "steps": summary["steps"],
            "rows_read": sum(t.get("rows_read", 0) for name, t in tables.items() if not name.startswith("mb_")),
            "rows_by_exact_sql": sum(t.get("rows_read_by_exact_sql", 0) for t in tables.values()), **_figures(run)}


def _best(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return {**min(runs, key=lambda r: r[key]), "all_" + key: [r[key] for r in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="bench", choices=("bench", "peer"))
    parser.add_argument("--tracks", type=int, default=1_000_000)
    parser.add_argument("--playlists", type=int, default=104_000, help="0: the generator's tracks / 10")
    parser.add_argument("--data", type=Path, default=Path("data/bench/t1m"))
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--joins", action="store_true", help="also the Spark-join path (release scale)")
    parser.add_argument("--no-default", action="store_true", help="skip the default (in-task) ingest run")
    parser.add_argument("--queries", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    data = args.data.resolve()
    if args.mode == "peer":
        args.out.write_text(json.dumps(peer(data / "spotify", json.loads(args.queries), args.cores)))
        return

    ensure_dump(data, args.tracks, args.playlists)
    queries = peer_queries(data / "spotify")
    record: dict[str, Any] = {"tracks": args.tracks, "playlists": args.playlists, "cores_assumed": args.cores,
                              "peer_queries": {t: q for t, q in queries.items() if q != f"SELECT * FROM {t}"}}
    paths = [("default", False)] * (not args.no_default) + [("joins", True)] * args.joins
    runs: dict[str, list[dict[str, Any]]] = {"peer": [], "peer_1": [], **{name: [] for name, _ in paths}}
    for round_ in range(args.repeat):
        print(f"round {round_ + 1}, load {os.getloadavg()[0]:.1f}", flush=True)
        runs["peer"].append(run_peer(data, queries, args.cores))
        runs["peer_1"].append(run_peer(data, queries, 1))
        for name, joins in paths:
            runs[name].append(run_ingest(data, args.cores, joins))
    best = {name: _best(found, "wall_s") for name, found in runs.items()}
    peer_s, raw_rate = best["peer"]["wall_s"], best["peer_1"]["rows"] / best["peer_1"]["wall_s"]
    print(f"peer, {args.cores} threads: {best['peer']['rows']:,} rows in {peer_s:.1f} s, "
          f"peak {best['peer']['peak_rss_mb']:,} MB; 1 thread: {best['peer_1']['wall_s']:.1f} s", flush=True)
    for name, _ in paths:
        found = best[name]
        found["ratio_whole_process"] = round(peer_s / found["wall_s"], 3)
        found["best_job_s"] = min(r["job_s"] for r in runs[name])
        found["ratio_job"] = round(peer_s / found["best_job_s"], 3)
        found["ratio_to_raw_x_cores"] = round(found["rows_read"] / found["wall_s"] / (raw_rate * args.cores), 3)
        print(f"ingest ({name}): whole process {found['wall_s']:.1f} s (job {found['best_job_s']:.1f} s), peak "
              f"{found['peak_rss_mb']:,} MB; speed vs peer: whole process {found['ratio_whole_process']:.2f}, "
              f"job {found['ratio_job']:.2f}; vs raw x {args.cores} cores {found['ratio_to_raw_x_cores']:.2f}",
              flush=True)
    record.update(best)
    write_result("ingest", record)


if __name__ == "__main__":
    main()
