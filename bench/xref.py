"""Cross-reference throughput and quality against the peer named in the issue: ListenBrainz's MBID mapping.

Both run in the same process on the same bronze tables of a generated dump (the generator's
``_sample_truth_xref.parquet`` says which MBID and tier every track must get, decoys included):

- ours: ``jobs.xref.job.run`` (Spark, local[*]): ISRC exact + normalised, then the metadata tier.
- peer: the ListenBrainz mapping as plain SQL in DuckDB (one process, all cores): the MusicBrainz web
  service's ISRC lookup (the code as written), then ListenBrainz's ``combined_lookup`` — artist credit name
  + recording name, lower-cased, ``strip_accents``, non-word characters removed — looked up exactly, then
  again "detuned" (feat. phrases and bracketed parts cut, ``detune_query_string``); several hits → lowest
  recording id (ListenBrainz ranks by release popularity, which the dump has not). No duration check.

Printed: tracks/s of each, the ratio, and per expected tier how many tracks got the expected MBID and how
many got a wrong one (precision/recall). ``--normalizer-rows`` also measures the accent-folding choice:
Spark built-ins (``translate`` + ``replace``) against a ``mapInArrow`` Python normaliser on the same titles.

    .venv/bin/python bench/xref.py --tracks 2000000 --data /work/benchdata/t2m --work /tmp/bench_xref

``--data`` holds ``spotify/``, ``musicbrainz/`` and ``warehouse/bronze`` (generated and ingested here when
missing or of another size; that is not timed). Gold output goes to ``--work``; ``--data`` is only read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Timing, measure, spark_pid, timed, write_result  # noqa: E402
from jobs.sample.generator import MANIFEST, TRUTH, SampleSpec, generate  # noqa: E402
from jobs.xref import job as xref  # noqa: E402
from lib import delta  # noqa: E402
from lib.config import Config, load_config  # noqa: E402

BRONZE = ("spotify_tracks", "spotify_artists", "mb_isrc", "mb_recording", "mb_artist_credit",
          "mb_artist_credit_name")

PEER_SQL = r"""
WITH artists AS (
    SELECT artist_id, min(name) AS name FROM read_parquet($spotify_artists) GROUP BY artist_id
),
tracks AS (
    SELECT t.track_id, t.isrc, t.name AS title, a.name AS artist
    FROM read_parquet($spotify_tracks) t LEFT JOIN artists a ON a.artist_id = t.artist_ids[1]
),
recordings AS (
    SELECT r.recording_id, r.mbid, r.name AS title, ac.name AS credit
    FROM read_parquet($mb_recording) r JOIN read_parquet($mb_artist_credit) ac USING (artist_credit_id)
),
isrc_hits AS (          -- MusicBrainz web service /isrc/<code>: the code as written
    SELECT t.track_id, min_by(r.mbid, r.recording_id) AS mbid
    FROM tracks t JOIN read_parquet($mb_isrc) i ON i.isrc = t.isrc JOIN recordings r USING (recording_id)
    GROUP BY t.track_id
),
mb_keys AS (            -- ListenBrainz combined_lookup over artist credit name + recording name
    SELECT lb_key(credit || title) AS combined, min_by(mbid, recording_id) AS mbid
    FROM recordings GROUP BY 1
),
queries AS (
    SELECT track_id, lb_key(artist || title) AS exact_key, lb_key(detune(artist) || detune(title)) AS detuned_key
    FROM tracks WHERE track_id NOT IN (SELECT track_id FROM isrc_hits)
),
text_hits AS (
    SELECT q.track_id, coalesce(e.mbid, d.mbid) AS mbid
    FROM queries q LEFT JOIN mb_keys e ON e.combined = q.exact_key LEFT JOIN mb_keys d ON d.combined = q.detuned_key
)
SELECT t.track_id AS spotify_id, coalesce(i.mbid, h.mbid) AS mbid,
       CASE WHEN i.mbid IS NOT NULL THEN 'isrc_exact' WHEN h.mbid IS NOT NULL THEN 'metadata_match'
            ELSE 'no_match' END AS match_method
