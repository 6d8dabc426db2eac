"""graph: artist similarity, track communities and components, inferred artist genres.

Reads bronze ``spotify_playlist_tracks``, ``spotify_tracks``, ``spotify_artists`` and gold
``cooccurrence_top``; writes, committed together:

- ``gold/artist_similarity``: playlist co-occurrence of primary artists (transforms), scored like track
  pairs (N = qualifying playlists by cooccurrence.min/max_playlist_size, c(artist) = qualifying
  playlists holding any track of the artist), pairs held by ≥ graph.artist_min_cooccurrence playlists,
  ranks 1..graph.artist_top_k for the graph.artist_count most popular artists.
- ``gold/artist_genres_inferred``: Spotify genres as they are, and for artists without any, genres voted
  by their top-K similar artists (transforms.genre_votes).
- ``gold/track_clusters``: weighted label propagation (lib.graph) on the cooccurrence_top graph.
- ``gold/track_components``: its connected components.

Steps, each saved under paths.work with a marker so a rerun resumes after the last finished one (the job
frame's ``Run.step``): ``artist_sets`` → ``artist_dictionary`` → ``artist_pairs`` →
``artist_neighbours`` (all artists' top-K) → ``track_graph`` (dictionary + int edges) → ``clusters`` →
``components`` → the four tables staged and committed together.
"""

from __future__ import annotations

import math
from typing import Any

from pyspark.sql import DataFrame, Observation
from pyspark.sql import functions as F

from jobs.cooccurrence import kernels
from jobs.cooccurrence import transforms as pairs
from jobs.cooccurrence.job import MAX_TRACK_IDS, PAIRS_PER_TASK
from jobs.graph import transforms
from lib.errors import JobError
from lib.graph import Graph
from lib.job import Input, JobSpec, Run
from lib.spark import observed_counts

INPUTS: dict[str, tuple[str, ...]] = {
    "bronze/spotify_playlist_tracks": ("playlist_id", "track_id"),
    "bronze/spotify_tracks": ("track_id", "artist_ids"),
    "bronze/spotify_artists": ("artist_id", "popularity", "followers", "genres"),
    "gold/cooccurrence_top": ("track_id", "neighbor_id", "score"),
}
HINTS = {"bronze": "run ingest first", "gold": "run cooccurrence first"}
OUTPUTS = ("artist_similarity", "artist_genres_inferred", "track_clusters", "track_components")
SUMMARY_COUNTS = (
    "playlists_qualifying", "artists_in_playlists", "artists_kept", "artist_pairs_unpruned",
    "artist_pairs_generated", "artist_pairs_kept", "artist_pair_partitions", "artist_neighbour_rows",
    "tracks", "edges", "clusters", "iterations", "converged", "components")

SETS_DDL = "pid string, tracks array<string>"
DICTIONARY_DDL = "tid int, track_id string, playlist_count long"
NEIGHBOURS_DDL = (
    "artist_id string, similar_artist_id string, rank int, cooccurrence_count long, pmi_score double, "
    "jaccard_score double, score double, llr_score double"
)
VERTICES_DDL = "tid int, track_id string"
EDGES_DDL = "src int, dst int, weight double"
LABELS_DDL = "id long, label long, iteration int"
COMPONENTS_DDL = "id long, component long"


