"""publish and promote with ``publish.target = "cloudflare"``, end to end through the job frame: the real REST
clients (built inside the executor tasks) against the Cloudflare stand-in, R2 through boto3 against moto's S3
server behind a request log, on the tiny gold world of ``publish_gold``.

Two targets (each a stand-in "account" with its own bucket and warehouse): the first gets one publish with
faults injected (a 429 with retry-after, a 503, a dropped connection, an S3 503), then an unchanged republish
and two promote runs; the second crashes midway (the stand-in goes down for good after the first Vectorize
upsert), is rerun, must end exactly like the first and is then republished from changed gold. Every count
below is taken server-side, from the stand-ins' request logs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import stat
import uuid
from collections import Counter
from types import SimpleNamespace

import boto3
import numpy as np
import pytest
import requests
from botocore.config import Config as BotoConfig

from jobs.promote import job as promote_job
from jobs.publish import job as publish_job
from jobs.publish.layout import SHARD_HASH, index_names, shard_of
from lib import runs
from lib.cloudflare import limits
from lib.cloudflare.vectorize import BARRIER_ID
from lib.log import get_logger
from lib.schemas import BRONZE
from tests.support import configs
from tests.support import publish_checks as checks
from tests.support.cloudflare_fixtures import D1_DATABASE, KV_NAMESPACE, R2_REGION, standin_overrides
from tests.support.cloudflare_standin import CloudflareStandin
from tests.support.publish_gold import World, build_world, inferred_genres, write_world
from tests.support.s3_standin import RecordingS3

# Five publish runs against the stand-in and moto: minutes, so .ci/run runs them after the main suite
# (-m e2e), like the cluster and Airflow tests.
pytestmark = pytest.mark.e2e

TRACKS = 300
KV_PREWARM = 50
MAX_PER_INDEX = 150  # ~210 tier-A vectors: two indexes
SHARD_BYTES = 64 * 1024
INDEX_BASE = "spotify-audio"
CHECKSUM_HEADERS = ("x-amz-checksum-", "x-amz-sdk-checksum-algorithm", "x-amz-trailer")


class Lines(logging.Handler):
    """Every log line of the test process (driver, stand-ins, moto), formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.executor_stderr: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def read_executor_stderr(self, spark) -> None:
        """The JVM's stderr, where the Python workers' stderr (their log lines, tracebacks) ends up, when it is
        a file that can be read back (pytest's capture file; not a terminal)."""
        proc = getattr(spark.sparkContext._gateway, "proc", None)
        path = f"/proc/{proc.pid}/fd/2" if proc is not None else ""
        if path and os.path.exists(path) and stat.S_ISREG(os.stat(path).st_mode):
            with open(path, errors="replace") as handle:
                self.executor_stderr.append(handle.read())


@pytest.fixture(scope="module")
def env():
    patch = pytest.MonkeyPatch()
    values = {"CLOUDFLARE_API_TOKEN": "cf-test-" + secrets.token_hex(12), "R2_ACCESS_KEY_ID": "r2-key-id",
              "R2_SECRET_ACCESS_KEY": "r2-secret-" + secrets.token_hex(12)}
    for name, value in values.items():
        patch.setenv(name, value)
    yield SimpleNamespace(token=values["CLOUDFLARE_API_TOKEN"], secrets=(values["CLOUDFLARE_API_TOKEN"],
                                                                        values["R2_SECRET_ACCESS_KEY"]))
    patch.undo()


@pytest.fixture(scope="module")
def captured():
    get_logger("tests")  # the "aria" handler first, so attaching ours changes nothing of it
    handler = Lines()
    loggers = [logging.getLogger(), logging.getLogger("aria")]
    for logger in loggers:
        logger.addHandler(handler)
    yield handler
    for logger in loggers:
        logger.removeHandler(handler)


