"""Packing at the real limits, without Spark: the executor tasks are plain functions over Arrow batches, so
they are run here in-process on thousands of records against a real local target — the batch counts the
limits demand, the exact once-only behaviour of a rerun task, D1 import files cut by size, and concurrent
writers from several processes."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyarrow as pa
import pytest

from jobs.publish import batching, send
from jobs.publish.layout import compact_json
from jobs.publish.ledger import Wal
from jobs.publish.local_target import LocalTarget
from lib.cloudflare import limits
from lib.config import load_config


def test_pack_respects_count_and_bytes():
    sizes = [3, 5, 1, 9, 2, 2, 8]
    batches = list(batching.pack(sizes, lambda s: s, max_count=3, max_bytes=12, base=2, separator=1))
    assert [x for b in batches for x in b] == sizes
    for b in batches:
        assert len(b) <= 3 and 2 + sum(b) + len(b) - 1 <= 12
    with pytest.raises(batching.LimitError, match="exceeds"):
        list(batching.pack([20], lambda s: s, 3, 12))
    assert batching.min_batches(12_001, 5000) == 3
    assert batching.min_batches(10, 5000, total_bytes=250, max_bytes=100) == 3


def _stream(tmp: Path, obj: str, done: dict[str, str] | None = None) -> send.Stream:
    config = load_config(use_default_file=False, base_dir=tmp).with_overrides({"publish.local_dir": str(tmp / "out")})
    wal = Wal(str(tmp / "pending"), "local:test", "t", "run")
    from jobs.publish.targets import build_target

    return send.Stream(config.to_json(), build_target, wal, obj, "gen00001", "", 1, True, done or {})


def _batches(rows: list[dict], schema: pa.Schema) -> list[pa.RecordBatch]:
    return [pa.RecordBatch.from_pylist(rows[i : i + 1000], schema=schema) for i in range(0, len(rows), 1000)]


KEYED = pa.schema([("part", pa.int32()), ("op", pa.string()), ("location", pa.string()), ("key", pa.string()),
                   ("payload", pa.string()), ("ttl", pa.int32())])


def test_vectorize_task_sends_the_fewest_upserts_and_a_rerun_sends_nothing(tmp_path):
    LocalTarget(tmp_path / "out").vectorize_ensure_index("idx", 2, "cosine", {})
    rows = [{"part": 0, "op": "upsert", "location": "idx", "key": f"id{i:06d}",
             "payload": compact_json({"id": f"id{i:06d}", "values": [0.5, 1.0], "metadata": {"n": i}}), "ttl": None}
            for i in range(12_001)]
    rows += [{"part": 0, "op": "delete", "location": "idx", "key": f"gone{i}", "payload": None, "ttl": None}
             for i in range(7)]
    stream = _stream(tmp_path, "vectorize")
    task = send.vectorize_task(stream)
    results = [r for b in task(iter(_batches(rows, KEYED))) for r in b.to_pylist()]
    upserts = [r for r in results if r["kind"] == "upsert"]
    assert [r["rows"] for r in upserts] == [5000, 5000, 2001]
    assert [r["kind"] for r in results].count("delete") == 1
    assert all(r["status"] == "sent" for r in results)
    files = sorted((tmp_path / "out" / "vectorize" / "idx").glob("*.ndjson"))
    assert sum(len(f.read_text().splitlines()) for f in files) == 12_001
    for f in files:
        assert batching.check_upsert(f.read_bytes()) <= limits.VECTORIZE_MAX_VECTORS_PER_UPSERT
    again = [r for b in task(iter(_batches(rows, KEYED))) for r in b.to_pylist()]
    assert {r["status"] for r in again} == {"done"}
    assert [r["batch_id"] for r in again] == [r["batch_id"] for r in results]


def test_kv_task_packs_ten_thousand_pairs_per_request(tmp_path):
    rows = [{"part": 0, "op": "put", "location": "", "key": f"spotify:af:{i:07d}", "payload": json.dumps({"i": i}),
             "ttl": 604800} for i in range(25_000)]
    results = [r for b in send.kv_task(_stream(tmp_path, "kv"))(iter(_batches(rows, KEYED))) for r in b.to_pylist()]
    assert [r["rows"] for r in results] == [10_000, 10_000, 5_000]
    items = [i for f in (tmp_path / "out" / "kv").glob("*.json") for i in json.loads(f.read_text())]
    assert len(items) == 25_000 and items[0]["expiration_ttl"] == 604800


def test_d1_task_cuts_files_by_size_creates_first_and_swaps_last(tmp_path):
    rows = [{"order": 0, "table": "spotify_artist_genres", "row_sql": None}]
    rows += [{"order": 0, "table": "spotify_artist_genres", "row_sql": f"('artist{i:06d}','genre ''{i % 7}''')"}
             for i in range(20_000)]
    schema = pa.schema([("order", pa.int32()), ("table", pa.string()), ("row_sql", pa.string())])
    stream = _stream(tmp_path, "d1")
    task = send.d1_task(stream, ["spotify_artist_genres"], max_file_bytes=150_000)
    results = [r for b in task(iter(_batches(rows, schema))) for r in b.to_pylist()]
    assert len(results) >= 3 and sum(r["rows"] for r in results) == 20_000
    assert all(r["bytes"] <= 150_000 for r in results)
    files = sorted((tmp_path / "out" / "d1").glob("*.sql"))
    assert "CREATE TABLE spotify_artist_genres__next" in files[0].read_text()
    assert "RENAME TO spotify_artist_genres" in files[-1].read_text()
    assert results[-1]["info"] == "swap" and all(r["info"] == "" for r in results[:-1])
    db = sqlite3.connect(tmp_path / "out" / "d1.sqlite")
    assert db.execute("SELECT count(*), count(DISTINCT genre) FROM spotify_artist_genres").fetchone() == (20_000, 7)
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'idx_genre'").fetchone() == ("idx_genre",)


def test_import_files_stream_to_disk_one_file_at_a_time(tmp_path):
    statements = [(f"INSERT INTO t VALUES ({i}, '{'x' * (i % 50)}');".encode(), 1, "t") for i in range(500)]
    statements.append((b"ALTER TABLE t__next RENAME TO t;", 0, "swap"))
    folder = tmp_path / "spill"
    folder.mkdir()
    written = []
    for file in send.import_files(iter(statements), 4_000, folder=str(folder)):
        on_disk = [p for p in folder.rglob("*") if p.is_file()]
        assert on_disk == [Path(file.path)]  # the previous file is gone before the next is handed out
        body = Path(file.path).read_bytes()
        assert len(body) == file.size <= 4_000 and file.sha256 == hashlib.sha256(body).hexdigest()
        written.append((body, file.rows, file.tables, file.swaps))
    assert len(written) > 5 and not any(p.is_file() for p in folder.rglob("*"))
    assert b"".join(b for b, *_ in written) == b"".join(s + b"\n" for s, _, _ in statements)
    assert sum(r for _, r, _, _ in written) == 500
    assert [swaps for *_, swaps in written] == [False] * (len(written) - 1) + [True]
    with pytest.raises(batching.LimitError, match="4,000-byte import file limit"):
        list(send.import_files(iter([(b"x" * 4_000, 1, "t")]), 4_000, folder=str(folder)))


def test_local_target_loads_an_import_file_from_disk(tmp_path):
    path = tmp_path / "file.sql"
    path.write_bytes(b"CREATE TABLE a (x TEXT);\nINSERT INTO a VALUES ('semi;\ncolon'),\n('b');\n")
    target = LocalTarget(tmp_path / "out")
    target.d1_import(str(path), "from-disk")
    assert (tmp_path / "out" / "d1" / "from-disk.sql").read_bytes() == path.read_bytes()
    db = sqlite3.connect(tmp_path / "out" / "d1.sqlite")
    assert db.execute("SELECT x FROM a ORDER BY x").fetchall() == [("b",), ("semi;\ncolon",)]
    path.write_bytes(b"CREATE TABLE c (x);\nINSERT INTO c VALUES ('unterminated\n")
    with pytest.raises(ValueError, match="ends inside a statement"):
        target.d1_import(str(path), "broken")
    assert not (tmp_path / "out" / "d1" / "broken.sql").exists()


def _writer(root: str, worker: int) -> None:
    target = LocalTarget(root)
    for n in range(16):
        # Overlapping keys across workers: each must end up in exactly one file.
        target.kv_put([{"key": f"k{(n + i) % 20}", "value": f"{worker}-{n}"} for i in range(5)], f"w{worker}-{n}")
        target.d1_import(f"INSERT INTO t VALUES ({worker}, {n});\n".encode(), f"w{worker}-{n}")


def test_local_target_is_safe_under_concurrent_writers(tmp_path):
    root = tmp_path / "out"
    LocalTarget(root).d1_import(b"CREATE TABLE t (worker INTEGER, n INTEGER);\n", "0000-create")
    with ProcessPoolExecutor(3) as pool:
        list(pool.map(_writer, [str(root)] * 3, range(3)))
    keys = [i["key"] for f in (root / "kv").glob("*.json") for i in json.loads(f.read_text())]
    assert sorted(keys) == sorted(set(keys)) and len(keys) == 20
    db = sqlite3.connect(root / "d1.sqlite")
    assert db.execute("SELECT count(*) FROM t").fetchone() == (48,)


def test_local_target_refuses_what_cloudflare_refuses(tmp_path):
    target = LocalTarget(tmp_path / "out")
    with pytest.raises(batching.LimitError, match="BEGIN"):
        target.d1_import(b"BEGIN TRANSACTION;\nCREATE TABLE a (x);\nCOMMIT;\n", "tx")
    with pytest.raises(batching.LimitError, match="statement"):
        target.d1_import(("INSERT INTO a VALUES ('" + "x" * 100_001 + "');\n").encode(), "long")
    with pytest.raises(batching.LimitError, match="expiration_ttl"):
        target.kv_put([{"key": "k", "value": "v", "expiration_ttl": 59}], "ttl")
    with pytest.raises(batching.LimitError, match="bound parameters"):
        target.d1_execute([("SELECT " + ",".join("?" * 101), [1] * 101)], "params")
    target.vectorize_ensure_index("i", 2, "cosine", {})
    with pytest.raises(batching.LimitError, match="64 bytes"):
        target.vectorize_upsert("i", (compact_json({"id": "x" * 65, "values": [1, 2]}) + "\n").encode(), "long-id")
    assert not (tmp_path / "out" / "d1" / "tx.sql").exists()
