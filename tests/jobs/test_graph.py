"""The graph job end to end: hand-computed artist metrics, ranks and genre votes on tiny bronze tables
(cooccurrence run first for gold/cooccurrence_top), and on a generated dump (sample → ingest →
cooccurrence → graph) equality with a plain-Python reference of artist similarity written from the
contract, components equal to networkx, one cluster per track."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from itertools import combinations

import networkx as nx
import pytest

from jobs.cooccurrence import job as cooccurrence_job
from jobs.graph import job as graph_job
from lib import delta
from lib.errors import InputError
from lib.schemas import BRONZE, GOLD, conform
from tests.support.configs import make_config


def contract_columns(table: str) -> list[str]:
    return [part.split(" ")[0] for part in GOLD[table].split(", ")]


def write_bronze(spark, warehouse: str, tables: dict[str, list[tuple]]) -> None:
    for name, rows in tables.items():
        frame = spark.createDataFrame(rows, BRONZE[name])
        delta.write(conform(frame, "bronze", name), delta.table_path(warehouse, "bronze", name))


def gold(spark, config, table: str) -> list[dict]:
    frame = delta.read(spark, delta.table_path(config.paths.warehouse, "gold", table))
    return [row.asDict() for row in frame.collect()]


def score(count: int, count_a: int, count_b: int, n: int) -> tuple[float, float, float]:
    """(pmi, jaccard, score) by the contract's formulas."""
    pmi = math.log2(count * n / (count_a * count_b))
    jaccard = count / (count_a + count_b - count)
    return pmi, jaccard, 0.6 * min(max((pmi + 5) / 15, 0.0), 1.0) + 0.4 * jaccard


# ------------------------------------------------------------------------------------------------
# Tiny, hand-computed


def track(track_id: str, *artists: str, popularity: int = 50) -> tuple:
    return (track_id, track_id.upper(), "al", list(artists), None, popularity, 200_000, False, 1, 1, None)


TRACKS = [track("x1", "X"), track("x2", "X", "Y"), track("y1", "Y"), track("z1", "Z"), track("w1", "W"),
          track("v1", "V", "X")]
ARTISTS = [  # (artist_id, name, followers, popularity, genres)
    ("X", "x", 900, 80, ["dance pop", "pop"]),
    ("Y", "y", 100, 60, ["pop"]),
    ("Z", "z", 500, 60, ["hip hop", "rap", "hip hop"]),  # a genre listed twice counts once
    ("W", "w", 500, 60, []),  # ties Z on popularity and followers: id order puts W first
    ("V", "v", 10, 5, None),
]
PLAYLISTS = {
    "p1": ["x1", "x2", "y1"],  # artists {X, Y}: two tracks of X still count X-Y once
    "p2": ["x1", "y1", "z1"],
    "p3": ["x2", "y1"],
    "p4": ["z1", "w1"],
    "p5": ["x1", "z1", "v1"],
    "p6": ["y1"],  # one track: below min_playlist_size
    "p7": ["x1", "x2"],  # qualifies (N, c(X)) but holds one artist: no pair, no X-X pair
}
# Qualifying: p1 p2 p3 p4 p5 p7 → N = 6; c(X) = 5 (p1 p2 p3 p5 p7), c(Y) = 3, c(Z) = 3, c(W) = 1, c(V) = 1.
N = 6
MARGINS = {"X": 5, "Y": 3, "Z": 3, "W": 1, "V": 1}
COUNTS = {("X", "Y"): 3, ("X", "Z"): 2, ("Y", "Z"): 1, ("W", "Z"): 1, ("V", "X"): 1, ("V", "Z"): 1}
TINY_SETTINGS = {
    "cooccurrence.min_playlist_size": 2, "cooccurrence.max_playlist_size": 10, "cooccurrence.min_cooccurrence": 1,
    "graph.artist_min_cooccurrence": 1, "graph.artist_top_k": 2, "graph.artist_count": 3,
    "graph.min_genre_confidence": 0.2,
}


