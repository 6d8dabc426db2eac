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
(workdir.py): ``playlists`` (qualifying track sets) → ``dictionary`` (c(t), int ids of kept tracks) →
``counts`` (pair counts, per chunk of playlists when cooccurrence.chunks > 1, then ``combined``) → both
gold tables (metrics and top-K on int ids, decoded to string ids) staged and committed together.

Rows whose playlist_id or track_id is NULL belong to no playlist track set; they are counted in the
summary (``rows_without_ids``) and logged, not silently lost.
"""

from __future__ import annotations

import math
import posixpath
import time
from collections.abc import Callable
from typing import Any

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from jobs.cooccurrence import kernels, transforms
from jobs.cooccurrence.stage_metrics import phase
from jobs.cooccurrence.workdir import WorkDir, fingerprint
from lib import delta
from lib.config import Config
from lib.errors import JobError
from lib.log import get_logger
from lib.schemas import conform
from lib.spark import observed_counts

log = get_logger("cooccurrence")

SOURCE_TABLE = "spotify_playlist_tracks"
PAIRS_TABLE = "playlist_cooccurrence"
TOP_TABLE = "cooccurrence_top"
SOURCE_COLUMNS = ("playlist_id", "track_id")

# Task sizing when cooccurrence.pair_partitions = 0: possible pairs per counting task (8 bytes each,
# sorted in place: at most ~64 MiB of keys per task).
PAIRS_PER_TASK = 8_000_000
# Dictionary ids are int32 and pairs are packed as two of them into an int64 (kernels.pack).
MAX_TRACK_IDS = 2**31 - 1

WORK_CODEC = "lz4_raw"

PLAYLISTS_DDL = "pid long, tracks array<string>"
DICTIONARY_DDL = "tid int, track_id string, playlist_count long"


def read_source(spark: SparkSession, config: Config) -> tuple[DataFrame, str, int]:
    """(playlist_id, track_id) rows of the bronze table at its current version, the URI and the version."""
    uri = delta.table_path(config.paths.warehouse, "bronze", SOURCE_TABLE)
    version = delta.version(uri)
    frame = delta.read_input(spark, uri, SOURCE_COLUMNS, version=version)
    return frame, uri, int(version or 0)


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


class CooccurrenceRun:
    """One run: the steps in order, each skipped when the work folder already holds its result."""

    def __init__(self, spark: SparkSession, config: Config) -> None:
        self.spark = spark
        self.config = config
        self.co = config.cooccurrence
        self.broadcast = bool(self.co.broadcast_dictionary)
        self.rows, self.source_uri, self.source_version = read_source(spark, config)
        settings = {
            "source": self.source_uri,
            "version": self.source_version,
            "min_playlist_size": self.co.min_playlist_size,
            "max_playlist_size": self.co.max_playlist_size,
            "min_cooccurrence": self.co.min_cooccurrence,
            "chunks": self.co.chunks,
        }
        self.work = WorkDir(posixpath.join(config.paths.work, "cooccurrence", fingerprint(settings)))
        self.phases: dict[str, Any] = {}
        self.resumed: list[str] = []

    # -- plumbing ---------------------------------------------------------------------------------

    def step(self, name: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        finished = self.work.done(name)
        if finished is not None:
            log.info("step %s: already done in %s (resumed)", name, self.work.root)
            self.resumed.append(name)
            return finished
        with phase(self.spark, name, self.phases):
            metrics = compute()
        self.work.mark_done(name, metrics)
        return metrics

    def read(self, step: str, ddl: str) -> DataFrame:
        return self.spark.read.schema(ddl).parquet(self.work.path(step, "data"))

    def write(self, frame: DataFrame, step: str) -> None:
        # Scratch files are read once or twice and then deleted: a fast codec beats a small one.
        frame.write.mode("overwrite").option("compression", WORK_CODEC).parquet(self.work.path(step, "data"))

    # -- steps ------------------------------------------------------------------------------------

    def playlists(self) -> dict[str, Any]:
        """Qualifying playlists as (pid, distinct tracks); pid is a per-run unique long."""
        source, sets = Observation("cooccurrence_source"), Observation("cooccurrence_playlists")
        has_ids = F.col("playlist_id").isNotNull() & F.col("track_id").isNotNull()
        rows = self.rows.observe(
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
        self.write(playlists.select(F.monotonically_increasing_id().alias("pid"), "tracks"), "playlists")
        return _metrics(
            ("input_rows", "rows_without_ids", "playlists_qualifying", "playlist_tracks_qualifying", "pairs_unpruned"),
            source, sets,
        )

    def dictionary(self) -> dict[str, Any]:
        tracks = Observation("cooccurrence_tracks")
        marginals = transforms.track_marginals(self.read("playlists", PLAYLISTS_DDL)).observe(
            tracks,
            F.count(F.lit(1)).alias("tracks"),
            F.count_if(F.col("playlist_count") >= self.co.min_cooccurrence).alias("tracks_kept"),
        )
        self.write(transforms.track_dictionary(marginals, self.co.min_cooccurrence), "dictionary")
        metrics = _metrics(("tracks", "tracks_kept"), tracks)
        if metrics["tracks_kept"] > MAX_TRACK_IDS:
            raise JobError(f"cooccurrence: {metrics['tracks_kept']} kept tracks exceed the int32 dictionary")
        return metrics

    def counts(self, chunk: int, partitions: int) -> dict[str, Any]:
        """Pair counts of one chunk of the playlists (all of them when chunks = 1)."""
        chunks = int(self.co.chunks)
        playlists = self.read("playlists", PLAYLISTS_DDL)
        if chunks > 1:
            playlists = playlists.where(F.pmod(F.xxhash64("pid"), F.lit(chunks)) == chunk)
        generated = Observation(f"cooccurrence_generated_{chunk}")
        counted = Observation(f"cooccurrence_counted_{chunk}")
        encoded = transforms.encode_playlists(playlists, self.read("dictionary", DICTIONARY_DDL), self.broadcast)
        tails = transforms.pair_tails(encoded).observe(
            generated, F.coalesce(F.sum(F.size("later").cast("long")), F.lit(0)).alias("pairs_generated")
        )
        # Chunks hold partial counts: a pair rare in one chunk may pass the threshold over all of them.
        threshold = self.co.min_cooccurrence if chunks == 1 else 1
        counts = transforms.count_pairs(tails, threshold, partitions).observe(
            counted, F.count(F.lit(1)).alias("pair_counts")
        )
        self.write(counts, self.chunk_step(chunk))
        return {**_metrics(("pairs_generated", "pair_counts"), generated, counted), "partitions": partitions}

    def chunk_step(self, chunk: int) -> str:
        return f"counts/chunk-{chunk:05d}"

    def combined(self, partitions: int) -> dict[str, Any]:
        """chunks > 1: the chunks' partial counts summed, totals ≥ min_cooccurrence kept."""
        paths = [self.work.path(self.chunk_step(chunk), "data") for chunk in range(int(self.co.chunks))]
        partials = self.spark.read.schema(kernels.PAIR_COUNT_DDL).parquet(*paths)
        kept = Observation("cooccurrence_kept")
        totals = transforms.combine_pair_counts(partials, self.co.min_cooccurrence, partitions)
        self.write(totals.observe(kept, F.count(F.lit(1)).alias("pairs_kept")), "combined")
        return _metrics(("pairs_kept",), kept)

    def final_counts(self) -> DataFrame:
        step = self.chunk_step(0) if int(self.co.chunks) == 1 else "combined"
        return self.read(step, kernels.PAIR_COUNT_DDL)

    def publish(self, playlists_total: int) -> list[delta.StagedWrite]:
        """Stage both gold tables: metrics and top-K on int ids, then decoded to string ids."""
        dictionary = self.read("dictionary", DICTIONARY_DDL)
        scored = transforms.pair_scores(
            transforms.with_marginals(self.final_counts(), dictionary, self.broadcast), F.lit(playlists_total)
        )
        warehouse = self.config.paths.warehouse
        staged: list[delta.StagedWrite] = []
        try:
            with phase(self.spark, "publish_pairs", self.phases):
                pairs = transforms.decode(scored, dictionary, ("track_a", "track_b"), self.broadcast)
                staged.append(delta.stage(conform(pairs, "gold", PAIRS_TABLE),
                                          delta.table_path(warehouse, "gold", PAIRS_TABLE)))
            with phase(self.spark, "publish_top", self.phases):
                top = transforms.top_neighbours(scored, self.co.top_k, self.co.rank_by)
                top = transforms.decode(top, dictionary, ("track_id", "neighbor_id"), self.broadcast)
                staged.append(delta.stage(conform(top, "gold", TOP_TABLE),
                                          delta.table_path(warehouse, "gold", TOP_TABLE)))
        except BaseException:
            delta.abort_all(staged)
            raise
        return staged


