"""cooccurrence end to end on tiny bronze tables: hand-computed metrics, the size boundaries, duplicates,
ties in the top-K, empty input, resume, and equality with a plain-Python reference on generated data."""

from __future__ import annotations

import math
import random

import pytest
from pyspark.sql import functions as F

from jobs.cooccurrence import job, transforms
from jobs.cooccurrence.reference import g_squared, naive_pair_table, reference_tables
from lib import delta
from lib.errors import InputError
from lib.schemas import BRONZE, conform
from tests.support.configs import make_config
from tests.support.contracts import contract_columns

PAIR_COLUMNS = contract_columns("gold", "playlist_cooccurrence")
TOP_COLUMNS = contract_columns("gold", "cooccurrence_top")
METRICS = ("pmi_score", "jaccard_score", "score", "llr_score")


def write_bronze(spark, config, rows: list[tuple[str | None, str | None]]) -> None:
    """bronze/spotify_playlist_tracks holding (playlist_id, track_id) rows in this order."""
    frame = spark.createDataFrame(
        [(playlist, position, track, None) for position, (playlist, track) in enumerate(rows)],
        BRONZE["spotify_playlist_tracks"],
    )
    uri = delta.table_path(config.paths.warehouse, "bronze", "spotify_playlist_tracks")
    delta.write(conform(frame, "bronze", "spotify_playlist_tracks"), uri)


def gold(spark, config, table: str) -> list[dict]:
    frame = delta.read(spark, delta.table_path(config.paths.warehouse, "gold", table))
    return [row.asDict() for row in frame.collect()]


def figures(summary: dict) -> dict:
    """The job's counts (summary metrics) plus the rows of its top table."""
    return {**summary["metrics"], "top_rows": summary["outputs"]["gold/cooccurrence_top"]["rows"]}


def run(spark, config, rows, **settings):
    config = config.with_overrides({f"cooccurrence.{key}": value for key, value in settings.items()})
    write_bronze(spark, config, rows)
    summary = figures(job.run(spark, config))
    return summary, gold(spark, config, "playlist_cooccurrence"), gold(spark, config, "cooccurrence_top")


def playlist(name: str, *tracks: str) -> list[tuple[str, str]]:
    return [(name, track) for track in tracks]


# ------------------------------------------------------------------------------------------------
# Hand-computed figures


TINY = [
    *playlist("p1", "A", "B", "A", "C"),  # A twice: counts once
    *playlist("p2", "A", "B"),
    *playlist("p3", "A", "B", "D"),
    *playlist("p4", "C", "D"),
    *playlist("p5", "A", "C"),
    *playlist("p6", "E"),  # 1 track: below min_playlist_size 2, so E is in no qualifying playlist
    *playlist("p7", *(f"F{i}" for i in range(11))),  # 11 tracks: above max_playlist_size 10
    ("p8", None),  # a row without a track: counted, belongs to no set
]
TINY_SETTINGS = {"min_playlist_size": 2, "max_playlist_size": 10, "min_cooccurrence": 2}


@pytest.fixture(scope="module")
def tiny(spark, tmp_path_factory):
    config = make_config(tmp_path_factory.mktemp("cooc_tiny"))
    return run(spark, config, TINY, **TINY_SETTINGS)


