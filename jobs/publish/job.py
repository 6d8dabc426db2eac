"""publish: the gold tables → D1, Vectorize, KV and R2 (or the same layout as local files), exactly once.

Reads gold ``spotify_mbid_xref``, ``precomputed_similar``, ``audio_vectors``, ``playlist_cooccurrence``,
``cooccurrence_top`` (and ``artist_genres_inferred`` when it exists) and bronze ``spotify_artists``,
``spotify_audio_features``, ``spotify_tracks``, pinned by the job frame (``inputs``). What goes where and
why: ``steps``; the layout: ``docs/publish-layout.md``; the bookkeeping that makes it exactly once:
``ledger``. Its outputs are that bookkeeping, ``gold/_publish_state`` and ``gold/_publish_ledger``, which
publish commits by its own protocol (write-ahead records, then one state commit) rather than as staged
tables; the frame records their versions, so an unchanged rerun is skipped and a promote (which changes the
state) makes the next publish run. ``target_factory`` builds the target wherever batches are sent
(``targets.build_target`` by default; tests wrap it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from jobs.publish import plan, steps, transforms
from jobs.publish.inputs import INPUTS, read_inputs
from jobs.publish.ledger import LEDGER_TABLE, STATE_TABLE, Ledger, State, bookkeeping
from jobs.publish.targets import build_target, check_target, executor_secrets, local_instance
from lib import delta
from lib.cloudflare.target import PublishTarget
from lib.config import Config
from lib.job import JobSpec, Run, execute
from lib.log import get_logger

log = get_logger("publish")

STATE = f"gold/{STATE_TABLE}"
LEDGER = f"gold/{LEDGER_TABLE}"
SERVICES = ("d1", "vectorize", "kv", "r2")


def state_rows(config: Config) -> int:
    """Rows of the publish state, which publish reads besides its inputs (for the frame's small-input rule: with
    small inputs publish also reads each into one partition; the batches are the same either way)."""
    uri = delta.table_path(config.paths.warehouse, "gold", STATE_TABLE)
    return delta.row_count(uri) if delta.exists(uri) else 0


def build(run: Run, target_factory: Callable[[Config], PublishTarget] = build_target) -> None:
    ledger, state = bookkeeping(run.spark, run.config)
    assert run.spark is not None
    with executor_secrets(run.spark, run.config):  # executor tasks build the target and send
        _publish(run, target_factory, ledger, state, run.small)


def _publish(run: Run, target_factory: Callable[[Config], PublishTarget], ledger: Ledger, state: State,
             small: bool) -> None:
    config, spark = run.config, run.spark
    dry_run = config.publish.dry_run
    if not dry_run:
        ledger.fold()  # records a crashed run left behind
    inputs = read_inputs(run, one_partition=small)
    ctx = steps.Context(spark, config, target_factory, ledger, state, dry_run, small=small)
    if not dry_run:
        check_target(ctx.target)
    committed = None
    try:
        facts = ctx.keep(transforms.track_facts(inputs["audio_vectors"], inputs["spotify_audio_features"],
                                                inputs["spotify_tracks"]))
        with run.timed("d1"), steps.timed(ctx, "d1"):
            steps.publish_d1(ctx, inputs, facts)
        with run.timed("vectorize"), steps.timed(ctx, "vectorize"):
            shard_map = steps.publish_vectorize(ctx, facts)
        with run.timed("kv"), steps.timed(ctx, "kv"):
            steps.publish_kv(ctx, inputs, facts, shard_map)
        with run.timed("r2"), steps.timed(ctx, "r2"):
            steps.publish_r2(ctx, facts, shard_map)
        if not dry_run:
            committed = state.commit(ctx.commits, ctx.markers)
            ledger.fold()
    finally:
        for frame in ctx.persisted:
            frame.unpersist()
        ctx.close()
    d1_bytes = ctx.reports["d1"].details.get("estimated_bytes", 0)
    figures: dict[str, Any] = {
        "target": ledger.wal.target.split(";")[0],
        "dry_run": dry_run,
        "objects": {name: report.as_dict() for name, report in ctx.reports.items()},
        "requests": plan.requests(ctx.reports),
        "cost_per_month": plan.cost(ctx.reports, d1_bytes),
        "state_version": committed,
    }
    for table in (STATE, LEDGER):
        run.committed(table, delta.version(run.uri(table)))
    changed = [name for name, report in ctx.reports.items() if report.changed]
    if dry_run:
        figures["plan"] = plan.render(figures).splitlines()  # printed by the console after the outputs
        run.note("dry run: nothing was sent and no state was committed")
    elif changed:
        run.note(f"{figures['requests']['issued']} requests; changed: {', '.join(changed)}")
    else:
        run.note("every target already holds this data: 0 write requests")
    run.metrics.update(figures)


def sources(config: Config) -> dict[str, str]:
    """The local target's instance id (created here, before the run that will write there): a deleted or
    replaced output folder gets a new one, so the next publish neither skips nor trusts the old state."""
    if config.publish.target != "local":
        return {}
    return {f"file:{config.publish.local_dir}": local_instance(config.publish.local_dir,
                                                              create=not config.publish.dry_run)}


def spec(target_factory: Callable[[Config], PublishTarget] = build_target) -> JobSpec:
    return JobSpec(
        name="publish",
        body=functools.partial(build, target_factory=target_factory),
        inputs=INPUTS,
        outputs=(STATE, LEDGER),
        config_sections=("publish", "cloudflare", "r2"),
        sources=sources,
        extra_input_rows=state_rows,
        skippable=lambda config: not config.publish.dry_run,  # a dry run's point is the plan it prints
    )


JOB = spec()


def run(spark: Any, config: Config,
        target_factory: Callable[[Config], PublishTarget] = build_target) -> dict[str, Any]:
    """Notebook and test entry point: the job through the frame; returns the summary (publish's figures are
    under ``metrics``)."""
    return execute(spec(target_factory), spark, config)
