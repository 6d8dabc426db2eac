"""Benchmark: the vectors job as a whole ``./spark-submit.sh vectors`` process against numpy + faiss as a
whole process, on the same bronze tables, over sizes × data shapes.

    .venv/bin/python bench/knn.py --sizes 250000 500000 1000000 --shapes uniform clustered spotify

Data (made once per size and shape): bronze spotify_audio_features, spotify_tracks, spotify_artists and
spotify_albums Delta tables for ``size`` tracks (every track tier A, so ``size`` candidates; the 10,000
most popular are the seeds, top 100 each). Shapes of the 10 continuous features: ``uniform`` (uniform over
each feature's range), ``clustered`` (50 Gaussian clusters, σ 0.05 of the range), ``spotify`` (uniform,
rounded to 3 decimals as the API returns them: more exact ties). key, mode, time_signature are integers
and popularity 0..100 in every shape, as in the real data.

Each as a separate process, timed from outside (bench/common.run_process: wall, CPU, peak memory of the tree):
- job: ``./spark-submit.sh vectors --json`` (local[2]; both gold tables: audio_vectors with metadata joins,
  precomputed_similar by the exact kernel); *job s* is the summary's ``seconds``, *process s* the command;
- peer: bench/peers/knn_faiss.py (read → join popularity → vectors → write → faiss IndexFlatIP, all cores →
  write), with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from its environment only, then (``--peer-core
  auto``) OPENBLAS_CORETYPE set to the core numpy's current OpenBLAS detects, because faiss-cpu's bundled
  OpenBLAS 0.3.15 takes this machine's Xeon for a Prescott (threadpoolctl; ``--peer-core none`` keeps that).
The neighbour sets are compared per seed (float32 peers order near-ties arbitrarily, so a few differ).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
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
from jobs.vectors.layout import VECTOR_COMPONENTS  # noqa: E402

SIZES = (250_000, 500_000, 1_000_000)
SHAPES = ("uniform", "clustered", "spotify")
SEEDS, TOP_K, SEED = 10_000, 100, 1
INTEGER_FEATURES = {"key": (0, 12), "mode": (0, 2), "time_signature": (3, 8)}
PEER = ROOT / "bench" / "peers" / "knn_faiss.py"


def _unit_features(rng: np.random.Generator, n: int, dims: int, shape: str) -> np.ndarray:
    if shape == "clustered":
        centres = rng.random((50, dims))
        return np.clip(centres[rng.integers(0, 50, n)] + rng.normal(0, 0.05, (n, dims)), 0, 1)
    u = rng.random((n, dims))
    return np.round(u, 3) if shape == "spotify" else u


def bronze_tables(base: Path, n: int, shape: str) -> Path:
    """The warehouse with the four bronze tables the vectors job reads (made once, then reused)."""
    from deltalake import write_deltalake

    from lib import delta

    warehouse = base / f"{shape}-n{n}" / "warehouse"
    marker = warehouse / "_generated.json"
    wanted = {"n": n, "shape": shape, "seed": SEED, "generator": 1}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return warehouse
    shutil.rmtree(warehouse, ignore_errors=True)
    with timed() as generation:
        rng = np.random.default_rng(SEED)
        ids = base62_ids(SEED, 1, np.arange(n, dtype=np.uint64))
        continuous = [c for c in VECTOR_COMPONENTS if c.name not in INTEGER_FEATURES and c.name != "popularity"]
        unit = _unit_features(rng, n, len(continuous), shape)
        features: dict[str, Any] = {"track_id": ids}
        for j, c in enumerate(continuous):
            features[c.name] = pa.array(c.low + unit[:, j] * (c.high - c.low))
        for name, (low, high) in INTEGER_FEATURES.items():
            features[name] = pa.array(rng.integers(low, high, n).astype(np.int32))
        features["duration_ms"] = pa.array(rng.integers(60_000, 400_000, n).astype(np.int32))
        artists = max(1, n // 10)
        albums = max(1, n // 8)
        artist_ids = base62_ids(SEED, 2, np.arange(artists, dtype=np.uint64))
        album_ids = base62_ids(SEED, 3, np.arange(albums, dtype=np.uint64))
        tables = {
            "spotify_audio_features": pa.table(features),
            "spotify_tracks": pa.table({
                "track_id": ids, "name": pa.array([f"track {i}" for i in range(n)]),
                "album_id": album_ids.take(pa.array(rng.integers(0, albums, n))),
                "artist_ids": pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)),
                                                       artist_ids.take(pa.array(rng.integers(0, artists, n)))),
                "isrc": pa.nulls(n, pa.string()), "popularity": pa.array(rng.integers(0, 101, n).astype(np.int32)),
                "duration_ms": features["duration_ms"], "explicit": pa.array(rng.random(n) < 0.1),
                "disc_number": pa.array(np.ones(n, np.int32)), "track_number": pa.array(np.ones(n, np.int32)),
                "fetched_at": pa.nulls(n, pa.timestamp("us", tz="UTC")),
            }),
            "spotify_artists": pa.table({
                "artist_id": artist_ids, "name": pa.array([f"artist {i}" for i in range(artists)]),
                "followers": pa.array(rng.integers(0, 10**6, artists)),
                "popularity": pa.array(rng.integers(0, 101, artists).astype(np.int32)),
                "genres": pa.array([["pop"] if i % 2 else ["rock", "indie"] for i in range(artists)]),
            }),
            "spotify_albums": pa.table({
                "album_id": album_ids, "name": pa.array([f"album {i}" for i in range(albums)]),
                "album_type": pa.array(["album"] * albums), "label": pa.nulls(albums, pa.string()),
                "release_date": pa.nulls(albums, pa.string()), "release_date_precision": pa.nulls(albums, pa.string()),
                "release_year": pa.array(rng.integers(1960, 2025, albums).astype(np.int32)),
                "total_tracks": pa.array(np.full(albums, 10, np.int32)), "upc": pa.nulls(albums, pa.string()),
                "popularity": pa.array(rng.integers(0, 101, albums).astype(np.int32)),
            }),
        }
        for name, table in tables.items():
            write_deltalake(delta.table_path(str(warehouse), "bronze", name), table, mode="overwrite")
    marker.write_text(json.dumps(wanted))
    print(f"generated {shape} {n:,} tracks in {generation.wall:.1f} s -> {warehouse}", flush=True)
    return warehouse


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("ARIA_VENV", sys.prefix)
    return env


def run_job(warehouse: Path, master: str) -> dict[str, Any]:
    folder = warehouse.parent
    settings = {"paths.warehouse": warehouse, "paths.work": folder / "work", "runs.skip_unchanged": "false",
                "spark.master": master, "similar.seed_count": SEEDS, "similar.top_k": TOP_K,
                "vectors.tier_a_min_popularity": 0, "vectors.tier_b_min_popularity": 0}
    argv = [str(ROOT / "spark-submit.sh"), "vectors", "--json"]
    for key, value in settings.items():
        argv += ["--set", f"{key}={value}"]
    with (folder / "job-summary.json").open("w") as stdout, (folder / "job.log").open("w") as stderr:
        process = run_process(argv, cwd=ROOT, env=_env(), stdout=stdout, stderr=stderr)
    if process.returncode:
        raise SystemExit(f"job failed ({process.returncode}); see {folder / 'job.log'}")
    summary = json.loads((folder / "job-summary.json").read_text())
    detail = summary["metrics"].get("step_detail", {})
    return {"process": process, "seconds": summary["seconds"], "steps": summary["steps"],
            "similar": summary["metrics"].get("precomputed_similar"),
            "stages": sum(int(d.get("stages", 0)) for d in detail.values())}


def _clean_env() -> dict[str, str]:
    env = _env()
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        env.pop(name, None)
    return env


def detected_core() -> str | None:
    """The core numpy's (current) OpenBLAS detects with OPENBLAS_* unset: what the job's kernel gives faiss
    (``jobs.vectors.knn.blas_core_from_numpy``), asked in a fresh process with the peer's environment."""
    probe = "from jobs.vectors.knn import blas_core_from_numpy; print(blas_core_from_numpy() or '')"
    done = subprocess.run([sys.executable, "-c", probe], env=_clean_env(), capture_output=True, text=True,
                          check=True, cwd=ROOT)
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else None


