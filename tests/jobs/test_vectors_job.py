"""The vectors job end to end on tiny bronze tables: both gold contracts, neighbours equal to a numpy
brute force over the written vectors, mbid from gold/spotify_mbid_xref once it exists, and a clear
error when ingest has not run."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from jobs.vectors import job as vectors_job
from lib import delta
from lib.config import ConfigError
from lib.errors import InputError
from lib.schemas import BRONZE, conform
from tests.support.configs import make_config
from tests.support.contracts import contract_columns

N_TRACKS = 60
SEEDS, TOP_K = 50, 5  # more seeds than tier-A tracks: some seeds lie outside tier A



def write_bronze(spark, warehouse):
    rng = np.random.default_rng(13)
    when = dt.datetime(2025, 1, 1)
    ids = [f"trk{i:03d}" for i in range(N_TRACKS)]
    popularity = rng.integers(0, 101, N_TRACKS)
    popularity[:6] = [55, 55, 55, 9, 70, 70]  # a popularity tie among seeds (id order decides the cut)
    features = []
    for track_id in ids:
        f = np.round(rng.random(9), 3).tolist()
        features.append((track_id, f[0], f[1], int(rng.integers(-1, 12)), -60 * f[2], int(f[3] > 0.5), f[4], f[5],
                         f[6], f[7], f[8], float(60 + 140 * rng.random()), 200_000, 4))
    features.append(("no_track", 0.5, 0.5, 3, -8.0, 1, 0.1, 0.1, 0.0, 0.1, 0.5, 120.0, 200_000, 4))
    features[5] = (ids[5], *features[4][1:])  # trk004 and trk005: equal vectors, tied for every seed
    tracks = [(t, f"Title {t}", "al1", ["ar1"], f"ISRC{t}", int(p), 200_000, False, 1, 1, when)
              for t, p in zip(ids, popularity)]
    tables = {
        "spotify_audio_features": features,
        "spotify_tracks": tracks,
        "spotify_artists": [("ar1", "Artist", 10, 50, ["pop"])],
        "spotify_albums": [("al1", "A", "album", None, "2011", "year", 2011, 10, None, 1)],
    }
    for name, rows in tables.items():
        frame = spark.createDataFrame(rows, BRONZE[name])
        delta.write(conform(frame, "bronze", name), delta.table_path(warehouse, "bronze", name))
    return dict(zip(ids, popularity.tolist()))


def brute_force(vectors: dict[str, list[float]], seeds: list[str], candidates: list[str], k: int):
    def unit(v):
        v = np.asarray(v, dtype=np.float64)
        n = np.linalg.norm(v)
        return v / n if n > 0 else v

    result = {}
    for seed in seeds:
        scored = [(round(float(unit(vectors[seed]) @ unit(vectors[c])), 9), c) for c in candidates if c != seed]
        result[seed] = [c for _, c in sorted(scored, key=lambda p: (-p[0], p[1]))[:k]]
    return result


@pytest.fixture(scope="module")
def first_run(spark, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vectors")
    cfg = make_config(tmp, {
        "similar.seed_count": SEEDS,
        "similar.top_k": TOP_K,
        "similar.block_rows": 7,  # several candidate blocks even here
        "similar.search_margin": 0,
    })
    popularity = write_bronze(spark, cfg.paths.warehouse)
    full_summary = vectors_job.run(spark, cfg)
    summary = full_summary["metrics"]
    return cfg, popularity, summary


def gold(spark, cfg, table):
    return delta.read(spark, delta.table_path(cfg.paths.warehouse, "gold", table))


def test_audio_vectors_contract_one_row_per_features_track(spark, first_run):
    cfg, popularity, summary = first_run
    frame = gold(spark, cfg, "audio_vectors")
    assert frame.columns[: len(contract_columns("gold", "audio_vectors"))] == contract_columns("gold", "audio_vectors")
    rows = {r.spotify_id: r for r in frame.collect()}
    assert len(rows) == N_TRACKS + 1 == summary["audio_vectors"]["rows"]
    assert rows["no_track"].popularity == 0 and rows["no_track"].tier == "C"
    assert all(r.mbid is None for r in rows.values())  # no gold/spotify_mbid_xref yet
    assert rows["trk010"].decade == 2010 and rows["trk010"].artist == "Artist"
    assert summary["audio_vectors"]["without_track"] == 1
    assert summary["audio_vectors"]["tier_A"] == sum(1 for p in popularity.values() if p >= 30)


def test_precomputed_similar_equals_brute_force(spark, first_run):
    cfg, _, summary = first_run
    vectors = {r.spotify_id: r for r in gold(spark, cfg, "audio_vectors").collect()}
    expected_seeds = sorted(vectors, key=lambda t: (-vectors[t].popularity, t))[:SEEDS]
    candidates = sorted(t for t, r in vectors.items() if r.tier == "A")
    expected = brute_force({t: r.vector for t, r in vectors.items()}, expected_seeds, candidates, TOP_K)

    frame = gold(spark, cfg, "precomputed_similar")
    assert frame.columns[:4] == contract_columns("gold", "precomputed_similar")
    got: dict[str, list[tuple[int, str]]] = {}
    for r in frame.collect():
        got.setdefault(r.seed_spotify_id, []).append((r.rank, r.similar_spotify_id))
    assert sorted(got) == sorted(expected_seeds)
    for seed, pairs in got.items():
        assert [rank for rank, _ in sorted(pairs)] == list(range(1, TOP_K + 1))
        assert [c for _, c in sorted(pairs)] == expected[seed], seed
    assert summary["precomputed_similar"]["seeds"] == SEEDS
    assert any(vectors[s].tier != "A" for s in expected_seeds)
    tied = [seed for seed, pairs in expected.items() if "trk004" in pairs]
    assert tied and all(expected[s].index("trk005") == expected[s].index("trk004") + 1 for s in tied
                        if "trk005" in expected[s])
    assert summary["precomputed_similar"]["blocks"] > 1
    kernel = summary["precomputed_similar"]
    # each (seed, block) pair is proven exact exactly one way; with more seeds than tier-A tracks the
    # candidates are broadcast and each seed is searched once
    assert kernel["broadcast"] == "candidates"
    assert kernel["first_search"] + kernel["wider_search"] + kernel["full_scan"] == SEEDS


def test_second_run_with_xref_and_hybrid_vectors(spark, first_run):
    """gold/spotify_mbid_xref now exists, and neighbours are computed on hybrid vectors."""
    cfg, _, _ = first_run
    xref = spark.createDataFrame(
        [("trk001", "ISRCtrk001", "mbid-1", 1.0, "isrc_exact")],
        "spotify_id string, isrc string, mbid string, match_confidence double, match_method string",
    )
    delta.write(xref, delta.table_path(cfg.paths.warehouse, "gold", "spotify_mbid_xref"))
    full_summary = vectors_job.run(
        spark, cfg.with_overrides({"similar.seed_count": 3, "vectors.hybrid": True, "similar.vector": "hybrid"})
    )
    summary = full_summary["metrics"]
    rows = {r.spotify_id: r for r in gold(spark, cfg, "audio_vectors").collect()}
    assert rows["trk001"].mbid == "mbid-1" and sum(r.mbid is not None for r in rows.values()) == 1
    assert full_summary["outputs"]["gold/audio_vectors"]["version"] == 1
    assert summary["audio_vectors"]["with_mbid"] == 1
    assert {len(r.hybrid_vector) for r in rows.values()} == {13 + 256}

    seeds = sorted(rows, key=lambda t: (-rows[t].popularity, t))[:3]
    candidates = sorted(t for t, r in rows.items() if r.tier == "A")
    expected = brute_force({t: r.hybrid_vector for t, r in rows.items()}, seeds, candidates, TOP_K)
    got: dict[str, list[tuple[int, str]]] = {}
    for r in gold(spark, cfg, "precomputed_similar").collect():
        got.setdefault(r.seed_spotify_id, []).append((r.rank, r.similar_spotify_id))
    assert {seed: [c for _, c in sorted(pairs)] for seed, pairs in got.items()} == expected
    kernel = summary["precomputed_similar"]
    assert kernel["broadcast"] == "seeds" and kernel["vector"] == "hybrid_vector"
    assert kernel["first_search"] + kernel["wider_search"] + kernel["full_scan"] == 3 * kernel["blocks"]


def test_hybrid_neighbours_need_hybrid_vectors(config):
    with pytest.raises(ConfigError, match="similar.vector"):  # checked with the config, before Spark starts
        config.with_overrides({"similar.vector": "hybrid"})


def test_missing_bronze_names_the_table(spark, config):
    with pytest.raises(InputError, match="spotify_audio_features: run ingest first"):
        vectors_job.run(spark, config)
