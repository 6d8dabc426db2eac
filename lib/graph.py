"""Graph algorithms as DataFrame iterations, under GraphFrames' names and output shapes.

The design names GraphFrames, but its JVM package comes from Maven (not reachable here; the
``graphframes-py`` wheel carries no jar). So the two algorithms the graph job needs are written the
way GraphFrames itself runs them — rounds of joins and aggregations over vertex and edge DataFrames
(the aggregateMessages / Pregel pattern), each round's state written to a checkpoint folder and read
back so the lineage (and the plan) stays one round long. Names and shapes follow GraphFrames:
``Graph(vertices, edges)`` with ``id`` / ``src``, ``dst``; ``labelPropagation`` → ``id, label``;
``connectedComponents`` → ``id, component``. A cluster with the GraphFrames jar switches in this module
only (``connectedComponents`` is GraphFrames' algorithm; GraphFrames' ``labelPropagation`` is
unweighted and keeps no convergence test, so it would give other communities).

- ``labelPropagation`` (weighted, synchronous, deterministic): every vertex starts with its own id as
  label; each round it takes the label with the largest sum of edge weights among its neighbours'
  labels, ties → the smallest label. Synchronous rounds make bipartite parts flip forever (an isolated
  pair swaps labels every round), so each vertex also votes for its current label with the weight of
  its weakest edge: the pair settles on the smaller label in one round. (In a one-off comparison on
  planted graphs of 8 × 60 vertices, voting with the strongest edge instead made vertices so sticky
  that NMI fell to 0.59–0.70 on the sparse ones, where the weakest edge gives 0.78–0.995.) Strongly
  tied vertices can still swap labels back and forth; a vertex whose winner is the label it held the
  round before last takes the smaller of that and its current label instead (on the real playlists of
  bench/graph.py --real, 11 tracks kept flipping through round 20 without this; with it the run
  converges in 17 rounds). Weights are summed as fixed-point integers (``WEIGHT_UNITS`` per unit), so a
  sum never depends on the order Spark adds in and equal sums are exactly equal: the result is the same
  for any partitioning. Stops after ``maxIter`` rounds or when fewer than ``convergenceFraction`` of the
  vertices changed label (none changed, with 0).
- ``connectedComponents``: the large-star / small-star rounds of Kiveris et al., "Connected Components in
  MapReduce and Beyond" (SoCC 2014), which GraphFrames implements: O(log² n) rounds where the min-label
  (hash-min) iteration needs as many rounds as the graph's diameter. ``component`` = the smallest vertex
  id of the component.

Vertex ids are non-NULL longs (the graph job passes dictionary ids whose order is the string order of the
track ids, so "smallest label" is the smallest track id). Edges are undirected; parallel edges merge
(largest weight), self-loops are dropped. The returned frames read the last checkpoint: consume them
before the checkpoint folder is removed.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F

from lib.delta import filesystem
from lib.spark import observed_counts
from lib.workdir import CODEC

# Fixed-point weights: 1e-9 resolution; weights up to MAX_WEIGHT keep any vertex's sum far inside a long.
WEIGHT_UNITS = 1_000_000_000
MAX_WEIGHT = 1_000.0
# Kiveris et al. prove O(log² n) rounds (log₂²(2³¹) ≈ 961); real graphs need a handful (5 at 1M edges in
# bench/graph.py). A run that reaches this bound has a bug, not a big graph.
MAX_COMPONENT_ROUNDS = 1_000
# Label propagation broadcasts the labels (16 bytes per vertex, collected on the driver) up to this many
# vertices; above, every round shuffles the votes (lib.graph._propagate).
BROADCAST_VERTICES = 10_000_000

Phase = Callable[[str], AbstractContextManager[Any]]


class Checkpoints:
    """Parquet snapshots of round states under one folder. Saving a state writes it, reads it back with
    the same schema (cutting the lineage) and deletes the state saved before it under the same name."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._fs, self._base = filesystem(root)
        self._latest: dict[str, str] = {}

    def save(self, frame: DataFrame, name: str, step: int) -> DataFrame:
        relative = posixpath.join(name, f"{step:05d}")
        frame.write.mode("overwrite").option("compression", CODEC).parquet(posixpath.join(self.root, relative))
        saved = frame.sparkSession.read.schema(frame.schema).parquet(posixpath.join(self.root, relative))
        previous = self._latest.get(name)
        if previous is not None:
            self._fs.delete_dir(posixpath.join(self._base, previous))
        self._latest[name] = relative
        return saved


