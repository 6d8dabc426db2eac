"""lib.graph on graphs with known answers (two cliques joined by a weak edge, a path, isolated pairs), a
planted-community graph (NMI with scikit-learn), exact agreement of the components with networkx, and a
plain-Python label propagation written from the definition (partitioning must not change the result)."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from itertools import pairwise

import networkx as nx
import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from lib.graph import WEIGHT_UNITS, Graph

EDGES_DDL = "src long, dst long, weight double"


def make_graph(spark, tmp_path, edges, vertices=None, partitions=None, name="g", **options):
    frame = spark.createDataFrame(edges, EDGES_DDL)
    vertex_frame = None if vertices is None else spark.createDataFrame([(v,) for v in vertices], "id long")
    return Graph(vertex_frame, frame, str(tmp_path / name), partitions, **options)


def labels(frame, column="label") -> dict[int, int]:
    return {row["id"]: row[column] for row in frame.collect()}


def clique(members, weight=1.0):
    return [(a, b, weight) for i, a in enumerate(members) for b in members[i + 1 :]]


def reference_propagation(edges, max_iter, fraction=0.0) -> tuple[dict[int, int], int]:
    """Synchronous weighted label propagation by the definition in lib.graph: each vertex takes the label
    with the largest weight sum among its neighbours' labels plus its own label weighted by its weakest
    edge, ties → the smallest label, a flip back to the label of the round before last → the smaller of
    it and the current one; parallel edges keep their largest weight."""
    weight: dict[tuple[int, int], int] = {}
    for a, b, w in edges:
        if a != b:
            key = (min(a, b), max(a, b))
            weight[key] = max(weight.get(key, 0), round(w * WEIGHT_UNITS))
    neighbours: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for (a, b), w in weight.items():
        neighbours[a].append((b, w))
        neighbours[b].append((a, w))
    label = {v: v for v in neighbours}
    earlier = dict(label)
    rounds = 0
    for iteration in range(1, max_iter + 1):
        rounds = iteration
        new = {}
        for v, around in neighbours.items():
            tally: Counter[int] = Counter()
            tally[label[v]] += min(w for _, w in around)
            for u, w in around:
                tally[label[u]] += w
            winner = min(tally, key=lambda candidate: (-tally[candidate], candidate))
            if winner != label[v] and winner == earlier[v]:  # flipping back: settle on the smaller
                winner = min(winner, label[v])
            new[v] = winner
        changed = sum(new[v] != label[v] for v in label)
        earlier, label = label, new
        if changed == 0 or changed < fraction * len(label):
            break
    return label, rounds


# ------------------------------------------------------------------------------------------------
# Known answers: one graph of disjoint parts, so one run of each algorithm answers every case


LEFT, RIGHT = [10, 3, 7, 1, 12], [4, 9, 2, 11, 6]  # two cliques, joined by a weak edge 12 - 4
PAIRS = [(21, 20, 0.4), (25, 28, 0.9), (40, 30, 0.1)]  # isolated pairs
LOOPED = [(53, 53, 5.0), (51, 53, 0.2), (53, 51, 0.5), (52, 53, 0.5)]  # a self-loop, parallel edges 51 - 53
SWAP = [(61, 62, 0.9), (61, 63, 0.5), (62, 64, 0.5)]  # 61 and 62 take each other's label in round 1
ALONE = 99  # a vertex without edges
KNOWN = [*clique(LEFT), *clique(RIGHT), (12, 4, 0.05), *PAIRS, *LOOPED, *SWAP]


@pytest.fixture(scope="module")
def known(spark, tmp_path_factory):
    vertices = sorted({v for a, b, _ in KNOWN for v in (a, b)} | {ALONE})
    graph = make_graph(spark, tmp_path_factory.mktemp("known"), KNOWN, vertices=vertices)
    clusters = {row["id"]: (row["label"], row["iteration"]) for row in graph.labelPropagation(20, "weight").collect()}
    components = labels(graph.connectedComponents(), "component")
    return graph, clusters, components


def test_two_cliques_joined_by_a_weak_edge_are_two_clusters_and_one_component(known):
    graph, clusters, components = known
    assert {v: clusters[v][0] for v in LEFT} == dict.fromkeys(LEFT, 1)
    assert {v: clusters[v][0] for v in RIGHT} == dict.fromkeys(RIGHT, 2)
    assert graph.converged["labelPropagation"]
    assert {v: components[v] for v in LEFT + RIGHT} == dict.fromkeys(LEFT + RIGHT, 1)


def test_isolated_pairs_settle_on_their_smaller_id_instead_of_swapping(known):
    _, clusters, components = known
    # (label, last round that changed it): the smaller end keeps its id, the other takes it in round 1.
    assert {v: clusters[v] for a, b, _ in PAIRS for v in (a, b)} == {
        20: (20, 0), 21: (20, 1), 25: (25, 0), 28: (25, 1), 30: (30, 0), 40: (30, 1),
    }
    assert {v: components[v] for a, b, _ in PAIRS for v in (a, b)} == {20: 20, 21: 20, 25: 25, 28: 25, 30: 30, 40: 30}


def test_self_loops_parallel_edges_and_lonely_vertices(known):
    _, clusters, components = known
    # 53's self-loop is dropped, its parallel edges to 51 count once with the larger weight (0.5), which
    # ties 52's edge: 53 takes the smaller label 51, and 52 (one edge, to 53) follows.
    assert {v: clusters[v][0] for v in (51, 52, 53)} == {51: 51, 52: 51, 53: 51}
    assert {v: components[v] for v in (51, 52, 53)} == {51: 51, 52: 51, 53: 51}
    assert clusters[ALONE] == (ALONE, 0) and components[ALONE] == ALONE


def test_a_flip_back_settles_on_the_smaller_label(known):
    _, clusters, _ = known
    # Round 1: 61 → 62 and 62 → 61 (their 0.9 edge beats their own 0.5 votes), 63 → 61, 64 → 62.
    # Round 2: 61's winner is 61 again, and 62's winner 62, the labels they held before round 1: both take
    # the smaller of it and their current label, 61 (62 keeps 61; plain voting would send it back to 62
    # and on to 61 again in round 3); 64 ties 61 and its own 62 → 61.
    assert {v: clusters[v] for v in (61, 62, 63, 64)} == {61: (61, 2), 62: (61, 1), 63: (61, 1), 64: (61, 2)}


def test_a_path_is_one_component(spark, tmp_path):
    order = list(range(100, 180))
    random.Random(5).shuffle(order)
    edges = [(a, b, 1.0) for a, b in pairwise(order)]
    graph = make_graph(spark, tmp_path, edges)
    assert labels(graph.connectedComponents(), "component") == dict.fromkeys(order, 100)
    # Large-star / small-star: far fewer rounds than the path's 79 hops (hash-min would need ~79).
    assert len(graph.history["connectedComponents"]) < 15


def test_convergence_fraction_stops_early_and_bad_weights_are_refused(spark, tmp_path):
    graph = make_graph(spark, tmp_path, clique(list(range(8))))
    graph.labelPropagation(20, "weight", convergenceFraction=0.9)
    # Round 1: every vertex but 0 takes label 0 (7 of 8 = 87.5 % < 90 %): stop.
    assert [r["changed"] for r in graph.history["labelPropagation"]] == [7]
    assert graph.converged["labelPropagation"]
    with pytest.raises(ValueError, match="'weight' holds 1 NULL, NaN or negative"):
        make_graph(spark, tmp_path, [(1, 2, 0.5), (2, 3, -0.1)], name="bad").labelPropagation(3, "weight")


def test_empty_graph(spark, tmp_path):
    graph = make_graph(spark, tmp_path, [])
    assert graph.labelPropagation(5, "weight").collect() == []
    assert graph.connectedComponents().collect() == []
    assert graph.converged == {"labelPropagation": True, "connectedComponents": True}


# ------------------------------------------------------------------------------------------------
# Generated graphs


def planted_graph(communities: int, size: int, p_in: float, p_out: float, seed: int):
    """A stochastic block model as co-occurrence scores: strong edges inside communities, weak ones
    between; vertex ids shuffled so that id order says nothing about the community."""
    rng = np.random.default_rng(seed)
    n = communities * size
    truth = np.repeat(np.arange(communities), size)
    ids = rng.permutation(n) * 7 + 3
    edges = []
    for i in range(n):
        for j in range(i + 1, n):
            same = truth[i] == truth[j]
            if rng.random() < (p_in if same else p_out):
                score = rng.uniform(0.35, 0.9) if same else rng.uniform(0.1, 0.5)
                edges.append((int(ids[i]), int(ids[j]), round(float(score), 6)))
    return edges, {int(v): int(c) for v, c in zip(ids, truth)}


def test_planted_communities_are_found(spark, tmp_path):
    edges, truth = planted_graph(communities=6, size=40, p_in=0.25, p_out=0.02, seed=3)
    graph = make_graph(spark, tmp_path, edges)
    found = labels(graph.labelPropagation(20, "weight", 0.001))
    vertices = sorted(truth)
    score = normalized_mutual_info_score([truth[v] for v in vertices], [found[v] for v in vertices])
    assert score >= 0.9


@pytest.mark.parametrize("broadcast_vertices", [0, 10_000], ids=["shuffled-votes", "broadcast-labels"])
def test_label_propagation_equals_the_definition_for_any_plan(spark, tmp_path, broadcast_vertices):
    rng = random.Random(11)
    # Weights repeat (0.25, 0.5), so equal vote sums, and the tie rule, are common.
    edges = [(rng.randrange(120), rng.randrange(120), round(rng.choice([0.25, 0.5, rng.random()]), 3))
             for _ in range(500)]
    expected, rounds = reference_propagation(edges, 20)
    graph = make_graph(spark, tmp_path, edges, partitions=3, broadcast_vertices=broadcast_vertices)
    assert labels(graph.labelPropagation(20, "weight")) == expected
    assert len(graph.history["labelPropagation"]) == rounds


def test_components_equal_networkx(spark, tmp_path):
    rng = random.Random(2)
    # Near the giant-component threshold (mean degree ~1.6): components of every size.
    edges = [(rng.randrange(400), rng.randrange(400), 1.0) for _ in range(330)] + [(500, 500, 1.0)]
    reference = nx.Graph()
    reference.add_nodes_from([500, 501])  # a self-loop-only vertex and a vertex without edges
    reference.add_edges_from((a, b) for a, b, _ in edges if a != b)
    expected = {v: min(part) for part in nx.connected_components(reference) for v in part}
    graph = make_graph(spark, tmp_path, edges, vertices=sorted(reference.nodes))
    found = labels(graph.connectedComponents(), "component")
    assert found == expected
    sizes = Counter(Counter(found.values()).values())
    assert sizes[1] >= 2 and max(sizes) > 50  # singletons and a large component