FROM tracks t LEFT JOIN isrc_hits i USING (track_id) LEFT JOIN text_hits h USING (track_id)
"""
PEER_MACROS = r"""
CREATE OR REPLACE MACRO lb_key(s) AS regexp_replace(lower(strip_accents(s)), '[^\p{L}\p{N}]+', '', 'g');
CREATE OR REPLACE MACRO detune(s) AS
    regexp_replace(s, '\s*(\(|\[| ft\.? | feat\.? | featuring ).*$', '', 'i');
"""
SCORE_SQL = """
SELECT t.expected_method AS tier, count(*) AS tracks,
       count(*) FILTER (WHERE o.mbid IS NOT DISTINCT FROM t.expected_mbid) AS right_mbid,
       count(*) FILTER (WHERE o.mbid IS NOT NULL AND o.mbid IS DISTINCT FROM t.expected_mbid) AS wrong_mbid,
       count(*) FILTER (WHERE o.match_method = t.expected_method AND o.mbid IS NOT DISTINCT FROM t.expected_mbid)
           AS right_tier
FROM truth t LEFT JOIN output o USING (spotify_id)
GROUP BY 1 ORDER BY 1
"""


def ensure_data(data: Path, tracks: int, config: Config) -> None:
    """Generate and ingest the dump unless ``data`` already holds one of this size (not timed)."""
    manifest = data / "spotify" / MANIFEST
    ready = all(delta.exists(delta.table_path(str(data / "warehouse"), "bronze", t)) for t in BRONZE)
    if manifest.exists() and json.loads(manifest.read_text())["spec"]["tracks"] == tracks and ready:
        return
    from jobs.ingest import job as ingest
    from lib.spark import build_session

    with timed() as generation:
        generate(data / "spotify", data / "musicbrainz", SampleSpec(tracks=tracks))
    print(f"generated {tracks:,} tracks in {generation.wall:.1f} s", flush=True)
    ingest_config = config.with_overrides({"paths.warehouse": str(data / "warehouse")})
    with timed() as ingestion:
        ingest.run(build_session(ingest_config, "bench-xref-ingest"), ingest_config)
    print(f"ingested in {ingestion.wall:.1f} s", flush=True)


def link_bronze(data: Path, warehouse: Path) -> None:
    """Our warehouse reads --data's bronze tables (symlinks) and writes its own gold."""
    (warehouse / "bronze").mkdir(parents=True, exist_ok=True)
    for table in BRONZE:
        link = warehouse / "bronze" / table
        if not link.exists():
            os.symlink(data / "warehouse" / "bronze" / table, link)


def run_ours(config: Config) -> tuple[dict, Timing]:
    from lib.spark import build_session

    spark = build_session(config, "bench-xref")
    timing, summary = measure(lambda: xref.run(spark, config)["metrics"], spark_pid(spark))
    return summary, timing


def run_peer(data: Path) -> tuple[object, Timing]:
    import duckdb

    con = duckdb.connect()
    con.execute(PEER_MACROS)
    files = {t: [str(p) for p in delta.open_table(delta.table_path(str(data / "warehouse"), "bronze", t))
                 .file_uris()] for t in BRONZE if f"${t}" in PEER_SQL}
    timing, table = measure(lambda: con.sql(PEER_SQL, params=files).to_arrow_table())
    return table, timing


def score(output: object, truth_path: Path) -> list[dict]:
    import duckdb

    con = duckdb.connect()
    con.register("output", output)
    con.execute(f"CREATE VIEW truth AS SELECT * FROM read_parquet('{truth_path}')")
    columns = ("tier", "tracks", "right_mbid", "wrong_mbid", "right_tier")
    return [dict(zip(columns, row)) for row in con.execute(SCORE_SQL).fetchall()]


def quality(rows: list[dict]) -> dict:
    matchable = [r for r in rows if r["tier"] != "no_match"]
    found = sum(r["right_mbid"] for r in matchable)
    wrong = sum(r["wrong_mbid"] for r in rows)
    return {
        "recall": round(found / max(sum(r["tracks"] for r in matchable), 1), 4),
        "precision": round(found / max(found + wrong, 1), 4),
        "wrong_mbids": wrong,
        "per_tier": {r["tier"]: {k: r[k] for k in ("tracks", "right_mbid", "wrong_mbid", "right_tier")}
                     for r in rows},
    }


