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


# ------------------------------------------------------------------------------------------------
# encode_tails: playlists of string ids → (track_a, later) on dictionary ids


PLAYLIST_SCHEMA = pa.schema([("pid", pa.int64()), ("tracks", pa.list_(pa.string()))])


def expected_tails(playlists: list[list[str]], dictionary: list[str]) -> Counter:
    """(a, later) rows by hand: each playlist's kept tracks as sorted positions in the dictionary."""
    position = {track: i for i, track in enumerate(dictionary)}
    rows: Counter = Counter()
    for tracks in playlists:
        kept = sorted(position[t] for t in set(tracks) if t in position)
        for i, a in enumerate(kept[:-1]):
            rows[a, tuple(kept[i + 1 :])] += 1
    return rows


def tails_of(batches) -> Counter:
    rows: Counter = Counter()
    for batch in batches:
        assert batch.schema == kernels.TAIL_SCHEMA
        for a, later in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()):
            rows[a, tuple(later)] += 1
    return rows


def test_encode_tails_drops_pruned_tracks_and_short_playlists():
    dictionary = pa.array(["a", "b", "c", "d", "e"])  # sorted: position = tid
    batch = pa.RecordBatch.from_pydict(
        {"pid": [1, 2, 3, 4], "tracks": [["c", "a", "z", "b"], ["e"], ["d", "x", "b"], ["y", "z"]]},
        schema=PLAYLIST_SCHEMA,
    )
    got = tails_of(kernels.encode_tails(iter([batch]), dictionary))
    # {a, b, c} → (0, [1, 2]), (1, [2]); {b, d} → (1, [3]); {e} and {} make no pair.
    assert got == Counter({(0, (1, 2)): 1, (1, (2,)): 1, (1, (3,)): 1})


def test_encode_tails_equals_the_hand_computed_tails_across_lookups_and_output_batches(monkeypatch):
    rng = random.Random(5)
    vocabulary = [f"t{i:04d}" for i in range(300)]
    dictionary = sorted(rng.sample(vocabulary, 200))
    playlists = [rng.sample(vocabulary, rng.randint(0, 40)) for _ in range(500)]
    batches = [
        pa.RecordBatch.from_pydict({"pid": list(range(i, i + 50)), "tracks": playlists[i : i + 50]},
                                   schema=PLAYLIST_SCHEMA)
        for i in range(0, len(playlists), 50)
    ]
    # Small limits: several index_in calls per task and several output batches per call.
    monkeypatch.setattr(kernels, "ENCODE_LOOKUP_IDS", 2_000)
    monkeypatch.setattr(kernels, "TAIL_BATCH_VALUES", 1_000)
    got = list(kernels.encode_tails(iter(batches), pa.array(dictionary)))
    assert len(got) > len(batches)
    assert tails_of(got) == expected_tails(playlists, dictionary)
    # The pairs they carry are the pairs the counting kernel then counts.
    pairs = Counter(itertools.chain.from_iterable(
        itertools.combinations(sorted(dictionary.index(t) for t in set(p) if t in dictionary), 2) for p in playlists
    ))
    assert as_counter(kernels.count_tail_pairs(iter(got), min_count=1)) == pairs


def test_encode_tails_of_no_rows_yields_nothing():
    empty = pa.RecordBatch.from_pydict({"pid": [], "tracks": []}, schema=PLAYLIST_SCHEMA)
    assert list(kernels.encode_tails(iter([empty]), pa.array(["a"]))) == []
    assert list(kernels.encode_tails(iter([]), pa.array([], pa.string()))) == []
