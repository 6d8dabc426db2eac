"""publish: the gold tables → D1, Vectorize, KV and R2 (or the same layout as local files), exactly once.

Reads gold ``spotify_mbid_xref``, ``precomputed_similar``, ``audio_vectors``, ``playlist_cooccurrence``,
``cooccurrence_top`` (and ``artist_genres_inferred`` when it exists) and bronze ``spotify_artists``,
``spotify_audio_features``, ``spotify_tracks``, each at one version. What goes where and why: ``steps``;
the layout: ``docs/publish-layout.md``; the bookkeeping that makes it exactly once: ``ledger``.
``target_factory`` builds the target wherever batches are sent (``targets.build_target`` by default).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pyspark.sql import SparkSession

from jobs.publish import plan, steps, transforms
from jobs.publish.inputs import read_inputs
from jobs.publish.ledger import bookkeeping
from jobs.publish.targets import build_target, check_target
from lib.cloudflare.target import PublishTarget
from lib.config import Config
from lib.log import get_logger

log = get_logger("publish")


def run(spark: SparkSession, config: Config,
        target_factory: Callable[[Config], PublishTarget] = build_target) -> dict[str, Any]:
    started = time.perf_counter()
    dry_run = config.publish.dry_run
    ledger, state = bookkeeping(spark, config)
    if not dry_run:
        ledger.fold()  # records a crashed run left behind
    inputs = read_inputs(spark, config.paths.warehouse)
    ctx = steps.Context(spark, config, target_factory, ledger, state, dry_run)
    if not dry_run:
        check_target(ctx.target)
    try:
        facts = ctx.keep(transforms.track_facts(inputs["audio_vectors"], inputs["spotify_audio_features"],
                                                inputs["spotify_tracks"]))
        with steps.timed(ctx, "d1"):
            steps.publish_d1(ctx, inputs, facts)
        with steps.timed(ctx, "vectorize"):
            shard_map = steps.publish_vectorize(ctx, facts)
        with steps.timed(ctx, "kv"):
            steps.publish_kv(ctx, inputs, facts, shard_map)
        with steps.timed(ctx, "r2"):
            steps.publish_r2(ctx, facts, shard_map)
        committed = None
        if not dry_run:
            committed = state.commit(ctx.commits, ctx.markers)
            ledger.fold()
    finally:
        for frame in ctx.persisted:
            frame.unpersist()
        ctx.close()
    d1_bytes = ctx.reports["d1"].details.get("estimated_bytes", 0)
    summary: dict[str, Any] = {
        "target": ledger.wal.target.split(";")[0],
        "dry_run": dry_run,
        "inputs": dict(sorted(inputs.versions.items())),
        "objects": {name: report.as_dict() for name, report in ctx.reports.items()},
        "requests": plan.requests(ctx.reports),
        "cost_per_month": plan.cost(ctx.reports, d1_bytes),
        "state_version": committed,
        "seconds": round(time.perf_counter() - started, 2),
    }
    if dry_run:
        print(plan.render(summary), flush=True)
    else:
        log.info("publish done in %.1f s: %d requests (%s)", summary["seconds"], summary["requests"]["issued"],
                 ", ".join(f"{k} {'changed' if v['changed'] else 'unchanged'}" for k, v in summary["objects"].items()))
    return summary