class Steps:
    """The job's steps on one frame ``Run``; intermediate results live in the run's work folder."""

    def __init__(self, run: Run) -> None:
        assert run.spark is not None
        self.run = run
        self.g = run.config.graph
        self.co = run.config.cooccurrence
        self.broadcast = bool(self.co.broadcast_dictionary)
        self.partitions = int(self.g.partitions) or int(run.config.spark.shuffle_partitions)

    def input(self, table: str) -> DataFrame:
        return self.run.input(table)

    def graph(self, name: str) -> Graph:
        edges = self.run.read_work("track_graph/edges", EDGES_DDL)
        return Graph(
            None, edges, self.run.work.path("checkpoints", name), self.partitions,
            phase=self.run.timed, broadcast_vertices=int(self.g.broadcast_max_vertices),
        )

    # -- artist similarity ------------------------------------------------------------------------

    def artist_sets(self) -> dict[str, Any]:
        rows = self.input("bronze/spotify_playlist_tracks").where(
            F.col("playlist_id").isNotNull() & F.col("track_id").isNotNull())
        primary = transforms.primary_artists(self.input("bronze/spotify_tracks"))
        sets = transforms.playlist_artist_sets(rows, primary, self.co.min_playlist_size, self.co.max_playlist_size)
        observed = Observation("graph_artist_sets")
        size = F.size("tracks").cast("long")
        self.run.save_work("artist_sets", sets.observe(
            observed,
            F.count(F.lit(1)).alias("playlists_qualifying"),
            F.coalesce(F.sum(size * (size - 1) / 2).cast("long"), F.lit(0)).alias("artist_pairs_unpruned"),
        ))
        return observed_counts(observed, ("playlists_qualifying", "artist_pairs_unpruned"))

    def artist_dictionary(self) -> dict[str, Any]:
        observed = Observation("graph_artists")
        minimum = self.g.artist_min_cooccurrence
        marginals = pairs.track_marginals(self.run.read_work("artist_sets", SETS_DDL)).observe(
            observed,
            F.count(F.lit(1)).alias("artists_in_playlists"),
            F.count_if(F.col("playlist_count") >= minimum).alias("artists_kept"),
        )
        self.run.save_work("artist_dictionary", pairs.track_dictionary(marginals, minimum))
        metrics = observed_counts(observed, ("artists_in_playlists", "artists_kept"))
        if metrics["artists_kept"] > MAX_TRACK_IDS:
            raise JobError(f"graph: {metrics['artists_kept']} kept artists exceed the int32 dictionary")
        return metrics

    def artist_pairs(self, partitions: int) -> dict[str, Any]:
        generated, counted = Observation("graph_artist_tails"), Observation("graph_artist_pairs")
        tails = transforms.artist_pair_tails(
            self.run.read_work("artist_sets", SETS_DDL), self.run.read_work("artist_dictionary", DICTIONARY_DDL),
            self.broadcast,
        ).observe(generated, F.coalesce(F.sum(F.size("later").cast("long")), F.lit(0)).alias("artist_pairs_generated"))
        counts = pairs.count_pairs(tails, self.g.artist_min_cooccurrence, partitions)
        self.run.save_work("artist_pairs", counts.observe(counted, F.count(F.lit(1)).alias("artist_pairs_kept")))
        return {**observed_counts(generated, ("artist_pairs_generated",)),
                **observed_counts(counted, ("artist_pairs_kept",)), "artist_pair_partitions": partitions}

    def artist_neighbours(self, playlists_total: int) -> dict[str, Any]:
        observed = Observation("graph_artist_neighbours")
        neighbours = transforms.artist_neighbours(
            self.run.read_work("artist_pairs", kernels.PAIR_COUNT_DDL),
            self.run.read_work("artist_dictionary", DICTIONARY_DDL),
            playlists_total, self.g.artist_top_k, self.broadcast,
        )
        self.run.save_work(
            "artist_neighbours", neighbours.observe(observed, F.count(F.lit(1)).alias("artist_neighbour_rows")))
        return observed_counts(observed, ("artist_neighbour_rows",))

    # -- track graph ------------------------------------------------------------------------------

    def track_graph(self) -> dict[str, Any]:
        edges = transforms.track_edges(self.input("gold/cooccurrence_top"))
        self.run.save_work("track_graph/named", edges)
        named = self.run.read_work("track_graph/named", "track_a string, track_b string, weight double")
        observed_vertices, observed_edges = Observation("graph_vertices"), Observation("graph_edges")
        dictionary = transforms.vertex_dictionary(named).observe(
            observed_vertices, F.count(F.lit(1)).alias("tracks"))
        self.run.save_work("track_graph/vertices", dictionary)
        vertices = self.run.read_work("track_graph/vertices", VERTICES_DDL)
        encoded = transforms.encode_edges(named, vertices, self.broadcast)
        self.run.save_work("track_graph/edges", encoded.observe(observed_edges, F.count(F.lit(1)).alias("edges")))
        return {**observed_counts(observed_vertices, ("tracks",)), **observed_counts(observed_edges, ("edges",))}

    def clusters(self) -> dict[str, Any]:
        graph = self.graph("clusters")
        labels = graph.labelPropagation(self.g.max_iterations, "weight", self.g.convergence_fraction)
        self.run.save_work("clusters", labels)
        rounds = graph.history["labelPropagation"]
        return {
            "clusters": self.run.read_work("clusters", LABELS_DDL).select("label").distinct().count(),
            "iterations": len(rounds),
            "converged": graph.converged["labelPropagation"],
            "rounds": rounds,
        }

    def components(self) -> dict[str, Any]:
        graph = self.graph("components")
        self.run.save_work("components", graph.connectedComponents())
        written = self.run.read_work("components", COMPONENTS_DDL)
        return {
            "components": written.select("component").distinct().count(),
            "component_rounds": graph.history["connectedComponents"],
        }

    # -- outputs ----------------------------------------------------------------------------------

    def tables(self) -> dict[str, DataFrame]:
        """The four gold tables from the saved steps (contract columns first)."""
        artists = transforms.artists_once(self.input("bronze/spotify_artists"))
        neighbours = self.run.read_work("artist_neighbours", NEIGHBOURS_DDL)
        seeds = transforms.popular_artists(artists, self.g.artist_count)
        votes = transforms.genre_votes(neighbours, artists, self.g.min_genre_confidence)
        vertices = self.run.read_work("track_graph/vertices", VERTICES_DDL)
        return {
            "artist_similarity": transforms.artist_similarity(neighbours, seeds),
            "artist_genres_inferred": transforms.artist_genres(artists, votes),
            "track_clusters": transforms.clusters_table(
                self.run.read_work("clusters", LABELS_DDL), vertices, self.broadcast),
            "track_components": transforms.components_table(
                self.run.read_work("components", COMPONENTS_DDL), vertices, self.broadcast),
        }