@pytest.fixture(scope="module")
def tiny(spark, tmp_path_factory):
    base = tmp_path_factory.mktemp("graph_tiny")
    config = make_config(base, TINY_SETTINGS)
    rows = [(p, i, t, None) for p, tracks in PLAYLISTS.items() for i, t in enumerate(tracks)]
    write_bronze(spark, config.paths.warehouse, {
        "spotify_playlist_tracks": rows, "spotify_tracks": TRACKS, "spotify_artists": ARTISTS})
    cooccurrence_job.run(spark, config)
    summary = graph_job.run(spark, config)["metrics"]
    return config, summary, {name: gold(spark, config, name) for name in graph_job.OUTPUTS}


def expected_neighbours(k: int) -> dict[str, list[tuple[str, float]]]:
    scored = defaultdict(list)
    for (a, b), count in COUNTS.items():
        value = score(count, MARGINS[a], MARGINS[b], N)[2]
        scored[a].append((b, value, count))
        scored[b].append((a, value, count))
    return {a: [(b, s) for b, s, _ in sorted(rows, key=lambda r: (-r[1], -r[2], r[0]))[:k]]
            for a, rows in scored.items()}


def test_artist_similarity_hand_computed(tiny):
    _, summary, tables = tiny
    rows = tables["artist_similarity"]
    assert list(rows[0])[:7] == contract_columns("artist_similarity")
    assert summary["playlists_qualifying"] == N
    # Seeds: X (80), then W and Z (60, 500 followers; W < Z by id); Y (60, 100 followers) is 4th.
    assert {r["artist_id"] for r in rows} == {"X", "W", "Z"}
    neighbours = expected_neighbours(2)
    for artist in ("X", "W", "Z"):
        got = sorted((r["rank"], r["similar_artist_id"], r["score"]) for r in rows if r["artist_id"] == artist)
        want = [(rank, b, s) for rank, (b, s) in enumerate(neighbours[artist], start=1)]
        assert [g[:2] for g in got] == [w[:2] for w in want], artist
        assert [g[2] for g in got] == pytest.approx([w[2] for w in want], rel=1e-12)
    xy = next(r for r in rows if (r["artist_id"], r["similar_artist_id"]) == ("X", "Y"))
    pmi, jaccard, _ = score(3, 5, 3, N)
    assert xy["cooccurrence_count"] == 3
    assert xy["pmi_score"] == pytest.approx(pmi) and xy["jaccard_score"] == pytest.approx(jaccard)


def test_artist_similarity_is_symmetric_without_self_pairs_and_ranks_from_one(tiny):
    _, _, tables = tiny
    rows = tables["artist_similarity"]
    assert all(r["artist_id"] != r["similar_artist_id"] for r in rows)
    by_pair = {(r["artist_id"], r["similar_artist_id"]): r for r in rows}
    both = [(a, b) for a, b in by_pair if (b, a) in by_pair]
    assert ("W", "Z") in both  # W and Z rank each other; X is not in Z's top 2 (V, W are)
    for a, b in both:
        for column in ("cooccurrence_count", "pmi_score", "jaccard_score", "score"):
            assert by_pair[a, b][column] == by_pair[b, a][column]
    ranks = defaultdict(list)
    for r in rows:
        ranks[r["artist_id"]].append(r["rank"])
    assert all(sorted(v) == list(range(1, len(v) + 1)) for v in ranks.values())


def test_genres_pass_through_and_votes(tiny):
    _, _, tables = tiny
    rows = {(r["artist_id"], r["genre"]): (r["confidence"], r["source"]) for r in tables["artist_genres_inferred"]}
    assert len(rows) == len(tables["artist_genres_inferred"])  # one row per (artist, genre)
    spotify = {key for key, (conf, source) in rows.items() if source == "spotify"}
    assert spotify == {("X", "dance pop"), ("X", "pop"), ("Y", "pop"), ("Z", "hip hop"), ("Z", "rap")}
    assert all(rows[key][0] == 1.0 for key in spotify)
    # V's top 2: Z, X. Z spreads its score over {hip hop, rap}, X over {dance pop, pop}; confidences are
    # shares of V's total neighbour score: hip hop = rap > dance pop = pop > 0.2; top 3 by name on ties.
    vz, vx = score(1, 1, 3, N)[2], score(1, 1, 5, N)[2]
    total = vz + vx
    assert {k: v for k, v in rows.items() if k[0] == "V"} == {
        ("V", "hip hop"): (pytest.approx(vz / 2 / total), "inferred"),
        ("V", "rap"): (pytest.approx(vz / 2 / total), "inferred"),
        ("V", "dance pop"): (pytest.approx(vx / 2 / total), "inferred"),
    }
    # W's only neighbour is Z.
    assert {k: v for k, v in rows.items() if k[0] == "W"} == {
        ("W", "hip hop"): (pytest.approx(0.5), "inferred"), ("W", "rap"): (pytest.approx(0.5), "inferred")}


