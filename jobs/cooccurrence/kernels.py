"""numpy kernels for the job's hot spot, pair counting, run per partition through ``DataFrame.mapInArrow``.

Why not Spark built-ins here (measured, docs/benchmarks.md): ``explode`` + ``groupBy(a, b).count()``
spends ~0.5 µs of CPU per pair probing a hash table of mostly distinct keys that does not fit the CPU
caches; sorting the packed int64 keys of a task in numpy and counting runs costs ~0.1 µs per pair, and
the Arrow hand-over of the (a, [b…]) arrays is cheap because only the kept pairs come back. Overall the
counting stage takes about a third of the CPU. ``mapInArrow`` is a batch function, not a Python UDF:
Spark hands each task's rows over as Arrow record batches (no per-row pickling or Python calls), the
kernel works on whole columns and returns Arrow batches. The partitioning that makes a kernel exact (all
rows of one ``track_a`` in one task) is done by Spark right before it (``repartition`` by that column).
The top-K, by contrast, stays a Spark window: on int ids it costs the same as a kernel, whose gain there
is eaten by moving every row through Arrow both ways.

Memory per task is bounded: pending keys are compacted into (key, count) runs every
``MAX_PENDING_KEYS`` keys, so a task holds at most that many raw keys plus its distinct pairs; more
``cooccurrence.pair_partitions`` means fewer distinct pairs per task.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Raw pair keys (8 bytes each) a task buffers before compacting them: 2**25 keys = 256 MiB.
MAX_PENDING_KEYS = 1 << 25
# Rows per output record batch.
OUTPUT_BATCH_ROWS = 1 << 20

PAIR_COUNT_SCHEMA = pa.schema(
    [("track_a", pa.int32()), ("track_b", pa.int32()), ("cooccurrence_count", pa.int64())]
)
PAIR_COUNT_DDL = "track_a int, track_b int, cooccurrence_count long"


_LOW_32 = np.int64(0xFFFFFFFF)


def pack(track_a: np.ndarray, track_b: np.ndarray) -> np.ndarray:
    """(a, b) with 0 ≤ a, b < 2**31 → one int64 whose order is (a, b)'s order."""
    return (track_a.astype(np.int64) << 32) | track_b.astype(np.int64)


