"""The numpy pair-counting kernels on hand-made Arrow batches (no Spark), against collections.Counter."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from jobs.cooccurrence import kernels

TAIL_SCHEMA = pa.schema([("track_a", pa.int32()), ("later", pa.list_(pa.int32()))])


def tails_batch(rows: list[tuple[int, list[int]]]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {"track_a": [a for a, _ in rows], "later": [later for _, later in rows]}, schema=TAIL_SCHEMA
    )


def as_counter(batches) -> Counter:
    table = pa.Table.from_batches(list(batches), schema=kernels.PAIR_COUNT_SCHEMA)
    return Counter({(a, b): c for a, b, c in zip(*(table.column(i).to_pylist() for i in range(3)))})


def test_counts_tail_pairs_across_batches_and_drops_rare_ones():
    batches = [
        tails_batch([(1, [2, 3]), (2, [3])]),  # playlist {1, 2, 3}
        tails_batch([(1, [2]), (7, [2_000_000_000])]),  # {1, 2}; a large id keeps its 32 bits
        tails_batch([(1, [3]), (1, [2, 3])]),  # {1, 3}, and {1, 2, 3} again without its (2, 3) row
    ]
    got = as_counter(kernels.count_tail_pairs(iter(batches), min_count=2))
    # (1,2): 3 playlists, (1,3): 3, (2,3): 1, (7, 2e9): 1.
    assert got == Counter({(1, 2): 3, (1, 3): 3})
    every = as_counter(kernels.count_tail_pairs(iter(batches), min_count=1))
    assert every[7, 2_000_000_000] == 1 and every[2, 3] == 1


def test_no_batches_give_no_rows():
    assert list(kernels.count_tail_pairs(iter([]), min_count=1)) == []
    assert list(kernels.count_tail_pairs(iter([tails_batch([])]), min_count=1)) == []


def test_bounded_buffer_gives_the_same_counts():
    rng = random.Random(5)
    playlists = [sorted(rng.sample(range(60), rng.randint(2, 12))) for _ in range(300)]
    expected = Counter(itertools.chain.from_iterable(itertools.combinations(p, 2) for p in playlists))
    counter = kernels.PairCounter(max_pending=50)  # compacts many times
    for tracks in playlists:
        pairs = list(itertools.combinations(tracks, 2))
        counter.add(kernels.pack(np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])))
    keys, counts = counter.result(min_count=1)
    track_a, track_b = kernels.unpack(keys)
    assert dict(zip(zip(track_a.tolist(), track_b.tolist()), counts.tolist())) == dict(expected)
    assert list(keys) == sorted(keys)


@pytest.mark.parametrize("max_pending", [kernels.MAX_PENDING_KEYS, 3])
def test_sums_partial_counts(max_pending, monkeypatch):
    monkeypatch.setattr(kernels, "MAX_PENDING_KEYS", max_pending)
    schema = kernels.PAIR_COUNT_SCHEMA
    chunk_1 = pa.RecordBatch.from_pydict({"track_a": [1, 1, 4], "track_b": [2, 3, 5], "cooccurrence_count": [2, 1, 1]},
                                         schema=schema)
    chunk_2 = pa.RecordBatch.from_pydict({"track_a": [1, 4, 1], "track_b": [2, 5, 9], "cooccurrence_count": [1, 1, 1]},
                                         schema=schema)
    got = as_counter(kernels.sum_pair_counts(iter([chunk_1, chunk_2]), min_count=2))
    assert got == Counter({(1, 2): 3, (4, 5): 2})
