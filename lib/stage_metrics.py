"""Per-phase Spark metrics (wall time, stage times, shuffle bytes) without a SparkListener or the REST UI.

Each phase runs under its own job group; afterwards the driver asks the status tracker for the group's
jobs and stages and reads each stage's task metrics from the SparkContext's status store (the store the
UI would render, kept even with ``spark.ui.enabled=false``). The store is an internal API reached through
py4j: if it cannot be read (another Spark version, Spark Connect) the phase still reports its wall time
and ``stage_metrics: "unavailable"`` instead of guessed numbers.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from py4j.protocol import Py4JJavaError
from pyspark.sql import SparkSession

from lib.log import get_logger

log = get_logger("stages")

_GROUP_IDS = itertools.count()


def _json_writer(spark: SparkSession) -> Any:
    """A Jackson mapper with the Scala module (both on Spark's classpath, as its REST API uses them): a job's or
    stage's status-store record crosses py4j as one JSON text instead of ~20 calls, one per field."""
    jvm = spark.sparkContext._jvm
    mapper = jvm.com.fasterxml.jackson.databind.ObjectMapper()
    mapper.registerModule(getattr(getattr(jvm, "com.fasterxml.jackson.module.scala.DefaultScalaModule$"), "MODULE$"))
    return mapper


def _stage_rows(spark: SparkSession, group: str) -> list[dict[str, Any]]:
    context = spark.sparkContext
    store = context._jsc.sc().statusStore()  # internal: the live AppStatusStore
    mapper = _json_writer(spark)

    def record(lookup: Callable[[], Any]) -> Any:
        """The store's record as JSON data; None once the store dropped it (``spark.ui.retainedJobs`` and
        ``retainedStages`` keep the latest 1,000), so a long phase still reports the rest."""
        try:
            return json.loads(mapper.writeValueAsString(lookup()))
        except Py4JJavaError:
            return None

    jobs = [record(lambda job=job: store.job(job)) for job in context.statusTracker().getJobIdsForGroup(group)]
    stage_ids = sorted({stage for job in jobs if job for stage in job["stageIds"]})
    no_quantiles = context._gateway.new_array(context._jvm.double, 0)
    rows = []
    for stage_id in stage_ids:
        for stage in record(lambda s=stage_id: store.stageData(s, False, None, False, no_quantiles)) or []:
            if stage["status"] == "SKIPPED":
                continue
            started, finished = stage.get("submissionTime"), stage.get("completionTime")  # epoch ms
            rows.append({
                "stage": stage_id,
                "status": stage["status"].lower(),
                "tasks": stage["numTasks"],
                "seconds": (finished - started) / 1000 if started is not None and finished is not None else None,
                "task_seconds": stage["executorRunTime"] / 1000,
                "task_cpu_seconds": round(stage["executorCpuTime"] / 1e9, 3),
                "shuffle_write_bytes": stage["shuffleWriteBytes"],
                "shuffle_read_bytes": stage["shuffleReadBytes"],
                "spill_bytes": stage["diskBytesSpilled"],
            })
    return rows


@contextlib.contextmanager
def phase(spark: SparkSession, name: str, into: dict[str, Any], prefix: str = "job") -> Iterator[None]:
    """Run the block as job group ``name``; put its metrics into ``into[name]``."""
    context = spark.sparkContext
    previous = context.getLocalProperty("spark.jobGroup.id")
    previous_description = context.getLocalProperty("spark.job.description")
    group = f"{prefix}-{name}-{next(_GROUP_IDS)}-{uuid.uuid4().hex[:8]}"
    context.setJobGroup(group, f"{prefix}: {name}")
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds = time.perf_counter() - started
        context.setLocalProperty("spark.jobGroup.id", previous)
        context.setLocalProperty("spark.job.description", previous_description)
        entry: dict[str, Any] = {"seconds": round(seconds, 2)}
        try:
            stages = _stage_rows(spark, group)
        except Exception as exc:  # internal API: report that it is missing rather than fail the job
            log.debug("stage metrics unavailable: %s", exc)
            entry["stage_metrics"] = "unavailable"
        else:
            entry["stages"] = len(stages)
            entry["shuffle_write_bytes"] = sum(s["shuffle_write_bytes"] for s in stages)
            entry["spill_bytes"] = sum(s["spill_bytes"] for s in stages)
            entry["task_seconds"] = round(sum(s["task_seconds"] for s in stages), 2)
            entry["stage_detail"] = stages
        into[name] = entry