def run(spark: SparkSession, config: Config) -> dict[str, Any]:
    started = time.perf_counter()
    co = config.cooccurrence
    job = CooccurrenceRun(spark, config)
    floor = int(config.spark.shuffle_partitions)

    found = job.step("playlists", job.playlists)
    found |= job.step("dictionary", job.dictionary)
    partitions = _tasks(int(co.pair_partitions), found["pairs_unpruned"] // int(co.chunks), PAIRS_PER_TASK, floor)
    chunk_metrics = [
        job.step(job.chunk_step(chunk), lambda chunk=chunk: job.counts(chunk, partitions))
        for chunk in range(int(co.chunks))
    ]
    found["pairs_generated"] = sum(m["pairs_generated"] for m in chunk_metrics)
    found["pair_counts_written"] = sum(m["pair_counts"] for m in chunk_metrics)
    if int(co.chunks) == 1:
        found["pairs_kept"] = found["pair_counts_written"]
    else:
        found |= job.step("combined", lambda: job.combined(partitions))
    staged = job.publish(found["playlists_qualifying"])
    try:
        with phase(spark, "commit", job.phases):
            versions = delta.commit_all(staged)
    except BaseException:
        delta.abort_all(staged)
        raise
    job.work.remove()

    if found["rows_without_ids"]:
        log.warning("%d row(s) of bronze/%s have a NULL playlist_id or track_id and belong to no playlist",
                    found["rows_without_ids"], SOURCE_TABLE)
    summary: dict[str, Any] = {
        "seconds": round(time.perf_counter() - started, 2),
        "source_version": job.source_version,
        **{key: found[key] for key in (
            "input_rows", "rows_without_ids", "playlists_qualifying", "playlist_tracks_qualifying", "tracks",
            "tracks_kept", "pairs_unpruned", "pairs_generated", "pair_counts_written", "pairs_kept")},
        "top_rows": staged[1].rows,
        "chunks": int(co.chunks),
        "pair_partitions": partitions,
        "resumed_steps": job.resumed,
        "shuffle_write_bytes": sum(p.get("shuffle_write_bytes", 0) for p in job.phases.values()),
        "versions": {PAIRS_TABLE: versions[0], TOP_TABLE: versions[1]},
        "phases": job.phases,
    }
    log.info(
        "cooccurrence: N=%d playlists, %d tracks (%d kept), %d pairs generated, %d kept, %d top rows; "
        "shuffle %.1f MB; %.1f s",
        summary["playlists_qualifying"], summary["tracks"], summary["tracks_kept"], summary["pairs_generated"],
        summary["pairs_kept"], summary["top_rows"], summary["shuffle_write_bytes"] / 1e6, summary["seconds"],
    )
    return summary
