"""Delta's invariant in our layer: a data file referenced by a committed version is never overwritten, moved or
deleted (vacuum aside) — by position-named landing files, failed writes, conflicting writers or a mistaken path.

Files are written the way the SQLite landing tasks write them (pyarrow, named ``part-r<range>.parquet``) and
published with ``delta.stage_files``; versions are read back with delta-rs, independently of our reader.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from pyspark.sql.types import LongType, StringType, StructField, StructType

from lib import delta

SCHEMA = StructType([StructField("id", LongType()), StructField("name", StringType())])


def land(uri: str, ids: list[int], mode: str = "overwrite", files: int = 1) -> delta.StagedWrite:
    """Stage ``ids`` as position-named files, exactly like a landing task (same names on every write)."""
    plan = delta.plan_write(uri, SCHEMA, mode)
    write_id = delta.new_write_id()
    folder = Path(delta.staging_path(uri, write_id))
    folder.mkdir(parents=True)
    for index in range(files):
        part = ids[index::files]
        pq.write_table(pa.table({"id": pa.array(part, pa.int64()), "name": [f"n{i}" for i in part]}),
                       folder / f"part-r{index:06d}.parquet")
    return delta.stage_files(plan, write_id)


def rows_at(uri: str, version: int) -> list[int]:
    return sorted(DeltaTable(uri, version=version).to_pyarrow_table().column("id").to_pylist())


def referenced_files(uri: str) -> set[str]:
    """Every data file any version of the table references."""
    table = DeltaTable(uri)
    found: set[str] = set()
    for entry in table.history():
        snapshot = DeltaTable(uri, version=entry["version"])
        found.update(pa.table(snapshot.get_add_actions(flatten=True)).column("path").to_pylist())
    return found


def files_on_disk(uri: str) -> set[str]:
    root = Path(uri)
    return {str(p.relative_to(root)) for p in root.rglob("*.parquet") if delta.STAGING_DIR not in p.parts}


def test_rewrite_with_position_named_files_keeps_every_version(tmp_path):
    uri = str(tmp_path / "t")
    land(uri, [1, 2, 3]).commit()
    land(uri, [7, 8]).commit()
    land(uri, [9], mode="append").commit()
    assert rows_at(uri, 0) == [1, 2, 3]
    assert rows_at(uri, 1) == [7, 8]
    assert rows_at(uri, 2) == [7, 8, 9]
    assert all(c.intact for c in delta.check_table(uri))


def test_an_aborted_write_deletes_only_its_own_files(tmp_path):
    uri = str(tmp_path / "t")
    land(uri, [1, 2, 3], files=2).commit()
    committed = files_on_disk(uri)
    staged = land(uri, [4, 5], files=2)  # moved into the table folder, not committed
    staged.abort()
    assert files_on_disk(uri) == committed
    assert rows_at(uri, 0) == [1, 2, 3]


def test_abort_after_a_commit_that_landed_keeps_its_files(tmp_path):
    """A commit can land and still raise (e.g. the process loses the reply): abort must not delete its files."""
    uri = str(tmp_path / "t")
    land(uri, [1]).commit()
    staged = land(uri, [2, 3])
    staged.commit()
    staged.committed_version = None  # as if commit() had raised after the log entry was written
    staged.abort()
    assert rows_at(uri, 1) == [2, 3]
    assert all(c.intact for c in delta.check_table(uri))


def test_commit_all_failing_midway_leaves_every_version_readable(tmp_path):
    uris = [str(tmp_path / name) for name in ("a", "b", "c")]
    for uri in uris:
        land(uri, [1, 2]).commit()
    writes = [land(uri, [3, 4]) for uri in uris]
    # Another writer takes the second table meanwhile: its commit conflicts after the first one landed.
    land(uris[1], [5]).commit()
    with pytest.raises(delta.DeltaConflictError):
        delta.commit_all(writes)
    assert [rows_at(uri, 0) for uri in uris] == [[1, 2]] * 3
    assert rows_at(uris[0], 1) == [3, 4]
    assert rows_at(uris[1], 1) == [5]
    assert [delta.version(uri) for uri in uris] == [1, 1, 0]
    for uri in uris:
        assert all(c.intact for c in delta.check_table(uri))
        assert files_on_disk(uri) == referenced_files(uri), uri  # the loser's files are gone


def test_two_concurrent_writers_one_wins_and_nothing_is_lost(tmp_path):
    uris = [str(tmp_path / name) for name in ("x", "y")]
    for uri in uris:
        land(uri, [0]).commit()
    barrier = threading.Barrier(2)
    outcomes: dict[int, BaseException | None] = {}

    def writer(number: int) -> None:
        try:
            writes = [land(uri, [number * 10 + 1, number * 10 + 2], files=2) for uri in uris]
            barrier.wait(timeout=30)  # both have staged (same file names) before either commits
            delta.commit_all(writes)
            outcomes[number] = None
        except BaseException as exc:  # the loser's error is the outcome under test
            outcomes[number] = exc

    threads = [threading.Thread(target=writer, args=(n,)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    errors = [exc for exc in outcomes.values() if exc is not None]
    assert len(outcomes) == 2 and len(errors) == 1
    assert isinstance(errors[0], delta.DeltaConflictError)
    winner = next(n for n, exc in outcomes.items() if exc is None)
    for uri in uris:
        assert rows_at(uri, 0) == [0]
        assert rows_at(uri, delta.version(uri)) == [winner * 10 + 1, winner * 10 + 2]
        assert all(c.intact for c in delta.check_table(uri))
        assert files_on_disk(uri) == referenced_files(uri)


def test_paths_of_the_wrong_type_are_refused_before_any_write(tmp_path):
    warehouse_file = tmp_path / "warehouse"
    warehouse_file.write_text("not a folder")
    with pytest.raises(delta.DeltaLayerError, match=f"{warehouse_file}: is a file"):
        delta.plan_write(delta.table_path(str(warehouse_file), "bronze", "t"), SCHEMA)
    table_file = tmp_path / "wh" / "bronze" / "t"
    table_file.parent.mkdir(parents=True)
    table_file.write_text("x")
    with pytest.raises(delta.DeltaLayerError, match="is a file, not a Delta table folder"):
        delta.plan_write(str(table_file), SCHEMA)
    plain = tmp_path / "wh" / "bronze" / "plain"
    plain.mkdir()
    (plain / "data.csv").write_text("a,b")
    with pytest.raises(delta.DeltaLayerError, match="not a Delta table"):
        delta.plan_write(str(plain), SCHEMA)
    assert sorted(p.name for p in plain.iterdir()) == ["data.csv"]
    assert table_file.read_text() == "x"


def test_check_table_reports_missing_files_and_wrong_counts(tmp_path):
    uri = str(tmp_path / "t")
    land(uri, [1, 2]).commit()
    land(uri, [3], mode="append").commit()
    first = next(iter(files_on_disk(uri) & referenced_files(uri) - {
        p for p in pa.table(DeltaTable(uri, version=1).get_add_actions(flatten=True)).column("path").to_pylist()
        if p not in pa.table(DeltaTable(uri, version=0).get_add_actions(flatten=True)).column("path").to_pylist()
    }))
    (Path(uri) / first).unlink()
    checks = {c.version: c for c in delta.check_table(uri)}
    assert checks[0].missing == [first] and checks[1].missing == [first]
    land(tmp_path.joinpath("u").as_posix(), [1, 2]).commit()
    other = tmp_path / "u"
    victim = next(iter(files_on_disk(str(other))))
    pq.write_table(pa.table({"id": pa.array([9], pa.int64()), "name": ["x"]}), other / victim)
    (wrong,) = [c for c in delta.check_table(str(other)) if c.wrong_counts]
    assert "1 rows, log says 2" in wrong.wrong_counts[0]


class TableHistory(RuleBasedStateMachine):
    """Random create / overwrite / append / failed / conflicting writes, compaction and vacuum on one table.
    After every step: each version in the history reads back the rows it was committed with (until a
    vacuum expires it), and no file a readable version references is missing."""

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(TableHistory.base) / f"h{TableHistory.counter}"
        TableHistory.counter += 1
        self.uri = str(self.root)
        self.expected: dict[int, list[int]] = {}
        self.readable_from = 0  # versions below this were vacuumed
        self.next_id = 0

    def fresh(self, count: int) -> list[int]:
        ids = list(range(self.next_id, self.next_id + count))
        self.next_id += count
        return ids

    def latest(self) -> list[int]:
        return self.expected[max(self.expected)] if self.expected else []

    @rule(count=st.integers(0, 4), files=st.integers(1, 3))
    def overwrite(self, count: int, files: int) -> None:
        ids = self.fresh(count)
        version = land(self.uri, ids, files=files).commit()
        self.expected[version] = sorted(ids)

    @precondition(lambda self: bool(self.expected))
    @rule(count=st.integers(1, 3))
    def append(self, count: int) -> None:
        ids = self.fresh(count)
        version = land(self.uri, ids, mode="append").commit()
        self.expected[version] = sorted(self.latest() + ids)

    @rule(count=st.integers(1, 3))
    def failed_write(self, count: int) -> None:
        land(self.uri, self.fresh(count), files=2).abort()

    @precondition(lambda self: bool(self.expected))
    @rule(count=st.integers(1, 3))
    def conflicting_write(self, count: int) -> None:
        loser = land(self.uri, self.fresh(count))
        winner_ids = self.fresh(1)
        version = land(self.uri, winner_ids).commit()
        self.expected[version] = winner_ids
        with pytest.raises(delta.DeltaConflictError):
            loser.commit()

    @precondition(lambda self: bool(self.expected))
    @rule()
    def compact(self) -> None:
        version = delta.compact(TableHistory.spark, self.uri, min_files=2)
        if version is not None:
            self.expected[version] = self.latest()

    @precondition(lambda self: bool(self.expected))
    @rule()
    def vacuum(self) -> None:
        delta.vacuum(self.uri, retention_hours=0)
        latest = max(self.expected)
        self.readable_from = latest
        current = delta.version(self.uri)
        assert current is not None
        for version in range(latest + 1, current + 1):  # vacuum's own commits change no rows
            self.expected[version] = self.expected[latest]

    @invariant()
    def every_version_reads_its_rows(self) -> None:
        for version, ids in self.expected.items():
            if version >= self.readable_from:
                assert rows_at(self.uri, version) == ids, version
        if self.expected:
            for check in delta.check_table(self.uri):
                if check.version >= self.readable_from:
                    assert check.intact, (check.version, check.missing, check.wrong_counts)


def test_random_histories_keep_every_version(spark, tmp_path):
    TableHistory.base, TableHistory.counter, TableHistory.spark = str(tmp_path), 0, spark
    runner = TableHistory.TestCase
    runner.settings = settings(max_examples=12, stateful_step_count=8, deadline=None,
                               suppress_health_check=list(HealthCheck))
    runner().runTest()
