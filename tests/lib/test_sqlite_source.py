"""Range reads of real SQLite files through ADBC: typing, checks, planning, zstd unpacking."""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path

import pytest
import zstandard

from lib.errors import InputError
from lib.sources import sqlite as src
from lib.sources.sqlite import Column, RangeQuery, TableRequirement


def _db(path: Path, ddl: str, rows: list[tuple], insert: str) -> Path:
    with sqlite3.connect(path) as conn:
        conn.executescript(ddl)
        conn.executemany(insert, rows)
    return path


@pytest.fixture
def messy(tmp_path) -> Path:
    """Leading NULLs in a text column, REAL values in an INTEGER column, text in a REAL column."""
    rows = []
    for i in range(1, 5001):
        label = None if i <= 3000 else f"label {i}"
        tempo = 120 if i % 2 else 120.5
        energy = "n/a" if i == 4001 else i / 10000
        rows.append((i, label, tempo, energy))
    return _db(tmp_path / "messy.sqlite3",
               "CREATE TABLE t (rowid INTEGER PRIMARY KEY, label TEXT, tempo INTEGER, energy REAL);",
               rows, "INSERT INTO t VALUES (?, ?, ?, ?)")


def _query(path: Path) -> RangeQuery:
    return RangeQuery(
        "t", str(path), "t", "rowid",
        (Column("id", "rowid", "long"), Column("label", "label"), Column("tempo", "tempo", "double"),
         Column("energy", "energy", "double")),
        excludes=(("even thousands", "rowid % 1000 = 0"),),
        key_columns=("id",),
    )


def test_read_range_types_every_column_despite_sqlite_typing(messy):
    good, rejected, total = [], [], src.RangeStats()
    for batch, bad, stats in src.read_range(_query(messy), 1, 5000):
        good.append(batch)
        rejected.extend(bad)
        total.add(stats)
    import pyarrow as pa

    table = pa.Table.from_batches(good)
    assert table.schema.types == [pa.int64(), pa.string(), pa.float64(), pa.float64()]
    assert total.read == 5000 and total.excluded == {"even thousands": 5}
    assert total.rejected == {"energy is not numeric": 1}
    assert table.num_rows == 5000 - 5 - 1
    assert sorted(set(table.column("tempo").to_pylist())) == [120.0, 120.5]
    assert table.column("label").null_count == 3000 - 3  # the excluded rows 1000, 2000, 3000 were NULL too
    (row,) = rejected
    assert row["id"] == 4001 and '"energy":"n/a"' in row["_raw"]


def test_plan_ranges_cover_every_key_once(tmp_path):
    path = _db(tmp_path / "p.sqlite3",
               "CREATE TABLE pt (playlist_rowid INTEGER, position INTEGER, PRIMARY KEY (playlist_rowid, position))"
               " WITHOUT ROWID;",
               [(p, i) for p in range(5, 305) for i in range(p % 7 + 1)], "INSERT INTO pt VALUES (?, ?)")
    ranges = src.plan_ranges(str(path), "pt", "playlist_rowid", rows_per_task=100)
    assert ranges[0][0] == 5 and ranges[-1][1] == 304
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(ranges))
    total_rows = sum(p % 7 + 1 for p in range(5, 305))
    assert abs(len(ranges) - total_rows / 100) <= 3
    assert src.plan_ranges(str(path), "pt", "playlist_rowid", rows_per_task=10**9) == [(5, 304)]


def test_check_database_names_what_is_wrong(tmp_path, messy):
    need = (TableRequirement("t", ("label", "tempo")),)
    assert src.check_database(messy, need)["t"] == ["rowid", "label", "tempo", "energy"]
    with pytest.raises(InputError, match=r"table 't' lacks column\(s\) valence"):
        src.check_database(messy, (TableRequirement("t", ("label", "valence")),))
    truncated = tmp_path / "cut.sqlite3"
    truncated.write_bytes(messy.read_bytes()[:8192])
    with pytest.raises(InputError, match=rf"{truncated}: file is truncated: its header describes"):
        src.check_database(truncated, need)
    # Damage inside the file that the header cannot show: quick_check finds it.
    corrupt = tmp_path / "corrupt.sqlite3"
    data = bytearray(messy.read_bytes())
    data[4096 * 3 + 8 : 4096 * 3 + 600] = b"\xff" * 592
    corrupt.write_bytes(bytes(data))
    with pytest.raises(InputError, match=rf"{corrupt}: (SQLite quick_check failed|cannot be read as SQLite)"):
        src.check_database(corrupt, need)


