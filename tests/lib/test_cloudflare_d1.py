"""D1 over the stand-in: bound parameters, batches, /raw, the import flow, and D1's limits with its real
error shapes (the stand-in's SQLite runs with D1's limits)."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest
import requests

from lib.cloudflare.d1 import bind_value
from lib.cloudflare.http import CloudflareError, LimitError
from lib.cloudflare.limits import D1_MAX_BOUND_PARAMETERS, D1_MAX_STATEMENT_BYTES
from lib.cloudflare.services import CloudflareTarget
from tests.support.cloudflare_fixtures import D1_DATABASE

SCHEMA = "CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER, x REAL, note TEXT)"


@pytest.fixture
def target(cloudflare_config):
    target = CloudflareTarget(cloudflare_config)
    target.d1_execute([(SCHEMA, [])], "schema")
    return target


def _post(standin, endpoint: str, body: dict) -> requests.Response:
    return requests.post(f"{standin.url}/accounts/{standin.account_id}/d1/database/{D1_DATABASE}/{endpoint}",
                         json=body, headers={"Authorization": f"Bearer {standin.token}"}, timeout=10)


def test_bound_parameters_keep_their_types(target, cloudflare_standin):
    note = "it's \\ a 'quote'); DROP TABLE t; -- ünïcødé 🎵 \x00 end"
    target.d1_execute([("INSERT INTO t VALUES (?, ?, ?, ?)", ["a", 2**53 + 1, 0.1, note]),
                       ("INSERT INTO t VALUES (?, ?, ?, ?)", ["b", True, float("nan"), None]),
                       ("INSERT INTO t VALUES (?, ?, ?, ?)", ["c", -7, float("-inf"), ""])], "rows")
    stored = cloudflare_standin.d1_rows(D1_DATABASE, "SELECT id, n, typeof(n), x, note FROM t ORDER BY id")
    assert stored == [("a", 2**53 + 1, "integer", 0.1, note), ("b", 1, "integer", None, None),
                      ("c", -7, "integer", None, "")]
    assert target.d1_query("SELECT note FROM t WHERE id = ?", ["a"]) == [{"note": note}]
    assert target.d1.raw("SELECT id, n FROM t WHERE n < ? ORDER BY id", [5]) == (["id", "n"], [["b", 1], ["c", -7]])


def test_a_failing_batch_changes_nothing(target, cloudflare_standin):
    with pytest.raises(CloudflareError, match="UNIQUE constraint failed: t.id: SQLITE_CONSTRAINT"):
        target.d1_execute([("INSERT INTO t (id) VALUES (?)", ["x"]), ("INSERT INTO t (id) VALUES (?)", ["x"])],
                          "dup")
    assert cloudflare_standin.d1_rows(D1_DATABASE, "SELECT count(*) FROM t") == [(0,)]


def test_limits_are_checked_before_sending(target, cloudflare_standin):
    sent = len(cloudflare_standin.log)
    too_many = D1_MAX_BOUND_PARAMETERS + 1
    sql = "SELECT " + ", ".join(["?"] * too_many)
    with pytest.raises(LimitError, match=rf"batch wide\): statement binds {too_many} parameters; D1 allows 100"):
        target.d1_execute([(sql, list(range(too_many)))], "wide")
    with pytest.raises(LimitError, match=r"statement of 100\d+ bytes exceeds D1's 100000 bytes"):
        target.d1_query("SELECT '" + "x" * D1_MAX_STATEMENT_BYTES + "'")
    with pytest.raises(LimitError, match="cannot bind a bytes"):
        target.d1_query("SELECT ?", [b"\x00"])
    assert len(cloudflare_standin.log) == sent


def test_the_standin_answers_limit_breaches_like_d1(target, cloudflare_standin):
    too_many = D1_MAX_BOUND_PARAMETERS + 1
    reply = _post(cloudflare_standin, "query", {"sql": "SELECT " + ", ".join(["?"] * too_many),
                                                "params": list(range(too_many))})
    assert reply.status_code == 400
    body = reply.json()
    assert body["success"] is False and body["result"] is None
    assert body["errors"][0]["code"] == 7500
    assert body["errors"][0]["message"].startswith("too many SQL variables") and "SQLITE_ERROR" in body["errors"][0][
        "message"]
    reply = _post(cloudflare_standin, "query", {"sql": "SELECT '" + "x" * D1_MAX_STATEMENT_BYTES + "'"})
    assert reply.json()["errors"] == [{"code": 7500, "message": "statement too long: SQLITE_TOOBIG"}]
    # placeholders beyond the limit with fewer params: SQLite's own limit, set to D1's, refuses it
    reply = _post(cloudflare_standin, "query", {"sql": "SELECT " + ", ".join(["?"] * too_many), "params": []})
    assert "too many SQL variables" in reply.json()["errors"][0]["message"]
    assert [v.limit for v in cloudflare_standin.violations] == ["D1_MAX_BOUND_PARAMETERS", "D1_MAX_STATEMENT_BYTES",
                                                                 "D1_MAX_BOUND_PARAMETERS"]


def test_transactions_and_reserved_tables_are_refused(target):
    with pytest.raises(CloudflareError, match="To execute a transaction, please use the state.storage"):
        target.d1_query("BEGIN TRANSACTION")
    with pytest.raises(CloudflareError, match="not authorized: SQLITE_AUTH"):
        target.d1_query("CREATE TABLE _cf_KV (k TEXT)")


def _import_file(rows: list[tuple[str, int, str]]) -> bytes:
    lines = [f"INSERT INTO t (id, n, note) VALUES ('{i}', {n}, '{note}');" for i, n, note in rows]
    return ("\n".join(lines) + "\n").encode()


def test_import_flow(target, cloudflare_standin):
    rows = [(f"id{i}", i, f"note;\n{i}") for i in range(50)]  # ';\n' inside a literal does not split
    sql = _import_file(rows)
    target.d1_import(sql, "spotify_mbid_xref-000")
    assert cloudflare_standin.d1_rows(D1_DATABASE, "SELECT id, n, note FROM t ORDER BY n") == rows
    flow = [r for r in cloudflare_standin.log if r.path.endswith("/import") or r.service == "upload"]
    assert [r.service for r in flow] == ["d1", "upload", "d1", "d1", "d1"]  # init, PUT, ingest, poll (active), poll
    upload = flow[1]
    assert upload.method == "PUT" and upload.bytes_in == len(sql)
    assert not upload.authorization  # the API token never goes to the upload URL
    assert upload.path.endswith(hashlib.md5(sql).hexdigest() + ".sql")


def test_import_streams_a_file_from_disk(target, cloudflare_standin, tmp_path):
    rows = [(f"id{i}", i, "x" * 1000) for i in range(300)]
    path = tmp_path / "import.sql"
    path.write_bytes(_import_file(rows))
    target.d1_import(str(path), "from-disk")
    assert cloudflare_standin.d1_rows(D1_DATABASE, "SELECT id, n, note FROM t ORDER BY n") == rows
    upload = next(r for r in cloudflare_standin.log if r.service == "upload")
    assert upload.bytes_in == path.stat().st_size
    assert upload.path.endswith(hashlib.md5(path.read_bytes()).hexdigest() + ".sql")


def test_the_same_file_again_skips_the_upload(target, cloudflare_standin):
    sql = _import_file([("a", 1, "x")])
    target.d1_import(sql, "first")
    target.d1_execute([("DELETE FROM t", [])], "clear")
    before = len(cloudflare_standin.log)
    target.d1_import(sql, "again")
    # init (D1 knows the md5 and starts the import), poll (active), poll (complete): no upload, no ingest
    assert [r.service for r in cloudflare_standin.log[before:]] == ["d1", "d1", "d1"]
    assert cloudflare_standin.d1_rows(D1_DATABASE, "SELECT id FROM t") == [("a",)]


def test_a_failed_import_rolls_back_and_names_the_batch(target, cloudflare_standin):
    sql = _import_file([("ok", 1, "x")]) + b"BEGIN TRANSACTION;\n" + _import_file([("late", 2, "y")])
    with pytest.raises(CloudflareError, match=r"d1:test-db import \(batch tracks-003\): import failed and the "
                                              r"database was rolled back: statement 2: To execute a transaction"):
        target.d1_import(sql, "tracks-003")
    assert cloudflare_standin.d1_rows(D1_DATABASE, "SELECT count(*) FROM t") == [(0,)]
    long_statement = f"INSERT INTO t (id, note) VALUES ('big', '{'x' * D1_MAX_STATEMENT_BYTES}');\n".encode()
    with pytest.raises(CloudflareError, match="statement 1: statement too long: SQLITE_TOOBIG"):
        target.d1_import(long_statement, "tracks-004")
    assert cloudflare_standin.violations[-1].limit == "D1_MAX_STATEMENT_BYTES"


def test_a_corrupted_upload_is_sent_again(target, cloudflare_standin):
    cloudflare_standin.inject("bad_etag", count=1)
    target.d1_import(_import_file([("a", 1, "x")]), "etag")
    uploads = cloudflare_standin.requests("upload")
    assert [u.fault for u in uploads] == ["bad_etag", None]
    cloudflare_standin.inject("bad_etag", count=10)
    with pytest.raises(CloudflareError, match=r"import upload \(batch etag2\): gave up after 4 tries; last: "
                                              r"upload returned ETag '[0-9a-f]{32}', expected the file's md5"):
        target.d1_import(_import_file([("b", 2, "y")]), "etag2")


def test_import_polls_survive_faults(target, cloudflare_standin):
    cloudflare_standin.inject("503", count=1, path_contains="/import")
    cloudflare_standin.inject("drop", count=1, path_contains="/import")
    target.d1_import(_import_file([("a", 1, "x")]), "faulty")
    assert cloudflare_standin.d1_rows(D1_DATABASE, "SELECT id FROM t") == [("a",)]


def test_import_files_also_load_in_plain_sqlite(tmp_path):
    sql = _import_file([("a", 1, "semi;\ncolon"), ("b", 2, "x")]).decode()
    db = sqlite3.connect(tmp_path / "plain.sqlite")
    db.execute(SCHEMA)
    db.executescript(sql)
    assert db.execute("SELECT id, note FROM t ORDER BY id").fetchall() == [("a", "semi;\ncolon"), ("b", "x")]


def test_bind_value():
    assert [bind_value(v) for v in (None, "s", 3, 2.5, False)] == [None, "s", 3, 2.5, 0]
    assert bind_value(float("inf")) is None
    np = pytest.importorskip("numpy")
    assert bind_value(np.int64(4)) == 4 and isinstance(bind_value(np.float32(0.5)), float)
    with pytest.raises(TypeError, match="BLOBs go through an import file"):
        bind_value(b"x")