@pytest.fixture(scope="module")
def s3():
    server = RecordingS3().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gold(spark, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("publish-cf-gold")
    world = build_world(tracks=TRACKS)
    inferred = inferred_genres(world)
    write_world(spark, str(tmp / "warehouse-1"), world, inferred)
    shutil.copytree(tmp / "warehouse-1", tmp / "warehouse-2")  # the second target's gold changes later
    return SimpleNamespace(world=world, inferred=inferred, warehouses=(tmp / "warehouse-1", tmp / "warehouse-2"))


def open_site(tmp, warehouse, env, s3) -> SimpleNamespace:
    """One target: a stand-in account (enforcing the account's rate limit too), a bucket, its config."""
    standin = CloudflareStandin(tmp / "standin", env.token,
                                rate_limit=(limits.API_REQUESTS_PER_WINDOW, limits.API_WINDOW_SECONDS)).start()
    bucket = f"aria-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3.url, region_name=R2_REGION, aws_access_key_id="x",
                          aws_secret_access_key="x", config=BotoConfig(request_checksum_calculation="when_required",
                                                                       response_checksum_validation="when_required"))
    client.create_bucket(Bucket=bucket)
    cfg = configs.make_config(tmp, {
        "paths.warehouse": str(warehouse), "publish.target": "cloudflare", "publish.r2_shard_bytes": SHARD_BYTES,
        "publish.vectorize_max_per_index": MAX_PER_INDEX, "publish.kv_prewarm": KV_PREWARM,
        "publish.progress_seconds": 5.0, **standin_overrides(standin), "r2.endpoint_url": s3.url,
        "r2.bucket": bucket, "r2.region": R2_REGION})
    return SimpleNamespace(tmp=tmp, standin=standin, bucket=bucket, client=client, cfg=cfg, summaries=[])


def publish(spark, site, captured) -> dict:
    try:
        summary = publish_job.run(spark, site.cfg)
    finally:
        captured.read_executor_stderr(spark)
    site.summaries.append(summary)
    return summary