def _fingerprint(lo: str, hi: str) -> list[Column]:
    """Aggregates that change when an edge set changes (count, sums of ends and of a hash per edge);
    decimal sums cannot overflow (Spark 4 fails on long overflow)."""
    def total(column: Column) -> Column:
        return F.coalesce(F.sum(column.cast("decimal(20,0)")), F.lit(0))

    return [
        F.count(F.lit(1)).alias("edges"),
        total(F.col(lo)).alias("lo_sum"),
        total(F.col(hi)).alias("hi_sum"),
        total(F.xxhash64(lo, hi)).alias("hash_sum"),
    ]


class Graph:
    """A graph of DataFrames: ``vertices(id long)`` (None: the ends of the edges) and
    ``edges(src long, dst long, …)``. ``checkpoint_dir`` holds the round states; ``partitions`` is the
    number of tasks per round (default: spark.sql.shuffle.partitions); label propagation broadcasts the
    labels while the graph has at most ``broadcast_vertices`` vertices (``_propagate``); ``phase(name)``
    wraps every round (the job passes a context manager that records the round's stage metrics)."""

    def __init__(
        self,
        vertices: DataFrame | None,
        edges: DataFrame,
        checkpoint_dir: str,
        partitions: int | None = None,
        phase: Phase | None = None,
        broadcast_vertices: int = BROADCAST_VERTICES,
    ) -> None:
        self.edges = edges
        self.spark = edges.sparkSession
        self.vertices = vertices if vertices is not None else self._endpoints()
        self.checkpoints = Checkpoints(checkpoint_dir)
        self.partitions = partitions or int(self.spark.conf.get("spark.sql.shuffle.partitions") or 8)
        self.phase: Phase = phase or (lambda name: nullcontext())
        self.broadcast_vertices = broadcast_vertices
        # Per algorithm, its last run: one entry per round and whether it met its stopping test (what the
        # job summary and bench/graph.py report).
        self.history: dict[str, list[dict[str, Any]]] = {}
        self.converged: dict[str, bool] = {}

    def _endpoints(self) -> DataFrame:
        ends = self.edges.select(F.col("src").alias("id")).union(self.edges.select(F.col("dst").alias("id")))
        return ends.distinct()

    def _undirected(self, weight: Column) -> DataFrame:
        """(lo, hi, weight) with lo < hi, one row per pair (largest weight), self-loops dropped."""
        return (
            self.edges.select(
                F.least("src", "dst").cast("long").alias("lo"),
                F.greatest("src", "dst").cast("long").alias("hi"),
                weight.alias("weight"),
            )
            .where(F.col("lo") != F.col("hi"))
            .groupBy("lo", "hi")
            .agg(F.max("weight").alias("weight"))
        )

    # -- label propagation ----------------------------------------------------------------------

    def labelPropagation(  # GraphFrames' names (camelCase)
        self, maxIter: int, weightCol: str | None = None, convergenceFraction: float = 0.0
    ) -> DataFrame:
        """(id, label, iteration): communities by weighted label propagation (module docstring);
        ``iteration`` is the last round that changed the vertex's label (0: it kept its own id)."""
        if maxIter < 1:
            raise ValueError(f"maxIter must be >= 1; got {maxIter}")
        if not 0.0 <= convergenceFraction < 1.0:
            raise ValueError(f"convergenceFraction must lie in [0, 1); got {convergenceFraction}")
        raw = F.col(weightCol).cast("double") if weightCol else F.lit(1.0)
        valid = raw.isNotNull() & ~F.isnan(raw) & (raw >= 0) & (raw <= MAX_WEIGHT)
        units = F.when(valid, F.round(raw * F.lit(WEIGHT_UNITS)).cast("long")).otherwise(F.lit(-1).cast("long"))
        pairs = self._undirected(units)
        checked = Observation("graph_lpa_edges")
        pairs = self.checkpoints.save(
            pairs.observe(checked, F.count(F.lit(1)).alias("edges"), F.count_if(F.col("weight") < 0).alias("bad")),
            "lpa-edges", 0,
        )
        found = observed_counts(checked, ("edges", "bad"))
        if found["bad"]:
            raise ValueError(
                f"edge column '{weightCol}' holds {found['bad']} NULL, NaN or negative weight(s) or weights above "
                f"{MAX_WEIGHT:g}"
            )
        arcs = pairs.select(F.col("lo").alias("src"), F.col("hi").alias("dst"), "weight").union(
            pairs.select(F.col("hi").alias("src"), F.col("lo").alias("dst"), "weight"))
        weakest = arcs.groupBy(F.col("src").alias("id")).agg(F.min("weight").alias("own_weight"))
        start = self.vertices.select(F.col("id").cast("long").alias("id")).join(weakest, on="id", how="left")
        counted = Observation("graph_lpa_vertices")
        state = self.checkpoints.save(
            start.select(
                "id",
                F.col("id").alias("label"),
                F.col("id").alias("earlier_label"),
                F.lit(0).alias("iteration"),
                F.coalesce("own_weight", F.lit(0).cast("long")).alias("own_weight"),
            ).observe(counted, F.count(F.lit(1)).alias("vertices")),
            "lpa", 0,
        )
        vertices = observed_counts(counted, ("vertices",))["vertices"]
        broadcast = vertices <= self.broadcast_vertices
        # Both directions, kept partitioned and sorted (never moved again): by destination when the labels
        # are broadcast, by source when they are joined by a shuffle (_propagate).
        side = "dst" if broadcast else "src"
        arcs = arcs.repartition(self.partitions, side).sortWithinPartitions(side)
        arcs = arcs.persist(StorageLevel.MEMORY_AND_DISK)
        rounds: list[dict[str, Any]] = []
        self.history["labelPropagation"] = rounds
        self.converged["labelPropagation"] = vertices == 0
        try:
            for iteration in range(1 if vertices else maxIter + 1, maxIter + 1):
                started = time.perf_counter()
                changes = Observation(f"graph_lpa_{iteration}")
                with self.phase(f"label_propagation_{iteration:02d}"):
                    updated = _propagate(state, arcs, iteration, broadcast, self.partitions).observe(
                        changes, F.count_if("changed").alias("changed")
                    )
                    state = self.checkpoints.save(updated.drop("changed"), "lpa", iteration)
                changed = observed_counts(changes, ("changed",))["changed"]
                rounds.append({
                    "iteration": iteration,
                    "changed": changed,
                    "changed_fraction": round(changed / vertices, 6),
                    "seconds": round(time.perf_counter() - started, 2),
                })
                if changed == 0 or changed < convergenceFraction * vertices:
                    self.converged["labelPropagation"] = True
                    break
        finally:
            arcs.unpersist()
        return state.select("id", "label", "iteration")

    # -- connected components -------------------------------------------------------------------

    def connectedComponents(self, maxIter: int = MAX_COMPONENT_ROUNDS) -> DataFrame:
        """(id, component): component = the smallest vertex id connected to the vertex."""
        edges = self._undirected(F.lit(1)).select("lo", "hi")
        fingerprint = Observation("graph_cc_0")
        edges = self.checkpoints.save(edges.observe(fingerprint, *_fingerprint("lo", "hi")), "cc", 0)
        previous = observed_counts(fingerprint, ("edges",))
        rounds: list[dict[str, Any]] = []
        self.history["connectedComponents"] = rounds
        self.converged["connectedComponents"] = True
        for iteration in range(1 if previous["edges"] else maxIter + 1, maxIter + 1):
            started = time.perf_counter()
            fingerprint = Observation(f"graph_cc_{iteration}")
            with self.phase(f"connected_components_{iteration:02d}"):
                edges = self.checkpoints.save(
                    _small_star(_large_star(edges)).observe(fingerprint, *_fingerprint("lo", "hi")), "cc", iteration
                )
            current = observed_counts(fingerprint, ("edges",))
            rounds.append({
                "iteration": iteration,
                "edges": int(current["edges"]),
                "seconds": round(time.perf_counter() - started, 2),
            })
            if current == previous:
                break
            previous = current
        else:
            if previous["edges"]:
                self.converged["connectedComponents"] = False
                raise RuntimeError(f"connectedComponents did not converge in {maxIter} rounds")
        # At the fixed point every component is a star around its smallest vertex: (center, member) edges.
        centers = edges.groupBy(F.col("hi").alias("id")).agg(F.min("lo").alias("center"))
        vertices = self.vertices.select(F.col("id").cast("long").alias("id"))
        return vertices.join(centers, on="id", how="left").select(
            "id", F.coalesce("center", "id").alias("component")
        )