def test_hand_computed_pmi_jaccard_score_llr(tiny):
    # Qualifying: p1 {A,B,C}, p2 {A,B}, p3 {A,B,D}, p4 {C,D}, p5 {A,C}: N = 5,
    # c(A) = 4, c(B) = 3, c(C) = 3, c(D) = 2; c(A,B) = 3 (p1 p2 p3), c(A,C) = 2 (p1 p5), every other pair 1.
    summary, pairs, _ = tiny
    by_pair = {(p["track_a"], p["track_b"]): p for p in pairs}
    assert set(by_pair) == {("A", "B"), ("A", "C")}
    ab, ac = by_pair["A", "B"], by_pair["A", "C"]
    assert ab["cooccurrence_count"] == 3 and ac["cooccurrence_count"] == 2
    assert ab["pmi_score"] == pytest.approx(math.log2(1.25))  # 3·5 / (4·3)
    assert ac["pmi_score"] == pytest.approx(math.log2(10 / 12))  # 2·5 / (4·3)
    assert ab["jaccard_score"] == pytest.approx(3 / 4)  # 3 / (4 + 3 − 3)
    assert ac["jaccard_score"] == pytest.approx(2 / 5)  # 2 / (4 + 3 − 2)
    assert ab["score"] == pytest.approx(0.6 * (math.log2(1.25) + 5) / 15 + 0.4 * 0.75)
    assert ac["score"] == pytest.approx(0.6 * (math.log2(10 / 12) + 5) / 15 + 0.4 * 0.4)
    # A,B: k11 = 3, k12 = 4 − 3 = 1, k21 = 3 − 3 = 0, k22 = 5 − 4 − 3 + 3 = 1; rows 4, 1; columns 3, 2.
    # G² = 2·(3·ln(3·5/(4·3)) + 1·ln(1·5/(4·2)) + 0 + 1·ln(1·5/(1·2)))
    assert ab["llr_score"] == pytest.approx(2 * (3 * math.log(1.25) + math.log(0.625) + math.log(2.5)))
    # A,C: k11 = 2, k12 = 2, k21 = 1, k22 = 0; rows 4, 1; columns 3, 2.
    assert ac["llr_score"] == pytest.approx(2 * (2 * math.log(10 / 12) + 2 * math.log(10 / 8) + math.log(5 / 3)))
    assert summary["playlists_qualifying"] == 5
    assert summary["tracks"] == 4 and summary["tracks_kept"] == 4
    # Pairs generated from the kept tracks: p1 3, p2 1, p3 3, p4 1, p5 1.
    assert summary["pairs_generated"] == 9
    assert summary["pairs_kept"] == 2
    assert summary["input_rows"] == len(TINY) and summary["rows_without_ids"] == 1


def test_top_holds_both_directions_in_contract_order(tiny):
    _, _, top = tiny
    assert list(top[0]) == [*TOP_COLUMNS, "llr_score"]
    got = sorted((row["track_id"], row["rank"], row["neighbor_id"]) for row in top)
    # A: B (score 0.51) before C (0.35); B and C have A only.
    assert got == [("A", 1, "B"), ("A", 2, "C"), ("B", 1, "A"), ("C", 1, "A")]


def test_pair_table_follows_contract_and_orders_ids(tiny):
    _, pairs, _ = tiny
    assert list(pairs[0]) == PAIR_COLUMNS
    assert all(p["track_a"] < p["track_b"] for p in pairs)


def test_tracks_without_a_qualifying_playlist_are_absent(tiny):
    _, pairs, top = tiny
    mentioned = {p["track_a"] for p in pairs} | {p["track_b"] for p in pairs} | {t["track_id"] for t in top}
    assert not any(track == "E" or track.startswith("F") for track in mentioned)


def test_llr_matches_g_squared_and_is_zero_under_independence(spark):
    frame = spark.createDataFrame([(1, 1, 1, 1), (3, 1, 0, 1), (10, 0, 0, 5)], "k11 long, k12 long, k21 long, k22 long")
    values = frame.select(
        transforms.log_likelihood_ratio(*(F.col(c).cast("double") for c in ("k11", "k12", "k21", "k22")))
    ).collect()
    assert values[0][0] == pytest.approx(0.0, abs=1e-12)
    assert values[1][0] == pytest.approx(2 * (3 * math.log(1.25) + math.log(0.625) + math.log(2.5)))
    # Perfect association: 2·(10·ln(15/10) + 5·ln(15/5)).
    assert values[2][0] == pytest.approx(2 * (10 * math.log(1.5) + 5 * math.log(3)))
    assert g_squared(10, 0, 0, 5) == pytest.approx(values[2][0])


# ------------------------------------------------------------------------------------------------
# Boundaries, ties, empty input


