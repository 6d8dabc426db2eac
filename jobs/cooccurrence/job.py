"""cooccurrence: bronze/spotify_playlist_tracks → gold/playlist_cooccurrence and gold/cooccurrence_top.

Definitions (the contract):
- a playlist's tracks are the distinct non-NULL track_ids of its rows; it qualifies when their number lies
  in [cooccurrence.min_playlist_size, cooccurrence.max_playlist_size]. N = qualifying playlists, c(t) =
  qualifying playlists holding t (once per playlist however often t is listed).
- pairs (a, b), a < b in string order, with c(a,b) ≥ cooccurrence.min_cooccurrence;
  pmi = log2(c(a,b)·N / (c(a)·c(b))), jaccard = c(a,b) / (c(a) + c(b) − c(a,b)),
  score = 0.6·clamp((pmi + 5) / 15, 0, 1) + 0.4·jaccard, llr = Dunning's G² (transforms.log_likelihood_ratio).
- cooccurrence_top: per track, partners from both sides ranked by cooccurrence.rank_by desc, count desc,
  neighbour id asc; ranks 1..cooccurrence.top_k.

Steps, each written to the work folder with a marker so a rerun resumes after the last finished one
(the job frame's ``Run.step``): ``playlists`` (qualifying track sets) → ``dictionary`` (c(t), int ids of kept tracks) →
``counts`` (pair counts, per chunk of playlists when cooccurrence.chunks > 1, then ``combined``) → both
gold tables (metrics and top-K on int ids, decoded to string ids) staged and committed together.

Rows whose playlist_id or track_id is NULL belong to no playlist track set; they are counted in the
summary (``rows_without_ids``) and logged, not silently lost.
"""

from __future__ import annotations

import math
from typing import Any

from pyspark.sql import DataFrame, Observation
from pyspark.sql import functions as F

from jobs.cooccurrence import kernels, transforms
from lib.errors import JobError
from lib.job import Input, JobSpec, Run
from lib.spark import observed_counts

SOURCE = "bronze/spotify_playlist_tracks"
PAIRS = "gold/playlist_cooccurrence"
TOP = "gold/cooccurrence_top"
SOURCE_COLUMNS = ("playlist_id", "track_id")

# Task sizing when cooccurrence.pair_partitions = 0: possible pairs per counting task (8 bytes each,
# sorted in place: at most ~64 MiB of keys per task).
PAIRS_PER_TASK = 8_000_000
# Dictionary ids are int32 and pairs are packed as two of them into an int64 (kernels.pack).
MAX_TRACK_IDS = 2**31 - 1

PLAYLISTS_DDL = "pid long, tracks array<string>"
DICTIONARY_DDL = "tid int, track_id string, playlist_count long"
SUMMARY_COUNTS = ("input_rows", "rows_without_ids", "playlists_qualifying", "playlist_tracks_qualifying", "tracks",
                  "tracks_kept", "pairs_unpruned", "pairs_generated", "pair_counts_written", "pairs_kept")


def _tasks(configured: int, amount: int, per_task: int, floor: int) -> int:
    if configured > 0:
        return configured
    return max(floor, math.ceil(amount / per_task))


def _metrics(keys: tuple[str, ...], *observations: Observation) -> dict[str, int]:
    """The observed counts ``keys`` (0 for an observation Spark skipped, lib.spark.observed_counts)."""
    values = dict.fromkeys(keys, 0)
    for observation in observations:
        values.update(observed_counts(observation))
    return values


