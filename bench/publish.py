"""Publish throughput and request economy: requests issued against the fewest the documented limits allow for
the same data (goal ≤ 1.1×), rows/s into the target, and the time of an unchanged republish (goal: a few
seconds, no writes).

The gold tables are synthetic (Spark-generated in the contracts' shapes, ``--tracks`` tracks: 70% tier A/B,
75% matched to MusicBrainz, 1% seeds × 20 precomputed neighbours, 2 co-occurrence pairs per track, top 10 per
track), written once to ``--work/warehouse`` and reused while ``--tracks`` is unchanged (not timed). Then:

1. a first publish into an empty target (timed; rows/s = rows of all batches / seconds),
2. the same publish again (timed; must send nothing).

The target is the local one now (``publish.target = "local"``; files under ``--work/out``); the Cloudflare
stand-in can be passed later with ``--set publish.target=cloudflare --set cloudflare.api_base=…``.

    .venv/bin/python bench/publish.py --tracks 1000000 --work /tmp/bench_publish
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jobs.publish import job as publish  # noqa: E402
from lib import delta  # noqa: E402
from lib.config import load_config  # noqa: E402
from lib.schemas import BRONZE, GOLD, conform  # noqa: E402


def _hash(expr: str, salt: int) -> str:
    return f"pmod(xxhash64({expr}, {salt}), 1000000) / 1000000.0"


def generate(spark, warehouse: str, tracks: int) -> None:
    """Synthetic gold + the bronze tables publish reads, in the contracts' shapes."""
    from pyspark.sql import functions as F

    base = spark.range(tracks).select(
        F.col("id"),
        F.substring(F.sha2(F.col("id").cast("string"), 256), 1, 22).alias("spotify_id"),
        F.pmod(F.xxhash64("id", F.lit(1)), F.lit(101)).cast("int").alias("popularity"),
        F.concat(F.lit("ar"), F.pmod("id", F.lit(1000)).cast("string")).alias("artist_id"),
    ).persist()
    vectors = base.select(
        "spotify_id",
        F.expr("transform(sequence(0, 12), i -> cast(pmod(xxhash64(id, i), 10000) / 10000.0 as float))")
        .alias("vector"),
        F.when(F.col("popularity") >= 30, "A").when(F.col("popularity") >= 10, "B").otherwise("C").alias("tier"),
        "popularity",
        F.concat(F.lit("USRC1"), F.lpad(F.col("id").cast("string"), 7, "0")).alias("isrc"),
        F.concat(F.lit("Track "), F.col("id").cast("string")).alias("title"),
        F.concat(F.lit("Artist "), F.col("artist_id")).alias("artist"),
        F.array(F.lit("pop"), F.lit("rock")).alias("genres"),
        (F.lit(1960) + F.pmod("id", F.lit(60))).cast("int").alias("year"),
        (F.lit(1960) + F.pmod("id", F.lit(60)) - F.pmod(F.lit(1960) + F.pmod("id", F.lit(60)), F.lit(10)))
        .cast("int").alias("decade"),
        F.when(F.pmod("id", F.lit(4)) != 0, F.expr("uuid()")).alias("mbid"),
        F.array().cast("array<string>").alias("detected_genres"),
    ).persist()
    features = base.select(
        F.col("spotify_id").alias("track_id"),
        *(F.expr(_hash("id", s)).alias(n) for s, n in enumerate(("danceability", "energy"), 10)),
        F.pmod(F.xxhash64("id", F.lit(3)), F.lit(12)).cast("int").alias("key"),
        (F.expr(_hash("id", 4)) * -60).alias("loudness"),
        F.pmod("id", F.lit(2)).cast("int").alias("mode"),
        *(F.expr(_hash("id", s)).alias(n) for s, n in enumerate(
            ("speechiness", "acousticness", "instrumentalness", "liveness", "valence"), 20)),
        (F.lit(60) + F.expr(_hash("id", 5)) * 140).alias("tempo"),
        (F.lit(150_000) + F.pmod("id", F.lit(100_000))).cast("int").alias("duration_ms"),
        F.lit(4).alias("time_signature"),
    )
    track_rows = base.select(
        F.col("spotify_id").alias("track_id"), F.concat(F.lit("Track "), F.col("id").cast("string")).alias("name"),
        F.concat(F.lit("al"), F.pmod("id", F.lit(50_000)).cast("string")).alias("album_id"),
        F.array("artist_id").alias("artist_ids"), F.lit(None).cast("string").alias("isrc"), "popularity",
        F.lit(200_000).alias("duration_ms"), F.lit(False).alias("explicit"), F.lit(1).alias("disc_number"),
        F.lit(1).alias("track_number"), F.current_timestamp().alias("fetched_at"))
    artists = spark.range(1000).select(
        F.concat(F.lit("ar"), F.col("id").cast("string")).alias("artist_id"),
        F.concat(F.lit("Artist "), F.col("id").cast("string")).alias("name"), F.lit(1000).cast("long")
        .alias("followers"), F.pmod("id", F.lit(101)).cast("int").alias("popularity"),
        F.array(F.lit("pop"), F.lit("rock")).alias("genres"))
    xref = vectors.select("spotify_id", "isrc", "mbid", F.when(F.col("mbid").isNotNull(), 1.0).otherwise(0.0)
                          .alias("match_confidence"),
                          F.when(F.col("mbid").isNotNull(), "isrc_exact").otherwise("no_match").alias("match_method"))
    ids = base.select("id", "spotify_id")
    seeds = base.where(F.pmod("id", F.lit(100)) == 0).select(F.col("id").alias("seed"),
                                                             F.col("spotify_id").alias("seed_spotify_id"))
    similar = seeds.crossJoin(spark.range(1, 21).withColumnRenamed("id", "rank")).withColumn(
        "id", F.pmod(F.col("seed") + F.col("rank") * 7919, F.lit(tracks))).join(ids, "id").select(
        "seed_spotify_id", F.col("spotify_id").alias("similar_spotify_id"),
        (F.lit(1.0) - F.col("rank") / 100.0).alias("similarity_score"), F.col("rank").cast("int"))
    pairs = base.select(F.col("id").alias("a_id"), F.col("spotify_id").alias("a")).crossJoin(
        spark.range(1, 3).withColumnRenamed("id", "k")).withColumn(
        "id", F.pmod(F.col("a_id") + F.col("k") * 104729, F.lit(tracks))).join(ids, "id").select(
        F.least("a", "spotify_id").alias("track_a"), F.greatest("a", "spotify_id").alias("track_b")).distinct()
    cooc = pairs.select("track_a", "track_b", F.lit(5).cast("long").alias("cooccurrence_count"),
                        F.expr(_hash("track_a, track_b", 1)).alias("pmi_score"),
                        F.expr(_hash("track_a, track_b", 2)).alias("jaccard_score"),
                        F.expr(_hash("track_a, track_b", 3)).alias("score"), F.lit(1.0).alias("llr_score"))
    from pyspark.sql import Window

    both = cooc.select(F.col("track_a").alias("track_id"), F.col("track_b").alias("neighbor_id"), "*").unionByName(
        cooc.select(F.col("track_b").alias("track_id"), F.col("track_a").alias("neighbor_id"), "*"))
    top = both.withColumn("rank", F.row_number().over(Window.partitionBy("track_id").orderBy(
        F.col("score").desc(), "neighbor_id"))).where(F.col("rank") <= 10)
    tables = {("gold", "audio_vectors"): vectors, ("bronze", "spotify_audio_features"): features,
              ("bronze", "spotify_tracks"): track_rows, ("bronze", "spotify_artists"): artists,
              ("gold", "spotify_mbid_xref"): xref, ("gold", "precomputed_similar"): similar,
              ("gold", "playlist_cooccurrence"): cooc, ("gold", "cooccurrence_top"): top}
    for (layer, name), frame in tables.items():
        wanted = (BRONZE if layer == "bronze" else GOLD)[name]
        frame = frame.select(*(c.split(" ")[0] for c in wanted.split(", ")))
        delta.write(conform(frame, layer, name), delta.table_path(warehouse, layer, name))
    base.unpersist()
    vectors.unpersist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, default=1_000_000)
    parser.add_argument("--work", default="/tmp/bench_publish")
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--set", action="append", default=[], help="extra config, section.key=value")
    args = parser.parse_args()
    from lib.spark import build_session

    work = Path(args.work)
    marker = work / "warehouse" / f".tracks-{args.tracks}"
    config = load_config(use_default_file=False, base_dir=work, sets=args.set).with_overrides({
        "spark.master": args.master, "spark.driver_memory": "6g", "spark.log_level": "ERROR",
        "paths.warehouse": str(work / "warehouse"), "publish.local_dir": str(work / "out")})
    spark = build_session(config, "bench-publish")
    if not marker.exists():
        shutil.rmtree(work, ignore_errors=True)
        started = time.perf_counter()
        generate(spark, config.paths.warehouse, args.tracks)
        marker.touch()
        print(f"generated {args.tracks:,} tracks in {time.perf_counter() - started:.0f} s (not timed)", flush=True)
    else:
        for name in ("out",):
            shutil.rmtree(work / name, ignore_errors=True)
        for table in ("_publish_ledger", "_publish_state"):
            shutil.rmtree(work / "warehouse" / "gold" / table, ignore_errors=True)

    started = time.perf_counter()
    first = publish.run(spark, config)
    first_s = time.perf_counter() - started
    started = time.perf_counter()
    again = publish.run(spark, config)
    again_s = time.perf_counter() - started
    rows = sum(o["rows"] for o in first["objects"].values())
    result = {
        "tracks": args.tracks,
        "first_publish": {"seconds": round(first_s, 1), "rows": rows, "rows_per_s": round(rows / first_s),
                          "requests": first["requests"],
                          "per_object_seconds": {k: v.get("seconds") for k, v in first["objects"].items()}},
        "unchanged_republish": {"seconds": round(again_s, 1), "requests": again["requests"]["issued"],
                                "changed": [k for k, v in again["objects"].items() if v["changed"]]},
        "objects": {k: {f: v.get(f) for f in ("rows", "bytes", "batches", "requests", "minimum_requests")}
                    for k, v in first["objects"].items()},
    }
    print(json.dumps(result, indent=2))
    spark.stop()


if __name__ == "__main__":
    main()
