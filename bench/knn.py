"""Exact kNN benchmark: the vectors job's Spark path against single-process faiss and numpy.

Same random 13-dim vectors for all three (uniform [0, 1), float32, written once to Parquet):
- job:   ``jobs.vectors.knn.exact_top_k`` — what ``./spark-submit.sh vectors`` runs for
         gold/precomputed_similar — reading (spotify_id, vector) from Parquet, seeds = the first
         ``--seeds`` candidates, top-k with self excluded, written to Parquet (Spark session start
         not counted; it is printed separately);
- faiss: ``IndexFlatIP`` over the L2-normalised candidates, all cores, top-(k+1) (self included);
- numpy: float32 matmul in seed blocks against all candidates + ``argpartition`` top-(k+1).
Then the job's neighbour lists are checked against faiss and numpy (identical up to float32 ties).

Command (recorded in docs/benchmarks.md):

    .venv/bin/python bench/knn.py --seeds 10000 --candidates 1000000 --k 100
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Timing, spark_pid, timed, write_result  # noqa: E402
from jobs.vectors import knn  # noqa: E402
from lib.config import load_config  # noqa: E402
from lib.spark import build_session  # noqa: E402

DIM = 13


def make_vectors(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = np.char.add("t", np.char.zfill(np.arange(n).astype(str), 9))
    return ids, rng.random((n, DIM), dtype=np.float32)


def write_parquet(path: Path, ids: np.ndarray, vectors: np.ndarray) -> None:
    flat = pa.array(vectors.ravel(), pa.float32())
    column = pa.ListArray.from_arrays(pa.array(np.arange(0, vectors.size + 1, DIM, dtype=np.int32)), flat)
    pq.write_table(pa.table({"spotify_id": pa.array(ids), "vector": column}), path, row_group_size=200_000)


def normalised(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1)).astype(np.float32)


def run_faiss(seeds: np.ndarray, cands: np.ndarray, k: int, threads: int) -> tuple[Timing, np.ndarray]:
    """(wall and CPU seconds of this process, neighbour rows)."""
    import faiss

    faiss.omp_set_num_threads(threads)
    with timed() as timing:
        index = faiss.IndexFlatIP(DIM)
        index.add(normalised(cands))
        _, found = index.search(normalised(seeds), k + 1)
    return timing, found


def run_numpy(seeds: np.ndarray, cands: np.ndarray, k: int, seed_block: int) -> tuple[Timing, np.ndarray]:
    with timed() as timing:
        unit_c, unit_s = normalised(cands), normalised(seeds)
        found = np.empty((len(seeds), k + 1), np.int64)
        for start in range(0, len(seeds), seed_block):
            scores = unit_s[start:start + seed_block] @ unit_c.T
            part = np.argpartition(-scores, k, axis=1)[:, : k + 1]
            order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
            found[start:start + seed_block] = np.take_along_axis(part, order, axis=1)
    return timing, found


def run_job(spark, parquet: str, n_seeds: int, options: knn.SearchOptions, out: str) -> tuple[Timing, dict]:
    with timed(spark_pid(spark)) as timing:
        with timed() as prepare:
            vectors = spark.read.parquet(parquet)
            seeds = vectors.orderBy("spotify_id").limit(n_seeds)
            result, plan = knn.exact_top_k(spark, seeds, vectors, options)
        result.write.mode("overwrite").parquet(out)
    info = {
        "broadcast": plan.broadcast,
        "blocks": plan.blocks,
        "collect_seeds_and_count_seconds": round(prepare.wall, 2),
        "search_merge_write_seconds": round(timing.wall - prepare.wall, 2),
        **plan.kernel_stats(),
    }
    return timing, info


def disagreements(job: dict[str, list[str]], ids: np.ndarray, found: np.ndarray, seed_ids: np.ndarray) -> list[int]:
    """Seeds (row numbers) whose job neighbour set differs from the peer's (self removed, first k)."""
    differing = []
    for i, seed in enumerate(seed_ids):
        peer = [ids[j] for j in found[i] if ids[j] != seed][: len(job[seed])]
        if set(peer) != set(job[seed]):
            differing.append(i)
    return differing


