"""Exact top-k cosine neighbours: a numpy/faiss kernel for one (seeds × candidate block) pair, and the
Spark plumbing that runs it over candidate blocks in ``mapInArrow`` and merges the per-block top-k.

Definition (the contract of ``gold/precomputed_similar``): the score of two vectors is their cosine,
computed in float64 from the stored float32 components as Σ_j â_j·b̂_j with â = a/‖a‖, summed in index
order (``unit_columns`` and ``ordered_dot``). A zero vector has cosine 0 with everything. Neighbours are
ordered by score descending, then id ascending; the seed itself is never its own neighbour.

Why the float64 re-scoring: faiss scores in float32 and does not break ties by id, so its ranking alone
can disagree with the contract wherever scores tie or lie within float32 rounding of each other. The
float64 sum in a fixed order is bit-reproducible — equal (or uniformly scaled) vectors give bit-equal
scores wherever they are computed — so ties are real ties and the id order decides them.

Why the result is exact, not approximate: per block, faiss (``IndexFlatIP``, an exhaustive scan) returns
the K' = k + 1 + margin best candidates R by its float32 score f. Every float32 score lies within
``score_error_bound(d)`` of the float64 score s. Let t be the k-th best float64 score in R (self
excluded) and f_min the smallest float32 score in R. A candidate outside R has f ≤ f_min, hence
s ≤ f_min + bound; if f_min + bound < t it cannot reach the top k, whatever its id. Seeds for which
this cannot be shown (ties or near-ties around the cut-off, e.g. duplicated vectors, or a zero seed)
are searched again with a wider K', and failing that scored against the whole block in float64. The
block's top-k under the contract's total order are then exact, and the global top-k is the top-k of
the union of the blocks' top-k, which the Spark merge takes with ``row_number``.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.accumulators import AccumulatorParam
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lib.errors import InputError, JobError

# |float32 inner product of two float32-rounded unit vectors − float64 cosine|: rounding the inputs
# costs ≤ 2u and a d-term float32 sum ≤ d·u·Σ|a_j b_j| ≤ d·u (u = 2^-24 ≈ 6e-8, Σ|a_j b_j| ≤ 1 for unit
# vectors), so < 1e-6 for d = 13 and < 2e-5 for d ≤ 269 (hybrid vectors); the bound adds head-room.
SCORE_ERROR_BOUND_PER_DIM = 1.5e-7
# faiss 1.15 scores a query batch with BLAS only when queries × dims ≥ 128,000 and otherwise with its
# per-pair SIMD loop, which for 13 dims is ~4× slower per pair (measured on 250K × 2,000..8,192
# queries: 2.5 vs 9-11 ns). The kernel's batches (similar.seed_batch = 8192 × 13 dims) fall under that
# line, so BLAS is asked for from this many queries on.
FAISS_BLAS_MIN_QUERIES = 20
# A seed whose first search cannot be shown exact is searched again with this many times as many
# neighbours before it falls back to a float64 scan of the whole block.
RETRY_FACTOR = 8

PARTIAL_SCHEMA = "seed_spotify_id string, similar_spotify_id string, similarity_score double"


def score_error_bound(dim: int) -> float:
    return max(1e-6, (dim + 4) * SCORE_ERROR_BOUND_PER_DIM)


# ----------------------------------------------------------------------------------------------
# Bit-reproducible float64 arithmetic


def unit_columns(vectors: np.ndarray) -> np.ndarray:
    """(d, n) float64: the rows of ``vectors`` (n, d) scaled to unit length, one row per component,
    with a fixed operation order (zero rows stay zero)."""
    v = np.ascontiguousarray(np.asarray(vectors, dtype=np.float64).T)
    squares = np.zeros(v.shape[1])
    for j in range(len(v)):
        squares = squares + v[j] * v[j]
    norms = np.sqrt(squares)
    return v / np.where(norms > 0, norms, 1.0)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """(n, d) float64: ``vectors`` scaled to unit length (see ``unit_columns``)."""
    return unit_columns(vectors).T


def ordered_dot(left_columns: np.ndarray, right_columns: Callable[[int], np.ndarray]) -> np.ndarray:
    """Σ_j left[j]·right(j), summed in index order with plain elementwise IEEE operations (no BLAS, no
    FMA), so the value of a pair never depends on where or in which batch it is computed.

    ``left_columns`` is (d, m, 1) or (d, m); ``right_columns(j)`` gives component j of the right side,
    broadcastable against ``left_columns[j]``.
    """
    total = left_columns[0] * right_columns(0)
    for j in range(1, len(left_columns)):
        total = total + left_columns[j] * right_columns(j)
    # Parallel unit vectors can sum to 1 + 2^-52; a cosine is at most 1.
    return np.clip(total, -1.0, 1.0)


# ----------------------------------------------------------------------------------------------
# Blocks


@dataclass
class Block:
    """Vectors with ids sorted ascending, so that position order is id order (the tie-break). Ids stay
    an Arrow array: sorting, look-ups and the output batches run in Arrow's C++ kernels."""

    ids: pa.Array  # string, sorted, unique
    unit_t: np.ndarray  # float64 (d, n): unit vectors, one row per component
    unit32: np.ndarray  # float32 (n, d), C-contiguous: what faiss searches

    @property
    def size(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        return self.unit32.shape[1]


def make_block(ids: pa.Array | np.ndarray | list[str], vectors: np.ndarray, what: str = "vectors") -> Block:
    ids = ids if isinstance(ids, pa.Array) else pa.array(ids, pa.string())
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise JobError(f"{what}: expected {len(ids)} vectors of one length, got shape {vectors.shape}")
    order = pc.sort_indices(ids).to_numpy()
    ids, vectors = ids.take(order), vectors[order]
    if len(ids) > 1:
        repeated = pc.equal(ids[1:], ids[:-1])
        if pc.any(repeated).as_py():
            examples = ids[1:].filter(repeated)[:3].to_pylist()
            raise JobError(f"{what}: spotify_id is not unique (e.g. {examples})")
    unit_t = unit_columns(vectors)
    return Block(ids, unit_t, np.ascontiguousarray(unit_t.T, dtype=np.float32))


def block_from_arrow(table: pa.Table | pa.RecordBatch, what: str) -> Block:
    """(spotify_id, vector) Arrow data → Block; every vector must be non-NULL and of one length."""
    ids = table.column("spotify_id")
    vectors = table.column("vector")
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
        vectors = vectors.combine_chunks()
    if ids.null_count or vectors.null_count:
        raise InputError(f"{what}: NULL spotify_id or vector")
    lengths = np.asarray(vectors.value_lengths())
    dim = int(lengths[0]) if len(lengths) else 0
    if len(lengths) and (lengths != dim).any():
        raise InputError(f"{what}: vectors of different lengths {sorted(set(lengths.tolist()))[:5]}")
    flat = vectors.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return make_block(ids.cast(pa.string()), flat.reshape(len(ids), dim), what)


# ----------------------------------------------------------------------------------------------
# The kernel


@dataclass
class KernelStats:
    """How each seed's block top-k was shown exact (for the job summary and the benchmark)."""

    first_search: int = 0
    wider_search: int = 0
    full_scan: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # CPU time of the kernel's process (robust to other load on the machine)


@dataclass
class BlockResult:
    """For each kept pair: position of the seed (in the seed block), position of the candidate (in the
    candidate block) and the float64 cosine."""

    seed_pos: np.ndarray
    cand_pos: np.ndarray
    score: np.ndarray


def blas_core_from_numpy() -> str | None:
    """Before faiss loads in this process, ``OPENBLAS_CORETYPE`` = the core numpy's OpenBLAS detected, unless
    the environment names one (returned: the core set, or None). faiss-cpu bundles OpenBLAS 0.3.15, which does
    not know recent Xeons and falls back to generic Prescott (SSE3) kernels where numpy's current OpenBLAS
    finds SkylakeX here (threadpoolctl shows both): the exact scan's inner products then cost ~1.5× the CPU
    (docs/benchmarks.md, Vectors). Each executor's worker detects its own CPU, so a cluster of mixed machines
    is fine; OpenBLAS reads the variable when it loads, so it must be set before ``import faiss``."""
    if os.environ.get("OPENBLAS_CORETYPE") or "faiss" in sys.modules:
        return None
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    cores = [i.get("architecture") for i in threadpool_info()
             if i.get("internal_api") == "openblas" and "numpy" in i.get("filepath", "")]
    if not cores or not cores[0]:
        return None
    os.environ["OPENBLAS_CORETYPE"] = cores[0]
    return cores[0]


def _faiss_index(block: Block, threads: int):  # -> faiss.IndexFlatIP
    blas_core_from_numpy()
    import faiss

    if threads > 0:
        faiss.omp_set_num_threads(threads)
    faiss.cvar.distance_compute_blas_threshold = FAISS_BLAS_MIN_QUERIES
    index = faiss.IndexFlatIP(block.dim)
    index.add(block.unit32)
    return index


def _select(
    seeds: Block, rows: np.ndarray, cands: Block, self_pos: np.ndarray, found: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Re-score the found candidates in float64, drop self, order by (score desc, id asc).

    Returns (positions (m, ≤k), scores (m, ≤k), k-th best score per row)."""
    left = seeds.unit_t[:, rows][:, :, None]
    scores = ordered_dot(left, lambda j: cands.unit_t[j][found])
    scores[found == self_pos[:, None]] = -np.inf
    order = np.lexsort((found, -scores), axis=1)[:, :k]
    top_pos = np.take_along_axis(found, order, axis=1)
    top_scores = np.take_along_axis(scores, order, axis=1)
    return top_pos, top_scores, top_scores[:, -1]


def _full_scan(seeds: Block, row: int, cands: Block, self_pos: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """One seed against the whole block in float64: its exact top-k under (score desc, id asc)."""
    scores = ordered_dot(seeds.unit_t[:, row], lambda j: cands.unit_t[j])
    if self_pos >= 0:
        scores[self_pos] = -np.inf
    keep = min(k, cands.size - (1 if self_pos >= 0 else 0))
    if keep <= 0:
        return np.empty(0, np.int64), np.empty(0)
    threshold = np.partition(scores, cands.size - keep)[cands.size - keep]
    chosen = np.nonzero(scores >= threshold)[0]  # every tie at the threshold, id order decides below
    order = np.lexsort((chosen, -scores[chosen]))[:keep]
    return chosen[order], scores[chosen[order]]


def block_top_k(
    seeds: Block,
    cands: Block,
    k: int,
    margin: int = 32,
    seed_batch: int = 8192,
    threads: int = 0,
    stats: KernelStats | None = None,
) -> Iterator[BlockResult]:
    """Exact top-k of every seed within one candidate block (see the module docstring for why)."""
    if seeds.size == 0 or cands.size == 0 or k <= 0:
        return
    if seeds.dim != cands.dim:
        raise JobError(f"seed vectors have {seeds.dim} components, candidate vectors {cands.dim}")
    started, cpu_started = time.perf_counter(), time.process_time()
    stats = stats if stats is not None else KernelStats()
    bound = score_error_bound(cands.dim)
    index = _faiss_index(cands, threads)
    # Position of each seed in the candidate block, or -1 (a seed outside the candidates, e.g. tier B).
    self_all = pc.fill_null(pc.index_in(seeds.ids, value_set=cands.ids), -1).to_numpy().astype(np.int64)

    for start in range(0, seeds.size, seed_batch):
        rows = np.arange(start, min(start + seed_batch, seeds.size))
        self_pos = self_all[rows]
        width = min(cands.size, k + 1 + margin)
        approx, found = index.search(seeds.unit32[rows], width)
        top_pos, top_scores, kth = _select(seeds, rows, cands, self_pos, found, k)
        exact = np.full(len(rows), width == cands.size) | (approx[:, -1] + bound < kth)
        stats.first_search += int(exact.sum())
        columns = top_pos.shape[1]  # k, or fewer when the block is smaller than k
        pos_parts, score_parts = [top_pos[exact]], [top_scores[exact]]
        seed_parts = [np.repeat(rows[exact], columns)]

        pending = np.nonzero(~exact)[0]
        if len(pending) and width < cands.size:
            wider = min(cands.size, width * RETRY_FACTOR)
            approx2, found2 = index.search(seeds.unit32[rows[pending]], wider)
            pos2, scores2, kth2 = _select(seeds, rows[pending], cands, self_pos[pending], found2, k)
            exact2 = np.full(len(pending), wider == cands.size) | (approx2[:, -1] + bound < kth2)
            stats.wider_search += int(exact2.sum())
            pos_parts.append(pos2[exact2])
            score_parts.append(scores2[exact2])
            seed_parts.append(np.repeat(rows[pending[exact2]], columns))
            pending = pending[~exact2]
        for local in pending:
            pos, scores = _full_scan(seeds, int(rows[local]), cands, int(self_pos[local]), k)
            stats.full_scan += 1
            pos_parts.append(pos[None, :])
            score_parts.append(scores[None, :])
            seed_parts.append(np.full(len(pos), rows[local]))

        seed_pos = np.concatenate(seed_parts)
        cand_pos = np.concatenate([p.ravel() for p in pos_parts])
        score = np.concatenate([s.ravel() for s in score_parts])
        valid = np.isfinite(score)  # -inf marks self in a block smaller than k + 1
        yield BlockResult(seed_pos[valid], cand_pos[valid], score[valid])
    stats.seconds += time.perf_counter() - started
    stats.cpu_seconds += time.process_time() - cpu_started


def block_top_k_arrow(seeds: Block, cands: Block, k: int, **options: Any) -> Iterator[pa.RecordBatch]:
    """``block_top_k`` as (seed_spotify_id, similar_spotify_id, similarity_score) Arrow batches."""
    for part in block_top_k(seeds, cands, k, **options):
        yield pa.RecordBatch.from_arrays(
            [seeds.ids.take(part.seed_pos), cands.ids.take(part.cand_pos), pa.array(part.score)],
            names=["seed_spotify_id", "similar_spotify_id", "similarity_score"],
        )


def merge_top_k(partials: DataFrame, k: int) -> DataFrame:
    """The global top-k per seed from the blocks' top-k: ``row_number`` over the contract's total order
    (score desc, id asc), so ties never yield more than k rows."""
    order = Window.partitionBy("seed_spotify_id").orderBy(
        F.col("similarity_score").desc(), F.col("similar_spotify_id").asc()
    )
    return (
        partials.withColumn("rank", F.row_number().over(order))
        .where(F.col("rank") <= k)
        .select("seed_spotify_id", "similar_spotify_id", "similarity_score", "rank")
    )


# ----------------------------------------------------------------------------------------------
# Spark plumbing


@dataclass(frozen=True)
class SearchOptions:
    k: int
    block_rows: int = 1_000_000
    seed_batch: int = 8192
    margin: int = 32
    threads: int = 1
    broadcast: str = "auto"  # auto | seeds | candidates

    def kernel(self) -> dict[str, int]:
        return {"margin": self.margin, "seed_batch": self.seed_batch, "threads": self.threads}


class _StatsParam(AccumulatorParam):
    """Adds KernelStats from the tasks (first_search, wider_search, full_scan, seconds, CPU seconds)."""

    def zero(self, value: list[float]) -> list[float]:
        return [0, 0, 0, 0.0, 0.0]

    def addInPlace(self, a: list[float], b: list[float]) -> list[float]:
        return [x + y for x, y in zip(a, b)]


@dataclass
class SearchPlan:
    """What ``exact_top_k`` decided, and (once the result has been computed) how the kernel fared."""

    seeds: int
    candidates: int
    broadcast: str
    blocks: int
    accumulator: object = None

    def kernel_stats(self) -> dict[str, float]:
        """Seeds per block proven exact by the first faiss search, by the wider one, by a full scan;
        summed over blocks (a retried task counts twice)."""
        values = self.accumulator.value if self.accumulator is not None else [0, 0, 0, 0.0, 0.0]
        first, wider, full, seconds, cpu_seconds = values
        return {"first_search": int(first), "wider_search": int(wider), "full_scan": int(full),
                "kernel_task_seconds": round(float(seconds), 2), "kernel_cpu_seconds": round(float(cpu_seconds), 2)}


def _collect_block(frame: DataFrame, what: str) -> Block:
    return block_from_arrow(frame.select("spotify_id", "vector").toArrow(), what)


def _block_rows(batches: Iterator[pa.RecordBatch], limit: int, what: str) -> Iterator[Block]:
    """The partition's rows as blocks of at most ``limit`` rows."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        rows += batch.num_rows
        if rows >= limit:
            yield block_from_arrow(pa.Table.from_batches(pending), what)
            pending, rows = [], 0
    if pending:
        yield block_from_arrow(pa.Table.from_batches(pending), what)


def exact_top_k(
    spark: SparkSession, seeds: DataFrame, candidates: DataFrame, options: SearchOptions
) -> tuple[DataFrame, SearchPlan]:
    """(seed_spotify_id, similar_spotify_id, similarity_score, rank) for every seed: its exact top-k
    candidates by cosine. ``seeds`` and ``candidates`` carry (spotify_id, vector); ids are unique per side.

    The smaller side is collected and broadcast; the other is split into blocks of at most
    ``block_rows`` rows, one ``mapInArrow`` task each (an exact faiss flat index per candidate block, or
    the broadcast candidates searched for a block of seeds); the blocks' top-k are merged in Spark.
    """
    k = options.k
    seed_table = seeds.select("spotify_id", "vector").toArrow()  # at most similar.seed_count rows
    n_seeds = seed_table.num_rows
    n_cands = candidates.count()
    side = options.broadcast
    if side == "auto":
        side = "seeds" if n_seeds <= n_cands else "candidates"
    n_split = n_cands if side == "seeds" else n_seeds
    blocks = max(1, math.ceil(n_split / options.block_rows), spark.sparkContext.defaultParallelism)
    blocks = min(blocks, max(1, n_split))
    plan = SearchPlan(n_seeds, n_cands, side, blocks)
    if n_seeds == 0 or n_cands == 0:
        return spark.createDataFrame([], f"{PARTIAL_SCHEMA}, rank int"), plan

    if side == "seeds":
        fixed_block = block_from_arrow(seed_table, "seeds (broadcast)")
        split = candidates.select("spotify_id", "vector")
    else:
        fixed_block = _collect_block(candidates, "candidates (broadcast)")
        split = spark.createDataFrame(seed_table)
    broadcast = spark.sparkContext.broadcast(fixed_block)
    kernel = options.kernel()
    block_rows = options.block_rows
    accumulator = spark.sparkContext.accumulator([0, 0, 0, 0.0, 0.0], _StatsParam())
    plan.accumulator = accumulator

    def search(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        fixed: Block = broadcast.value
        stats = KernelStats()
        for local in _block_rows(batches, block_rows, "candidates" if side == "seeds" else "seeds"):
            if side == "seeds":
                yield from block_top_k_arrow(fixed, local, k, stats=stats, **kernel)
            else:
                yield from block_top_k_arrow(local, fixed, k, stats=stats, **kernel)
        accumulator.add([stats.first_search, stats.wider_search, stats.full_scan, stats.seconds, stats.cpu_seconds])

    partials = split.repartition(blocks).mapInArrow(search, PARTIAL_SCHEMA)
    return merge_top_k(partials, k), plan
