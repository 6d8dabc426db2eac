"""promote: tracks the Worker read often from the cold tier (``track_access_log``) → Vectorize, with
``promoted: true`` metadata, then marked ``vectorized = 1`` with ``promoted_at``. The logic: ``promote``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pyspark.sql import SparkSession

from jobs.promote.promote import run_promote
from jobs.publish.ledger import bookkeeping
from jobs.publish.targets import build_target, check_target, close_target
from lib.cloudflare.target import PublishTarget
from lib.config import Config
from lib.log import get_logger

log = get_logger("promote")


def run(spark: SparkSession, config: Config,
        target_factory: Callable[[Config], PublishTarget] = build_target) -> dict[str, Any]:
    started = time.perf_counter()
    ledger, state = bookkeeping(spark, config)
    target = target_factory(config)
    check_target(target, ("d1", "vectorize"))
    try:
        summary = run_promote(spark, config, target, ledger, state)
    finally:
        close_target(target)
    ledger.fold()
    summary["seconds"] = round(time.perf_counter() - started, 2)
    log.info("promoted %d tracks (%d already in Vectorize, %d without a vector) in %.1f s", summary["promoted"],
             summary["marked_already_in_vectorize"], summary["without_vector"], summary["seconds"])
    return summary
