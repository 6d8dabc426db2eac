"""Exact kNN (jobs/vectors/knn.py) against an independent brute force: numpy float64 matrix products
over every pair, ordered by (score desc, id asc). Vectors include exact ties (duplicated vectors, a
uniformly scaled copy, a zero vector) and seeds outside the candidate set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jobs.vectors import knn

DIM = 13


def brute_force(seed_ids, seed_vecs, cand_ids, cand_vecs, k):
    """{seed: [(candidate, score), ...]} by float64 cosine; ties (within 1e-9) by id ascending."""
    def unit(v):
        v = np.asarray(v, dtype=np.float64)
        norms = np.linalg.norm(v, axis=1)
        return v / np.where(norms > 0, norms, 1.0)[:, None]

    scores = unit(seed_vecs) @ unit(cand_vecs).T
    result = {}
    for i, seed in enumerate(seed_ids):
        ranked = sorted(
            ((round(float(scores[i, j]), 9), cand) for j, cand in enumerate(cand_ids) if cand != seed),
            key=lambda pair: (-pair[0], pair[1]),
        )
        result[seed] = [(cand, float(scores[i, cand_ids.index(cand)])) for _, cand in ranked[:k]]
    return result


def tied_vectors(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Random vectors in [0, 1) with planted ties: c0003 = c0007 = c0011 (duplicates), c0005 = 0.5·c0003
    (same direction), c0013 = 0 (cosine 0 with everything), and c0017..c0024 all equal."""
    rng = np.random.default_rng(seed)
    vectors = rng.random((n, DIM)).astype(np.float32)
    vectors[7] = vectors[3]
    vectors[11] = vectors[3]
    vectors[5] = vectors[3] * np.float32(0.5)
    vectors[13] = 0.0
    vectors[17:25] = vectors[17]
    ids = [f"c{i:04d}" for i in range(n)]
    return ids, vectors


def kernel_result(seed_ids, seed_vecs, cand_ids, cand_vecs, k, **options):
    seeds = knn.make_block(seed_ids, seed_vecs)
    cands = knn.make_block(cand_ids, cand_vecs)
    stats = knn.KernelStats()
    got: dict[str, list[tuple[str, float]]] = {s: [] for s in seed_ids}
    for part in knn.block_top_k(seeds, cands, k, stats=stats, **options):
        for s, c, score in zip(part.seed_pos, part.cand_pos, part.score):
            got[seeds.ids[int(s)].as_py()].append((cands.ids[int(c)].as_py(), float(score)))
    for seed in got:
        got[seed].sort(key=lambda pair: (-pair[1], pair[0]))
    return got, stats


def assert_same_neighbours(got, expected):
    assert set(got) == set(expected)
    for seed, neighbours in expected.items():
        assert [c for c, _ in got[seed]] == [c for c, _ in neighbours], seed
        np.testing.assert_allclose([s for _, s in got[seed]], [s for _, s in neighbours], atol=1e-9, err_msg=seed)


def test_unit_rows_and_ordered_dot_are_bit_reproducible_for_equal_directions():
    v = np.array([[0.25, 0.5, 1.0], [0.125, 0.25, 0.5], [0.0, 0.0, 0.0]], dtype=np.float32)
    unit = knn.unit_rows(v)
    assert (unit[0] == unit[1]).all()  # halving is exact, so the directions are bit-equal
    assert (unit[2] == 0).all()
    np.testing.assert_allclose(np.linalg.norm(unit[0]), 1.0, rtol=1e-15)
    cols = unit.T
    scores = knn.ordered_dot(cols[:, :, None], lambda j: cols[j][None, :])
    assert scores[0, 2] == 0.0 and scores[0, 0] <= 1.0
    assert scores[0, 1] == scores[1, 0] == scores[0, 0]


@pytest.mark.parametrize("margin", [0, 2, 32])
def test_kernel_equals_brute_force_with_ties(margin):
    ids, vectors = tied_vectors(400, seed=7)
    seed_rows = [3, 5, 7, 13, 17, 20, 40, 41, 99]
    seed_ids = [ids[i] for i in seed_rows] + ["outside1"]  # a seed that is not a candidate
    seed_vecs = np.vstack([vectors[seed_rows], vectors[[3]]])  # … with the tied direction of c0003
    got, stats = kernel_result(seed_ids, seed_vecs, ids, vectors, k=10, margin=margin, seed_batch=4)
    assert_same_neighbours(got, brute_force(seed_ids, seed_vecs, ids, vectors, 10))
    assert [c for c, _ in got["c0003"][:3]] == ["c0005", "c0007", "c0011"]  # exact ties, id order
    assert [c for c, _ in got["outside1"][:4]] == ["c0003", "c0005", "c0007", "c0011"]
    assert [c for c, _ in got["c0013"]] == ids[:10]  # zero seed: every score 0, so ids ascending
    assert stats.first_search + stats.wider_search + stats.full_scan == len(seed_ids)
    if margin == 0:  # the tie group c0017..c0024 is wider than k+1 and cannot be proven by the first search
        assert stats.wider_search + stats.full_scan > 0


