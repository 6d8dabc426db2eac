"""publish on the local target, end to end on tiny gold tables (real local Spark, real SQLite files):
the targets hold exactly the gold data, the D1 import files load in plain sqlite3 into the spec's schema,
every request fits the documented limits, an unchanged republish sends nothing, a run crashed midway and
rerun ends in the same state as a clean run with nothing sent twice, changed gold leaves no stale row in
any target, the dry run changes nothing, and a small D1 budget is filled in priority order."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from jobs.publish.layout import index_names, shard_of
from jobs.publish.ledger import LEDGER_TABLE, STATE_TABLE
from lib import console, delta
from lib.cloudflare import limits
from lib.schemas import GOLD
from tests.support import configs
from tests.support import publish_checks as checks
from tests.support.publish_checks import publish_figures
from tests.support.publish_gold import build_world, inferred_genres, write_world
from tests.support.recording_target import InjectedCrash, RecordingFactory, calls

KV_PREWARM = 50
MAX_PER_INDEX = 150
SHARD_BYTES = 64 * 1024

# The spec's "D1 Schema", transcribed (plus playlist_cooccurrence.score, docs/publish-layout.md).
SPEC_DDL = """
CREATE TABLE spotify_mbid_xref (spotify_id TEXT PRIMARY KEY, isrc TEXT NOT NULL, mbid TEXT, match_confidence REAL,
  match_method TEXT, created_at INTEGER DEFAULT (unixepoch()), updated_at INTEGER DEFAULT (unixepoch()));
CREATE INDEX idx_xref_isrc ON spotify_mbid_xref(isrc);
CREATE INDEX idx_xref_mbid ON spotify_mbid_xref(mbid);
CREATE TABLE spotify_audio_features_cache (spotify_id TEXT PRIMARY KEY, tempo REAL, time_signature INTEGER,
  key INTEGER, mode INTEGER, loudness REAL, energy REAL, danceability REAL, speechiness REAL, acousticness REAL,
  instrumentalness REAL, liveness REAL, valence REAL, duration_ms INTEGER, popularity INTEGER,
  cached_at INTEGER DEFAULT (unixepoch()));
CREATE TABLE playlist_cooccurrence (track_a TEXT NOT NULL, track_b TEXT NOT NULL, cooccurrence_count INTEGER,
  pmi_score REAL, jaccard_score REAL, score REAL, PRIMARY KEY (track_a, track_b));
CREATE INDEX idx_cooccur_a ON playlist_cooccurrence(track_a);
CREATE INDEX idx_cooccur_b ON playlist_cooccurrence(track_b);
CREATE TABLE spotify_artist_genres (spotify_artist_id TEXT NOT NULL, genre TEXT NOT NULL,
  PRIMARY KEY (spotify_artist_id, genre));
CREATE INDEX idx_genre ON spotify_artist_genres(genre);
CREATE TABLE track_access_log (spotify_id TEXT PRIMARY KEY, access_count INTEGER DEFAULT 1, last_accessed INTEGER,
  vectorized INTEGER DEFAULT 0, promoted_at INTEGER);
CREATE INDEX idx_access_promotion ON track_access_log(access_count, vectorized);
CREATE TABLE precomputed_similar (seed_spotify_id TEXT NOT NULL, similar_spotify_id TEXT NOT NULL,
  similarity_score REAL, rank INTEGER, PRIMARY KEY (seed_spotify_id, similar_spotify_id));
