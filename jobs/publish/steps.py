"""The publish run, object by object: D1, Vectorize, KV, then R2 (whose manifest, written last, names the
Vectorize shard map), then one commit of the state of everything that changed.

For every object the same pattern: the desired content and its digest (Spark built-ins, cheap) → compare
with the committed state and with what unfinished runs may have written (the ledger) → nothing to do, or a
generation → the change set (Spark) → batches built and sent by executor tasks (``send``) → the driver's
closing requests (D1 swap check, Vectorize wait and index drops, R2 manifest and deletions) → the new state.
A dry run goes through the same steps with sending switched off and commits nothing.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from jobs.publish import batching, layout, render, send, transforms
from jobs.publish.inputs import Inputs
from jobs.publish.ledger import Ledger, State, digest, generation_id
from jobs.publish.progress import Progress
from jobs.publish.targets import close_target
from lib import delta
from lib.cloudflare import limits
from lib.cloudflare.target import PublishTarget
from lib.config import Config
from lib.log import get_logger
from lib.spark import observed_counts

log = get_logger("publish")

# Bump when a rendering (SQL, NDJSON, JSON, shard file) changes: every object is then republished.
RENDER_VERSION = "1"
# The shard budget leaves room for the estimate's error and the file's fixed pages (header page, schema,
# interior pages); the built file is checked against the limit.
SHARD_FILL = 0.95
SHARD_FIXED_BYTES = 3 * 4096
# Each stream gets at least this many full batches per task before another task is added, so that the
# partial last batch of each task costs at most 1/20 of the minimum number of requests.
BATCHES_PER_TASK = 20


@dataclass
class ObjectReport:
    object: str
    changed: bool = False
    generation: str | None = None
    rows: int = 0
    bytes: int = 0
    batches: int = 0
    sent: int = 0
    done_before: int = 0
    requests: int = 0
    minimum_requests: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    def add(self, results: Iterable[dict[str, Any]], dry_run: bool) -> None:
        for r in results:
            self.batches += 1
            self.rows += int(r["rows"])
            self.bytes += int(r["bytes"])
            if r["status"] == "done":
                self.done_before += 1
            elif r["status"] == "sent" or dry_run:
                self.sent += r["status"] == "sent"
                self.requests += int(r["requests"])

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "details"}
        out.update(self.details)
        return out


@dataclass
class Context:
    spark: SparkSession
    config: Config
    factory: Callable[[Config], PublishTarget]
    ledger: Ledger
    state: State
    dry_run: bool
    small: bool = False  # small inputs: one partition each (``Run.small``: the frame's rule)
    commits: dict[str, DataFrame] = field(default_factory=dict)
    markers: dict[str, dict[str, Any]] = field(default_factory=dict)
    reports: dict[str, ObjectReport] = field(default_factory=dict)
    persisted: list[DataFrame] = field(default_factory=list)
    _target: PublishTarget | None = None

    @property
    def target(self) -> PublishTarget:
        if self._target is None:
            self._target = self.factory(self.config)
        return self._target

    def close(self) -> None:
        close_target(self._target)

    @property
    def parallel_tasks(self) -> int:
        """Tasks sending to one service at once: ``cloudflare.concurrent_tasks``, the number the request budget
        is divided by (more tasks would each take a full share and together exceed the account's limit)."""
        return self.config.cloudflare.concurrent_tasks

    def narrow(self, frame: DataFrame) -> DataFrame:
        """A frame read besides the inputs (the state, the ledger): in one partition too when the inputs are small."""
        return frame.coalesce(1) if self.small else frame

    def spread(self, frame: DataFrame, tasks: int, *columns: str) -> DataFrame:
        """``frame`` in ``tasks`` partitions by ``columns`` for the sending tasks; with small inputs and one task,
        its own single partition (the same rows, without an exchange)."""
        if self.small and tasks == 1:
            return frame.coalesce(1)
        return frame.repartition(tasks, *columns)

    def keep(self, frame: DataFrame) -> DataFrame:
        frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
        self.persisted.append(frame)
        return frame

    def stream(self, obj: str, generation: str, base: str, ordinal: int) -> send.Stream:
        return send.Stream(self.config.to_json(), self.factory, self.ledger.wal, obj, generation, base, ordinal,
                           send=not self.dry_run, done=self.ledger.done(obj, generation))

    def collect(self, frame: DataFrame, task: Any, stream: send.Stream, total: int) -> list[dict[str, Any]]:
        what = f"publish {stream.object}"
        if self.dry_run:
            return [r.asDict() for r in frame.mapInArrow(task, send.RESULT_DDL).collect()]
        log.info("%s: sending about %d batches (generation %s)", what, total, stream.generation)
        with Progress(log, what, total, lambda: self.ledger.wal.count(stream.object, stream.generation),
                      self.config.publish.progress_seconds):
            rows = frame.mapInArrow(task, send.RESULT_DDL).collect()
        return [r.asDict() for r in rows]

    def driver(self, stream: send.Stream, prepared: Sequence[send.Prepared]) -> list[dict[str, Any]]:
        """Batches the driver sends itself, with the same once-only bookkeeping."""
        target = None if self.dry_run else self.target
        return list(send.run(stream, prepared, target))


@contextlib.contextmanager
def timed(ctx: Context, name: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    ctx.reports[name].details["seconds"] = round(time.perf_counter() - started, 2)


def choose_generation(obj: str, base: str, base_ordinal: int, desired: str, unfinished: Sequence[dict[str, Any]]
                      ) -> tuple[str, list[dict[str, Any]], int]:
    """Resume an unfinished generation when nothing else ran after it (its id is what this run would compute
    without its own batches); otherwise a new generation that treats all unfinished keys as touched.
    Returns (generation, the records of other generations, ordinal). The ordinal counts the committed and the
    abandoned generations before this one, so labels (the local target's file names) sort in the order the
    generations ran — the Worker's loader replays ``d1/*.sql`` in name order."""
    by_generation: dict[str, list[dict[str, Any]]] = {}
    for record in unfinished:
        by_generation.setdefault(record["generation"], []).append(record)

    def keys(records: Iterable[dict[str, Any]]) -> list[str]:
        return [f"{r['location']}\t{k}" for r in records for k in (r.get("keys") or [])]

    for gen in by_generation:
        others = [r for g, rs in by_generation.items() if g != gen for r in rs]
        if generation_id(obj, base, desired, keys(others)) == gen:
            return gen, others, base_ordinal + len(by_generation)
    fresh = generation_id(obj, base, desired, keys(unfinished))
    return fresh, list(unfinished), base_ordinal + len(by_generation) + 1


@dataclass
class Generation:
    """Where an object stands: the committed generation (``base``), and the one this run works on."""

    base: str
    marker: dict[str, Any] | None
    id: str
    others: list[dict[str, Any]]
    ordinal: int

    def unchanged(self, desired: str) -> bool:
        return self.marker is not None and self.marker["hash"] == desired and not self.others

    @property
    def touched(self) -> set[str]:
        """Keys that unfinished runs of other generations may have written."""
        return {k for r in self.others for k in (r.get("keys") or [])}


def locate(ctx: Context, obj: str, desired: str) -> Generation:
    marker = ctx.state.marker(obj)
    base, base_ordinal = (marker["generation"], int(marker["ordinal"])) if marker else ("", 0)
    gen, others, ordinal = choose_generation(obj, base, base_ordinal, desired, ctx.ledger.unfinished(obj, base))
    return Generation(base, marker, gen, others, ordinal)


def tasks_for(minimum: int, max_tasks: int) -> int:
    return max(1, min(max_tasks, minimum // BATCHES_PER_TASK))


# ----------------------------------------------------------------------------------------------
# D1


def publish_d1(ctx: Context, inputs: Inputs, facts: DataFrame) -> None:
    report = ObjectReport("d1")
    ctx.reports["d1"] = report
    budget = ctx.config.publish.d1_max_bytes
    xref_rows, without_isrc = transforms.xref_candidates(inputs["spotify_mbid_xref"], facts)
    candidates = {
        "spotify_mbid_xref": xref_rows,
        "precomputed_similar": transforms.similar_candidates(inputs["precomputed_similar"], facts),
        "spotify_audio_features_cache": transforms.feature_candidates(facts),
        "spotify_artist_genres": transforms.genre_candidates(inputs["spotify_artists"],
                                                             inputs.get("artist_genres_inferred")),
    }
    candidates = {t: ctx.keep(frame) for t, frame in candidates.items()}
    # The co-occurrence candidates are the pairs of the hot tracks (those the features' fill keeps). Usually the
    # fill keeps every feature candidate: assume so, and their histogram comes in the same Spark job as the
    # others; only when the features' fill is cut are they made again from the tracks it kept.
    features = "spotify_audio_features_cache"
    candidates["playlist_cooccurrence"] = ctx.keep(transforms.cooccurrence_candidates(
        inputs["playlist_cooccurrence"], inputs["cooccurrence_top"],
        candidates[features].select("spotify_id", "popularity")))
    cells = transforms.histograms({t: (f, layout.D1_TABLES[t].loaded) for t, f in candidates.items()})
    fill = transforms.Fill(budget)
    kept: dict[str, DataFrame] = {}
    desired: dict[str, str] = {}
    remaining = budget
    for table in layout.D1_FILL_ORDER:
        if table == "playlist_cooccurrence" and not fill.tables[features].complete:
            hot = kept[features].select("spotify_id", "popularity")
            candidates[table] = ctx.keep(transforms.cooccurrence_candidates(
                inputs["playlist_cooccurrence"], inputs["cooccurrence_top"], hot))
            cells.update(transforms.histograms({table: (candidates[table], layout.D1_TABLES[table].loaded)}))
        table_fill = transforms.fill_table(table, cells[table], remaining)
        fill.tables[table] = table_fill
        remaining = remaining - table_fill.bytes if table_fill.complete else 0
        kept[table] = transforms.keep(candidates[table], table_fill)
        desired[table] = digest(transforms.kept_digest(cells[table], table_fill), layout.D1_TABLES[table].create(),
                                RENDER_VERSION)
    report.details["fill"] = {
        "budget_bytes": budget,
        "estimated_bytes": fill.used,
        "tables": {t: {"rows": f.rows, "estimated_bytes": f.bytes, "candidate_rows": f.candidate_rows,
                       "overflow_rows": f.overflow_rows,
                       "overflow_to": ("r2 shards" if t == "spotify_audio_features_cache" else "not published")
                       if f.overflow_rows else None}
                   for t, f in fill.tables.items()},
        "xref_matched_without_isrc": observed_counts(without_isrc, ("without_isrc",))["without_isrc"],
    }
    report.details["estimated_bytes"] = fill.used

    current = {r["key"]: r["hash"] for r in ctx.state.rows("d1")}
    desired_digest = digest(json.dumps(desired, sort_keys=True))
    gen = locate(ctx, "d1", desired_digest)
    base, generation, ordinal = gen.base, gen.id, gen.ordinal
    changed = [t for t in layout.D1_FILL_ORDER if current.get(t) != desired[t] or t in gen.touched]
    report.details["tables_changed"] = changed
    if not changed and layout.ACCESS_LOG in current:
        log.info("publish d1: unchanged (%s)", ", ".join(layout.D1_FILL_ORDER))
        return
    report.changed, report.generation = True, generation
    stream = ctx.stream("d1", generation, base, ordinal)
    if _swap_happened(ctx, stream, changed):
        log.info("publish d1: generation %s is already swapped in", generation)
    else:
        rendered = None
        for order, table in enumerate(changed):
            rows = kept[table].mapInArrow(render.d1_rows_task(table, order), render.D1_ROWS_DDL)
            rendered = rows if rendered is None else rendered.unionByName(rows)
        # A NULL row per table: the task always sees every changed table, even an empty one.
        markers = ctx.spark.createDataFrame([(order, t, None) for order, t in enumerate(changed)], render.D1_ROWS_DDL)
        frame = ctx.spread(markers if rendered is None else rendered.unionByName(markers), 1).sortWithinPartitions(
            "order", F.col("row_sql").asc_nulls_first())
        file_bytes = ctx.config.publish.d1_import_file_bytes
        results = ctx.collect(frame, send.d1_task(stream, changed, file_bytes), stream,
                              max(1, math.ceil(fill.used / file_bytes)))
        report.add(results, ctx.dry_run)
        sql_bytes = sum(int(r["bytes"]) for r in results)
        report.minimum_requests = send.REQUESTS["d1_import"] * max(1, math.ceil(sql_bytes /
                                                                               limits.D1_MAX_IMPORT_FILE_BYTES))
    rows = [{"key": t, "hash": desired[t], "generation": generation, "ordinal": ordinal}
            for t in layout.D1_FILL_ORDER]
    rows.append({"key": layout.ACCESS_LOG, "hash": "created", "generation": generation, "ordinal": ordinal})
    ctx.commits["d1"] = ctx.state.rows_frame("d1", rows)
    ctx.markers["d1"] = {"hash": desired_digest, "generation": generation, "ordinal": ordinal,
                         "info": json.dumps(report.details["fill"])}


def _swap_happened(ctx: Context, stream: send.Stream, changed: Sequence[str]) -> bool:
    """A resumed generation whose swap file went through: the ledger says so, or (when the process died
    between the import and its record) the ``__next`` tables its first file created are gone again."""
    if any(info == "swap" for info in stream.done.values()):
        return True
    if not stream.done or ctx.dry_run:
        return False
    names = [layout.next_name(t) for t in changed]
    marks = ",".join("?" * len(names))
    present = ctx.target.d1_query(f"SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ({marks})",
                                  names)
    if present:
        return False
    ctx.ledger.wal.record("d1", stream.generation, stream.base, f"swap-confirmed-{stream.generation}",
                          kind="swap-confirmed", location=",".join(changed), label=stream.label("swap-confirmed"),
                          rows=0, size=0, requests=0, keys=list(changed), info="swap")
    return True


# ----------------------------------------------------------------------------------------------
# Keyed objects (Vectorize, KV)


def _changes(desired: DataFrame, current: DataFrame, touched: Sequence[tuple[str, str]], spark: SparkSession,
             skip_locations: Sequence[str], upsert_op: str) -> DataFrame:
    """(op, location, key, payload, ttl): keys whose content differs from the committed state or that an
    unfinished run may have written are upserted; keys in the state or written by unfinished runs that are
    no longer desired (at that location) are deleted, except in locations dropped as a whole."""
    touched_frame = spark.createDataFrame(list(touched), "location string, key string").distinct()
    state = current.select("key", F.col("hash").alias("_old_hash"), F.col("location").alias("_old_location"))
    marks = touched_frame.select("key", F.lit(True).alias("_touched")).distinct()
    upserts = (desired.join(state, on="key", how="left").join(marks, on="key", how="left")
               .where(F.col("_old_hash").isNull() | (F.col("_old_hash") != F.col("hash"))
                      | (F.col("_old_location") != F.col("location")) | F.col("_touched").isNotNull())
               .select(F.lit(upsert_op).alias("op"), "location", "key", "payload", "ttl"))
    maybe = current.select("location", "key").unionByName(touched_frame).distinct()
    deletes = maybe.join(desired.select("location", "key"), on=["location", "key"], how="left_anti")
    if skip_locations:
        deletes = deletes.where(~F.col("location").isin(list(skip_locations)))
    deletes = deletes.select(F.lit("delete").alias("op"), "location", "key",
                             F.lit(None).cast("string").alias("payload"), F.lit(None).cast("int").alias("ttl"))
    return upserts.unionByName(deletes)


def _plan_parts(changes: DataFrame, limits_of: dict[str, tuple[int, int]], max_tasks: int
                ) -> tuple[int, int, dict[str, int]]:
    """(tasks, minimum requests, counts per op) of a change set."""
    stats = changes.groupBy("op", "location").agg(F.count(F.lit(1)).alias("n"),
                                                  F.sum(F.coalesce(F.octet_length("payload"), F.lit(0)) + 1)
                                                  .alias("b")).collect()
    minimum, counts = 0, {}
    for row in stats:
        max_count, max_bytes = limits_of[row["op"]]
        minimum += batching.min_batches(int(row["n"]), max_count, int(row["b"]), max_bytes)
        counts[row["op"]] = counts.get(row["op"], 0) + int(row["n"])
    return tasks_for(minimum, max_tasks), minimum, counts


def _partitioned(ctx: Context, changes: DataFrame, tasks: int) -> DataFrame:
    """Each key's part by a stable hash (so batches are the same on every run), one part per task."""
    parts = changes.withColumn("part", F.pmod(F.xxhash64("key"), F.lit(tasks)).cast("int"))
    return ctx.spread(parts, tasks, "part").sortWithinPartitions("part", "op", "location", "key")


def _touched_pairs(others: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted({(r["location"], k) for r in others for k in (r.get("keys") or [])})


def vectorize_shards(rows: DataFrame, count: int, max_per_index: int) -> int:
    """The fewest shards whose largest index holds at most ``max_per_index`` vectors under ``shard_of``."""
    shards = max(1, math.ceil(count / max_per_index))
    while shards > 1:
        largest = rows.groupBy(_shard_column(shards).alias("s")).count().agg(F.max("count")).first()[0] or 0
        if largest <= max_per_index:
            break
        shards += 1
    return shards


def _shard_column(shards: int) -> F.Column:
    """``layout.shard_of`` in Spark: int(sha256(id)[:8], 16) % shards."""
    return F.pmod(F.conv(F.substring(F.sha2(F.col("spotify_id"), 256), 1, 8), 16, 10).cast("long"), F.lit(shards))


def promoted_ids(ctx: Context) -> DataFrame | None:
    """Ids the promote job upserted (its ledger batches, folded or not): publish keeps them in sync with gold."""
    pending = [k for r in ctx.ledger.wal_records("promote") for k in (r.get("keys") or [])]
    frames = []
    # Only the ledger's promote partition is read, and only when it has files: publish's own batches (every
    # other partition) would otherwise be scanned and joined on every run.
    promote_files = [("object", "=", "promote")]
    if delta.exists(ctx.ledger.uri) and delta.open_table(ctx.ledger.uri).file_uris(promote_files):
        ledger = ctx.narrow(delta.read(ctx.spark, ctx.ledger.uri, partition_filters=promote_files))
        frames.append(ledger.where(F.col("target_id") == ctx.ledger.target_id)
                      .select(F.explode("keys").alias("spotify_id")))
    if pending:
        frames.append(ctx.spark.createDataFrame([(k,) for k in pending], "spotify_id string"))
    if not frames:
        return None
    union = frames[0]
    for frame in frames[1:]:
        union = union.unionByName(frame)
    return union


def publish_vectorize(ctx: Context, facts: DataFrame) -> dict[str, Any]:
    report = ObjectReport("vectorize")
    ctx.reports["vectorize"] = report
    pub = ctx.config.publish
    rows = ctx.keep(transforms.vector_rows(facts, promoted_ids(ctx)))
    content, stats = transforms.frame_digest(rows, transforms.VECTOR_COLUMNS)
    count = stats["rows"]
    shards = vectorize_shards(rows, count, pub.vectorize_max_per_index)
    base_name = layout.vectorize_index_base(ctx.config)
    smap = layout.shard_map(base_name, shards)
    report.details.update({"vectors": count, "indexes": smap["indexes"]})
    desired = digest(content, layout.compact_json(smap), json.dumps(layout.METADATA_INDEXES), RENDER_VERSION)
    gen = locate(ctx, "vectorize", desired)
    base, marker, generation, others, ordinal = gen.base, gen.marker, gen.id, gen.others, gen.ordinal
    if gen.unchanged(desired):
        log.info("publish vectorize: unchanged (%d vectors in %d index(es))", count, shards)
        return smap
    report.changed, report.generation = True, generation
    trimmed = Observation("publish_vectorize_trimmed")
    lines = ctx.keep(rows.mapInArrow(render.vector_lines_task(base_name, shards), render.VECTOR_LINES_DDL)
                     .withColumn("ttl", F.lit(None).cast("int"))
                     .observe(trimmed, F.count_if(F.col("trimmed")).alias("trimmed")))
    old_indexes = set(json.loads(marker["info"])["shard_map"]["indexes"]) if marker else set()
    touched = _touched_pairs(others)
    dropped = sorted((old_indexes | {loc for loc, _ in touched}) - set(smap["indexes"]))
    # Read twice (the plan's counts, then the sending tasks): kept, so the joins with the state run once.
    changes = ctx.keep(_changes(lines, ctx.narrow(ctx.state.frame("vectorize")), touched, ctx.spark, dropped,
                                "upsert"))
    tasks, minimum, counts = _plan_parts(changes, {
        "upsert": (limits.VECTORIZE_MAX_VECTORS_PER_UPSERT, limits.VECTORIZE_MAX_UPSERT_BYTES),
        "delete": (limits.VECTORIZE_MAX_IDS_PER_DELETE, limits.VECTORIZE_MAX_UPSERT_BYTES)}, ctx.parallel_tasks)
    report.details.update({"upserts": counts.get("upsert", 0), "deletes": counts.get("delete", 0),
                           "indexes_dropped": dropped})
    stream = ctx.stream("vectorize", generation, base, ordinal)
    if counts.get("upsert") and not ctx.dry_run:
        for name in smap["indexes"]:
            ctx.target.vectorize_ensure_index(name, layout.DIMENSIONS, layout.METRIC, layout.METADATA_INDEXES)
    results = ctx.collect(_partitioned(ctx, changes, tasks), send.vectorize_task(stream), stream, minimum) \
        if counts else []
    drops = [send.driver_batch("drop", index, stream.label("drop", index), f"drop\n{index}".encode(), 0,
                               send.REQUESTS["vectorize_drop"], _dropper(index), keys=[]) for index in dropped]
    results += ctx.driver(stream, drops)
    report.add(results, ctx.dry_run)
    report.details["metadata_trimmed"] = observed_counts(trimmed, ("trimmed",))["trimmed"]
    report.minimum_requests = minimum + len(dropped)
    if not ctx.dry_run:
        _wait(ctx.target, results)
    ctx.commits["vectorize"] = ctx.state.keyed_frame(
        "vectorize", lines.select("key", "hash", "location", F.lit("").alias("info")), generation, ordinal)
    ctx.markers["vectorize"] = {"hash": desired, "generation": generation, "ordinal": ordinal,
                                "info": layout.compact_json({"shard_map": smap, "vectors": count})}
    return smap


def _dropper(index: str) -> Callable[[PublishTarget], tuple[str | None, str]]:
    def drop(target: PublishTarget) -> tuple[str | None, str]:
        target.vectorize_drop_index(index)
        return None, ""

    return drop


def _wait(target: PublishTarget, results: Sequence[dict[str, Any]]) -> None:
    """Vectorize applies writes asynchronously: wait once per index for its last mutation of this generation.

    The executors' mutations are foreign to the driver's client, which would issue a barrier for each one the
    index reports; instead every mutation whose response came back before the last one's request went out is
    passed as ``earlier`` (the index accepted it first). Only mutations concurrent with the last (another
    task's, or ones an earlier run sent) are left unknown and may still cost a barrier."""
    by_index: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        if r["kind"] in ("upsert", "delete") and (r.get("mutation_id") or r.get("info")):
            by_index.setdefault(r["location"], []).append(r)
    for index, sent in sorted(by_index.items()):
        sent.sort(key=lambda r: r.get("sent_at") or 0.0)
        last = sent[-1]
        started = last.get("started_at")
        earlier = [r.get("mutation_id") or r["info"] for r in sent[:-1]
                   if started is not None and r.get("sent_at") is not None and r["sent_at"] <= started]
        target.vectorize_wait(index, last.get("mutation_id") or last["info"], earlier)


def publish_kv(ctx: Context, inputs: Inputs, facts: DataFrame, smap: dict[str, Any]) -> None:
    report = ObjectReport("kv")
    ctx.reports["kv"] = report
    items = ctx.keep(transforms.kv_items(facts, inputs["precomputed_similar"], inputs["spotify_mbid_xref"],
                                         ctx.config.publish.kv_prewarm, layout.compact_json(smap)))
    content, stats = transforms.frame_digest(items, ["key", "value", "ttl"],
                                             size=F.sum(F.octet_length("key") + F.octet_length("value")))
    desired = digest(content, RENDER_VERSION)
    gen = locate(ctx, "kv", desired)
    base, generation, others, ordinal = gen.base, gen.id, gen.others, gen.ordinal
    report.details.update({"keys": stats["rows"], "stored_bytes": int(stats["size"] or 0)})
    if gen.unchanged(desired):
        log.info("publish kv: unchanged (%d keys)", report.details["keys"])
        return
    report.changed, report.generation = True, generation
    desired_rows = items.select("key", F.lit("").alias("location"), F.col("value").alias("payload"), "ttl", "hash")
    changes = ctx.keep(_changes(desired_rows, ctx.narrow(ctx.state.frame("kv")), _touched_pairs(others), ctx.spark,
                                (), "put"))  # read twice, like Vectorize's
    tasks, minimum, counts = _plan_parts(changes, {
        "put": (limits.KV_MAX_PAIRS_PER_BULK, limits.KV_MAX_BULK_BYTES),
        "delete": (limits.KV_MAX_KEYS_PER_BULK_DELETE, limits.KV_MAX_BULK_BYTES)},
        ctx.parallel_tasks)
    report.details.update({"puts": counts.get("put", 0), "deletes": counts.get("delete", 0)})
    stream = ctx.stream("kv", generation, base, ordinal)
    results = ctx.collect(_partitioned(ctx, changes, tasks), send.kv_task(stream), stream, minimum) if counts else []
    report.add(results, ctx.dry_run)
    report.minimum_requests = minimum
    ctx.commits["kv"] = ctx.state.keyed_frame(
        "kv", items.select("key", "hash", F.lit("").alias("location"), F.lit("").alias("info")), generation, ordinal)
    ctx.markers["kv"] = {"hash": desired, "generation": generation, "ordinal": ordinal}


# ----------------------------------------------------------------------------------------------
# R2


def publish_r2(ctx: Context, facts: DataFrame, smap: dict[str, Any]) -> None:
    report = ObjectReport("r2")
    ctx.reports["r2"] = report
    pub = ctx.config.publish
    rows = ctx.keep(transforms.shard_rows(facts))
    budget = int((pub.r2_shard_bytes - SHARD_FIXED_BYTES) * SHARD_FILL)
    content, stats = transforms.frame_digest(rows, render.SHARD_NAMES, total=F.sum("_bytes"))
    desired = digest(content, budget, layout.SHARD_DDL, RENDER_VERSION)
    gen = locate(ctx, "r2:features", desired)
    base, marker, generation, others, ordinal = gen.base, gen.marker, gen.id, gen.others, gen.ordinal
    old = ctx.state.rows("r2:features")
    deletes: list[str] = []
    if gen.unchanged(desired):
        version, created_at = marker["generation"], json.loads(marker["info"])["created_at"]
        shards = sorted((json.loads(r["info"]) for r in old), key=lambda s: s["first_id"])
        report.details.update({"version": version, "shards": len(shards), "tracks": sum(s["rows"] for s in shards)})
    else:
        report.changed, report.generation = True, generation
        version = generation
        stream = ctx.stream("r2:features", generation, base, ordinal)
        total = int(stats["total"] or 0)
        prefix = transforms.id_prefix_length(total, budget)
        assigned = transforms.assign_shards(rows, prefix, transforms.prefix_offsets(rows, prefix), budget)
        expected = max(1, math.ceil(total / budget))
        # A shard's number and rows come from the running byte total, not from the task that sends it: small
        # inputs send them all from one task.
        tasks = 1 if ctx.small else tasks_for(expected * BATCHES_PER_TASK, ctx.parallel_tasks)
        frame = ctx.spread(assigned, tasks, "_shard").sortWithinPartitions("_shard", "spotify_id")
        results = ctx.collect(frame, send.shard_task(stream, pub.r2_shard_bytes), stream, expected) if total else []
        report.add(results, ctx.dry_run)
        shards = sorted((json.loads(r["info"]) for r in results), key=lambda s: s["first_id"])
        created_at = _created_at(ctx, generation)
        report.details.update({"version": version, "shards": len(shards), "tracks": sum(s["rows"] for s in shards)})
        report.minimum_requests += max(1, math.ceil(sum(s["bytes"] for s in shards) / pub.r2_shard_bytes)) \
            if shards else 0
        new_keys = {s["key"] for s in shards}
        deletes = sorted(({r["key"] for r in old} | {k for r in others for k in (r.get("keys") or [])}) - new_keys)
        ctx.commits["r2:features"] = ctx.state.rows_frame("r2:features", [
            {"key": s["key"], "hash": s["sha256"] or "", "info": json.dumps(s), "generation": generation,
             "ordinal": ordinal} for s in shards])
        ctx.markers["r2:features"] = {"hash": desired, "generation": generation, "ordinal": ordinal,
                                      "info": json.dumps({"created_at": created_at})}
    report.details["stored_bytes"] = sum(int(s["bytes"]) for s in shards)
    if pub.r2_backup:
        publish_backup(ctx)
    manifest = {"version": version, "created_at": created_at, "shards": shards, "vectorize": smap}
    _publish_manifest(ctx, manifest)
    if deletes:
        stream = ctx.stream("r2:features", generation, base, ordinal)
        batches = [send.driver_batch("delete", "", stream.label("delete", f"{n:05d}"),
                                     ("delete\n" + "\n".join(chunk)).encode(), len(chunk), send.REQUESTS["r2_delete"],
                                     _r2_deleter(chunk, stream.label("delete", f"{n:05d}")), keys=chunk)
                   for n, chunk in enumerate(_chunks(deletes, limits.R2_MAX_KEYS_PER_DELETE))]
        results = ctx.driver(stream, batches)
        report.add(results, ctx.dry_run)
        report.minimum_requests += len(batches)
        report.details["objects_deleted"] = len(deletes)


def _created_at(ctx: Context, generation: str) -> str:
    """When this generation's first shard was sent (stable across a resumed run), else now."""
    times = [r["sent_at"] for r in ctx.ledger.records("r2:features", generation, with_keys=False) if r["sent_at"]]
    first = min((t.timestamp() if hasattr(t, "timestamp") else float(t)) for t in times) if times else time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(first))


def _chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _r2_deleter(keys: list[str], label: str) -> Callable[[PublishTarget], tuple[str | None, str]]:
    def delete(target: PublishTarget) -> tuple[str | None, str]:
        target.r2_delete(keys, label)
        return None, ""

    return delete


def _publish_manifest(ctx: Context, manifest: dict[str, Any]) -> None:
    report = ctx.reports["r2"]
    body = (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode()
    desired = send.sha(body)
    gen = locate(ctx, "r2:manifest", desired)
    if gen.unchanged(desired):
        return
    generation, ordinal = gen.id, gen.ordinal
    stream = ctx.stream("r2:manifest", generation, gen.base, ordinal)

    def put(target: PublishTarget) -> tuple[str | None, str]:
        target.r2_put(layout.MANIFEST_KEY, body, stream.label("manifest"))
        return None, ""

    results = ctx.driver(stream, [send.driver_batch("put", layout.MANIFEST_KEY, stream.label("manifest"), body, 1,
                                                    send.REQUESTS["r2_put"], put, keys=[layout.MANIFEST_KEY])])
    report.changed = True
    report.add(results, ctx.dry_run)
    report.minimum_requests += 1
    report.details["manifest"] = "written" if not ctx.dry_run else "would be written"
    ctx.markers["r2:manifest"] = {"hash": desired, "generation": generation, "ordinal": ordinal}


def publish_backup(ctx: Context) -> None:
    """The original dump files (``paths.spotify``) under ``backup/``: new or changed files are uploaded (the
    target uses multipart above ``r2.multipart_bytes``); a file is identified by its size and mtime."""
    folder = Path(ctx.config.paths.spotify)
    files = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    desired = [{"key": layout.BACKUP_KEY.format(name=p.name), "path": str(p), "size": p.stat().st_size,
                "hash": f"{p.stat().st_size}:{p.stat().st_mtime_ns}"} for p in files]
    current = {r["key"]: r["hash"] for r in ctx.state.rows("r2:backup")}
    whole = digest(*(f"{d['key']}={d['hash']}" for d in desired))
    gen = locate(ctx, "r2:backup", whole)
    base, generation, ordinal = gen.base, gen.id, gen.ordinal
    todo = [d for d in desired if current.get(d["key"]) != d["hash"] or d["key"] in gen.touched]
    report = ctx.reports["r2"]
    report.details["backup_files"] = len(desired)
    report.details["stored_bytes"] = report.details.get("stored_bytes", 0) + sum(d["size"] for d in desired)
    if not todo:
        return
    stream = ctx.stream("r2:backup", generation, base, ordinal)
    frame = ctx.spark.createDataFrame([(d["key"], d["path"], d["size"], d["hash"]) for d in todo],
                                      "key string, path string, size long, hash string")
    frame = frame.repartition(min(len(todo), ctx.parallel_tasks))
    results = ctx.collect(frame, send.backup_task(stream), stream, len(todo))
    report.add(results, ctx.dry_run)
    report.minimum_requests += len(todo)
    report.changed = True
    ctx.commits["r2:backup"] = ctx.state.rows_frame("r2:backup", [
        {"key": d["key"], "hash": d["hash"], "generation": generation, "ordinal": ordinal}
        for d in desired])
    ctx.markers["r2:backup"] = {"hash": whole, "generation": generation, "ordinal": ordinal}