def _propagate(state: DataFrame, arcs: DataFrame, iteration: int, broadcast: bool, partitions: int) -> DataFrame:
    """One synchronous round: (id, label, earlier_label, iteration, own_weight, changed).

    Messages (aggregateMessages): along each arc the source's label goes to the destination with the arc's
    weight; each vertex adds its own vote (current label, weakest edge's weight, and its bookkeeping
    columns, which only that row carries). Votes are summed per (vertex, label); the winner is the
    largest sum, then the smallest label (max of (sum, −label)). A winner that is the label the vertex
    held the round before last (a period-2 flip: two strongly tied vertices swapping labels) becomes the
    smaller of it and the current label, so both ends of the swap settle on the same label.

    With ``broadcast`` the arcs are partitioned by destination: the labels are broadcast to them and the
    own votes repartitioned the same way, so both sums run where the arcs are and a round moves only the
    vertex table (docs/benchmarks.md: ~2 MB instead of ~38 MB of shuffle per round at 1M edges).
    Without it (more vertices than fit a broadcast) the labels are shuffled to the arcs, partitioned by
    source, and the votes are shuffled to their destinations.
    """
    if broadcast:
        labels = F.broadcast(state.select(F.col("id").alias("src"), "label"))
        state = state.repartition(partitions, "id")
    else:
        labels = state.select(F.col("id").alias("src"), "label")
    neighbour_votes = arcs.join(labels, on="src", how="inner").select(
        F.col("dst").alias("id"),
        "label",
        F.col("weight").alias("votes"),
        F.lit(None).cast("int").alias("own_iteration"),
        F.lit(None).cast("long").alias("own_earlier"),
        F.lit(None).cast("long").alias("own_weight"),
    )
    own_votes = state.select(
        "id",
        "label",
        F.col("own_weight").alias("votes"),
        F.col("iteration").alias("own_iteration"),
        F.col("earlier_label").alias("own_earlier"),
        "own_weight",
    )
    tallies = neighbour_votes.unionByName(own_votes).groupBy("id", "label").agg(
        F.sum("votes").alias("votes"),
        F.max("own_iteration").alias("own_iteration"),
        F.max("own_earlier").alias("own_earlier"),
        F.max("own_weight").alias("own_weight"),
    )
    best = tallies.groupBy("id").agg(
        F.max(F.struct("votes", (-F.col("label")).alias("negated_label"))).alias("best"),
        F.max(F.when(F.col("own_iteration").isNotNull(), F.col("label"))).alias("current"),
        F.max("own_earlier").alias("earlier"),
        F.max("own_iteration").alias("current_iteration"),
        F.max("own_weight").alias("own_weight"),
    )
    winner = -F.col("best.negated_label")
    flips_back = (winner != F.col("current")) & (winner == F.col("earlier"))
    label = F.when(flips_back, F.least(winner, F.col("current"))).otherwise(winner)
    changed = label != F.col("current")
    return best.select(
        "id",
        label.alias("label"),
        F.col("current").alias("earlier_label"),
        F.when(changed, F.lit(iteration)).otherwise(F.col("current_iteration")).alias("iteration"),
        "own_weight",
        changed.alias("changed"),
    )


