"""The job frame: every job is a ``JobSpec`` (its input tables and the columns it needs, its output tables,
the config sections its results depend on) plus a body; ``execute`` runs it the same way everywhere.

What the frame does, so that no job does it by hand:
1. Before any write: every output location is checked (``delta.check_location``), every required input table
   and column exists (an ``InputError`` names them), and the input versions are pinned — the job reads exactly
   those versions however long it runs, and they go into the summary. A job whose inputs hold at most
   ``runs.small_input_rows`` rows in all runs with ``lib.spark.SMALL_DATA_CONF`` (``run.small``).
2. Runs the body with a ``Run``: ``input`` (pinned reads), ``step`` (resumable: a marker per finished step
   under ``paths.work/<job>/<fingerprint>``, the fingerprint covering input versions and config; a step's
   intermediate table goes there with ``save_work`` and comes back with ``read_work``), ``timed``
   (wall time and Spark stage metrics per step), ``write`` (conform to the contract and stage), ``left_out``,
   ``note`` and ``metrics`` (job-specific figures).
3. Commits every staged output together at the end, in the order of ``outputs``, or aborts them all; the
   work folder is removed after a successful commit.
4. Returns the summary, one shape for every job (``SUMMARY_KEYS``), which ``lib.runs`` records in
   ``gold/_runs`` (a ``running`` row first, so a killed run stays visible) and the console prints.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import posixpath
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lib import delta
from lib.config import Config
from lib.errors import InputError, JobError
from lib.log import get_logger
from lib.schemas import conform, contract
from lib.spark import read_parquet, select_names
from lib.workdir import CODEC, WorkDir

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = get_logger("job")

SUMMARY_KEYS = (
    "job", "run_id", "status", "started_at", "finished_at", "seconds", "inputs", "outputs", "left_out",
    "steps", "notes", "error", "config_hash", "code_version", "spark_master", "metrics",
)


@dataclass(frozen=True)
class Input:
    """A table the job reads: ``layer/name``, the columns it needs (empty: all), and whether it may be absent."""

    table: str
    columns: tuple[str, ...] = ()
    optional: bool = False
    hint: str = "run ingest first"


@dataclass(frozen=True)
class JobSpec:
    name: str
    body: Callable[[Run], None]
    inputs: tuple[Input, ...] = ()
    outputs: tuple[str, ...] = ()  # ``layer/name``; contracts in lib.schemas
    config_sections: tuple[str, ...] = ()  # what the results depend on (with paths), for the config hash
    uses_warehouse: bool = True
    # Files read besides tables: {"file:<path>": fingerprint}, compared like input versions by the skip.
    sources: Callable[[Config], dict[str, str]] | None = None
    # Skipped when inputs, config and code equal those of its last successful run (a callable: per config,
    # e.g. never for a dry run, whose point is its output).
    skippable: bool | Callable[[Config], bool] = True
    # Rows the job reads besides its pinned inputs (e.g. publish's own state), for the small-input rule.
    extra_input_rows: Callable[[Config], int] | None = None

    def is_skippable(self, config: Config) -> bool:
        return self.skippable(config) if callable(self.skippable) else self.skippable


def split_table(table: str) -> tuple[str, str]:
    layer, _, name = table.partition("/")
    return layer, name


def config_hash(config: Config, sections: tuple[str, ...]) -> str:
    """A short stable hash of the config sections a job's results depend on (paths always included)."""
    values = config.redacted()
    chosen = {name: values.get(name, {}) for name in ("paths", *sections)}
    return hashlib.sha256(json.dumps(chosen, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Run:
    """One execution of a job: what the body sees."""

    spark: SparkSession | None
    config: Config
    spec: JobSpec
    run_id: str
    input_versions: dict[str, int | None] = field(default_factory=dict)
    staged: dict[str, delta.StagedWrite] = field(default_factory=dict)
    left: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, float] = field(default_factory=dict)
    step_detail: dict[str, Any] = field(default_factory=dict)
    resumed: list[str] = field(default_factory=list)
    recorded: dict[str, dict[str, int | None]] = field(default_factory=dict)
    small: bool = False  # inputs small enough for SMALL_DATA_CONF (set by ``execute`` before the body)
    _work: WorkDir | None = None

    # -- inputs ---------------------------------------------------------------------------------

    def uri(self, table: str) -> str:
        layer, name = split_table(table)
        return delta.table_path(self.config.paths.warehouse, layer, name)

    def _declared(self, table: str) -> Input:
        for declared in self.spec.inputs:
            if declared.table == table:
                return declared
        raise JobError(f"job {self.spec.name} reads {table}, which its spec does not declare")

    def has_input(self, table: str) -> bool:
        return self.input_versions.get(table) is not None

    def input(self, table: str, columns: tuple[str, ...] | None = None) -> DataFrame:
        """The input at its pinned version, narrowed to ``columns`` (default: the declared ones, else all)."""
        declared = self._declared(table)
        version = self.input_versions.get(table)
        if version is None:
            raise InputError(f"{self.uri(table)}: {declared.hint}")
        assert self.spark is not None
        frame = delta.read(self.spark, self.uri(table), version=version)
        wanted = columns if columns is not None else declared.columns
        return select_names(frame, wanted) if wanted else frame

    def input_rows(self, table: str) -> int:
        """Rows of a pinned input from the Delta log (no Spark job); 0 for an absent optional input."""
        version = self.input_versions.get(table)
        return 0 if version is None else delta.row_count(self.uri(table), version)

    def inputs_are_small(self) -> bool:
        """Whether the job reads Delta inputs and they (with ``extra_input_rows``) hold at most
        ``runs.small_input_rows`` rows in all, counted from the Delta logs (no Spark job). Jobs without declared
        inputs (sample, ingest: they read files) never are."""
        limit = self.config.runs.small_input_rows
        if limit <= 0 or not self.spec.inputs or self.spark is None:
            return False
        rows = sum(self.input_rows(declared.table) for declared in self.spec.inputs)
        if self.spec.extra_input_rows is not None:
            rows += self.spec.extra_input_rows(self.config)
        return rows <= limit

    # -- steps ----------------------------------------------------------------------------------

    @property
    def work(self) -> WorkDir:
        """The job's scratch folder, keyed by input versions and config, so a rerun resumes only like with like."""
        if self._work is None:
            key = {"inputs": self.input_versions, "config": config_hash(self.config, self.spec.config_sections)}
            digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
            self._work = WorkDir(posixpath.join(self.config.paths.work, self.spec.name, digest))
        return self._work

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Time a step (wall seconds into ``steps``; Spark stage metrics into ``step_detail`` when available)."""
        started = time.perf_counter()
        if self.spark is None:
            try:
                yield
            finally:
                self.steps[name] = round(self.steps.get(name, 0.0) + time.perf_counter() - started, 2)
            return
        from lib.stage_metrics import phase

        try:
            with phase(self.spark, name, self.step_detail, prefix=self.spec.name):
                yield
        finally:
            self.steps[name] = round(self.steps.get(name, 0.0) + time.perf_counter() - started, 2)

    def step(self, name: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """A resumable step: skipped (its recorded metrics returned) when an earlier run of the same inputs and
        config finished it; otherwise run, timed, and marked done with its metrics."""
        finished = self.work.done(name)
        if finished is not None:
            log.info("%s: step %s already done in %s (resumed)", self.spec.name, name, self.work.root)
            self.resumed.append(name)
            return finished
        with self.timed(name):
            metrics = compute()
        self.work.mark_done(name, metrics)
        return metrics

    def save_work(self, step: str, frame: DataFrame) -> None:
        """Write a step's intermediate table (Parquet) into the work folder: later steps read it, and so does a
        resumed run that skips the step."""
        frame.write.mode("overwrite").option("compression", CODEC).parquet(self.work.path(step, "data"))

    def read_work(self, steps: str | Sequence[str], ddl: str) -> DataFrame:
        """The table saved by a step (several steps' tables as one frame), read with its schema given, so a
        resumed run sees the same types and Spark does not infer them."""
        assert self.spark is not None
        names = [steps] if isinstance(steps, str) else list(steps)
        return read_parquet(self.spark.read.schema(ddl), self.spark, [self.work.path(name, "data") for name in names])

    # -- outputs --------------------------------------------------------------------------------

    def _output(self, table: str) -> str:
        if table not in self.spec.outputs:
            raise JobError(f"job {self.spec.name} writes {table}, which its spec does not declare")
        return self.uri(table)

    def write(self, table: str, frame: DataFrame, mode: str = "overwrite", **options: Any) -> delta.StagedWrite:
        """Conform ``frame`` to the table's contract and stage it; committed with the others at the end."""
        layer, name = split_table(table)
        staged = delta.stage(conform(frame, layer, name), self._output(table), mode=mode, **options)
        return self.add_staged(table, staged)

    def write_empty(self, table: str) -> delta.StagedWrite:
        """An empty table with the contract's schema (a job given empty inputs still leaves its outputs)."""
        assert self.spark is not None
        layer, name = split_table(table)
        return self.write(table, self.spark.createDataFrame([], contract(layer, name)))

    def add_staged(self, table: str, staged: delta.StagedWrite) -> delta.StagedWrite:
        """Register a write staged by another mechanism (files written by tasks, ``delta.stage_files``)."""
        self._output(table)
        if table in self.staged:
            raise JobError(f"job {self.spec.name} staged {table} twice")
        self.staged[table] = staged
        log.info("%s: staged %s (%d rows)", self.spec.name, table, staged.rows)
        return staged

    def committed(self, table: str, version: int | None, rows: int | None = None) -> None:
        """An output the job commits by its own protocol (bookkeeping such as publish's state, written as it
        goes): its version goes into the summary like a staged output's, so the skip can check it."""
        self._output(table)
        self.recorded[table] = {"version": version, "rows": rows}

    def read_staged(self, table: str) -> DataFrame:
        assert self.spark is not None
        return delta.read_staged(self.spark, self.staged[table])

    def left_out(self, table: str, reason: str, rows: int) -> None:
        """Rows of ``table`` (an output, or the input they came from) that did not make it, by reason."""
        if rows:
            reasons = self.left.setdefault(table, {})
            reasons[reason] = reasons.get(reason, 0) + int(rows)

    def note(self, text: str) -> None:
        log.info("%s: %s", self.spec.name, text)
        self.notes.append(text)

    # -- commit ---------------------------------------------------------------------------------

    def commit(self) -> dict[str, dict[str, int | None]]:
        order = [t for t in self.spec.outputs if t in self.staged]
        missing = [t for t in self.spec.outputs if t not in self.staged and t not in self.recorded]
        if missing:
            raise JobError(f"job {self.spec.name} finished without staging {', '.join(missing)}")
        written: dict[str, dict[str, int | None]] = {}
        if order:
            with self.timed("commit"):
                versions = delta.commit_all([self.staged[t] for t in order])
            written = {t: {"version": v, "rows": self.staged[t].rows} for t, v in zip(order, versions)}
        return {t: written.get(t) or self.recorded[t] for t in self.spec.outputs}

    def abort(self) -> None:
        delta.abort_all(self.staged.values())


def _pin_inputs(run: Run) -> None:
    """Every declared input's current version, with its required columns checked from the Delta schema."""
    for declared in run.spec.inputs:
        uri = run.uri(declared.table)
        version = delta.version(uri)
        if version is None:
            if declared.optional:
                run.input_versions[declared.table] = None
                continue
            raise InputError(f"{uri}: {declared.hint}")
        if declared.columns:
            present = set(delta.column_names(uri, version))
            missing = [c for c in declared.columns if c not in present]
            if missing:
                raise InputError(f"{uri}: no column(s) {', '.join(missing)}; {declared.hint}")
        run.input_versions[declared.table] = version


def preflight(spec: JobSpec, config: Config) -> None:
    """Location checks before anything runs: the warehouse and every output folder of the right type."""
    if not spec.uses_warehouse:
        return
    delta.check_warehouse(config.paths.warehouse)
    for table in spec.outputs:
        layer, name = split_table(table)
        delta.check_location(delta.table_path(config.paths.warehouse, layer, name))


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@contextlib.contextmanager
def small_data(run: Run) -> Iterator[None]:
    """``SMALL_DATA_CONF`` for the body of a job with small inputs (restored afterwards)."""
    if not run.small:
        yield
        return
    from lib.spark import SMALL_DATA_CONF, temporary_conf

    assert run.spark is not None
    with temporary_conf(run.spark, SMALL_DATA_CONF):
        yield


def execute(spec: JobSpec, spark: SparkSession | None, config: Config, record: bool | None = None,
            on_start: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run a job through the frame and return its summary. Raises the job's error after recording it (the
    summary of a failed run is in ``gold/_runs``)."""
    from lib import runs

    record = config.runs.record if record is None else record
    run = Run(spark, config, spec, uuid.uuid4().hex)
    summary = runs.base_summary(spec, run.run_id, spark, config)
    clock = time.perf_counter()
    preflight(spec, config)
    if record:
        runs.record(spark, config, summary)
    if on_start is not None:
        on_start(summary)
    log.info("job %s started (run %s)", spec.name, run.run_id[:12])
    try:
        _pin_inputs(run)
        summary["inputs"] = dict(run.input_versions)
        if spec.sources is not None:
            summary["inputs"].update(spec.sources(config))
        previous = unchanged_since(spec, config, summary) if config.runs.skip_unchanged else None
        if previous is not None:
            return _skipped(spec, config, summary, previous, clock, record)
        if spec.is_skippable(config) and not config.runs.skip_unchanged:
            run.metrics["forced"] = True
        run.small = run.inputs_are_small()
        if spec.inputs:
            run.metrics["small_inputs"] = run.small
        with small_data(run):
            spec.body(run)
        summary["outputs"] = run.commit()
        summary["status"] = "succeeded"
    except BaseException as exc:
        run.abort()
        summary["status"] = "failed"
        summary["error"] = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:2000]
        raise
    finally:
        if summary["status"] != "skipped":
            _finish(run, summary, clock, record)
    return summary


def _finish(run: Run, summary: dict[str, Any], clock: float, record: bool) -> None:
    """Complete and record the summary of a run that ended (succeeded or failed); clear its work folder."""
    from lib import runs

    if summary["status"] == "succeeded" and run._work is not None:
        run._work.remove()
    summary.update({
        "finished_at": now().isoformat(),
        "seconds": round(time.perf_counter() - clock, 2),
        "left_out": run.left,
        "steps": run.steps,
        "notes": run.notes,
        "metrics": {**run.metrics, **({"resumed_steps": run.resumed} if run.resumed else {}),
                    **({"step_detail": run.step_detail} if run.step_detail else {})},
    })
    log.info("job %s %s in %.1f s", run.spec.name, summary["status"], summary["seconds"])
    if record:
        runs.record(run.spark, run.config, summary)


def unchanged_since(spec: JobSpec, config: Config, summary: dict[str, Any]) -> dict[str, Any] | None:
    """The job's last successful run when nothing it depends on changed since: the same input versions and
    source fingerprints, config hash and code version, and every output still at the version that run wrote."""
    if not spec.is_skippable(config):
        return None
    from lib import runs

    previous = next((r for r in reversed(runs.history(config))
                     if r["job"] == spec.name and r["status"] == "succeeded"), None)
    if previous is None or summary["code_version"] == "unknown":
        return None
    same = (previous.get("inputs") == summary["inputs"] and previous.get("config_hash") == summary["config_hash"]
            and previous.get("code_version") == summary["code_version"])
    if not same or set(previous.get("outputs") or {}) != set(spec.outputs):
        return None
    for table, written in previous["outputs"].items():
        layer, name = split_table(table)
        if delta.version(delta.table_path(config.paths.warehouse, layer, name)) != written.get("version"):
            return None
    return previous


def _skipped(spec: JobSpec, config: Config, summary: dict[str, Any], previous: dict[str, Any], clock: float,
             record: bool) -> dict[str, Any]:
    from lib import runs

    summary.update({
        "status": "skipped", "finished_at": now().isoformat(), "seconds": round(time.perf_counter() - clock, 2),
        "outputs": previous["outputs"],
        "notes": [f"unchanged since run {previous['run_id'][:12]} of {previous.get('started_at', '?')[:19]}: "
                  "same inputs, config and code (--force reruns)"],
        "metrics": {"skipped_for": previous["run_id"]},
    })
    log.info("job %s skipped: unchanged since run %s", spec.name, previous["run_id"][:12])
    if record:
        runs.record(None, config, summary)
    return summary


def merge_left_out(into: dict[str, dict[str, int]], other: Mapping[str, Mapping[str, int]]) -> None:
    for table, reasons in other.items():
        target = into.setdefault(table, {})
        for reason, rows in reasons.items():
            target[reason] = target.get(reason, 0) + int(rows)