class Steps:
    """The job's steps on one frame ``Run``; intermediate results live in the run's work folder."""

    def __init__(self, run: Run) -> None:
        assert run.spark is not None
        self.run = run
        self.co = run.config.cooccurrence
        self.broadcast = bool(self.co.broadcast_dictionary)

    def playlists(self) -> dict[str, Any]:
        """Qualifying playlists as (pid, distinct tracks); pid is a per-run unique long."""
        source, sets = Observation("cooccurrence_source"), Observation("cooccurrence_playlists")
        has_ids = F.col("playlist_id").isNotNull() & F.col("track_id").isNotNull()
        rows = self.run.input(SOURCE).observe(
            source, F.count(F.lit(1)).alias("input_rows"), F.count_if(~has_ids).alias("rows_without_ids")
        ).where(has_ids)
        size = F.size("tracks").cast("long")
        playlists = transforms.playlist_track_sets(rows, self.co.min_playlist_size, self.co.max_playlist_size)
        playlists = playlists.observe(
            sets,
            F.count(F.lit(1)).alias("playlists_qualifying"),
            F.coalesce(F.sum(size), F.lit(0)).alias("playlist_tracks_qualifying"),
            F.coalesce(F.sum(size * (size - 1) / 2).cast("long"), F.lit(0)).alias("pairs_unpruned"),
        )
        self.run.save_work("playlists", playlists.select(F.monotonically_increasing_id().alias("pid"), "tracks"))
        return _metrics(
            ("input_rows", "rows_without_ids", "playlists_qualifying", "playlist_tracks_qualifying", "pairs_unpruned"),
            source, sets,
        )

    def dictionary(self) -> dict[str, Any]:
        tracks = Observation("cooccurrence_tracks")
        marginals = transforms.track_marginals(self.run.read_work("playlists", PLAYLISTS_DDL)).observe(
            tracks,
            F.count(F.lit(1)).alias("tracks"),
            F.count_if(F.col("playlist_count") >= self.co.min_cooccurrence).alias("tracks_kept"),
        )
        self.run.save_work("dictionary", transforms.track_dictionary(marginals, self.co.min_cooccurrence))
        metrics = _metrics(("tracks", "tracks_kept"), tracks)
        if metrics["tracks_kept"] > MAX_TRACK_IDS:
            raise JobError(f"cooccurrence: {metrics['tracks_kept']} kept tracks exceed the int32 dictionary")
        return metrics

    def counts(self, chunk: int, partitions: int) -> dict[str, Any]:
        """Pair counts of one chunk of the playlists (all of them when chunks = 1)."""
        chunks = int(self.co.chunks)
        playlists = self.run.read_work("playlists", PLAYLISTS_DDL)
        if chunks > 1:
            playlists = playlists.where(F.pmod(F.xxhash64("pid"), F.lit(chunks)) == chunk)
        generated = Observation(f"cooccurrence_generated_{chunk}")
        counted = Observation(f"cooccurrence_counted_{chunk}")
        dictionary = self.run.read_work("dictionary", DICTIONARY_DDL)
        if self.broadcast:
            ids = self.run.spark.sparkContext.broadcast(transforms.dictionary_ids(dictionary))
            tails = transforms.encoded_tails(playlists, ids)
        else:
            tails = transforms.pair_tails(transforms.encode_playlists(playlists, dictionary, broadcast=False))
        tails = tails.observe(
            generated, F.coalesce(F.sum(F.size("later").cast("long")), F.lit(0)).alias("pairs_generated")
        )
        # Chunks hold partial counts: a pair rare in one chunk may pass the threshold over all of them.
        threshold = self.co.min_cooccurrence if chunks == 1 else 1
        counts = transforms.count_pairs(tails, threshold, partitions).observe(
            counted, F.count(F.lit(1)).alias("pair_counts")
        )
        self.run.save_work(chunk_step(chunk), counts)
        return {**_metrics(("pairs_generated", "pair_counts"), generated, counted), "partitions": partitions}

    def combined(self, partitions: int) -> dict[str, Any]:
        """chunks > 1: the chunks' partial counts summed, totals ≥ min_cooccurrence kept."""
        chunks = [chunk_step(chunk) for chunk in range(int(self.co.chunks))]
        partials = self.run.read_work(chunks, kernels.PAIR_COUNT_DDL)
        kept = Observation("cooccurrence_kept")
        totals = transforms.combine_pair_counts(partials, self.co.min_cooccurrence, partitions)
        self.run.save_work("combined", totals.observe(kept, F.count(F.lit(1)).alias("pairs_kept")))
        return _metrics(("pairs_kept",), kept)

    def final_counts(self) -> DataFrame:
        step = chunk_step(0) if int(self.co.chunks) == 1 else "combined"
        return self.run.read_work(step, kernels.PAIR_COUNT_DDL)

    def publish(self, playlists_total: int) -> None:
        """Stage both gold tables: metrics and top-K on int ids, then decoded to string ids."""
        dictionary = self.run.read_work("dictionary", DICTIONARY_DDL)
        scored = transforms.pair_scores(
            transforms.with_marginals(self.final_counts(), dictionary, self.broadcast), F.lit(playlists_total)
        )
        with self.run.timed("publish_pairs"):
            self.run.write(PAIRS, transforms.decode(scored, dictionary, ("track_a", "track_b"), self.broadcast))
        with self.run.timed("publish_top"):
            top = transforms.top_neighbours(scored, self.co.top_k, self.co.rank_by)
            self.run.write(TOP, transforms.decode(top, dictionary, ("track_id", "neighbor_id"), self.broadcast))


def chunk_step(chunk: int) -> str:
    return f"counts/chunk-{chunk:05d}"


def build(run: Run) -> None:
    co = run.config.cooccurrence
    if run.input_rows(SOURCE) == 0:
        run.note(f"{SOURCE} is empty: both tables are written empty")
        run.metrics.update(dict.fromkeys(SUMMARY_COUNTS, 0))
        run.write_empty(PAIRS)
        run.write_empty(TOP)
        return
    steps = Steps(run)
    found = run.step("playlists", steps.playlists)
    found |= run.step("dictionary", steps.dictionary)
    floor = int(run.config.spark.shuffle_partitions)
    partitions = _tasks(int(co.pair_partitions), found["pairs_unpruned"] // int(co.chunks), PAIRS_PER_TASK, floor)
    chunk_metrics = [
        run.step(chunk_step(chunk), lambda chunk=chunk: steps.counts(chunk, partitions))
        for chunk in range(int(co.chunks))
    ]
    found["pairs_generated"] = sum(m["pairs_generated"] for m in chunk_metrics)
    found["pair_counts_written"] = sum(m["pair_counts"] for m in chunk_metrics)
    if int(co.chunks) == 1:
        found["pairs_kept"] = found["pair_counts_written"]
    else:
        found |= run.step("combined", lambda: steps.combined(partitions))
    steps.publish(found["playlists_qualifying"])

    run.left_out(SOURCE, "NULL playlist_id or track_id", found["rows_without_ids"])
    run.metrics.update({key: found[key] for key in SUMMARY_COUNTS})
    run.metrics.update({
        "chunks": int(co.chunks), "pair_partitions": partitions,
        "shuffle_write_bytes": sum(d.get("shuffle_write_bytes", 0) for d in run.step_detail.values()),
    })


JOB = JobSpec(
    name="cooccurrence",
    body=build,
    inputs=(Input(SOURCE, SOURCE_COLUMNS),),
    outputs=(PAIRS, TOP),
    config_sections=("cooccurrence",),
)


def run(spark: Any, config: Any) -> dict[str, Any]:
    """Notebook and test entry point: the job through the frame; returns the summary."""
    from lib.job import execute

    return execute(JOB, spark, config)
