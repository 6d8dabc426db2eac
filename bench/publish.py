"""Publish throughput and request economy against the Cloudflare stand-in (tests/support/cloudflare_standin: the
REST API of D1, Vectorize and KV, enforcing the documented limits and the account's 1200 requests / 5 minutes)
and moto's S3 server for R2 (tests/support/s3_standin), both on 127.0.0.1 in this process.

Per ``--tracks`` size, synthetic gold tables (Spark-generated in the contracts' shapes: 70% tier A/B, 75%
matched to MusicBrainz, 1% seeds × 20 precomputed neighbours, 2 co-occurrence pairs per track, top 10 per
track) are written once under ``--work/t<N>/warehouse`` by a child process (not timed, reused while the size
is unchanged). Then, each through ``./spark-submit.sh publish --json`` as a user runs it (whole-process wall
time, CPU and peak resident memory of the process tree by ``bench.common.run_process``; job time and per-step
seconds from the run summary):

1. a first publish into an empty target (rows/s = rows of all batches ÷ job seconds, and ÷ process seconds),
2. an unchanged republish (the job frame's skip: inputs, config and state unchanged),
3. the same with ``--force`` (the whole plan is made again and must find nothing to send).

Requests are counted on the servers: batch requests (what the summary's "issued" counts: a D1 import file as
init + upload + ingest + one poll, a Vectorize upsert/delete, a KV bulk write/delete, an R2 object write),
further polls, set-up requests (Vectorize index probe/create/metadata indexes, D1 queries, bucket requests),
and failed requests that were retried. The minimum is the summary's: the fewest batches the limits allow
for the same data (``batching.min_batches`` per object).

    ARIA_VENV=/work/main/.venv /work/main/.venv/bin/python bench/publish.py --tracks 100000 1000000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import common  # noqa: E402
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


SUBMIT = ROOT / "spark-submit.sh"
D1_DATABASE, KV_NAMESPACE, R2_REGION = "bench-db", "bench-ns", "us-east-1"  # moto refuses "auto"
BOOKKEEPING = ("_publish_ledger", "_publish_state")


def generate_once(work: Path, tracks: int, master: str) -> Path:
    """The warehouse of ``tracks`` tracks, generated by a child process the first time (its JVM then exits,
    so it holds no memory or cores while the publish runs are measured)."""
    warehouse = work / f"t{tracks}" / "warehouse"
    marker = warehouse / f".tracks-{tracks}"
    if not marker.exists():
        shutil.rmtree(warehouse.parent, ignore_errors=True)
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--generate", str(tracks), "--work", str(work), "--master", master],
                       check=True)
        marker.touch()
        print(f"generated {tracks:,} tracks in {time.perf_counter() - started:.0f} s (not timed)", flush=True)
    for table in BOOKKEEPING:  # a fresh target: publish starts from nothing
        shutil.rmtree(warehouse / "gold" / table, ignore_errors=True)
    return warehouse


def _generate_main(tracks: int, work: Path, master: str) -> None:
    from lib.spark import build_session

    config = load_config(use_default_file=False, base_dir=work).with_overrides({
        "spark.master": master, "spark.driver_memory": "4g", "spark.log_level": "ERROR"})
    spark = build_session(config, "bench-publish-generate")
    generate(spark, str(work / f"t{tracks}" / "warehouse"), tracks)
    spark.stop()


def classify(cf_log: list[Any], s3_log: list[Any]) -> dict[str, Any]:
    """Server-side request counts by kind (see the module docstring), and by service/method/operation."""
    from lib.cloudflare.vectorize import BARRIER_ID

    # The Vectorize client's barrier (a delete of an id no vector has, lib.cloudflare.vectorize) is set-up.
    barrier = hashlib.sha256(json.dumps({"ids": [BARRIER_ID]}, separators=(",", ":")).encode()).hexdigest()
    retried = [r for r in cf_log if r.status == 0 or r.status == 429 or r.status >= 500]
    ok = [r for r in cf_log if 200 <= r.status < 300]
    uploads = sum(r.service == "upload" for r in ok)
    imports = sum(r.service == "d1" and r.operation == "import" for r in ok)
    batch = {
        "d1": 4 * uploads,  # init, upload, ingest, the first poll (send.REQUESTS["d1_import"])
        "vectorize": sum(r.service == "vectorize" and (r.operation in ("upsert", "insert") or (
            r.operation == "delete_by_ids" and r.digest != barrier)) for r in ok),
        "kv": sum(r.service == "kv" and r.operation in ("bulk", "delete") and r.method in ("PUT", "POST", "DELETE")
                  for r in ok),
        "r2": sum(r.object_write and 200 <= r.status < 300 for r in s3_log),
    }
    polls = {"d1": imports - 3 * uploads,
             "vectorize": sum(r.service == "vectorize" and r.method == "GET" and r.operation == "info" for r in ok)}
    s3_retried = sum(r.fault or r.status == 0 or r.status >= 500 for r in s3_log)
    total = len(cf_log) + len(s3_log)
    setup = total - len(retried) - s3_retried - sum(batch.values()) - sum(polls.values())
    operations = Counter(f"{r.service} {r.method} {r.operation} {r.status}" for r in cf_log)
    operations.update(f"r2 {r.method} {'object' if r.key else 'bucket'} {r.status}" for r in s3_log)
    served: Counter[str] = Counter()
    for r in cf_log:  # time the stand-in spent answering (a D1 import runs the whole SQL file in SQLite)
        served[r.service] += max(0.0, r.finished - r.started)
    return {"total": total, "batch": sum(batch.values()), "batch_per_object": batch, "polls": sum(polls.values()),
            "polls_per_object": polls, "setup": setup, "failed_and_retried": len(retried) + s3_retried,
            "writes": sum(r.write for r in cf_log) + batch["r2"],
            "by_operation": dict(sorted(operations.items())),
            "server_seconds": {k: round(v, 1) for k, v in sorted(served.items())}}


def submit(sets: dict[str, Any], env: dict[str, str], *flags: str) -> tuple[common.ProcessRun, dict[str, Any]]:
    """``./spark-submit.sh publish --json`` measured as a whole process; its summary."""
    argv = [str(SUBMIT), "publish", "--json", *flags, *(a for k, v in sets.items() for a in ("--set", f"{k}={v}"))]
    with tempfile.TemporaryFile() as out:
        proc = common.run_process(argv, cwd=ROOT, env=env, stdout=out)
        out.seek(0)
        text = out.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"publish failed (exit {proc.returncode}): {' '.join(argv)}\n{text[-2000:]}")
    return proc, json.loads(text)


def run_size(work: Path, tracks: int, master: str, extra: list[str]) -> dict[str, Any]:
    from botocore.config import Config as BotoConfig

    from lib.cloudflare import limits
    from tests.support.cloudflare_standin import CloudflareStandin
    from tests.support.s3_standin import RecordingS3

    warehouse = generate_once(work, tracks, master)
    token = "cf-bench-" + secrets.token_hex(12)
    standin = CloudflareStandin(work / f"t{tracks}" / f"standin-{uuid.uuid4().hex[:8]}", token,
                                rate_limit=(limits.API_REQUESTS_PER_WINDOW, limits.API_WINDOW_SECONDS)).start()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server: a line per request otherwise
    s3 = RecordingS3().start()
    bucket = f"aria-bench-{uuid.uuid4().hex[:8]}"
    import boto3

    boto3.client("s3", endpoint_url=s3.url, region_name=R2_REGION, aws_access_key_id="x", aws_secret_access_key="x",
                 config=BotoConfig(request_checksum_calculation="when_required")).create_bucket(Bucket=bucket)
    s3.log.clear()
    env = {**os.environ, "CLOUDFLARE_API_TOKEN": token, "R2_ACCESS_KEY_ID": "bench",
           "R2_SECRET_ACCESS_KEY": "bench-" + secrets.token_hex(8)}
    env.setdefault("ARIA_VENV", str(Path(sys.executable).resolve().parent.parent))
    sets: dict[str, Any] = {
        "spark.master": master, "paths.warehouse": warehouse, "paths.work": work / f"t{tracks}" / "work",
        "publish.target": "cloudflare", "cloudflare.api_base": standin.url,
        "cloudflare.account_id": standin.account_id, "cloudflare.d1_database_id": D1_DATABASE,
        "cloudflare.kv_namespace_id": KV_NAMESPACE, "r2.endpoint_url": s3.url, "r2.bucket": bucket,
        "r2.region": R2_REGION,
        # The stand-in applies a Vectorize mutation or finishes an import on the first poll: a short pause
        # between polls (default 2 s, for the real services) keeps the figures about publish, not the pause.
        "cloudflare.poll_interval_s": 0.2,
    }
    sets.update(item.split("=", 1) for item in extra)
    runs: dict[str, Any] = {}
    try:
        for name, flags in (("first", ()), ("unchanged", ()), ("unchanged_forced", ("--force",))):
            cf_from, s3_from = len(standin.log), len(s3.log)
            proc, summary = submit(sets, env, *flags)
            metrics = summary.get("metrics") or {}
            runs[name] = {
                "status": summary["status"], "small_inputs": metrics.get("small_inputs"),
                "process_seconds": round(proc.wall, 1),
                "process_cpu_seconds": round(proc.cpu, 1), "peak_rss_mb": round(proc.peak_rss_bytes / 2**20),
                "max_process_hwm_mb": round(proc.max_process_hwm_bytes / 2**20),
                "job_seconds": summary.get("seconds"), "steps": summary.get("steps"),
                "stages": {k: v.get("stages") for k, v in (metrics.get("step_detail") or {}).items()},
                "requests_summary": metrics.get("requests"),
                "requests_server": classify(standin.log[cf_from:], s3.log[s3_from:]),
                "objects": {k: {f: v.get(f) for f in ("rows", "bytes", "batches", "requests", "minimum_requests")}
                            for k, v in (metrics.get("objects") or {}).items()},
                "violations": len(standin.violations),
            }
            print(f"{tracks:,} tracks, {name}: {runs[name]['status']}, process {proc.wall:.1f} s, job "
                  f"{summary.get('seconds')} s, server writes {runs[name]['requests_server']['writes']}", flush=True)
    finally:
        standin.stop()
        s3.stop()
    first = runs["first"]
    rows = sum(o["rows"] or 0 for o in first["objects"].values())
    req, server = first["requests_summary"], first["requests_server"]
    return {
        "tracks": tracks, "rows": rows,
        "rows_per_job_second": round(rows / first["job_seconds"]) if first["job_seconds"] else None,
        "rows_per_process_second": round(rows / first["process_seconds"]),
        "batch_requests_vs_minimum": round(server["batch"] / req["minimum"], 3) if req and req["minimum"] else None,
        "all_requests_vs_minimum": round(server["total"] / req["minimum"], 3) if req and req["minimum"] else None,
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--work", default="/tmp/bench_publish")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--set", action="append", default=[], help="extra config for publish, section.key=value")
    parser.add_argument("--generate", type=int, help=argparse.SUPPRESS)  # the child that writes the gold tables
    args = parser.parse_args()
    work = Path(args.work)
    if args.generate:
        _generate_main(args.generate, work, args.master)
        return
    for tracks in args.tracks:
        load = os.getloadavg()
        result = {"load_average_before": [round(x, 2) for x in load], **run_size(work, tracks, args.master, args.set)}
        print(json.dumps(result, indent=1, default=str), flush=True)
        print("wrote", common.write_result("publish", result), flush=True)


if __name__ == "__main__":
    main()