def test_playlist_size_boundaries_use_distinct_tracks(spark, config):
    t = [f"T{i:03d}" for i in range(501)]
    rows = [
        *playlist("size4", *t[:4]),
        *playlist("size5", *t[:5]),
        *playlist("size500", *t[:500]),
        *playlist("size501", *t[:501]),
        *playlist("dup4", t[0], t[0], t[1], t[2], t[3]),  # 5 rows, 4 distinct tracks
        *playlist("dup5", t[10], t[10], t[11], t[12], t[13], t[14]),  # 6 rows, 5 distinct tracks
    ]
    summary, pairs, _ = run(spark, config, rows, min_cooccurrence=2)  # sizes: the defaults 5 and 500
    # Qualifying: size5, size500, dup5. Pairs inside t0..t4 (size5 + size500) and t10..t14 (size500 + dup5)
    # are in 2 of them; any wrongly qualifying playlist would lift some of them to 3.
    assert summary["playlists_qualifying"] == 3
    expected = {(a, b) for group in (t[0:5], t[10:15]) for i, a in enumerate(group) for b in group[i + 1 :]}
    assert {(p["track_a"], p["track_b"]) for p in pairs} == expected
    assert {p["cooccurrence_count"] for p in pairs} == {2}
    assert all(p["jaccard_score"] == pytest.approx(1.0) for p in pairs)  # c(t) = 2: a duplicate counts once
    assert all(p["pmi_score"] == pytest.approx(math.log2(1.5)) for p in pairs)  # 2·3 / (2·2)


def test_top_k_is_exact_and_breaks_ties_by_neighbour_id(spark, config):
    rows = [*playlist("m1", "x", "m"), *playlist("m2", "x", "m"), *playlist("m3", "x", "m")]
    for neighbour in ("n2", "n10", "n1"):  # tied metrics; string order n1 < n10 < n2
        rows += [*playlist(f"{neighbour}-a", "x", neighbour), *playlist(f"{neighbour}-b", "x", neighbour)]
    _, pairs, top = run(spark, config, rows, min_playlist_size=2, min_cooccurrence=2, top_k=3)
    assert len(pairs) == 4
    x = sorted((row["rank"], row["neighbor_id"]) for row in top if row["track_id"] == "x")
    # m: same pmi as the n's, higher jaccard (3/9 > 2/9), so first; then the tie n1, n10 (n2 cut at k = 3).
    assert x == [(1, "m"), (2, "n1"), (3, "n10")]
    assert sorted(row["track_id"] for row in top if row["track_id"] != "x") == ["m", "n1", "n10", "n2"]


def test_empty_input_gives_empty_tables(spark, config):
    summary, pairs, top = run(spark, config, [])
    assert pairs == [] and top == []
    assert summary["playlists_qualifying"] == 0 and summary["pairs_kept"] == 0 and summary["top_rows"] == 0
    for table in ("playlist_cooccurrence", "cooccurrence_top"):
        assert delta.exists(delta.table_path(config.paths.warehouse, "gold", table))


def test_missing_bronze_is_an_input_error(spark, config):
    with pytest.raises(InputError, match="run ingest first"):
        job.run(spark, config)


# ------------------------------------------------------------------------------------------------
# Generated data: the job (and the naive plan) against the plain-Python reference


def generated_rows(seed: int, playlists: int = 400, tracks: int = 150) -> list[tuple[str, str]]:
    """Playlists of 1..40 rows drawn with Zipf-like popularity, repeats included; ids in random order."""
    rng = random.Random(seed)
    names = [f"{rng.getrandbits(40):010x}" for _ in range(tracks)]
    weights = [1 / (rank + 1) for rank in range(tracks)]
    rows = []
    for index in range(playlists):
        size = rng.randint(1, 40)
        rows += [(f"pl{index}", track) for track in rng.choices(names, weights, k=size)]
    return rows


GENERATED_SETTINGS = {"min_playlist_size": 3, "max_playlist_size": 30, "min_cooccurrence": 2, "top_k": 5}