def _smaller_neighbours(edges: DataFrame) -> DataFrame:
    """(hi, smallest): for every vertex with a smaller neighbour, the smallest one."""
    return edges.groupBy("hi").agg(F.min("lo").alias("smallest"))


def _large_star(edges: DataFrame) -> DataFrame:
    """Every vertex u links its larger neighbours to m(u) = min(u, its neighbours). In edge terms: (lo, hi)
    becomes (m(lo), hi), and lo's neighbours smaller than lo are exactly the ``lo`` side of edges whose
    ``hi`` is lo."""
    smallest = _smaller_neighbours(edges).select(F.col("hi").alias("lo"), "smallest")
    # Duplicates are left in: small-star's min and final distinct absorb them, one shuffle fewer per round.
    return edges.join(smallest, on="lo", how="left").select(F.coalesce("smallest", "lo").alias("lo"), "hi")


def _small_star(edges: DataFrame) -> DataFrame:
    """Every vertex u with smaller neighbours links them and itself to the smallest of them, m: (lo, hi)
    becomes (m(hi), lo) (dropped when lo is m(hi)), and each such hi gets (m(hi), hi)."""
    smallest = _smaller_neighbours(edges)
    moved = (
        edges.join(smallest, on="hi", how="inner")
        .where(F.col("lo") != F.col("smallest"))
        .select(F.col("smallest").alias("lo"), F.col("lo").alias("hi"))
    )
    return moved.union(smallest.select(F.col("smallest").alias("lo"), "hi")).distinct()