def job_is_float64_exact(job: dict[str, list[str]], ids: np.ndarray, vectors: np.ndarray, rows: list[int],
                         k: int) -> bool:
    """For the given seeds: the job's list equals a float64 brute force over every candidate (score desc,
    id asc; scores within 1e-12 count as tied)."""
    unit = vectors.astype(np.float64)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    for i in rows:
        scores = unit @ unit[i]
        scores[i] = -np.inf
        top = np.argpartition(-scores, k + 5)[: k + 5]
        ranked = sorted(top, key=lambda j: (-round(float(scores[j]), 12), ids[j]))[:k]
        if [ids[j] for j in ranked] != job[ids[i]]:
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=10_000)
    parser.add_argument("--candidates", type=int, default=1_000_000)
    parser.add_argument("--k", type=int, default=100, help="neighbours per seed, self excluded (peers: k+1)")
    parser.add_argument("--block-rows", type=int, default=1_000_000, help="similar.block_rows")
    parser.add_argument("--margin", type=int, default=32, help="similar.search_margin")
    parser.add_argument("--numpy-seed-block", type=int, default=128)
    parser.add_argument("--skip-numpy", action="store_true")
    parser.add_argument("--faiss-one-thread", action="store_true", help="also time faiss on one thread")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    args = parser.parse_args()

    work = Path(args.work or tempfile.mkdtemp(prefix="bench-knn-"))
    work.mkdir(parents=True, exist_ok=True)
    ids, vectors = make_vectors(args.candidates, args.seed)
    seed_ids, seed_vectors = ids[: args.seeds], vectors[: args.seeds]  # ids are generated in sorted order
    parquet = str(work / "vectors.parquet")
    write_parquet(Path(parquet), ids, vectors)
    figures: dict[str, object] = {"seeds": args.seeds, "candidates": args.candidates, "k": args.k,
                                  "cores": os.cpu_count()}

    cores = os.cpu_count() or 1
    faiss_t, faiss_found = run_faiss(seed_vectors, vectors, args.k, cores)
    figures["faiss_seconds"] = round(faiss_t.wall, 2)
    figures["faiss_cpu_seconds"] = round(faiss_t.cpu, 2)
    print(f"faiss IndexFlatIP ({cores} threads): {faiss_t.wall:.2f} s", flush=True)
    if args.faiss_one_thread:  # what one job task runs per block: tells kernel cost from Spark overhead
        one_t, _ = run_faiss(seed_vectors, vectors, args.k, 1)
        figures["faiss_1_thread_seconds"] = round(one_t.wall, 2)
        figures["faiss_1_thread_cpu_seconds"] = round(one_t.cpu, 2)
        print(f"faiss IndexFlatIP (1 thread): {one_t.wall:.2f} s", flush=True)
    if not args.skip_numpy:
        numpy_t, numpy_found = run_numpy(seed_vectors, vectors, args.k, args.numpy_seed_block)
        figures["numpy_seconds"] = round(numpy_t.wall, 2)
        print(f"numpy blocked matmul + argpartition: {numpy_t.wall:.2f} s", flush=True)

    config = load_config(use_default_file=False).with_overrides(
        {"spark.master": args.master, "spark.driver_memory": "6g", "spark.log_level": "ERROR"}
    )
    with timed() as start:
        spark = build_session(config, "bench-knn", {"spark.sql.shuffle.partitions": "4"})
    figures["spark_start_seconds"] = round(start.wall, 2)
    options = knn.SearchOptions(k=args.k, block_rows=args.block_rows, margin=args.margin, threads=1)
    job_t, info = run_job(spark, parquet, args.seeds, options, str(work / "job_out"))
    figures["job_seconds"] = round(job_t.wall, 2)
    figures["job_cpu_seconds"] = round(job_t.cpu, 2)
    figures["job"] = info
    print(f"job (Spark {args.master}, exact): {job_t.wall:.2f} s  {json.dumps(info)}", flush=True)

    rows = pq.read_table(str(work / "job_out")).to_pylist()
    job: dict[str, list[str]] = {}
    for row in sorted(rows, key=lambda r: (r["seed_spotify_id"], r["rank"])):
        job.setdefault(row["seed_spotify_id"], []).append(row["similar_spotify_id"])
    assert len(job) == args.seeds and all(len(v) == args.k for v in job.values()), "incomplete job output"
    peers = {"faiss": faiss_found} if args.skip_numpy else {"faiss": faiss_found, "numpy": numpy_found}
    for name, found in peers.items():
        differing = disagreements(job, ids, found, seed_ids)
        figures[f"seeds_whose_set_differs_from_{name}"] = len(differing)
        # float32 peers order near-ties arbitrarily; where they differ, the job must match float64
        figures[f"differing_seeds_float64_exact_{name}"] = job_is_float64_exact(job, ids, vectors, differing, args.k)
    if not args.skip_numpy:
        figures["job_vs_numpy"] = round(job_t.wall / numpy_t.wall, 2)
    figures["job_vs_faiss"] = round(job_t.wall / faiss_t.wall, 2)
    spark.stop()
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    write_result("knn", figures)


if __name__ == "__main__":
    main()