def run_peer(warehouse: Path, out: Path, core: str | None) -> Any:
    """The peer with OPENBLAS_* unset; with ``core``, OPENBLAS_CORETYPE = that core: faiss-cpu bundles an
    older OpenBLAS (0.3.15) that does not recognise every current CPU and falls back to generic Prescott
    kernels (threadpoolctl shows it), ~1.5× the CPU of its sgemm on this machine's Xeon."""
    from lib import delta

    env = _clean_env()
    if core:
        env["OPENBLAS_CORETYPE"] = core
    shutil.rmtree(out, ignore_errors=True)
    argv = [sys.executable, str(PEER), str(out),
            delta.table_path(str(warehouse), "bronze", "spotify_audio_features"),
            delta.table_path(str(warehouse), "bronze", "spotify_tracks"), "--seeds", str(SEEDS), "--k", str(TOP_K)]
    with (out.parent / "peer.log").open("w") as stderr:
        process = run_process(argv, cwd=ROOT, env=env, stderr=stderr)
    if process.returncode:
        raise SystemExit(f"peer failed ({process.returncode}); see {out.parent / 'peer.log'}")
    return process


def differing_seeds(warehouse: Path, peer: Path) -> int:
    """Seeds whose neighbour set (top k) differs between the job and the peer."""
    import duckdb
    from deltalake import DeltaTable

    from lib import delta

    files = [p.removeprefix("file://") for p in
             DeltaTable(delta.table_path(str(warehouse), "gold", "precomputed_similar")).file_uris()]
    listed = ", ".join(f"'{p}'" for p in files)
    with duckdb.connect() as con:
        return int(con.execute(f"""
            SELECT count(DISTINCT coalesce(j.seed_spotify_id, p.seed_spotify_id))
            FROM read_parquet([{listed}]) j
            FULL JOIN read_parquet('{peer}/similar.parquet') p USING (seed_spotify_id, similar_spotify_id)
            WHERE j.seed_spotify_id IS NULL OR p.seed_spotify_id IS NULL
        """).fetchone()[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=SHAPES)
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "aria-bench", "knn"))
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--peer-core", default="auto",
                        help="OPENBLAS_CORETYPE for the peer: auto (what numpy's OpenBLAS detects), none, or a core")
    args = parser.parse_args(argv)
    core = detected_core() if args.peer_core == "auto" else (None if args.peer_core == "none" else args.peer_core)

    results = []
    for n in args.sizes:
        for shape in args.shapes:
            warehouse = bronze_tables(Path(args.dir), n, shape)
            line: dict[str, Any] = {"candidates": n, "seeds": SEEDS, "k": TOP_K, "shape": shape,
                                    "load_before": list(os.getloadavg())}
            line["job"] = run_job(warehouse, args.master)
            line["peer"] = {"process": run_peer(warehouse, warehouse.parent / "peer", core), "openblas_core": core}
            line["peer"]["differing_seeds"] = differing_seeds(warehouse, warehouse.parent / "peer")
            line["load_after"] = list(os.getloadavg())
            results.append(line)
            job, peer = line["job"], line["peer"]["process"]
            print(f"\n== {shape} {n:,} candidates: job {job['seconds']:.1f} s, process {job['process'].wall:.1f} s "
                  f"({job['process'].cpu:.1f} CPU s, peak {job['process'].peak_rss_bytes / 1e9:.1f} GB; "
                  f"{job['stages']} stages; steps {job['steps']}); peer {peer.wall:.1f} s ({peer.cpu:.1f} CPU s, "
                  f"peak {peer.peak_rss_bytes / 1e9:.1f} GB); differing seeds {line['peer']['differing_seeds']}; "
                  f"load {line['load_before'][0]:.1f} → {line['load_after'][0]:.1f}; kernel {job['similar']}",
                  flush=True)
            write_result("knn", line)
    print("\n| shape | candidates | job s | process s (CPU s) | peak GB | faiss s (CPU s) | peak GB "
          "| job ÷ faiss | process ÷ faiss | differing seeds | load |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for line in results:
        job, peer = line["job"], line["peer"]["process"]
        print(f"| {line['shape']} | {line['candidates']:,} | {job['seconds']:.1f} | {job['process'].wall:.1f} "
              f"({job['process'].cpu:.0f}) | {job['process'].peak_rss_bytes / 1e9:.1f} | {peer.wall:.1f} "
              f"({peer.cpu:.0f}) | {peer.peak_rss_bytes / 1e9:.1f} | {job['seconds'] / peer.wall:.1f} "
              f"| {job['process'].wall / peer.wall:.1f} | {line['peer']['differing_seeds']} "
              f"| {line['load_before'][0]:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