def test_unpack_zstd_multi_frame_reuse_and_truncation(tmp_path, messy):
    payload = messy.read_bytes()
    packed = tmp_path / "m.sqlite3.zst"
    compressor = zstandard.ZstdCompressor(level=3)
    half = len(payload) // 2
    packed.write_bytes(compressor.compress(payload[:half]) + compressor.compress(payload[half:]))
    out = src.unpack_zstd(packed, tmp_path / "work")
    assert out.read_bytes() == payload
    mtime = out.stat().st_mtime_ns
    assert src.unpack_zstd(packed, tmp_path / "work").stat().st_mtime_ns == mtime  # reused, not redone

    cut = tmp_path / "cut.sqlite3.zst"
    cut.write_bytes(packed.read_bytes()[: packed.stat().st_size - 100])
    with pytest.raises(InputError, match=rf"{cut}: zstd stream is truncated"):
        src.unpack_zstd(cut, tmp_path / "work2")
    assert not any((tmp_path / "work2").glob("cut.sqlite3*"))  # no partial output left behind


def test_unpack_zstd_refuses_when_disk_is_short(tmp_path, messy, monkeypatch):
    packed = tmp_path / "m.sqlite3.zst"
    packed.write_bytes(zstandard.ZstdCompressor().compress(messy.read_bytes()))
    usage = src.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(src.shutil, "disk_usage", lambda _: usage._replace(free=1000))
    message = r"not enough free disk .* needs about 0.0 GB \(declared unpacked size\), 0.0 GB free"
    with pytest.raises(InputError, match=message):
        src.unpack_zstd(packed, tmp_path / "work")


def _read_all(query: RangeQuery, plain: bool) -> tuple[list[dict], list[dict], src.RangeStats]:
    import pyarrow as pa

    table = query.from_clause.split()[0]
    bounds = src.key_bounds(query.db_path, table, query.key.rpartition(".")[2])
    good, rejected, total = [], [], src.RangeStats()
    for batch, bad, stats in src.read_range(query, *bounds, plain=plain):
        good.append(batch)
        rejected.extend(bad)
        total.add(stats)
    rows = pa.Table.from_batches(good, schema=query.arrow_schema()).to_pylist()
    return rows, sorted(rejected, key=repr), total


@pytest.mark.parametrize("window", [7, src.WINDOW_ROWS])
def test_plain_read_gives_what_the_exact_sql_gives(tmp_path, monkeypatch, window):
    """Every query of the real layout on the test dump (bad ids, out-of-range popularity, text in a REAL
    column, episodes, dangling playlist rowids, unknown added_at), read plainly with Arrow checks and
    exactly in SQL: the same rows, rejected rows (reason, values, raw values) and counts. Small windows
    make some windows fall back to the exact read and leave others plain."""
    from jobs.ingest.sources import real_queries
    from tests.support.real_dump import REAL_NAMES, build_real_dump

    monkeypatch.setattr(src, "WINDOW_ROWS", window)
    monkeypatch.setattr(src, "FIRST_WINDOW_KEYS", min(window, src.FIRST_WINDOW_KEYS))
    build_real_dump(tmp_path)
    queries = real_queries({key: tmp_path / name for key, name in REAL_NAMES.items()})
    plain_rows = 0
    for name in queries.__dataclass_fields__:
        query = getattr(queries, name)
        rows, rejected, stats = _read_all(query, plain=True)
        exact_rows, exact_rejected, exact_stats = _read_all(query, plain=False)
        assert rows == exact_rows, name
        assert [(r["_reject"], {k: v for k, v in r.items() if not k.startswith("_")}) for r in rejected] == [
            (r["_reject"], {k: v for k, v in r.items() if not k.startswith("_")}) for r in exact_rejected], name
        assert [json.loads(r["_raw"]) for r in rejected] == [json.loads(r["_raw"]) for r in exact_rejected], name
        assert {**stats.to_dict(), "read_exactly": 0} == {**exact_stats.to_dict(), "read_exactly": 0}, name
        assert exact_stats.read_exactly == exact_stats.read
        plain_rows += stats.read - stats.read_exactly
    assert plain_rows > 0


def test_plain_read_falls_back_only_where_the_driver_cannot_type(messy, monkeypatch):
    """'n/a' in a REAL column sits in one window: that window is read exactly, the others plainly."""
    monkeypatch.setattr(src, "WINDOW_ROWS", 500)
    monkeypatch.setattr(src, "FIRST_WINDOW_KEYS", 500)
    rows, rejected, stats = _read_all(_query(messy), plain=True)
    assert stats.read == 5000 and stats.read_exactly == 500
    assert [r["id"] for r in rejected] == [4001] and rows == _read_all(_query(messy), plain=False)[0]
