"""promote: tracks the Worker read often from the cold tier (``track_access_log``) → Vectorize, with
``promoted: true`` metadata, then marked ``vectorized = 1`` with ``promoted_at``. The logic: ``promote``.

Its input besides ``gold/audio_vectors`` is the access log in the target (D1 or the local ``d1.sqlite``),
which the Worker changes all the time: never skipped. Its output is publish's bookkeeping (the upserts are
ledger batches, so publish keeps promoted vectors in sync with gold)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from jobs.promote.promote import run_promote
from jobs.publish.job import LEDGER
from jobs.publish.ledger import bookkeeping
from jobs.publish.targets import build_target, check_target, close_target
from lib import delta
from lib.cloudflare.target import PublishTarget
from lib.config import Config
from lib.job import Input, JobSpec, Run, execute

VECTORS = "gold/audio_vectors"


def build(run: Run, target_factory: Callable[[Config], PublishTarget] = build_target) -> None:
    ledger, state = bookkeeping(run.spark, run.config)
    target = target_factory(run.config)
    check_target(target, ("d1", "vectorize"))
    try:
        with run.timed("promote"):
            figures = run_promote(run.spark, run.config, target, ledger, state, run.input(VECTORS))
    finally:
        close_target(target)
    ledger.fold()
    run.committed(LEDGER, delta.version(run.uri(LEDGER)))
    run.metrics.update(figures)
    run.note(f"promoted {figures['promoted']} tracks ({figures['marked_already_in_vectorize']} already in "
             f"Vectorize, {figures['without_vector']} without a vector)")


def spec(target_factory: Callable[[Config], PublishTarget] = build_target) -> JobSpec:
    return JobSpec(
        name="promote",
        body=functools.partial(build, target_factory=target_factory),
        inputs=(Input(VECTORS, hint="run vectors first"),),
        outputs=(LEDGER,),
        config_sections=("promote", "publish", "cloudflare"),
        skippable=False,
    )


JOB = spec()


def run(spark: Any, config: Config,
        target_factory: Callable[[Config], PublishTarget] = build_target) -> dict[str, Any]:
    """Notebook and test entry point: the job through the frame; returns the summary (figures under
    ``metrics``)."""
    return execute(spec(target_factory), spark, config)