def read_state(site, tmp_path_factory) -> SimpleNamespace:
    """Everything the target holds, as plain values (the stand-in read directly, the bucket downloaded)."""
    standin, db = site.standin, D1_DATABASE
    manifest, shard_rows, keys = checks.r2_contents(checks.download_bucket(
        site.client, site.bucket, str(tmp_path_factory.mktemp("bucket"))))
    tables = {r[0] for r in standin.d1_rows(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    return SimpleNamespace(
        d1=checks.d1_tables(str(standin.d1_file(db))), tables=tables,
        access=standin.d1_rows(db, "SELECT * FROM track_access_log") if "track_access_log" in tables else None,
        vectors=checks.standin_vectors(standin), kv=checks.standin_kv(standin, KV_NAMESPACE), manifest=manifest,
        shard_rows=shard_rows, keys=keys)


def assert_holds(state, world: World, inferred) -> None:
    """The target holds exactly what the gold rows say (``publish_checks`` expectations)."""
    assert state.d1 == checks.expected_d1(world, inferred)
    assert state.access == []  # created, empty
    assert not [t for t in state.tables if t.endswith("__next")]

    kv = dict(state.kv)
    shard_map = json.loads(kv.pop("spotify:vectorize:shards")["value"])
    count = shard_map["shard_count"]
    names = index_names(INDEX_BASE, count)
    assert shard_map == {"indexes": names, "shard_count": count, "hash": SHARD_HASH} and count >= 2
    expected = checks.expected_vectors(world)
    held = {(index, i) for index, records in state.vectors.items() for i in records}
    assert held == {(names[shard_of(i, count)], i) for i in expected}  # each once, in the index it hashes to
    assert max(Counter(index for index, _ in held).values()) <= MAX_PER_INDEX
    for records in state.vectors.values():
        for vector_id, record in records.items():
            assert np.array_equal(np.asarray(record["values"], dtype=np.float32), expected[vector_id]["values"])
            assert record["metadata"] == expected[vector_id]["metadata"]
    assert {k: (json.loads(v["value"]), v.get("expiration_ttl")) for k, v in kv.items()} == checks.expected_kv(
        world, KV_PREWARM)

    assert state.shard_rows == checks.expected_shard_rows(world)
    assert sorted(state.keys) == sorted(["manifest.json", *(s["key"] for s in state.manifest["shards"])])
    assert state.manifest["vectorize"] == shard_map


def successful_writes(log) -> list[tuple[str, str, str]]:
    return [(r.method, r.path, r.digest) for r in log if r.write]


def refused(log) -> list:
    """Requests the stand-in turned down (not injected faults): only the existence probe of an index that
    publish is about to create may answer 404."""
    return [r for r in log if r.status >= 400 and r.fault is None
            and not (r.method == "GET" and r.status == 404 and re.fullmatch(r".*/vectorize/v2/indexes/[^/]+", r.path))]


@pytest.fixture(scope="module")
def first(spark, gold, env, s3, captured, tmp_path_factory):
    """Target 1, first publish, with one fault of each kind on the way: a dropped connection on the D1 import
    (init), a 503 on the KV bulk write, a 429 with retry-after 1 s on the first Vectorize upsert, a 503 on an
    R2 PutObject. All of them retried; the result must be exact all the same."""
    site = open_site(tmp_path_factory.mktemp("publish-cf-1"), gold.warehouses[0], env, s3)
    site.standin.inject("drop", 1, path_contains="/import")
    site.standin.inject("503", 1, path_contains="/bulk")
    site.standin.inject("429", 1, path_contains="/upsert", retry_after=1)
    s3.fail_next(1, "PUT")
    summary = publish(spark, site, captured)
    yield SimpleNamespace(site=site, summary=summary, state=read_state(site, tmp_path_factory),
                          log=list(site.standin.log), s3_log=s3.requests(site.bucket))
    site.standin.stop()


def test_targets_hold_the_gold_tables(first, gold):
    assert first.summary["status"] == "succeeded"
    assert_holds(first.state, gold.world, gold.inferred)
    assert all(o["changed"] for o in first.summary["metrics"]["objects"].values())


def test_every_request_within_the_limits_and_near_the_fewest(first):
    standin = first.site.standin
    assert standin.violations == []  # every limit it enforces, the account's rate limit included
    assert refused(first.log) == []
    assert all(r.authorization for r in first.log if r.service != "upload")
    assert not any(r.authorization for r in first.log if r.service == "upload")  # the upload URL never sees it
    assert all(r.status < 400 or r.fault for r in first.s3_log)
    assert all(len(r.key.encode()) <= limits.R2_MAX_KEY_BYTES for r in first.s3_log)

    metrics = first.summary["metrics"]
    # "issued" counts each batch's requests (an import as 4); the Vectorize index set-up (probe, create, metadata
    # indexes, a barrier), the polls of imports and indexes, and retries come on top.
    req = metrics["requests"]
    assert req["minimum"] > 0 and req["issued"] <= 1.1 * req["minimum"], req
    # The batches the servers received are the ones the summary counts.
    ok = [r for r in first.log if r.status == 200]
    objects = metrics["objects"]
    assert sum(r.service == "upload" for r in ok) == objects["d1"]["sent"]
    assert sum(r.operation == "upsert" for r in ok) == objects["vectorize"]["sent"]
    assert sum(r.operation == "bulk" and r.method == "PUT" for r in ok) == objects["kv"]["sent"]
    assert sum(r.object_write and r.status == 200 for r in first.s3_log) == objects["r2"]["sent"]
    # The driver waits for the executors' upserts told which came first: no barrier but each new index's
    # set-up one (after its metadata indexes).
    barrier = hashlib.sha256(json.dumps({"ids": [BARRIER_ID]}, separators=(",", ":")).encode()).hexdigest()
    vectorize = [r for r in ok if r.service == "vectorize"]
    barriers = sum(r.operation == "delete_by_ids" and r.digest == barrier for r in vectorize)
    assert barriers == len(objects["vectorize"]["indexes"])


def test_faults_are_waited_out_and_the_batch_resent(first):
    log = first.log

    def resent(kind: str, marker: str):
        (at,) = [n for n, r in enumerate(log) if r.fault == kind and marker in r.path]
        again = next(r for r in log[at + 1:] if r.path == log[at].path and r.status == 200)
        assert again.digest == log[at].digest  # the same request, body and all
        return log[at], again

    limited, retried = resent("429", "/upsert")
    # back-off is configured at 0.01-0.05 s: only honouring retry-after explains the 1 s gap
    assert retried.started - limited.finished >= 1.0
    resent("503", "/bulk")
    resent("drop", "/import")
    (slow,) = [r for r in first.s3_log if r.fault]
    assert any(r.path == slow.path and r.digest == slow.digest and r.status == 200 for r in first.s3_log)


@pytest.fixture(scope="module")
def republished(spark, first, s3, captured):
    site = first.site
    since, s3_since = len(site.standin.log), len(s3.requests(site.bucket))
    summary = publish(spark, site, captured)
    return SimpleNamespace(summary=summary, log=site.standin.log[since:],
                           s3_log=s3.requests(site.bucket)[s3_since:])


def test_unchanged_republish_writes_nothing(republished):
    assert republished.summary["status"] == "succeeded"
    assert [r for r in republished.log if r.write] == []
    assert [r for r in republished.s3_log if r.object_write] == []
    metrics = republished.summary["metrics"]
    assert metrics["requests"]["issued"] == 0
    assert not any(o["changed"] for o in metrics["objects"].values())


def test_promote_once_from_access_log_rows_inserted_through_d1(spark, first, republished, gold, env,
                                                             tmp_path_factory):
    site, world = first.site, gold.world
    vectors = {r["spotify_id"]: r for r in world.rows("audio_vectors")}
    outside = sorted(i for i, r in vectors.items() if r["tier"] != "A")
    inside = sorted(i for i, r in vectors.items() if r["tier"] == "A")
    counts = {outside[0]: 9, inside[0]: 8, outside[1]: 7, "0UnknownTrackNoVector0": 6, outside[2]: 5,
              outside[3]: 2}
    reply = requests.post(
        f"{site.standin.url}/accounts/{site.standin.account_id}/d1/database/{D1_DATABASE}/query",
        headers={"Authorization": f"Bearer {env.token}"}, timeout=10,
        json={"sql": "INSERT INTO track_access_log (spotify_id, access_count, last_accessed) VALUES "
                     + ", ".join(["(?, ?, 1)"] * len(counts)),
              "params": [v for item in counts.items() for v in item]})
    assert reply.status_code == 200 and reply.json()["success"], reply.text

    since = len(site.standin.log)
    once = promote_job.run(spark, site.cfg)
    site.summaries.append(once)
    promoted = {outside[0], outside[1], outside[2]}
    assert once["metrics"]["promoted"] == 3 and once["metrics"]["marked_already_in_vectorize"] == 1
    assert once["metrics"]["without_vector"] == 1
    shard_count = json.loads(site.standin.kv_items(KV_NAMESPACE)["spotify:vectorize:shards"]["value"])["shard_count"]
    names = index_names(INDEX_BASE, shard_count)
    held = checks.standin_vectors(site.standin)
    flagged = {i: index for index, records in held.items() for i, r in records.items() if r["metadata"].get("promoted")}
    assert flagged == {i: names[shard_of(i, shard_count)] for i in promoted}
    for track in promoted:
        record = held[flagged[track]][track]
        assert record["values"] == pytest.approx([float(v) for v in vectors[track]["vector"]], abs=1e-6)
        assert record["metadata"]["popularity"] == vectors[track]["popularity"]
    upserts = [r for r in site.standin.log[since:] if r.operation == "upsert" and r.status == 200]
    assert len(upserts) == len(set(flagged.values()))  # one upsert per index that got promoted tracks
    state = {r[0]: (r[1], r[2]) for r in site.standin.d1_rows(
        D1_DATABASE, "SELECT spotify_id, vectorized, promoted_at FROM track_access_log")}
    assert all(state[t][0] == 1 and state[t][1] is not None for t in promoted)
    assert state[inside[0]] == (1, None)  # published already: marked, not upserted
    assert state["0UnknownTrackNoVector0"] == (0, None) and state[outside[3]] == (0, None)

    since = len(site.standin.log)
    again = promote_job.run(spark, site.cfg)
    site.summaries.append(again)
    assert again["metrics"]["promoted"] == 0
    assert [r for r in site.standin.log[since:] if r.write] == []
    assert checks.standin_vectors(site.standin) == held


@pytest.fixture(scope="module")
def resumed(spark, gold, env, s3, captured, tmp_path_factory):
    """Target 2: the stand-in goes down for good after the first Vectorize upsert (D1 is loaded and swapped
    by then), the run fails; the service comes back and the rerun completes."""
    site = open_site(tmp_path_factory.mktemp("publish-cf-2"), gold.warehouses[1], env, s3)
    site.standin.outage_after(1, path_contains="/upsert")
    with pytest.raises(Exception) as crash:
        publish(spark, site, captured)
    crashed = list(site.standin.log)
    site.standin.end_outage()
    summary = publish(spark, site, captured)
    yield SimpleNamespace(site=site, crash=str(crash.value), crashed=crashed, summary=summary,
                          state=read_state(site, tmp_path_factory), log=list(site.standin.log),
                          s3_log=s3.requests(site.bucket))
    site.standin.stop()


def test_crash_midway_then_rerun_ends_like_a_clean_run_with_nothing_sent_twice(resumed, first, gold):
    assert "vectorize:" in resumed.crash and "gave up after" in resumed.crash
    crashed = resumed.crashed
    assert sum(r.operation == "upsert" and r.status == 200 for r in crashed) == 1
    assert sum(r.service == "upload" and r.status == 200 for r in crashed) == 1  # D1 went through first
    assert any(r.fault == "outage" and r.operation == "upsert" for r in crashed)

    assert resumed.summary["status"] == "succeeded"
    objects = resumed.summary["metrics"]["objects"]
    assert objects["d1"]["sent"] == 0 and objects["vectorize"]["sent"] == 1
    assert_holds(resumed.state, gold.world, gold.inferred)
    for name in ("d1", "tables", "access", "vectors", "kv", "shard_rows", "keys"):
        assert getattr(resumed.state, name) == getattr(first.state, name), name
    assert {k: v for k, v in resumed.state.manifest.items() if k != "created_at"} == {
        k: v for k, v in first.state.manifest.items() if k != "created_at"}

    # Nothing arrived twice, and crash + rerun delivered exactly the batches of the clean run.
    writes = successful_writes(resumed.log)
    assert max(Counter(writes).values()) == 1
    s3_writes = [(r.method, r.path, r.digest) for r in resumed.s3_log if r.object_write and r.status == 200]
    assert max(Counter(s3_writes).values()) == 1

    def batches(log, s3_log):
        api = sorted((r.operation, r.digest) for r in log if r.status == 200
                     and (r.operation in ("upsert", "bulk") or r.service == "upload"))
        objects = sorted((r.key, r.digest) for r in s3_log
                         if r.object_write and r.status == 200 and r.key != "manifest.json")
        return api, objects

    assert batches(resumed.log, resumed.s3_log) == batches(first.log, first.s3_log)
    assert resumed.site.standin.violations == [] and refused(resumed.log) == []


def _changed(world: World, gone: set[str], demoted: set[str], retuned: str) -> World:
    """``gone`` tracks removed from every table, ``demoted`` ones out of tier A (popularity 5), and
    ``retuned``'s tempo changed."""
    tables = {t: [r for r in rows if not gone & {v for v in r if isinstance(v, str)}]
              for t, rows in world.tables.items()}
    tables["audio_vectors"] = [(r[0], r[1], "C", 5, *r[4:]) if r[0] in demoted else r
                               for r in tables["audio_vectors"]]
    names = [part.split(" ")[0] for part in BRONZE["spotify_audio_features"].split(", ")]
    tempo = names.index("tempo")
    tables["spotify_audio_features"] = [(*r[:tempo], 99.5, *r[tempo + 1:]) if r[0] == retuned else r
                                        for r in tables["spotify_audio_features"]]
    return World(tables=tables)


def test_changed_gold_leaves_no_stale_rows_anywhere(spark, resumed, gold, s3, captured, tmp_path_factory):
    site, world = resumed.site, gold.world
    tier_a = sorted((r for r in world.rows("audio_vectors") if r["tier"] == "A"),
                    key=lambda r: (-r["popularity"], r["spotify_id"]))
    gone = {r["spotify_id"] for r in tier_a[:10]}  # the most popular: in KV too
    demoted = {r["spotify_id"] for r in tier_a[10:20]}
    retuned = tier_a[20]["spotify_id"]
    changed = _changed(world, gone, demoted, retuned)
    write_world(spark, str(gold.warehouses[1]), World(tables={
        t: rows for t, rows in changed.tables.items() if rows != world.tables[t]}))
    before = resumed.state
    since, s3_since = len(site.standin.log), len(s3.requests(site.bucket))

    summary = publish(spark, site, captured)
    assert summary["status"] == "succeeded"
    state = read_state(site, tmp_path_factory)
    assert_holds(state, changed, gold.inferred)
    for table in ("spotify_mbid_xref", "spotify_audio_features_cache", "precomputed_similar",
                  "playlist_cooccurrence"):
        assert not {v for row in state.d1[table] for v in row} & gone, table
    assert not {i for records in state.vectors.values() for i in records} & (gone | demoted)
    assert not [k for k in state.kv if k.rsplit(":", 1)[-1] in gone]
    assert not set(state.shard_rows) & gone
    assert not set(before.keys) - {"manifest.json"} & set(state.keys)  # the old shard set is gone
    assert {r[0]: r[1] for r in state.d1["spotify_audio_features_cache"]}[retuned] == 99.5
    new = site.standin.log[since:]
    assert any(r.operation == "delete_by_ids" and r.status == 200 for r in new)
    assert any(r.service == "kv" and r.path.endswith("/bulk/delete") and r.status == 200 for r in new)
    assert any(r.method == "POST" and "delete" in r.query and r.status == 200
               for r in s3.requests(site.bucket)[s3_since:])
    assert site.standin.violations == [] and refused(new) == []


def test_no_checksum_header_reached_r2_and_no_secret_in_any_log_summary_or_run_record(
        first, republished, resumed, s3, captured, env):
    sent = [name for r in s3.log for name in r.headers if name.startswith(CHECKSUM_HEADERS)]
    assert sent == [] and any(r.object_write for r in s3.log)

    records = [json.dumps(s, default=str) for site in (first.site, resumed.site) for s in site.summaries]
    records += [json.dumps(r, default=str) for site in (first.site, resumed.site) for r in runs.history(site.cfg)]
    records.append(resumed.crash)  # the error the crashed run raised
    assert any('"status": "failed"' in r for r in records)  # the crashed run's record, with its error
    assert any("job publish started" in line for line in captured.lines)
    for secret in env.secrets:
        assert not [line for line in captured.lines if secret in line]
        assert not [r for r in records if secret in r]
        assert not [text for text in captured.executor_stderr if secret in text]
    if captured.executor_stderr:  # reachable: the executors' retry warnings are there, without the token
        assert any("retry in" in text for text in captured.executor_stderr)