def test_kernel_falls_back_to_a_full_scan_when_a_tie_group_exceeds_every_search():
    ids, vectors = tied_vectors(60, seed=3)
    vectors[30:60] = vectors[30]  # 30 equal vectors: with k=2, margin=0 even the 8× wider search is cut in a tie
    seed_ids, seed_vecs = ["q"], vectors[[30]]
    got, stats = kernel_result(seed_ids, seed_vecs, ids, vectors, k=2, margin=0)
    assert stats.full_scan == 1
    assert [c for c, _ in got["q"]] == ["c0030", "c0031"]
    assert_same_neighbours(got, brute_force(seed_ids, seed_vecs, ids, vectors, 2))


def test_block_smaller_than_k_returns_every_other_candidate():
    ids, vectors = tied_vectors(30, seed=5)
    got, _ = kernel_result(ids[:2], vectors[:2], ids[:4], vectors[:4], k=10)
    assert [len(v) for v in got.values()] == [3, 3]
    assert_same_neighbours(got, brute_force(ids[:2], vectors[:2], ids[:4], vectors[:4], 10))


def test_duplicate_candidate_ids_are_refused():
    with pytest.raises(Exception, match="not unique"):
        knn.make_block(["a", "b", "a"], np.ones((3, DIM)))


# ----------------------------------------------------------------------------------------------
# The Spark path: blocks in mapInArrow, merged with row_number


def vectors_frame(spark, ids, vectors):
    return spark.createDataFrame(
        [(i, [float(x) for x in v]) for i, v in zip(ids, vectors)], "spotify_id string, vector array<float>"
    )


@pytest.mark.parametrize("broadcast", ["seeds", "candidates"])
def test_spark_exact_top_k_merges_blocks_exactly(spark, broadcast):
    ids, vectors = tied_vectors(300, seed=11)
    seed_rows = [3, 5, 11, 13, 17, 50, 51, 52, 200]
    seed_ids = [ids[i] for i in seed_rows] + ["tierB1"]
    seed_vecs = np.vstack([vectors[seed_rows], vectors[[17]]])
    options = knn.SearchOptions(k=12, block_rows=100, seed_batch=3, margin=1, broadcast=broadcast)
    result, plan = knn.exact_top_k(
        spark, vectors_frame(spark, seed_ids, seed_vecs), vectors_frame(spark, ids, vectors), options
    )
    rows = result.collect()
    assert plan.broadcast == broadcast and plan.seeds == 10 and plan.candidates == 300
    if broadcast == "seeds":
        assert plan.blocks == 3  # the candidates really were split into blocks
    got: dict[str, list[tuple[int, str, float]]] = {}
    for r in rows:
        got.setdefault(r.seed_spotify_id, []).append((r.rank, r.similar_spotify_id, r.similarity_score))
    for seed in got:
        got[seed].sort()
        assert [rank for rank, _, _ in got[seed]] == list(range(1, 13))
    assert_same_neighbours(
        {s: [(c, score) for _, c, score in v] for s, v in got.items()},
        brute_force(seed_ids, seed_vecs, ids, vectors, 12),
    )
    # seed c0017 belongs to the tie group c0017..c0024: its 7 duplicates come first, by id
    assert [c for _, c, _ in got["c0017"][:7]] == [f"c{i:04d}" for i in range(18, 25)]
    assert [c for _, c, _ in got["tierB1"][:8]] == [f"c{i:04d}" for i in range(17, 25)]


def test_spark_exact_top_k_without_candidates_is_empty(spark):
    ids, vectors = tied_vectors(30, seed=1)
    empty = vectors_frame(spark, [], [])
    result, plan = knn.exact_top_k(spark, vectors_frame(spark, ids, vectors), empty, knn.SearchOptions(k=3))
    assert result.count() == 0 and plan.candidates == 0
    assert result.columns == ["seed_spotify_id", "similar_spotify_id", "similarity_score", "rank"]


_PROBE = """
import json, numpy
from jobs.vectors.knn import blas_core_from_numpy
chosen = blas_core_from_numpy()
import faiss
from threadpoolctl import threadpool_info
def owner(path):
    return "numpy" if "numpy" in path else "faiss" if "faiss" in path else "other"
cores = {owner(i["filepath"]): i.get("architecture") for i in threadpool_info() if i["internal_api"] == "openblas"}
print(json.dumps({"chosen": chosen, **cores}))
"""


@pytest.mark.parametrize("preset", [None, "Haswell"])
def test_faiss_runs_the_blas_core_numpy_detects_unless_the_environment_names_one(preset):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENBLAS_")}
    if preset:
        env["OPENBLAS_CORETYPE"] = preset
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, check=True,
                          cwd=Path(__file__).resolve().parents[2])
    found = json.loads(done.stdout.strip().splitlines()[-1])
    if preset:
        assert found["chosen"] is None and found["faiss"] == preset
    else:
        assert found["chosen"] == found["numpy"] and found["faiss"] == found["numpy"]