def normalizer_benchmark(config: Config, rows: int) -> dict:
    """Title keys of ``rows`` titles: Spark built-ins vs a mapInArrow Python normaliser (unicodedata + re, the
    cheapest Python a unidecode/anyascii variant would build on)."""
    import re
    import unicodedata

    import pyarrow as pa
    from pyspark.sql import functions as F

    from jobs.xref import text
    from lib.spark import build_session

    spark = build_session(config, "bench-xref")
    titles = delta.read(spark, delta.table_path(config.paths.warehouse, "bronze", "spotify_tracks")).select("name")
    copies = -(-rows // max(titles.count(), 1))
    frame = (titles.crossJoin(spark.range(copies).withColumnRenamed("id", "copy")).limit(rows)
             .select(F.concat("name", F.col("copy").cast("string")).alias("name")).cache())
    frame.count()
    non_word = re.compile(r"[\W_]+")
    special = str.maketrans(text.SPECIAL_FOLDS)

    def python_keys(batches):
        for batch in batches:
            out = []
            for value in batch.column(0).to_pylist():
                if value is None:
                    out.append(None)
                    continue
                folded = unicodedata.normalize("NFKD", value.lower().translate(special))
                out.append(non_word.sub("", "".join(c for c in folded if not unicodedata.combining(c))))
            yield pa.RecordBatch.from_arrays([pa.array(out, pa.string())], ["key"])

    results = {}
    builtin = frame.select(text.word_key(text.fold(F.col("name"))).alias("key"))
    python = frame.mapInArrow(python_keys, "key string")
    for label, keyed in (("spark_builtins", builtin), ("mapInArrow_python", python)):
        keyed.agg(F.max("key")).collect()  # warm-up (code generation, Python workers)
        timing, _ = measure(lambda keyed=keyed: keyed.agg(F.max("key")).collect(), spark_pid(spark))
        results[label] = {"seconds": round(timing.wall, 2), "cpu_seconds": round(timing.cpu, 2),
                          "rows_per_s": round(rows / timing.wall)}
    frame.unpersist()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=2_000_000)
    parser.add_argument("--data", type=Path, default=Path("/tmp/bench_xref/data"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_xref/work"))
    parser.add_argument("--shuffle-partitions", type=int, default=16)
    parser.add_argument("--driver-memory", default="8g")
    parser.add_argument("--no-fuzzy", action="store_true", help="run with xref.fuzzy_titles = false")
    parser.add_argument("--normalizer-rows", type=int, default=1_000_000, help="0 skips the normaliser part")
    args = parser.parse_args()

    data, work = args.data.resolve(), args.work.resolve()
    base = load_config(use_default_file=False, base_dir=work).with_overrides({
        "runs.skip_unchanged": False,  # benchmarks rerun jobs on unchanged data on purpose
        "paths.spotify": str(data / "spotify"), "paths.musicbrainz": str(data / "musicbrainz"),
        "paths.work": str(work / "scratch"), "paths.warehouse": str(work / "warehouse"),
        "spark.master": "local[*]", "spark.driver_memory": args.driver_memory,
        "spark.shuffle_partitions": args.shuffle_partitions, "spark.log_level": "ERROR",
        "xref.fuzzy_titles": not args.no_fuzzy,
    })
    ensure_data(data, args.tracks, base)
    link_bronze(data, work / "warehouse")

    summary, ours = run_ours(base)
    ours_table = delta.open_table(delta.table_path(base.paths.warehouse, "gold", xref.OUTPUT)).to_pyarrow_table(
        columns=["spotify_id", "mbid", "match_method"])
    peer_table, peer = run_peer(data)
    truth = data / "spotify" / TRUTH
    rows = summary["rows"]
    report = {
        "tracks": rows,
        "cores": os.cpu_count(),
        "ours": {"seconds": round(ours.wall, 1), "cpu_seconds": round(ours.cpu, 1),
                 "tracks_per_s": round(rows / ours.wall), **quality(score(ours_table, truth)), "summary": summary},
        "peer_listenbrainz_duckdb": {"seconds": round(peer.wall, 1), "cpu_seconds": round(peer.cpu, 1),
                                     "tracks_per_s": round(rows / peer.wall), **quality(score(peer_table, truth))},
        "speed_ratio_ours_over_peer": round(peer.wall / ours.wall, 3),
    }
    if args.normalizer_rows:
        report["normalizer"] = normalizer_benchmark(base, args.normalizer_rows)
    print(json.dumps(report, indent=2, default=str))
    write_result("xref", report)


if __name__ == "__main__":
    main()
