"""SparkSession construction, the same for spark-submit, notebooks and tests.

Settings every job relies on live here once:
- UTC session time zone, so timestamps in Delta stats and tables do not depend on the machine.
- TIMESTAMP_MICROS Parquet timestamps (Spark's INT96 default is deprecated and read wrongly by
  delta-rs/DuckDB/polars).
- zstd Parquet compression: smaller files than snappy, read by every Delta reader.
- no ``_SUCCESS`` markers: the Delta log, not marker files, says which files belong to a table.
- executors run this virtualenv's Python unless ``spark.python`` names another one.
- no Python call-site capture per DataFrame call (``spark.python.sql.dataFrameDebugging.enabled``): with it
  every ``F.*`` function and Column method costs an ``inspect.stack()`` and ~4 extra py4j round trips to set
  and clear the origin in the JVM — half of all py4j calls in the test suite, and a fifth of publish's time
  on small inputs. It only adds the Python line to analysis errors; job errors name their table already.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lib.config import Config

if TYPE_CHECKING:  # the launcher uses session_conf without importing pyspark
    from pyspark.sql import DataFrame, DataFrameReader, SparkSession

BASE_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.parquet.compression.codec": "zstd",
    "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.legacy.timeParserPolicy": "CORRECTED",
    "spark.python.sql.dataFrameDebugging.enabled": "false",
}

# Quiet, small and deterministic: the settings the test session adds (chispa / Delta test-base style).
TEST_CONF: dict[str, str] = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.host": "localhost",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.sql.adaptive.coalescePartitions.enabled": "false",
    "spark.python.worker.reuse": "true",
}

# Runtime SQL settings for a job whose inputs are tiny (the job frame decides: ``runs.small_input_rows``,
# lib/job.py; publish also reads them into one partition each). There Spark's cost per stage, task and query
# dwarfs the data: a plan over single partitions needs no exchange for its joins, aggregates and windows unless
# a broadcast is planned (a job of its own), and interpreting expressions is cheaper than generating and
# compiling code for a few thousand rows. ``factoryMode`` is internal (Spark's own tests set it); without it
# each projection is still compiled. Measured on the publish test world: 2-3x less time in all.
SMALL_DATA_CONF: dict[str, str] = {
    "spark.sql.autoBroadcastJoinThreshold": "-1",
    "spark.sql.shuffle.partitions": "1",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
}


@contextlib.contextmanager
def temporary_conf(spark: SparkSession, conf: Mapping[str, str]) -> Iterator[None]:
    """Runtime SQL settings for the block, restored afterwards (jobs in one session run one at a time)."""
    previous = {key: spark.conf.get(key, None) for key in conf}
    for key, value in conf.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def python_for_executors(config: Config) -> str:
    return config.spark.python or sys.executable


def event_log_dir(config: Config) -> str:
    return f"{config.paths.work.rstrip('/')}/spark-events"


def session_conf(config: Config) -> dict[str, str]:
    """Spark properties derived from the config (also handed to spark-submit as --conf)."""
    conf = dict(BASE_CONF)
    conf["spark.sql.shuffle.partitions"] = str(config.spark.shuffle_partitions)
    conf["spark.ui.enabled"] = "true" if config.spark.ui else "false"
    progress = config.spark.progress_bar
    show_progress = sys.stdout.isatty() if progress == "auto" else progress == "true"
    conf["spark.ui.showConsoleProgress"] = "true" if show_progress else "false"
    if config.spark.event_log:
        events = event_log_dir(config)
        if "://" not in events:
            os.makedirs(events, exist_ok=True)
            events = f"file://{events}"
        conf["spark.eventLog.enabled"] = "true"
        conf["spark.eventLog.dir"] = events
    conf["spark.pyspark.python"] = python_for_executors(config)
    conf["spark.pyspark.driver.python"] = sys.executable
    conf.update(config.spark_conf)
    return conf


def build_session(config: Config, app_name: str, extra_conf: Mapping[str, str] | None = None) -> SparkSession:
    """The session for a job. Under spark-submit the master and conf come from the launcher already."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", python_for_executors(config))
    builder = SparkSession.builder.appName(app_name)
    if not _under_spark_submit():
        builder = builder.master(config.spark.master).config("spark.driver.memory", config.spark.driver_memory)
    for key, value in {**session_conf(config), **(extra_conf or {})}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(config.spark.log_level)
    return spark


def _under_spark_submit() -> bool:
    """True when a JVM gateway was launched for us by spark-submit (driver side)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def java_strings(spark: SparkSession, values: Sequence[str]) -> Any:
    """``values`` as a Scala ``Seq[String]`` in four py4j round trips whatever their number: py4j sends a Python
    list one element per round trip (reading a table of 10,000 files cost 10,000 of them)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    if not values or not all(values) or any("\n" in value for value in values):  # split loses empty strings
        return jvm.PythonUtils.toSeq(list(values))
    parts = jvm.java.util.regex.Pattern.compile("\n", 16).splitAsStream("\n".join(values)).toList()  # 16: LITERAL
    return jvm.PythonUtils.toSeq(parts)


def select_names(frame: DataFrame, names: Sequence[str]) -> DataFrame:
    """``frame.select(*names)`` for plain column names, in a few py4j calls instead of three per column."""
    quoted = ["`" + name.replace("`", "``") + "`" for name in names]
    return type(frame)(frame._jdf.selectExpr(java_strings(frame.sparkSession, quoted)), frame.sparkSession)


def read_parquet(reader: DataFrameReader, spark: SparkSession, paths: Sequence[str]) -> DataFrame:
    """``reader.parquet(*paths)`` with the paths crossing py4j at once (``java_strings``)."""
    return reader._df(reader._jreader.parquet(java_strings(spark, paths)))


def observed_counts(observation: Any, keys: Iterable[str] = ()) -> dict[str, int]:
    """An ``Observation``'s metrics as ints (NULL → 0), ``keys`` defaulting to 0.

    Spark skips the observation of a plan it proved empty (an input without files): reading it then
    raises instead of returning metrics, and the counts are all 0."""
    from py4j.protocol import Py4JJavaError

    values = dict.fromkeys(keys, 0)
    try:
        observed = observation.get
    except Py4JJavaError:
        return values
    values.update({key: int(value or 0) for key, value in observed.items()})
    return values
