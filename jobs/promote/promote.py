"""The spec's "Dynamic Vector Promotion": tracks the Worker fetched from the cold tier often enough are
added to Vectorize by a background run, never during a request.

Candidates come from ``track_access_log`` (read through the target: the local ``d1.sqlite`` or D1), most
accessed first, in pages (keyset pagination with bound parameters). A candidate is promoted when gold has its
vector, it is not in Vectorize yet, and neither ``promote.max_vectors`` (all vectors: published + promoted)
nor the index it hashes to (``publish.vectorize_max_per_index``) would be exceeded. Candidates already in
Vectorize (tier A) are only marked; those without a vector stay unmarked and are counted.

Once only: each upsert is a ledger batch (object ``promote``) whose keys are the promoted ids, and the rows
are marked ``vectorized = 1`` with ``promoted_at`` afterwards; a rerun after a crash between the two finds
those ids in the ledger and only marks them. Publish reads the same ledger batches and keeps the promoted
vectors in sync with gold (and deletes them when their track leaves gold).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.publish import batching, layout, render, send
from jobs.publish.ledger import Ledger, State, digest
from lib.cloudflare import limits
from lib.cloudflare.target import PublishTarget
from lib.config import Config
from lib.errors import InputError, JobError

ACCESS_LOG = layout.ACCESS_LOG
# Ids per UPDATE: one bound parameter is promoted_at, the rest are ids (D1: 100 per statement).
IDS_PER_UPDATE = limits.D1_MAX_BOUND_PARAMETERS - 1


@dataclass
class Candidates:
    promote: list[dict[str, Any]] = field(default_factory=list)  # vector rows to upsert
    already: list[str] = field(default_factory=list)  # published (tier A): mark only
    earlier: list[str] = field(default_factory=list)  # upserted by a run that died before marking: mark only
    no_vector: int = 0
    index_full: int = 0
    examined: int = 0


def access_log_exists(target: PublishTarget) -> bool:
    rows = target.d1_query("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?", [ACCESS_LOG])
    return bool(rows)


def candidate_pages(target: PublishTarget, threshold: int, page: int) -> Any:
    """Pages of (spotify_id, access_count), access_count ≥ threshold and not vectorized, most accessed first
    (ties by id), each after the last row of the previous page."""
    last: tuple[int, str] | None = None
    while True:
        if last is None:
            rows = target.d1_query(
                f"SELECT spotify_id, access_count FROM {ACCESS_LOG} WHERE access_count >= ? AND vectorized = 0 "
                "ORDER BY access_count DESC, spotify_id LIMIT ?", [threshold, page])
        else:
            rows = target.d1_query(
                f"SELECT spotify_id, access_count FROM {ACCESS_LOG} WHERE access_count >= ? AND vectorized = 0 "
                "AND (access_count < ? OR (access_count = ? AND spotify_id > ?)) "
                "ORDER BY access_count DESC, spotify_id LIMIT ?", [threshold, last[0], last[0], last[1], page])
        if not rows:
            return
        yield rows
        last = (int(rows[-1]["access_count"]), rows[-1]["spotify_id"])
        if len(rows) < page:
            return


def vectorized_ids(spark: SparkSession, state: State, ledger: Ledger) -> DataFrame:
    """(spotify_id, location, source): what Vectorize holds — the published state (``published``) and the
    promotions not yet in it (``promoted``)."""
    published = state.frame("vectorize").select(F.col("key").alias("spotify_id"), "location",
                                                F.lit("published").alias("source"))
    promoted = [(k, r["location"]) for r in ledger.records("promote") for k in (r.get("keys") or [])]
    if promoted:
        extra = spark.createDataFrame(promoted, "spotify_id string, location string").distinct().join(
            published.select("spotify_id"), on="spotify_id", how="left_anti").withColumn("source", F.lit("promoted"))
        published = published.unionByName(extra)
    return published


def choose(target: PublishTarget, vectors: DataFrame, present: DataFrame, shard_map: dict[str, Any],
           threshold: int, take: int, per_index: dict[str, int], max_per_index: int) -> Candidates:
    """Walk the candidate pages until ``take`` tracks can be promoted."""
    out = Candidates()
    names = shard_map["indexes"]
    page_size = max(take, 100)
    for page in candidate_pages(target, threshold, page_size):
        if len(out.promote) >= take:
            break
        ids = [r["spotify_id"] for r in page]
        out.examined += len(ids)
        here = {r["spotify_id"]: r["source"] for r in present.where(F.col("spotify_id").isin(ids))
                .select("spotify_id", "source").collect()}
        found = {r["spotify_id"]: r.asDict(recursive=True) for r in vectors.where(F.col("spotify_id").isin(ids))
                 .select("spotify_id", "vector", "isrc", "mbid", "title", "artist", "popularity", "genres", "year")
                 .collect()}
        for spotify_id in ids:
            if here.get(spotify_id) == "published":
                out.already.append(spotify_id)
            elif here.get(spotify_id) == "promoted":
                out.earlier.append(spotify_id)
            elif spotify_id not in found:
                out.no_vector += 1
            elif len(out.promote) < take:
                index = names[layout.shard_of(spotify_id, shard_map["shard_count"])]
                if per_index.get(index, 0) >= max_per_index:
                    out.index_full += 1
                    continue
                per_index[index] = per_index.get(index, 0) + 1
                out.promote.append({**found[spotify_id], "_index": index})
    return out


def mark(target: PublishTarget, ids: Sequence[str], promoted_at: int | None, label: str) -> int:
    """``vectorized = 1`` (and ``promoted_at`` when given) for ``ids``, bound parameters only."""
    statements = []
    for start in range(0, len(ids), IDS_PER_UPDATE):
        chunk = list(ids[start : start + IDS_PER_UPDATE])
        marks = ",".join("?" * len(chunk))
        if promoted_at is None:
            statements.append((f"UPDATE {ACCESS_LOG} SET vectorized = 1 WHERE spotify_id IN ({marks})", chunk))
        else:
            statements.append((f"UPDATE {ACCESS_LOG} SET vectorized = 1, promoted_at = ? WHERE spotify_id IN "
                               f"({marks})", [promoted_at, *chunk]))
    # One /query batch per request-sized group (the 30 s request limit is shared by a batch).
    requests = 0
    for start in range(0, len(statements), 50):
        target.d1_execute(statements[start : start + 50], f"{label}-{start // 50:04d}")
        requests += 1
    return requests


def run_promote(spark: SparkSession, config: Config, target: PublishTarget, ledger: Ledger, state: State,
                vectors: DataFrame) -> dict[str, Any]:
    settings = config.promote
    marker = state.marker("vectorize")
    if marker is None:
        raise JobError("promote: nothing is published to this target yet (run publish first)")
    if not access_log_exists(target):
        raise InputError(f"promote: the target has no {ACCESS_LOG} table (run publish first)")
    info = json.loads(marker["info"])
    shard_map = info["shard_map"]
    present = vectorized_ids(spark, state, ledger).persist()
    try:
        counts = {r["location"]: int(r["count"]) for r in present.groupBy("location").count().collect()}
        total = sum(counts.values())
        room = max(0, settings.max_vectors - total)
        take = min(settings.batch_size, room)
        chosen = choose(target, vectors, present, shard_map, settings.access_threshold, take, counts,
                        config.publish.vectorize_max_per_index) if take else Candidates()
    finally:
        present.unpersist()
    now = int(time.time())
    generation = digest("promote", marker["generation"])[:16]
    stream = send.Stream(config.to_json(), lambda _c: target, ledger.wal, "promote", generation,
                         marker["generation"], int(marker["ordinal"]), True, ledger.done("promote", generation))
    by_index: dict[str, list[str]] = {}
    for row in chosen.promote:
        line, _ = render.vector_line(row, promoted=True)
        by_index.setdefault(row["_index"], []).append(line)
    prepared = []
    for index, lines in sorted(by_index.items()):
        groups = batching.pack(lines, batching.line_bytes, limits.VECTORIZE_MAX_VECTORS_PER_UPSERT,
                               limits.VECTORIZE_MAX_UPSERT_BYTES, what="vector")
        for group in groups:
            body = batching.ndjson(group)
            ids = [json.loads(line)["id"] for line in group]
            label = stream.label("promote", index, send.sha(body)[:12])

            def upsert(t: PublishTarget, index: str = index, body: bytes = body, label: str = label
                       ) -> tuple[str | None, str]:
                mutation = t.vectorize_upsert(index, body, label)
                return mutation, mutation or ""

            prepared.append(send.Prepared("upsert", index, label, send.sha(body), len(ids), len(body),
                                          send.REQUESTS["vectorize_upsert"], upsert, keys=ids))
    results = list(send.run(stream, prepared, target))
    last: dict[str, str] = {}
    for r in results:
        if r["mutation_id"] or r["info"]:
            last[r["location"]] = r["mutation_id"] or r["info"]
    for index, mutation in sorted(last.items()):
        target.vectorize_wait(index, mutation)
    promoted = [row["spotify_id"] for row in chosen.promote] + chosen.earlier
    requests = sum(r["requests"] for r in results if r["status"] == "sent")
    if promoted:
        requests += mark(target, promoted, now, stream.label("mark"))
    if chosen.already:
        requests += mark(target, chosen.already, None, stream.label("mark-present"))
    return {
        "promoted": len(promoted),
        "marked_promoted_by_an_earlier_run": len(chosen.earlier),
        "upserts_sent": sum(r["status"] == "sent" for r in results),
        "upserts_done_before": sum(r["status"] == "done" for r in results),
        "marked_already_in_vectorize": len(chosen.already),
        "without_vector": chosen.no_vector,
        "index_full": chosen.index_full,
        "candidates_examined": chosen.examined,
        "vectors_before": total,
        "room_under_max_vectors": room,
        "requests": requests,
    }
