"""Ingest against the peer an expert would write: ADBC ``SELECT *`` of the same tables into Arrow, whole
processes both, with peak memory, at several sizes and data shapes (issue 16). One command gives the table
in docs/benchmarks.md:

    .venv/bin/python bench/ingest.py --sizes 250000,1000000,2000000 --joins

Data: the sample generator's real-layout dump per size (``jobs.sample``; ``data/bench/t<size>``, generated
once, not timed; playlists = tracks / 10). Shapes (``--shapes``): ``sample`` is the generator's own playlists
(lognormal bulk lengths with a tail, Zipf 0.9 track choice with genre locality); ``zipf1.1``, ``zipf1.3``,
``zipf1.5`` rewrite ``playlist_tracks`` (same playlists, same mean length) with lognormal lengths (sigma 0.9,
clipped to 1..10,000) and tracks drawn Zipf(s) over a random popularity order of the catalog
(``<size>/shape-<name>``; the other two files are hard links). MusicBrainz: the small real fixture
(tests/fixtures/musicbrainz), so the figures are about the Spotify files; ingest still lands and commits
its five tables.

- peer: one Python process (``bench/ingest.py peer``) with as many threads as cores (``--cores``), each
  with its own ADBC connection, taking the next key range of a table (largest first; four ranges per
  core, so the big table is shared) and running ``SELECT * FROM t WHERE rowid BETWEEN ? AND ?`` through
  the ADBC SQLite driver (65,536-row batches) into an Arrow table, which it then drops. Threads, not
  processes: the driver reads with the GIL released (2 threads: 1.5-1.8x one), and one process holds one copy
  of pyarrow. A column the driver cannot type (the release's REAL columns hold the text 'n/a': "Type
  mismatch in column 10") is read ``CAST(… AS TEXT)``, found by an untimed probe. On the ``sample``
  shape also run on one thread: "raw × cores" is that rate times the cores, the reference of the
  release-path goal (ingest rows/s ÷ (raw rows/s × cores) ≥ 0.5).
- ingest: ``./spark-submit.sh ingest --json --force`` (``local[cores]``, ``ingest.quick_check`` off, a fresh
  warehouse each run): JVM start, session, the job, the run records and shutdown. Job time is the
  summary's ``seconds``. ``--joins`` adds a run with ``ingest.in_task_lookup_max_tracks = 0`` (the Spark
  joins) on the ``sample`` shape of the largest size.

Ratios are speeds (peer seconds ÷ ingest seconds, so 1.0 = as fast as the peer; goal ≥ 0.5): ingest's whole
process against the peer's whole process, and ingest's job time against the peer's whole process. Peak
memory is the largest sum of the process tree's resident memory (bench/common.py); ``worker_hwm_mb`` is
the largest Python worker's high-water mark (what the in-task lookups' memory rule budgets). Every figure
is the best of ``--repeat`` runs, with the load average at the start of each; on this shared machine the
figures are provisional.
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
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import ProcessRun, _memory, _processes, _tree, run_process, write_result  # noqa: E402

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
# Data: sizes and shapes

SHAPES = ("sample", "zipf1.1", "zipf1.3", "zipf1.5")
LENGTH_SIGMA = 0.9  # the generator's lognormal sigma (jobs/sample/rates.py PLAYLIST_LENGTH_SIGMA)
MAX_LENGTH = 10_000  # Spotify's playlist size limit


def size_folder(root: Path, tracks: int) -> Path:
    name = f"t{tracks // 1_000_000}m" if tracks % 1_000_000 == 0 else \
        f"t{tracks // 1000}k" if tracks % 1000 == 0 else f"t{tracks}"
    return root / name


def ensure_dump(data: Path, tracks: int) -> None:
    """The generator's dump of ``tracks`` tracks (any playlist count: earlier runs' dumps are reused)."""
    from jobs.sample.generator import MANIFEST, SampleSpec, generate

    manifest = data / "spotify" / MANIFEST
    if manifest.exists() and json.loads(manifest.read_text())["spec"]["tracks"] == tracks:
        return
    started = time.perf_counter()
    generate(data / "spotify", data / "musicbrainz", SampleSpec(tracks=tracks))
    print(f"generated {tracks:,} tracks in {time.perf_counter() - started:.1f} s", flush=True)


def _zipf_ranks(rng: Any, n: int, exponent: float, size: int) -> Any:
    """``size`` draws of ranks 0..n-1 with P(rank k) ∝ (k + 1) ** -exponent (bounded Zipf, inverse CDF)."""
    import numpy as np

    cdf = np.cumsum(np.arange(1, n + 1, dtype=np.float64) ** -exponent)
    return np.minimum(np.searchsorted(cdf, rng.random(size) * cdf[-1]), n - 1)


def ensure_shape(data: Path, shape: str) -> Path:
    """The Spotify folder of ``shape`` (``sample``: the dump itself); built once, not timed."""
    if shape == "sample":
        return data / "spotify"
    folder = data / f"shape-{shape}"
    done = folder / "_shape.json"
    if done.exists():
        return folder
    import numpy as np

    started = time.perf_counter()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    base = data / "spotify"
    for file in ("spotify_clean.sqlite3", "spotify_clean_audio_features.sqlite3"):
        try:
            os.link(base / file, folder / file)
        except OSError:
            shutil.copyfile(base / file, folder / file)
    rng = np.random.default_rng(int(float(shape.removeprefix("zipf")) * 1000))
    with sqlite3.connect(_uri(base / "spotify_clean.sqlite3"), uri=True) as catalog:
        popularity = rng.permutation(np.fromiter((r for r, in catalog.execute("SELECT rowid FROM tracks")),
                                                 dtype=np.int64))
    with sqlite3.connect(folder / "spotify_clean_playlists.sqlite3") as conn:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("ATTACH ? AS base", (_uri(base / "spotify_clean_playlists.sqlite3"),))
        for ddl, in conn.execute("SELECT sql FROM base.sqlite_master WHERE sql IS NOT NULL").fetchall():
            conn.execute(ddl)
        conn.execute("INSERT INTO playlists SELECT * FROM base.playlists")
        (playlists, rows), = conn.execute("SELECT (SELECT count(*) FROM playlists), count(*) FROM base.playlist_tracks")
        conn.commit()
        conn.execute("DETACH base")
        mean = rows / playlists
        lengths = np.clip(np.rint(rng.lognormal(np.log(mean) - LENGTH_SIGMA ** 2 / 2, LENGTH_SIGMA, playlists)),
                          1, MAX_LENGTH).astype(np.int64)
        total = int(lengths.sum())
        owner = np.repeat(np.arange(1, playlists + 1, dtype=np.int64), lengths)
        position = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        track = popularity[_zipf_ranks(rng, len(popularity), float(shape.removeprefix("zipf")), total)]
        added = rng.integers(1_400_000_000, 1_700_000_000, total)
        conn.executemany(  # in key order: appends to the WITHOUT ROWID b-tree
            "INSERT INTO playlist_tracks (playlist_rowid, position, is_episode, track_rowid, added_at, added_by_id,"
            " is_local) VALUES (?, ?, 0, ?, ?, 'bench', 0)",
            zip(owner.tolist(), position.tolist(), track.tolist(), added.tolist()))
        conn.executemany("UPDATE playlists SET tracks_total = ? WHERE rowid = ?",  # the lengths changed
                         zip(lengths.tolist(), range(1, playlists + 1)))
        conn.commit()
    done.write_text(json.dumps({"shape": shape, "playlist_rows": total, "mean_length": mean}))
    print(f"built shape {shape} of {data.name} ({total:,} playlist rows) in {time.perf_counter() - started:.1f} s",
          flush=True)
    return folder


# ------------------------------------------------------------------------------------------------
# Runs


def _figures(run: ProcessRun, workers: _WorkerPeak | None = None) -> dict[str, Any]:
    found = {"wall_s": round(run.wall, 2), "cpu_s": round(max(run.cpu, run.tree_cpu), 2),
             "peak_rss_mb": round(run.peak_rss_bytes / 2**20),
             "max_process_hwm_mb": round(run.max_process_hwm_bytes / 2**20)}
    if workers is not None:
        found["worker_hwm_mb"] = round(workers.hwm / 2**20)
    return found


class _WorkerPeak(threading.Thread):
    """The largest VmHWM of any Python worker (``pyspark.daemon``'s forks) under ``pid``: what the memory rule
    of the in-task lookups must budget per core."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.hwm = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for pid in _tree(self.pid, _processes()):
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as handle:
                        if b"pyspark.daemon" not in handle.read():
                            continue
                except OSError:
                    continue
                self.hwm = max(self.hwm, _memory(pid)[1])
            self.done.wait(0.2)


def run_peer(data: Path, spotify: Path, queries: dict[str, str], threads: int) -> dict[str, Any]:
    out = data / f"peer-{threads}.json"
    argv = [sys.executable, str(Path(__file__).resolve()), "peer", "--data", str(spotify), "--cores",
            str(threads), "--queries", json.dumps(queries), "--out", str(out)]
    run = run_process(argv, cwd=ROOT)
    if run.returncode != 0:
        raise SystemExit(f"peer failed (exit {run.returncode})")
    return {**json.loads(out.read_text()), **_figures(run)}


def run_ingest(data: Path, spotify: Path, cores: int, joins: bool, more: tuple[str, ...] = ()) -> dict[str, Any]:
    warehouse, work = data / "bench-warehouse", data / "bench-work"
    shutil.rmtree(warehouse, ignore_errors=True)
    sets = {"paths.spotify": spotify, "paths.musicbrainz": MB_FIXTURE, "paths.warehouse": warehouse,
            "paths.work": work, "spark.master": f"local[{cores}]", "ingest.quick_check": "false",
            **({"ingest.in_task_lookup_max_tracks": 0} if joins else {}),
            **dict(setting.split("=", 1) for setting in more)}
    argv = [str(ROOT / "spark-submit.sh"), "ingest", "--json", "--force"]
    for key, value in sets.items():
        argv += ["--set", f"{key}={value}"]
    out = data / "ingest-summary.json"
    workers = _WorkerPeak(os.getpid())  # this process's tree: ingest is the only thing it runs meanwhile
    workers.start()
    with out.open("w") as stdout:
        try:
            run = run_process(argv, cwd=ROOT, stdout=stdout, stderr=subprocess.DEVNULL)
        finally:
            workers.done.set()
            workers.join()
    if run.returncode != 0:
        raise SystemExit(f"ingest failed (exit {run.returncode}); rerun: {' '.join(argv)}")
    summary = json.loads(out.read_text())
    tables = summary["metrics"]["tables"]
    shutil.rmtree(warehouse, ignore_errors=True)
    return {"job_s": summary["seconds"], "steps": summary["steps"],
            "link_resolution": summary["metrics"].get("link_resolution"),
            "rows_read": sum(t.get("rows_read", 0) for name, t in tables.items() if not name.startswith("mb_")),
            "rows_by_exact_sql": sum(t.get("rows_read_by_exact_sql", 0) for t in tables.values()),
            **_figures(run, workers)}


def _best(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return {**min(runs, key=lambda r: r[key]), "all_" + key: [r[key] for r in runs]}


def bench_cell(data: Path, shape: str, args: argparse.Namespace, joins: bool) -> dict[str, Any]:
    """One size and shape: peer and ingest, best of ``--repeat``; the ratios."""
    spotify = ensure_shape(data, shape)
    queries = peer_queries(spotify)
    paths = [("default", False), *([("joins", True)] if joins else [])]
    runs: dict[str, list[dict[str, Any]]] = {"peer": [], **({"peer_1": []} if shape == "sample" else {}),
                                             **{name: [] for name, _ in paths}}
    loads = []
    for _ in range(args.repeat):
        loads.append(round(os.getloadavg()[0], 1))
        runs["peer"].append(run_peer(data, spotify, queries, args.cores))
        if "peer_1" in runs:
            runs["peer_1"].append(run_peer(data, spotify, queries, 1))
        for name, forced in paths:
            runs[name].append(run_ingest(data, spotify, args.cores, forced, tuple(args.ingest_set)))
    best = {name: _best(found, "wall_s") for name, found in runs.items()}
    peer_s = best["peer"]["wall_s"]
    for name, _ in paths:
        found = best[name]
        found["best_job_s"] = min(r["job_s"] for r in runs[name])
        found["ratio_whole_process"] = round(peer_s / found["wall_s"], 3)
        found["ratio_job"] = round(peer_s / found["best_job_s"], 3)
        if "peer_1" in best:
            raw = best["peer_1"]["rows"] / best["peer_1"]["wall_s"]
            found["ratio_to_raw_x_cores"] = round(found["rows_read"] / found["wall_s"] / (raw * args.cores), 3)
    record = {"size": data.name, "shape": shape, "cores_assumed": args.cores, "load_at_start": loads,
              "ingest_set": list(args.ingest_set),
              "peer_queries": {t: q for t, q in queries.items() if q != f"SELECT * FROM {t}"}, **best}
    write_result("ingest", record)
    return record


def table_rows(record: dict[str, Any]) -> list[str]:
    """Markdown rows of one cell, as in docs/benchmarks.md."""
    peer = record["peer"]
    rows = []
    for name in ("default", "joins"):
        if name not in record:
            continue
        found = record[name]
        raw = f" ({found['ratio_to_raw_x_cores']:.2f} of raw × cores)" if "ratio_to_raw_x_cores" in found else ""
        rows.append(
            f"| {record['size']} | {record['shape']}{' (Spark joins)' if name == 'joins' else ''} | "
            f"{found['rows_read']:,} | {peer['wall_s']:.1f} s, {peer['cpu_s']:.1f} s CPU, {peer['peak_rss_mb']:,} MB | "
            f"{found['wall_s']:.1f} s, {found['cpu_s']:.1f} s CPU, {found['peak_rss_mb']:,} MB | "
            f"{found['best_job_s']:.1f} s | {found.get('worker_hwm_mb', 0):,} MB | "
            f"**{found['ratio_whole_process']:.2f}**{raw} | {found['ratio_job']:.2f} | "
            f"{peer['cpu_s'] / found['cpu_s']:.2f} | {'/'.join(f'{x:g}' for x in record['load_at_start'])} |")
    return rows


TABLE_HEAD = ("| size | shape | rows read | peer: whole process, CPU, peak | ingest: whole process, CPU, peak | "
              "ingest job | largest worker | speed, whole process | speed, job | CPU ratio | load |\n"
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")


def print_table(since: str) -> None:
    """The table of the latest record per size and shape in bench/results/ingest.jsonl since ``since``
    (an ISO time): cells measured by several invocations read as one table."""
    from bench.common import RESULTS

    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for line in (RESULTS / "ingest.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "shape" in record and record["at"] >= since and not record.get("ingest_set"):
            latest[(record["size"], record["shape"])] = record
    ordered = sorted(latest.values(), key=lambda r: (r["default"]["rows_read"] // 10**5, SHAPES.index(r["shape"])))
    print("\n".join([TABLE_HEAD, *(row for record in ordered for row in table_rows(record))]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="bench", choices=("bench", "peer", "table"))
    parser.add_argument("--sizes", default="250000,1000000,2000000", help="catalog tracks, comma-separated")
    parser.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated, of {', '.join(SHAPES)}")
    parser.add_argument("--data", type=Path, default=Path("data/bench"), help="root of the generated dumps")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--joins", action="store_true", help="also the Spark-join path, sample shape, largest size")
    parser.add_argument("--ingest-set", action="append", default=[], metavar="KEY=VALUE",
                        help="another --set for the ingest runs (e.g. spark.quick_jit_jobs=none: C2 JIT)")
    parser.add_argument("--since", default="", help="table: records at or after this ISO time")
    parser.add_argument("--queries", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode == "peer":
        args.out.write_text(json.dumps(peer(args.data.resolve(), json.loads(args.queries), args.cores)))
        return
    if args.mode == "table":
        print_table(args.since)
        return
    sizes = sorted(int(size) for size in args.sizes.split(","))
    shapes = [shape for shape in args.shapes.split(",") if shape]
    unknown = set(shapes) - set(SHAPES)
    if unknown:
        raise SystemExit(f"unknown shapes {sorted(unknown)}; known: {', '.join(SHAPES)}")
    lines = [TABLE_HEAD]
    for size in sizes:
        data = size_folder(args.data.resolve(), size)
        ensure_dump(data, size)
        for shape in shapes:
            record = bench_cell(data, shape, args, joins=args.joins and size == sizes[-1] and shape == "sample")
            lines += table_rows(record)
            print(lines[-1] if "joins" not in record else "\n".join(lines[-2:]), flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