def unpack(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (keys >> 32).astype(np.int32), (keys & _LOW_32).astype(np.int32)


class PairCounter:
    """Counts int64 pair keys (optionally with weights) with bounded buffering."""

    def __init__(self, max_pending: int | None = None) -> None:
        self.max_pending = max_pending or MAX_PENDING_KEYS
        self._keys: list[np.ndarray] = []
        self._weights: list[np.ndarray | None] = []
        self._pending = 0

    def add(self, keys: np.ndarray, weights: np.ndarray | None = None) -> None:
        if len(keys) == 0:
            return
        self._keys.append(keys)
        self._weights.append(weights)
        self._pending += len(keys)
        if self._pending > self.max_pending and len(self._keys) > 1:
            keys, counts = self._reduce()
            self._keys, self._weights, self._pending = [keys], [counts], len(keys)

    def _reduce(self) -> tuple[np.ndarray, np.ndarray]:
        keys = np.concatenate(self._keys) if len(self._keys) > 1 else self._keys[0].copy()
        if all(weight is None for weight in self._weights):
            keys.sort()
            weights = None
        else:
            weights = np.concatenate([
                np.ones(len(k), dtype=np.int64) if w is None else w.astype(np.int64)
                for k, w in zip(self._keys, self._weights)
            ])
            order = np.argsort(keys, kind="stable")
            keys, weights = keys[order], weights[order]
        if len(keys) == 0:
            return keys, np.zeros(0, dtype=np.int64)
        starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
        if weights is None:
            counts = np.diff(np.append(starts, len(keys))).astype(np.int64)
        else:
            counts = np.add.reduceat(weights, starts)
        return keys[starts], counts

    def result(self, min_count: int) -> tuple[np.ndarray, np.ndarray]:
        """Distinct keys in ascending order with their counts, counts < ``min_count`` dropped."""
        if not self._keys:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        keys, counts = self._reduce()
        keep = counts >= min_count
        return keys[keep], counts[keep]


def _pair_batches(keys: np.ndarray, counts: np.ndarray) -> Iterator[pa.RecordBatch]:
    for start in range(0, len(keys), OUTPUT_BATCH_ROWS):
        track_a, track_b = unpack(keys[start : start + OUTPUT_BATCH_ROWS])
        yield pa.RecordBatch.from_arrays(
            [pa.array(track_a), pa.array(track_b), pa.array(counts[start : start + OUTPUT_BATCH_ROWS])],
            schema=PAIR_COUNT_SCHEMA,
        )


def tail_pair_keys(batch: pa.RecordBatch) -> np.ndarray:
    """The packed pairs (a, b) of a batch of (track_a int, later array<int>) rows."""
    later = batch.column(1)
    if later.null_count:
        later = later.fill_null([])  # pragma: no cover - pair_tails never emits NULL arrays
    offsets = later.offsets.to_numpy()
    values = later.values.to_numpy(zero_copy_only=False)[offsets[0] : offsets[-1]]
    track_a = batch.column(0).to_numpy(zero_copy_only=False)
    return pack(np.repeat(track_a, np.diff(offsets)), values)


def count_tail_pairs(batches: Iterable[pa.RecordBatch], min_count: int) -> Iterator[pa.RecordBatch]:
    """mapInArrow kernel: (track_a, later) rows → (track_a, track_b, cooccurrence_count ≥ min_count).

    Exact when every row of a given track_a is in this task."""
    counter = PairCounter()
    for batch in batches:
        counter.add(tail_pair_keys(batch))
    yield from _pair_batches(*counter.result(min_count))


def sum_pair_counts(batches: Iterable[pa.RecordBatch], min_count: int) -> Iterator[pa.RecordBatch]:
    """mapInArrow kernel: partial (track_a, track_b, cooccurrence_count) rows (e.g. one per chunk) →
    summed counts ≥ min_count. Exact when every row of a given track_a is in this task."""
    counter = PairCounter()
    for batch in batches:
        keys = pack(batch.column(0).to_numpy(zero_copy_only=False), batch.column(1).to_numpy(zero_copy_only=False))
        counter.add(keys, batch.column(2).to_numpy(zero_copy_only=False).astype(np.int64))
    yield from _pair_batches(*counter.result(min_count))


# ------------------------------------------------------------------------------------------------
# Encoding playlists straight into tails


# Track ids a task looks up in one ``index_in`` call: each call hashes the whole dictionary again, so the
# playlists' batches are gathered up to this many ids first (≈ 2**22 × 22-byte ids ≈ 100 MiB).
ENCODE_LOOKUP_IDS = 1 << 22
# Values of ``later`` per output batch (Arrow list offsets are int32).
TAIL_BATCH_VALUES = 1 << 24

TAIL_SCHEMA = pa.schema([("track_a", pa.int32()), ("later", pa.list_(pa.int32()))])
TAIL_DDL = "track_a int, later array<int>"


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """concat(arange(s, s + n) for s, n in zip(starts, lengths)), vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    return np.arange(total, dtype=np.int64) + np.repeat(starts - (ends - lengths), lengths)


def playlist_tails(owner: np.ndarray, tids: np.ndarray) -> Iterator[pa.RecordBatch]:
    """(track_a, later) rows of playlists given as (owner, tid) pairs with distinct tids per owner:
    for each playlist's sorted tids, one row per tid with the tids after it (none for the last)."""
    keys = np.sort((owner.astype(np.int64) << 32) | tids.astype(np.int64))
    if len(keys) == 0:
        return
    owner, sorted_tids = keys >> 32, (keys & _LOW_32).astype(np.int32)
    boundary = np.flatnonzero(np.concatenate(([True], owner[1:] != owner[:-1], [True])))
    ends = np.repeat(boundary[1:], np.diff(boundary))  # each element's playlist end (exclusive)
    rows = np.arange(len(keys), dtype=np.int64)
    later = ends - rows - 1
    rows, later = rows[later > 0], later[later > 0]
    if len(rows) == 0:
        return
    cumulative = np.cumsum(later)
    cuts = np.searchsorted(cumulative, np.arange(TAIL_BATCH_VALUES, int(cumulative[-1]), TAIL_BATCH_VALUES),
                           side="right")
    for part in np.split(np.arange(len(rows)), cuts):
        if len(part) == 0:
            continue
        lengths = later[part]
        values = sorted_tids[_ranges(rows[part] + 1, lengths)]
        offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int32)
        yield pa.RecordBatch.from_arrays(
            [pa.array(sorted_tids[rows[part]]), pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))],
            schema=TAIL_SCHEMA,
        )


def encode_tails(batches: Iterable[pa.RecordBatch], dictionary: pa.Array) -> Iterator[pa.RecordBatch]:
    """mapInArrow kernel: (pid, tracks array<string>) playlists → (track_a, later) tails on dictionary ids.

    ``dictionary`` holds the kept track ids sorted ascending, so an id's position is its tid (the
    dictionary's ids follow string order). Pruned tracks (absent from it) are dropped before any pair
    exists; a playlist's tails need only its own rows, so no shuffle by playlist is needed here."""
    pending: list[pa.Array] = []
    size = 0

    def flush() -> Iterator[pa.RecordBatch]:
        lists = pa.chunked_array(pending, type=pending[0].type).combine_chunks()
        offsets = lists.offsets.to_numpy()
        owner = np.repeat(np.arange(len(lists), dtype=np.int64), np.diff(offsets))
        codes = pc.index_in(lists.values[offsets[0] : offsets[-1]], value_set=dictionary)
        kept = codes.is_valid().to_numpy(zero_copy_only=False)
        yield from playlist_tails(owner[kept], codes.drop_null().to_numpy())

    for batch in batches:
        tracks = batch.column(batch.schema.get_field_index("tracks"))
        if len(tracks) == 0:
            continue
        pending.append(tracks)
        size += len(tracks.values)
        if size >= ENCODE_LOOKUP_IDS:
            yield from flush()
            pending, size = [], 0
    if pending:
        yield from flush()