def test_every_track_of_the_graph_has_one_cluster_and_one_component(tiny, spark):
    config, summary, tables = tiny
    top = gold(spark, config, "cooccurrence_top")
    reference = nx.Graph((r["track_id"], r["neighbor_id"]) for r in top)
    clusters, components = tables["track_clusters"], tables["track_components"]
    assert list(clusters[0]) == contract_columns("track_clusters")
    assert sorted(r["spotify_id"] for r in clusters) == sorted(reference.nodes)
    assert {r["spotify_id"]: r["component_id"] for r in components} == {
        v: min(part) for part in nx.connected_components(reference) for v in part}
    sizes = Counter(r["cluster_id"] for r in clusters)
    members = {r["spotify_id"] for r in clusters}
    for r in clusters:
        assert r["cluster_size"] == sizes[r["cluster_id"]] and r["cluster_id"] in members
        assert 0 <= r["iteration_converged"] <= summary["iterations"]
    assert summary["clusters"] == len(sizes) and summary["components"] == len(set(
        r["component_id"] for r in components))


def test_a_failed_run_resumes_from_its_saved_steps_with_the_same_tables(spark, tmp_path, tiny, monkeypatch):
    _, _, first = tiny
    config = make_config(tmp_path, TINY_SETTINGS)
    rows = [(p, i, t, None) for p, tracks in PLAYLISTS.items() for i, t in enumerate(tracks)]
    write_bronze(spark, config.paths.warehouse, {
        "spotify_playlist_tracks": rows, "spotify_tracks": TRACKS, "spotify_artists": ARTISTS})
    cooccurrence_job.run(spark, config)

    def fail(self):
        raise RuntimeError("simulated failure while publishing")

    with monkeypatch.context() as patch:
        patch.setattr(graph_job.Steps, "tables", fail)
        with pytest.raises(RuntimeError, match="simulated"):
            graph_job.run(spark, config)
    for name in graph_job.OUTPUTS:
        assert not delta.exists(delta.table_path(config.paths.warehouse, "gold", name))
    summary = graph_job.run(spark, config)["metrics"]
    assert summary["resumed_steps"] == ["artist_sets", "artist_dictionary", "artist_pairs", "artist_neighbours",
                                        "track_graph", "clusters", "components"]
    for name in graph_job.OUTPUTS:
        assert sorted(gold(spark, config, name), key=repr) == sorted(first[name], key=repr), name


def test_missing_cooccurrence_top_is_an_input_error(spark, config):
    write_bronze(spark, config.paths.warehouse, {
        "spotify_playlist_tracks": [], "spotify_tracks": TRACKS, "spotify_artists": ARTISTS})
    with pytest.raises(InputError, match="cooccurrence_top: run cooccurrence first"):
        graph_job.run(spark, config)


# ------------------------------------------------------------------------------------------------
# A generated dump, against a plain-Python reference


