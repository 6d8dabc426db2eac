"""promote end to end on the local target: the Worker's access log (rows written straight into d1.sqlite, as
the Worker's recordAccess would) → the most accessed tracks with a vector are upserted with ``promoted:
true`` into the index their id hashes to, marked ``vectorized = 1`` with ``promoted_at``; reruns take the
next ones and never one twice; a crash between the upsert and the marking resends nothing; the cap on
Vectorize's size holds; a later publish keeps the promoted vectors."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from jobs.publish.layout import shard_of
from lib.errors import JobError
from tests.support import configs
from tests.support import publish_checks as checks
from tests.support.publish_checks import promote_figures, publish_figures
from tests.support.publish_gold import build_world, write_world
from tests.support.recording_target import InjectedCrash, RecordingFactory, calls


def make_config(tmp: Path, **overrides):
    return configs.make_config(tmp, {
        "paths.warehouse": str(tmp / "warehouse"), "publish.local_dir": str(tmp / "out"), "publish.kv_prewarm": 10,
        "publish.progress_seconds": 5.0, "promote.batch_size": 2, **overrides})


@pytest.fixture(scope="module")
def published(spark, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("promote")
    world = build_world(tracks=200, seed=11)
    write_world(spark, str(tmp / "warehouse"), world)
    cfg = make_config(tmp)
    with pytest.raises(JobError, match="run publish first"):
        promote_figures(spark, cfg)
    publish_figures(spark, cfg)
    vectors = sorted(world.rows("audio_vectors"), key=lambda r: r["spotify_id"])
    outside = [r["spotify_id"] for r in vectors if r["tier"] != "A"]
    inside = [r["spotify_id"] for r in vectors if r["tier"] == "A"]
    # access counts as the Worker leaves them: five eligible, one below the threshold, one tier-A track (in
    # Vectorize already) and one id gold does not know.
    log = {outside[0]: 9, inside[0]: 8, outside[1]: 7, "0UnknownTrackNoVector0": 6, outside[2]: 5,
           outside[3]: 5, outside[4]: 3, outside[5]: 2}
    db = sqlite3.connect(tmp / "out" / "d1.sqlite")
    db.executemany("INSERT INTO track_access_log (spotify_id, access_count, last_accessed) VALUES (?, ?, 1)",
                   list(log.items()))
    db.commit()
    db.close()
    return tmp, cfg, world, outside, inside


def access(tmp: Path) -> dict[str, tuple[int, int | None]]:
    db = sqlite3.connect(tmp / "out" / "d1.sqlite")
    rows = {r[0]: (r[1], r[2]) for r in db.execute("SELECT spotify_id, vectorized, promoted_at FROM track_access_log")}
    db.close()
    return rows


def promoted_lines(tmp: Path) -> dict[str, tuple[str, dict]]:
    return {i: (index, r) for index, records in checks.vectorize_contents(str(tmp / "out")).items()
            for i, r in records.items() if r["metadata"].get("promoted")}


def test_promote_in_access_order_once_each(published, spark):
    tmp, cfg, world, outside, inside = published
    shard_count = json.loads(checks.kv_contents(str(tmp / "out"))["spotify:vectorize:shards"]["value"])["shard_count"]
    expected = checks.expected_vectors(world)

    first = promote_figures(spark, cfg)
    assert first["promoted"] == 2 and first["marked_already_in_vectorize"] == 1
    lines = promoted_lines(tmp)
    assert set(lines) == {outside[0], outside[1]}
    vectors = {r["spotify_id"]: r for r in world.rows("audio_vectors")}
    for track, (index, record) in lines.items():
        assert index.endswith(str(shard_of(track, shard_count))) or shard_count == 1
        assert record["values"] == pytest.approx([float(v) for v in vectors[track]["vector"]], abs=1e-6)
        assert record["metadata"]["popularity"] == vectors[track]["popularity"]
    state = access(tmp)
    assert state[outside[0]][0] == 1 and state[outside[0]][1] is not None
    assert state[inside[0]] == (1, None)  # in Vectorize already: marked, not promoted
    assert state["0UnknownTrackNoVector0"] == (0, None)
    assert inside[0] in expected  # (tier A: published by publish, not by promote)

    second = promote_figures(spark, cfg)
    assert second["promoted"] == 2 and set(promoted_lines(tmp)) == {*outside[:4]}
    third = promote_figures(spark, cfg)
    assert third["promoted"] == 1 and set(promoted_lines(tmp)) == {*outside[:5]}
    log = str(tmp / "fourth.log")
    fourth = promote_figures(spark, cfg, RecordingFactory(log))
    assert fourth["promoted"] == 0 and calls(log) == []
    assert access(tmp)[outside[5]] == (0, None)  # accessed twice: below the threshold

    # A later publish keeps the promoted vectors (publish owns the whole index and deletes them with their track).
    publish_figures(spark, cfg)
    assert set(promoted_lines(tmp)) == {*outside[:5]}


def test_crash_between_upsert_and_marking_resends_nothing(published, spark):
    tmp, cfg, _, outside, _ = published
    db = sqlite3.connect(tmp / "out" / "d1.sqlite")
    db.executemany("INSERT OR REPLACE INTO track_access_log (spotify_id, access_count, last_accessed) VALUES (?, ?, 1)",
                   [(outside[6], 50), (outside[7], 40)])
    db.commit()
    db.close()
    log = str(tmp / "crash.log")
    with pytest.raises(InjectedCrash):
        promote_figures(spark, cfg, RecordingFactory(log, fail_after=1))  # after the upsert, before the marking
    assert [c["method"] for c in calls(log)] == ["vectorize_upsert"]
    again = promote_figures(spark, cfg, RecordingFactory(log))
    assert again["promoted"] == 2 and again["marked_promoted_by_an_earlier_run"] == 2
    assert again["upserts_sent"] == 0
    assert [c["method"] for c in calls(log)] == ["vectorize_upsert", "d1_execute"]
    assert access(tmp)[outside[6]][0] == 1 and access(tmp)[outside[7]][0] == 1


def test_never_past_max_vectors(published, spark):
    tmp, cfg, _, outside, _ = published
    db = sqlite3.connect(tmp / "out" / "d1.sqlite")
    db.executemany("INSERT OR REPLACE INTO track_access_log (spotify_id, access_count, last_accessed) VALUES (?, ?, 1)",
                   [(outside[8], 30), (outside[9], 30), (outside[10], 30)])
    db.commit()
    db.close()
    held = sum(len(r) for r in checks.vectorize_contents(str(tmp / "out")).values())
    capped = cfg.with_overrides({"promote.max_vectors": held + 1, "promote.batch_size": 3})
    summary = promote_figures(spark, capped)
    assert summary["promoted"] == 1 and summary["vectors_before"] == held
    assert sum(len(r) for r in checks.vectorize_contents(str(tmp / "out")).values()) == held + 1
    assert promote_figures(spark, capped)["promoted"] == 0
