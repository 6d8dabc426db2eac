"""The warehouse on object storage: the Delta layer (stage, commit, read at a version, conflict, abort,
vacuum) and the files executor tasks write with pyarrow (landed ranges, quarantine side files, range
statistics) against a real S3 HTTP server (moto's, on 127.0.0.1).

pyarrow and delta-rs are configured the way a cluster configures them, through the standard variables
(AWS_ENDPOINT_URL, AWS_ALLOW_HTTP, credentials): nothing in the code knows about the endpoint. Spark's
own reads and writes of ``s3a://`` need the hadoop-aws jar, which the pyspark wheel lacks, so what Spark
does (``delta.stage`` of a DataFrame, ``delta.read``, ``delta.compact``) is not exercised here.
"""

from __future__ import annotations

import os
import posixpath
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql.types import LongType, StringType, StructField, StructType

from lib import delta, storage
from lib.rejects import RejectSink
from lib.sources.sqlite import Column, Landing, RangeQuery, base62_id_rejects, collect_stats, land_range

BUCKET = "aria-warehouse"
SCHEMA = StructType([StructField("id", LongType()), StructField("name", StringType())])
ARROW_SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string())])


# moto's server runs in a process of its own: some delta-rs calls hold the GIL while they wait for the
# HTTP answer, which an in-process server thread could then never send.
SERVER = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(*server.get_host_and_port(), flush=True)
sys.stdin.read()  # until the test closes our stdin
"""


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    assert server.stdout is not None and server.stdin is not None
    host, port = server.stdout.readline().split()
    settings = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": "aria-test",
        "AWS_SECRET_ACCESS_KEY": "aria-test-secret",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    saved = {key: os.environ.get(key) for key in settings}
    os.environ.update(settings)
    try:
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield BUCKET
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stdin.close()
        server.wait(timeout=30)


@pytest.fixture
def warehouse(s3: str) -> str:
    return f"s3://{s3}/{uuid.uuid4().hex[:8]}"


def keys(prefix: str) -> list[str]:
    """Every object under ``s3://bucket/prefix`` as the S3 API lists it (not through the code under test),
    without the empty directory markers pyarrow leaves."""
    bucket, _, path = prefix.removeprefix("s3://").partition("/")
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=path)
    return sorted(item["Key"][len(path):].lstrip("/") for page in pages for item in page.get("Contents", [])
                  if not item["Key"].endswith("/"))


def stage_rows(uri: str, rows: list[tuple[int, str]], mode: str = "overwrite") -> delta.StagedWrite:
    """A write whose files are written by pyarrow, as executor tasks write them, then staged."""
    plan = delta.plan_write(uri, SCHEMA, mode)
    write_id = delta.new_write_id()
    table = pa.table({"id": [r[0] for r in rows], "name": [r[1] for r in rows]}, schema=ARROW_SCHEMA)
    # Unique file names, as Spark's writer gives them: stage_files moves staged files to the table root.
    target = posixpath.join(delta.staging_path(uri, write_id), f"part-{uuid.uuid4().hex}.parquet")
    with storage.atomic_output(target) as out:
        pq.write_table(table, out.path, filesystem=out.fs)
    return delta.stage_files(plan, write_id)


def rows_at(uri: str, version: int | None = None) -> list[tuple[int, str]]:
    table = delta.open_table(uri, version).to_pyarrow_table()
    return sorted(zip(table.column("id").to_pylist(), table.column("name").to_pylist()))


def test_commit_read_at_a_version_and_vacuum(warehouse):
    uri = delta.table_path(warehouse, "gold", "t")
    assert not delta.exists(uri)
    first = stage_rows(uri, [(1, "a"), (2, "b")])
    assert not delta.exists(uri), "a staged write is invisible"
    assert first.commit() == 0
    assert stage_rows(uri, [(3, "c")]).commit() == 1
    assert stage_rows(uri, [(4, "d")], mode="append").commit() == 2
    assert rows_at(uri) == [(3, "c"), (4, "d")]
    assert rows_at(uri, 0) == [(1, "a"), (2, "b")]
    with pytest.raises(delta.TableMissingError, match="has no version 7"):
        delta.open_table(uri, 7)
    assert not [k for k in keys(uri) if k.startswith(delta.STAGING_DIR)], "staging folders are emptied"

    removed = delta.vacuum(uri, retention_hours=0)
    assert any(path.endswith(posixpath.basename(first.adds[0].path)) for path in removed)
    live = {posixpath.basename(u) for u in delta.open_table(uri).file_uris()}
    assert {posixpath.basename(k) for k in keys(uri) if k.endswith(".parquet")} == live
    assert rows_at(uri) == [(3, "c"), (4, "d")]


@pytest.mark.xfail(strict=True, reason="delta.vacuum ages staging folders by the folder's mtime, which object "
                   "stores do not have (pyarrow gives None), so abandoned staging is never removed there")
def test_vacuum_removes_abandoned_staging_on_object_storage(warehouse):
    uri = delta.table_path(warehouse, "gold", "v")
    stage_rows(uri, [(1, "a")]).commit()
    storage.write_bytes(posixpath.join(delta.staging_path(uri, "crashed-writer"), "part-x.parquet"), b"left behind")
    delta.vacuum(uri, retention_hours=0)
    assert not [k for k in keys(uri) if k.startswith(delta.STAGING_DIR)]


def test_concurrent_overwrites_conflict_and_the_loser_leaves_nothing(warehouse):
    uri = delta.table_path(warehouse, "gold", "c")
    stage_rows(uri, [(1, "base")]).commit()
    winner, loser = stage_rows(uri, [(2, "winner")]), stage_rows(uri, [(3, "loser")])
    assert winner.commit() == 1
    with pytest.raises(delta.DeltaConflictError, match="concurrent write to .* after version 0"):
        loser.commit()
    assert rows_at(uri) == [(2, "winner")]
    on_store = {posixpath.basename(k) for k in keys(uri)}
    assert not any(posixpath.basename(add.path) in on_store for add in loser.adds)


def test_an_aborted_write_and_a_failed_file_leave_nothing(warehouse):
    uri = delta.table_path(warehouse, "gold", "a")
    stage_rows(uri, [(1, "kept")]).commit()
    staged = stage_rows(uri, [(2, "dropped")])
    staged.abort()
    target = posixpath.join(uri, "_staging", "w", "part-1.parquet")
    with pytest.raises(RuntimeError, match="task died"), storage.atomic_output(target) as out:
        with out.fs.open_output_stream(out.path) as handle:
            handle.write(b"half a file")
        raise RuntimeError("task died")
    assert [k for k in keys(uri) if k.endswith((".parquet", ".tmp"))] == [
        posixpath.basename(delta.open_table(uri).file_uris()[0])]
    assert rows_at(uri) == [(1, "kept")]


@pytest.fixture
def tracks_db(tmp_path: Path) -> Path:
    """One SQLite table of 300 rows: every 50th row has a malformed id (quarantined)."""
    path = tmp_path / "tracks.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE tracks (rowid INTEGER PRIMARY KEY, id TEXT, name TEXT)")
        conn.executemany("INSERT INTO tracks VALUES (?, ?, ?)",
                         [(i, ("bad" if i % 50 == 0 else f"{i:022d}"), f"track {i}") for i in range(1, 301)])
    return path


def test_landed_ranges_quarantine_and_statistics_on_s3(warehouse, tracks_db):
    """What the ingest tasks write for a bronze table that lands straight in its staging folder."""
    query = RangeQuery("spotify_tracks", str(tracks_db), "tracks", "rowid",
                       (Column("track_id", "id"), Column("name", "name"), Column("track_rowid", "rowid", "long")),
                       rejects=tuple(base62_id_rejects("id", "track_id")), key_columns=("track_rowid",))
    uri = delta.table_path(warehouse, "bronze", "spotify_tracks")
    schema = StructType([StructField("track_id", StringType()), StructField("name", StringType()),
                         StructField("track_rowid", LongType())])
    plan, write_id = delta.plan_write(uri, schema, "overwrite"), delta.new_write_id()
    landing = Landing(query, ((1, 150, 150), (151, 300, 150)), delta.staging_path(uri, write_id))
    sink = RejectSink.new(warehouse, "run1")
    stats_dir = f"{sink.staging_dir}/_stats"
    written = [land_range(landing, sink, stats_dir, i, low, high) for i, (low, high, _) in enumerate(landing.ranges)]
    land_range(landing, sink, stats_dir, 0, 1, 150)  # a retried task replaces its own files
    assert written == [147, 147]
    assert storage.list_names(landing.data_dir, ".parquet") == ["part-r000000.parquet", "part-r000001.parquet"]
    stats = collect_stats(stats_dir, "spotify_tracks")
    assert (stats.read, stats.kept, stats.rejected) == (300, 294, {"track_id is not a 22-character base62 id": 6})
    rejects = pq.read_table([f"{sink.staging_dir}/table=spotify_tracks/{name}".removeprefix("s3://")
                             for name in storage.list_names(f"{sink.staging_dir}/table=spotify_tracks")],
                            filesystem=delta.filesystem(uri)[0])
    assert sorted(rejects.column("source_key").to_pylist()) == sorted(f"track_rowid={i}" for i in range(50, 301, 50))

    assert delta.stage_files(plan, write_id).commit() == 0
    table = delta.open_table(uri).to_pyarrow_table()
    assert sorted(table.column("track_rowid").to_pylist()) == [i for i in range(1, 301) if i % 50]
    assert not [k for k in keys(warehouse) if k.endswith(".tmp")]