def reference_artist_similarity(playlist_rows, tracks, artists, min_size, max_size, min_count, top_k, count):
    """gold/artist_similarity from Python rows, by the contract (shares no code with the job)."""
    primary = {}
    for row in tracks:
        if row["artist_ids"]:
            primary[row["track_id"]] = min(primary.get(row["track_id"], row["artist_ids"][0]), row["artist_ids"][0])
    playlists = defaultdict(set)
    for row in playlist_rows:
        if row["playlist_id"] is not None and row["track_id"] is not None:
            playlists[row["playlist_id"]].add(row["track_id"])
    qualifying = [tracks_ for tracks_ in playlists.values() if min_size <= len(tracks_) <= max_size]
    n = len(qualifying)
    single, both = Counter(), Counter()
    for tracks_ in qualifying:
        present = sorted({primary[t] for t in tracks_ if t in primary})
        single.update(present)
        both.update(combinations(present, 2))
    scored = defaultdict(list)
    for (a, b), c in both.items():
        if c >= min_count:
            pmi, jaccard, value = score(c, single[a], single[b], n)
            scored[a].append((b, c, pmi, jaccard, value))
            scored[b].append((a, c, pmi, jaccard, value))
    best = {}
    for artist in artists:
        current = best.get(artist["artist_id"])
        key = (artist["popularity"] or -1, artist["followers"] or -1)
        if current is None or key > current:
            best[artist["artist_id"]] = key
    seeds = sorted(best, key=lambda a: (-best[a][0], -best[a][1], a))[:count]
    result = {}
    for artist in seeds:
        ranked = sorted(scored.get(artist, []), key=lambda r: (-r[4], -r[1], r[0]))[:top_k]
        for rank, (b, c, pmi, jaccard, value) in enumerate(ranked, start=1):
            result[artist, b] = (rank, c, pmi, jaccard, value)
    return result


@pytest.fixture(scope="module")
def generated(pipeline_run):
    """The session's pipeline warehouse (tests/support/warehouse.py: sample → ingest → cooccurrence → graph
    among the others) and the metrics of its graph run."""
    from lib.runs import history

    config = pipeline_run.snapshot_config()
    summary = next(r for r in reversed(history(config)) if r["job"] == "graph" and r["status"] == "succeeded")
    return config, summary["metrics"]


def bronze_rows(spark, config, table, columns):
    frame = delta.read(spark, delta.table_path(config.paths.warehouse, "bronze", table)).select(*columns)
    return [row.asDict() for row in frame.collect()]


def test_generated_artist_similarity_equals_reference(spark, generated):
    config, summary = generated
    co, g = config.cooccurrence, config.graph
    want = reference_artist_similarity(
        bronze_rows(spark, config, "spotify_playlist_tracks", ("playlist_id", "track_id")),
        bronze_rows(spark, config, "spotify_tracks", ("track_id", "artist_ids")),
        bronze_rows(spark, config, "spotify_artists", ("artist_id", "popularity", "followers")),
        co.min_playlist_size, co.max_playlist_size, g.artist_min_cooccurrence, g.artist_top_k, g.artist_count,
    )
    got = {(r["artist_id"], r["similar_artist_id"]): r for r in gold(spark, config, "artist_similarity")}
    assert len(want) > 300  # real work: most seeds have a full top-K
    assert got.keys() == want.keys()
    for key, (rank, count, pmi, jaccard, value) in want.items():
        row = got[key]
        assert (row["rank"], row["cooccurrence_count"]) == (rank, count), key
        assert (row["pmi_score"], row["jaccard_score"], row["score"]) == pytest.approx((pmi, jaccard, value), rel=1e-12)
    assert summary.get("resumed_steps", []) == []


def test_generated_graph_tables_cover_the_cooccurrence_graph(spark, generated):
    config, summary = generated
    top = gold(spark, config, "cooccurrence_top")
    reference = nx.Graph((r["track_id"], r["neighbor_id"]) for r in top)
    components = {r["spotify_id"]: r["component_id"] for r in gold(spark, config, "track_components")}
    assert components == {v: min(part) for part in nx.connected_components(reference) for v in part}
    clusters = gold(spark, config, "track_clusters")
    assert sorted(r["spotify_id"] for r in clusters) == sorted(reference.nodes)
    assert summary["tracks"] == reference.number_of_nodes() and summary["edges"] == reference.number_of_edges()
    assert 1 < summary["clusters"] < summary["tracks"]
    genres = gold(spark, config, "artist_genres_inferred")
    inferred = [r for r in genres if r["source"] == "inferred"]
    assert inferred, "the sample leaves 18 % of artists without genres: some get votes"
    by_artist = defaultdict(list)
    for r in inferred:
        by_artist[r["artist_id"]].append(r["confidence"])
    assert all(len(v) <= 3 and sum(v) <= 1 + 1e-9 and min(v) > config.graph.min_genre_confidence
               for v in by_artist.values())
    spotify_artists = {r["artist_id"] for r in genres if r["source"] == "spotify"}
    assert not spotify_artists & set(by_artist)