CREATE INDEX idx_precomputed_seed ON precomputed_similar(seed_spotify_id, rank);
"""


def make_config(base: Path, warehouse: Path, out: Path, **overrides):
    return configs.make_config(base, {
        "paths.warehouse": str(warehouse), "publish.local_dir": str(out),
        "publish.r2_shard_bytes": SHARD_BYTES, "publish.vectorize_max_per_index": MAX_PER_INDEX,
        "publish.kv_prewarm": KV_PREWARM, "publish.progress_seconds": 1.0, **overrides})


@pytest.fixture(scope="module")
def first(spark, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("publish")
    world = build_world()
    inferred = inferred_genres(world)
    warehouse = tmp / "warehouse"
    write_world(spark, str(warehouse), world, inferred)
    cfg = make_config(tmp, warehouse, tmp / "out")
    log = str(tmp / "calls.log")
    summary = publish_figures(spark, cfg, RecordingFactory(log))
    return SimpleNamespace(tmp=tmp, world=world, inferred=inferred, warehouse=warehouse, cfg=cfg, log=log,
                           summary=summary, out=str(tmp / "out"))


def assert_holds(out: str, world, inferred) -> None:
    """The local target under ``out`` holds exactly what the gold rows say."""
    assert checks.d1_tables(os.path.join(out, "d1.sqlite")) == checks.expected_d1(world, inferred)
    conn = sqlite3.connect(os.path.join(out, "d1.sqlite"))
    assert conn.execute("SELECT count(*) FROM track_access_log").fetchone() == (0,)
    assert not conn.execute("SELECT name FROM sqlite_master WHERE name LIKE '%__next'").fetchall()
    conn.close()

    vectors = checks.vectorize_contents(out)
    expected = checks.expected_vectors(world)
    kv = checks.kv_contents(out)
    shard_map = json.loads(kv.pop("spotify:vectorize:shards")["value"])
    shards = shard_map["shard_count"]

    def largest(n):
        return max(Counter(shard_of(i, n) for i in expected).values())

    # The fewest indexes that keep each at most MAX_PER_INDEX vectors under the layout's hash.
    assert largest(shards) <= MAX_PER_INDEX and (shards == 1 or largest(shards - 1) > MAX_PER_INDEX)
    assert shards >= 2
    names = index_names("spotify-audio", shards)
    assert sorted(vectors) == sorted(n for n in names if any(names[shard_of(i, shards)] == n for i in expected))
    flat = {i: r for index, records in vectors.items() for i, r in records.items()}
    assert set(flat) == set(expected)
    for vector_id, record in flat.items():
        assert np.array_equal(np.asarray(record["values"], dtype=np.float32), expected[vector_id]["values"])
        assert record["metadata"] == expected[vector_id]["metadata"]
        assert vector_id in vectors[names[shard_of(vector_id, shards)]]
        assert len([r for r in vectors.values() if vector_id in r]) == 1
    for name in vectors:
        spec = json.loads(Path(out, "vectorize", name, "index.json").read_text())
        assert (spec["dimensions"], spec["metric"]) == (13, "cosine")

    assert shard_map == {"indexes": names, "shard_count": shards, "hash": "sha256-prefix8-mod"}
    want = checks.expected_kv(world, KV_PREWARM)
    assert {k: (json.loads(v["value"]), v.get("expiration_ttl")) for k, v in kv.items()} == want

    manifest, rows, keys = checks.r2_contents(out)
    assert rows == checks.expected_shard_rows(world)
    firsts = [s["first_id"] for s in manifest["shards"]]
    assert firsts == sorted(firsts) and len(manifest["shards"]) > 1
    for left, right in zip(manifest["shards"], manifest["shards"][1:]):
        assert left["last_id"] < right["first_id"]
    assert all(s["bytes"] <= SHARD_BYTES for s in manifest["shards"])
    assert manifest["vectorize"] == shard_map
    assert sorted(keys) == sorted(["manifest.json", *(s["key"] for s in manifest["shards"])])


def test_local_target_holds_the_gold_tables(first):
    assert_holds(first.out, first.world, first.inferred)
    objects = first.summary["objects"]
    assert all(o["changed"] for o in objects.values())
    assert objects["d1"]["fill"]["xref_matched_without_isrc"] == sum(
        1 for r in first.world.rows("spotify_mbid_xref") if r["mbid"] and not r["isrc"])


def test_d1_import_files_load_in_plain_sqlite3_into_the_spec_schema(first):
    files = sorted(Path(first.out, "d1").glob("*.sql"))
    assert files
    fresh = sqlite3.connect(":memory:")
    for path in files:
        fresh.executescript(path.read_text())
    spec = sqlite3.connect(":memory:")
    spec.executescript(SPEC_DDL)

    def shape(conn):
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: (conn.execute(f"PRAGMA table_info({t})").fetchall(),
                    sorted((i[1], i[2], tuple(c[2] for c in conn.execute(f"PRAGMA index_info({i[1]})")))
                           for i in conn.execute(f"PRAGMA index_list({t})"))) for t in tables}

    assert shape(fresh) == shape(spec)
    loaded = sqlite3.connect(os.path.join(first.out, "d1.sqlite"))
    assert shape(loaded) == shape(spec)
    for table, columns in checks.D1_COLUMNS.items():
        query = f"SELECT {', '.join(columns)} FROM {table}"
        assert set(fresh.execute(query)) == set(loaded.execute(query))


def test_every_request_fits_the_documented_limits(first):
    entries = calls(first.log)
    methods = Counter(e["method"] for e in entries)
    assert methods["d1_import"] >= 1 and methods["vectorize_upsert"] >= 1 and methods["kv_put"] >= 1
    assert methods["r2_put"] >= 2
    for e in entries:
        if e["method"] == "d1_import":
            assert e["bytes"] <= limits.D1_MAX_IMPORT_FILE_BYTES
            assert e["max_statement_bytes"] <= limits.D1_MAX_STATEMENT_BYTES
            assert e["transaction_words"] == 0
        elif e["method"] == "vectorize_upsert":
            assert e["vectors"] <= limits.VECTORIZE_MAX_VECTORS_PER_UPSERT
            assert e["bytes"] <= limits.VECTORIZE_MAX_UPSERT_BYTES
            assert e["max_id_bytes"] <= limits.VECTORIZE_MAX_ID_BYTES
            assert e["max_metadata_bytes"] <= limits.VECTORIZE_MAX_METADATA_BYTES
        elif e["method"] == "kv_put":
            assert e["pairs"] <= limits.KV_MAX_PAIRS_PER_BULK and e["bytes"] <= limits.KV_MAX_BULK_BYTES
            assert e["min_ttl"] is None or e["min_ttl"] >= limits.KV_MIN_EXPIRATION_TTL
        elif e["method"] == "r2_put":
            assert e["bytes"] <= SHARD_BYTES or e["key"] == "manifest.json"
    # Some D1 statements are long enough to be split at the 100 KB limit on this data.
    assert max(e["max_statement_bytes"] for e in entries if e["method"] == "d1_import") > 50_000
    assert first.summary["requests"]["issued"] == sum(
        4 if e["method"] == "d1_import" else 1 for e in entries)


def test_unchanged_republish_sends_nothing(first, spark):
    before = checks.snapshot(first.out)
    log = str(first.tmp / "unchanged.log")
    summary = publish_figures(spark, first.cfg, RecordingFactory(log))
    assert calls(log, include_idempotent=True) == []
    assert summary["requests"]["issued"] == 0
    assert not any(o["changed"] for o in summary["objects"].values())
    assert checks.snapshot(first.out) == before


def test_crash_midway_then_rerun_ends_like_a_clean_run_with_nothing_sent_twice(first, spark):
    out = first.tmp / "crashed"
    # With small inputs off: the partitioned plans (several sending tasks) build the very batches the first
    # run built from single partitions, byte for byte.
    cfg = make_config(first.tmp, first.warehouse, out, **{"runs.small_input_rows": 0})
    clean = calls(first.log)
    methods = [e["method"] for e in clean]
    # In the middle of the Vectorize stream: one executor task has sent some of its upserts, not all.
    crash_at = methods.index("vectorize_upsert") + 2
    assert methods[crash_at] == "vectorize_upsert"
    log = str(first.tmp / "crash.log")
    with pytest.raises(Exception) as failure:
        publish_figures(spark, cfg, RecordingFactory(log, fail_after=crash_at))
    assert InjectedCrash.__name__ in str(failure.value) or isinstance(failure.value, InjectedCrash)
    sent_before = len(calls(log))
    assert 0 < sent_before <= crash_at
    rerun = publish_figures(spark, cfg, RecordingFactory(log))
    assert first.summary["small_inputs"] and not rerun["small_inputs"]
    everything = calls(log)

    def requests(entries):  # the manifest differs in its created_at only
        return sorted(e["digest"] if e.get("key") != "manifest.json" else "manifest" for e in entries)

    assert requests(everything) == requests(clean)
    assert max(Counter(requests(everything)).values()) == 1
    assert_holds(str(out), first.world, first.inferred)
    manifest = {k: v for k, v in checks.r2_contents(str(out))[0].items() if k != "created_at"}
    assert manifest == {k: v for k, v in checks.r2_contents(first.out)[0].items() if k != "created_at"}


def test_dry_run_prints_the_plan_and_changes_nothing(first, spark):
    out = first.tmp / "dry"
    cfg = make_config(first.tmp, first.warehouse, out, **{"publish.dry_run": True})
    versions = {t: delta.version(delta.table_path(str(first.warehouse), "gold", t)) for t in (LEDGER_TABLE,
                                                                                            STATE_TABLE)}
    log = str(first.tmp / "dry.log")
    summary = publish_figures(spark, cfg, RecordingFactory(log))
    assert calls(log, include_idempotent=True) == []
    assert not out.exists()
    assert {t: delta.version(delta.table_path(str(first.warehouse), "gold", t)) for t in versions} == versions
    printed = console.render({"job": "publish", "status": "succeeded", "metrics": summary})
    assert "publish plan (dry run)" in printed and "monthly cost" in printed and "D1 fill" in printed
    # The plan is the real run's batches: the same requests the first publish issued.
    assert summary["requests"]["issued"] == first.summary["requests"]["issued"]
    for name in ("d1", "vectorize", "kv", "r2"):
        assert summary["objects"][name]["batches"] == first.summary["objects"][name]["batches"]
    assert set(summary["cost_per_month"]["dollars"]) == {"r2", "d1", "vectorize", "kv", "total"}


def test_small_d1_budget_fills_by_priority(first, spark):
    tables = first.summary["objects"]["d1"]["fill"]["tables"]
    features = tables["spotify_audio_features_cache"]["estimated_bytes"]
    budget = (tables["spotify_mbid_xref"]["estimated_bytes"] + tables["precomputed_similar"]["estimated_bytes"]
              + features // 2)
    out = first.tmp / "small"
    dump = first.tmp / "dump"  # the backup tier rides along: the original files under backup/
    dump.mkdir()
    (dump / "spotify_clean.sqlite3").write_bytes(b"SQLite format 3\x00" + os.urandom(3000))
    (dump / "spotify_clean_audio_features.sqlite3.zst").write_bytes(os.urandom(5000))
    cfg = make_config(first.tmp, first.warehouse, out, **{"publish.d1_max_bytes": budget, "publish.r2_backup": True,
                                                         "paths.spotify": str(dump)})
    summary = publish_figures(spark, cfg)
    for path in dump.iterdir():
        assert Path(out, "r2", "backup", path.name).read_bytes() == path.read_bytes()
    assert summary["objects"]["r2"]["backup_files"] == 2
    fill = summary["objects"]["d1"]["fill"]
    assert fill["estimated_bytes"] <= budget
    got = checks.d1_tables(os.path.join(out, "d1.sqlite"))
    want = checks.expected_d1(first.world, first.inferred)
    assert got["spotify_mbid_xref"] == want["spotify_mbid_xref"]
    assert got["precomputed_similar"] == want["precomputed_similar"]
    kept = {row[0] for row in got["spotify_audio_features_cache"]}
    assert 0 < len(kept) < len(want["spotify_audio_features_cache"])
    vectors = {r["spotify_id"]: r for r in first.world.rows("audio_vectors")}

    def rank(track):  # tier A before B, then popularity descending
        return (vectors[track]["tier"], -vectors[track]["popularity"])

    dropped = {row[0] for row in want["spotify_audio_features_cache"]} - kept
    assert max(rank(t) for t in kept) <= min(rank(t) for t in dropped)
    assert got["playlist_cooccurrence"] == set() and got["spotify_artist_genres"] == set()
    assert fill["tables"]["spotify_audio_features_cache"]["overflow_to"] == "r2 shards"
    assert fill["tables"]["spotify_artist_genres"]["overflow_rows"] == len(want["spotify_artist_genres"])
    # Whatever D1 lacks, the R2 shards still hold every track.
    assert checks.r2_contents(str(out))[1] == checks.expected_shard_rows(first.world)


def _rewrite(spark, warehouse: str, table: str, rows) -> None:
    from lib.schemas import BRONZE, conform

    layer = "bronze" if table in BRONZE else "gold"
    frame = spark.createDataFrame(rows, (BRONZE if layer == "bronze" else GOLD)[table])
    delta.write(conform(frame, layer, table).coalesce(1), delta.table_path(warehouse, layer, table))


def test_changed_gold_leaves_no_stale_rows_anywhere(first, spark):
    warehouse = first.tmp / "warehouse-changed"
    shutil.copytree(first.warehouse, warehouse)
    out = first.tmp / "changed"
    cfg = make_config(first.tmp, warehouse, out)
    publish_figures(spark, cfg)
    before_manifest = json.loads(Path(out, "r2", "manifest.json").read_text())

    world = first.world
    tier_a = sorted((r for r in world.rows("audio_vectors") if r["tier"] == "A"),
                    key=lambda r: (-r["popularity"], r["spotify_id"]))
    gone = {r["spotify_id"] for r in tier_a[:25]}  # the most popular: in KV too; they disappear from gold
    demoted = {r["spotify_id"] for r in tier_a[25:40]}  # leave tier A (popularity 5: tier C)
    names = list(world.tables)
    changed = type(world)(tables={n: list(rows) for n, rows in world.tables.items()})
    key = {"audio_vectors": 0, "spotify_audio_features": 0, "spotify_tracks": 0, "spotify_mbid_xref": 0}
    for table, column in key.items():
        changed.tables[table] = [r for r in changed.tables[table] if r[column] not in gone]
    changed.tables["audio_vectors"] = [
        (r[0], r[1], "C", 5, *r[4:]) if r[0] in demoted else r for r in changed.tables["audio_vectors"]]
    changed.tables["precomputed_similar"] = [r for r in changed.tables["precomputed_similar"]
                                             if r[0] not in gone and r[1] not in gone]
    changed.tables["cooccurrence_top"] = [r for r in changed.tables["cooccurrence_top"]
                                          if r[0] not in gone and r[1] not in gone]
    changed.tables["playlist_cooccurrence"] = [r for r in changed.tables["playlist_cooccurrence"]
                                               if r[0] not in gone and r[1] not in gone]
    for table in ("audio_vectors", "spotify_audio_features", "spotify_tracks", "spotify_mbid_xref",
                  "precomputed_similar", "cooccurrence_top", "playlist_cooccurrence"):
        _rewrite(spark, str(warehouse), table, changed.tables[table])
    assert set(names) == set(changed.tables)

    log = str(first.tmp / "changed.log")
    summary = publish_figures(spark, cfg, RecordingFactory(log))
    assert_holds(str(out), changed, first.inferred)
    ids = {i for records in checks.vectorize_contents(str(out)).values() for i in records}
    assert not ids & (gone | demoted)
    assert not any(k.endswith(tuple(gone)) for k in checks.kv_contents(str(out)))
    conn = sqlite3.connect(os.path.join(out, "d1.sqlite"))
    for table, column in (("spotify_mbid_xref", "spotify_id"), ("spotify_audio_features_cache", "spotify_id"),
                          ("precomputed_similar", "seed_spotify_id"), ("playlist_cooccurrence", "track_a")):
        present = {r[0] for r in conn.execute(f"SELECT {column} FROM {table}")}
        assert not present & gone, table
    # The old shard set is deleted once the new manifest is written; unchanged genres were not reloaded.
    assert not any(Path(out, "r2", s["key"]).exists() for s in before_manifest["shards"])
    assert "spotify_artist_genres" not in summary["objects"]["d1"]["tables_changed"]
    methods = Counter(e["method"] for e in calls(log))
    assert methods["vectorize_delete"] >= 1 and methods["r2_delete"] >= 1 and methods["kv_delete"] >= 1
