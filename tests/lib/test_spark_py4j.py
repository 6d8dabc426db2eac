"""The few-round-trip helpers of lib/spark.py give what the plain PySpark calls give, including the inputs
their fast path cannot carry (empty strings, newlines), and the stage metrics read as JSON match the job."""

from __future__ import annotations

from pyspark.sql import functions as F

from lib import stage_metrics
from lib.spark import java_strings, read_parquet, select_names


def test_java_strings_round_trip_every_value(spark):
    for values in (["a"], ["x/y z", "ü", "`b`"], ["", "a", ""], ["line\nbreak", "c"], []):
        seq = java_strings(spark, values)
        assert [seq.apply(i) for i in range(seq.size())] == values


def test_select_names_and_read_parquet_equal_the_plain_calls(spark, tmp_path):
    frame = spark.range(5).select(F.col("id"), (F.col("id") * 2).alias("two`x"), F.lit("s").alias("a b"))
    paths = []
    for part in range(3):
        path = str(tmp_path / f"part {part}")
        frame.where(F.col("id") % 3 == part).write.parquet(path)
        paths.append(path)
    fast = select_names(read_parquet(spark.read, spark, paths), ["a b", "two`x", "id"])
    plain = spark.read.parquet(*paths).select("a b", F.col("`two``x`"), "id")
    assert fast.columns == ["a b", "two`x", "id"]
    assert sorted(fast.collect()) == sorted(plain.collect())
    assert len(fast.collect()) == 5


def test_stage_metrics_count_the_stages_and_shuffle_of_the_phase(spark):
    into: dict = {}
    with stage_metrics.phase(spark, "grouped", into):
        spark.range(1000, numPartitions=2).groupBy((F.col("id") % 7).alias("k")).count().collect()
    entry = into["grouped"]
    assert entry.get("stage_metrics") != "unavailable", entry
    assert entry["stages"] >= 2 and entry["shuffle_write_bytes"] > 0
    assert all(s["status"] == "complete" and s["tasks"] >= 1 and s["seconds"] is not None
               for s in entry["stage_detail"])