def pair_partitions(configured: int, unpruned: int, floor: int) -> int:
    """Counting tasks: as configured, else one per PAIRS_PER_TASK possible pairs (the co-occurrence rule)."""
    return configured if configured > 0 else max(floor, math.ceil(unpruned / PAIRS_PER_TASK))


def build(run: Run) -> None:
    if run.input_rows("gold/cooccurrence_top") == 0 or run.input_rows("bronze/spotify_playlist_tracks") == 0:
        run.note("no co-occurrence neighbours or no playlist rows: the graph tables are written empty")
        run.metrics.update(dict.fromkeys(SUMMARY_COUNTS, 0))
        for name in OUTPUTS:
            run.write_empty(f"gold/{name}")
        return
    steps = Steps(run)
    config = run.config
    found = run.step("artist_sets", steps.artist_sets)
    found |= run.step("artist_dictionary", steps.artist_dictionary)
    partitions = pair_partitions(int(config.graph.artist_pair_partitions), found["artist_pairs_unpruned"],
                                 int(config.spark.shuffle_partitions))
    found |= run.step("artist_pairs", lambda: steps.artist_pairs(partitions))
    found |= run.step("artist_neighbours", lambda: steps.artist_neighbours(found["playlists_qualifying"]))
    found |= run.step("track_graph", steps.track_graph)
    found |= run.step("clusters", steps.clusters)
    found |= run.step("components", steps.components)
    for name, frame in steps.tables().items():
        with run.timed(f"publish_{name}"):
            run.write(f"gold/{name}", frame)
    run.metrics.update({key: found[key] for key in SUMMARY_COUNTS})
    run.metrics.update({
        "label_propagation": found["rounds"],
        "connected_components": found["component_rounds"],
        "shuffle_write_bytes": sum(d.get("shuffle_write_bytes", 0) for d in run.step_detail.values()),
    })


JOB = JobSpec(
    name="graph",
    body=build,
    inputs=tuple(Input(table, columns, hint=HINTS[table.split("/")[0]]) for table, columns in INPUTS.items()),
    outputs=tuple(f"gold/{name}" for name in OUTPUTS),
    config_sections=("graph", "cooccurrence"),
)


def run(spark: Any, config: Any) -> dict[str, Any]:
    """Notebook and test entry point: the job through the frame; returns the summary."""
    from lib.job import execute

    return execute(JOB, spark, config)