def assert_same_pairs(got: list[dict], expected: list[dict]) -> None:
    got_by_pair = {(p["track_a"], p["track_b"]): p for p in got}
    expected_by_pair = {(p["track_a"], p["track_b"]): p for p in expected}
    assert got_by_pair.keys() == expected_by_pair.keys()
    for key, want in expected_by_pair.items():
        have = got_by_pair[key]
        assert have["cooccurrence_count"] == want["cooccurrence_count"], key
        for metric in METRICS:
            # The job's entropy form of the LLR subtracts terms of size N·ln N: ~1e-12 of absolute noise.
            tolerance = 1e-9 if metric == "llr_score" else 1e-12
            assert have[metric] == pytest.approx(want[metric], rel=1e-9, abs=tolerance), (key, metric)


def ranking(top: list[dict]) -> list[tuple[str, int, str]]:
    return sorted((row["track_id"], row["rank"], row["neighbor_id"]) for row in top)


def test_job_equals_reference_on_generated_playlists(spark, config):
    rows = generated_rows(seed=7)
    summary, pairs, top = run(spark, config, rows, **GENERATED_SETTINGS)
    want_pairs, want_top, counts = reference_tables(rows, **GENERATED_SETTINGS)
    assert len(want_pairs) > 1000  # the data makes real work
    assert_same_pairs(pairs, want_pairs)
    assert ranking(top) == ranking(want_top)
    for key, value in counts.items():
        assert summary[key] == value, key


def test_chunked_run_resumes_after_a_failure_and_equals_reference(spark, config, monkeypatch):
    """3 playlist-hash chunks, shuffle joins instead of broadcasts, LLR ranking; the first run dies
    while publishing, the second picks up every finished step from the work folder."""
    rows = generated_rows(seed=3)
    settings = {**GENERATED_SETTINGS, "rank_by": "llr"}
    config = config.with_overrides({f"cooccurrence.{key}": value for key, value in {
        **settings, "chunks": 3, "broadcast_dictionary": False}.items()})
    write_bronze(spark, config, rows)

    def fail(self, playlists_total):
        raise RuntimeError("simulated failure while publishing")

    with monkeypatch.context() as patch:
        patch.setattr(job.Steps, "publish", fail)
        with pytest.raises(RuntimeError, match="simulated"):
            job.run(spark, config)
    summary = figures(job.run(spark, config))
    assert summary["resumed_steps"] == [
        "playlists", "dictionary", "counts/chunk-00000", "counts/chunk-00001", "counts/chunk-00002", "combined"
    ]
    want_pairs, want_top, counts = reference_tables(rows, **settings)
    assert_same_pairs(gold(spark, config, "playlist_cooccurrence"), want_pairs)
    assert ranking(gold(spark, config, "cooccurrence_top")) == ranking(want_top)
    for key, value in counts.items():
        assert summary[key] == value, key


@pytest.mark.parametrize("rank_by", ["pmi", "jaccard"])
def test_top_neighbours_orders_by_the_chosen_metric(spark, rank_by):
    rows = generated_rows(seed=11)
    want_pairs, want_top, _ = reference_tables(rows, **{**GENERATED_SETTINGS, "rank_by": rank_by})
    frame = spark.createDataFrame(want_pairs, "track_a string, track_b string, cooccurrence_count long, "
                                              "pmi_score double, jaccard_score double, score double, llr_score double")
    top = [row.asDict() for row in transforms.top_neighbours(frame, 5, rank_by).collect()]
    assert ranking(top) == ranking(want_top)


def test_naive_plan_equals_reference(spark):
    rows = generated_rows(seed=7)
    frame = spark.createDataFrame(rows, "playlist_id string, track_id string")
    got = [row.asDict() for row in naive_pair_table(frame, 3, 30, 2).collect()]
    want, _, _ = reference_tables(rows, **GENERATED_SETTINGS)
    assert_same_pairs(got, want)
