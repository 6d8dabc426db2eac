"""The report end to end: the real jobs build a tiny warehouse, the report job writes its HTML, and headless
Chromium (Debian's package, driven over the DevTools protocol) opens it with no network: no console error,
every figure decoded, the numbers in its tables equal to what the Delta tables and run records hold. A
screenshot is kept in build/test-artifacts/."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable

from jobs.report import job as report
from lib import delta, runs
from tests.support.browser import Browser, chromium_path
from tests.support.configs import make_config

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "build" / "test-artifacts"

ROWS_JS = """Array.from(document.querySelectorAll('#%s table tbody tr'))
  .map(tr => Array.from(tr.cells).map(td => td.textContent))"""
IMAGES_JS = """Array.from(document.images).map(i => ({complete: i.complete, width: i.naturalWidth,
  height: i.naturalHeight, src: i.src.slice(0, 22)}))"""


def browser() -> Browser:
    executable = chromium_path()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (scripts/install-chromium.sh installs it)")
        pytest.skip("chromium is not installed: run scripts/install-chromium.sh")
    return Browser(executable)


def number(text: str) -> int:
    return int(text.replace(",", ""))


def gold(config: Any, name: str) -> DeltaTable:
    return DeltaTable(delta.table_path(config.paths.warehouse, "gold", name))


def write_local_publish(folder: Path, config: Any) -> dict[str, int]:
    """A small publish folder in the documented layout (docs/publish-layout.md), from the warehouse's rows."""
    xref = gold(config, "spotify_mbid_xref").to_pyarrow_table(columns=["spotify_id", "isrc", "mbid"])
    matched = xref.filter(pc.is_valid(xref["mbid"])).to_pylist()
    vectors = gold(config, "audio_vectors").to_pyarrow_table(columns=["spotify_id", "vector", "tier"]).to_pylist()
    tier_a = [v for v in vectors if v["tier"] == "A"]
    folder.mkdir(parents=True)
    with sqlite3.connect(folder / "d1.sqlite") as db:
        db.execute("CREATE TABLE spotify_mbid_xref (spotify_id TEXT PRIMARY KEY, isrc TEXT, mbid TEXT)")
        db.executemany("INSERT INTO spotify_mbid_xref VALUES (?, ?, ?)",
                       [(r["spotify_id"], r["isrc"], r["mbid"]) for r in matched])
    index = folder / "vectorize" / "aria-tracks"
    index.mkdir(parents=True)
    (index / "index.json").write_text(json.dumps({"name": "aria-tracks", "dimensions": 13, "metric": "cosine"}))
    (index / "batch-0.ndjson").write_text("".join(
        json.dumps({"id": v["spotify_id"], "values": v["vector"]}) + "\n" for v in tier_a))
    (folder / "kv").mkdir()
    items = [{"key": f"spotify:xref:{r['spotify_id']}", "value": json.dumps(r), "expiration_ttl": 2592000}
             for r in matched]
    (folder / "kv" / "batch-0.json").write_text(json.dumps(items))
    shard = folder / "r2" / "features" / "v1" / "shard-00000.sqlite"
    shard.parent.mkdir(parents=True)
    with sqlite3.connect(shard) as db:
        db.execute("CREATE TABLE tracks (spotify_id TEXT PRIMARY KEY)")
        db.executemany("INSERT INTO tracks VALUES (?)", [(v["spotify_id"],) for v in vectors])
    ids = sorted(v["spotify_id"] for v in vectors)
    (folder / "r2" / "manifest.json").write_text(json.dumps({"version": 1, "shards": [
        {"key": "features/v1/shard-00000.sqlite", "first_id": ids[0], "last_id": ids[-1], "rows": len(ids),
         "bytes": shard.stat().st_size, "sha256": ""}]}))
    return {"d1_rows": len(matched), "vectors": len(tier_a), "kv_keys": len(items), "r2_tracks": len(ids)}


def test_report_opens_in_chromium_and_shows_the_tables_numbers(spark, sample_warehouse, tmp_path):
    config = sample_warehouse.with_overrides({"report.dir": str(tmp_path / "report"),
                                              "publish.local_dir": str(tmp_path / "publish")})
    published = write_local_publish(tmp_path / "publish", config)
    summary = report.run(spark, config)
    assert summary["status"] == "succeeded"
    path = Path(summary["metrics"]["report"])
    text = path.read_text()
    assert not re.findall(r'(?:src|href)="(?!data:image/png;base64,|#)', text), "the report links outside itself"

    with browser() as page:
        page.open(path.as_uri())
        images = page.evaluate(IMAGES_JS)
        rows = {anchor: page.evaluate(ROWS_JS % anchor)
                for anchor in ("xref", "tiers", "clusters", "left-out", "publish", "cost")}
        screenshot = tmp_path / "report.png"
        page.screenshot(str(screenshot))
        assert page.problems() == []
        assert {url.split(":", 1)[0] for url in page.requested_urls()} == {"file", "data"}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(screenshot, ARTIFACTS / "report.png")
    assert screenshot.stat().st_size > 10_000

    assert len(images) == summary["metrics"]["figures"] >= 8
    assert all(i["complete"] and i["width"] > 0 and i["height"] > 0 for i in images), images

    methods = gold(config, "spotify_mbid_xref").to_pyarrow_table(columns=["match_method"])
    expected = {r["match_method"]: r["match_method_count"]
                for r in methods.group_by("match_method").aggregate([("match_method", "count")]).to_pylist()}
    assert {r[0]: number(r[1]) for r in rows["xref"]} == expected

    tiers = gold(config, "audio_vectors").to_pyarrow_table(columns=["tier"])
    assert {r[0]: number(r[1]) for r in rows["tiers"]} == {
        r["tier"]: r["tier_count"] for r in tiers.group_by("tier").aggregate([("tier", "count")]).to_pylist()}

    xref_run = next(s for s in reversed(runs.history(config)) if s["job"] == "xref" and s["status"] == "succeeded")
    shown = {(r[1], r[2]): number(r[3]) for r in rows["left-out"] if r[0] == "xref"}
    assert shown == {(t, reason): n for t, by in xref_run["left_out"].items() for reason, n in by.items()}
    assert {r[0] for r in rows["left-out"]} >= {"ingest", "xref", "cooccurrence", "vectors"}

    # The ten largest clusters by size (ties by cluster_id), counted here from gold/track_clusters.
    clusters = gold(config, "track_clusters").to_pyarrow_table(columns=["cluster_id"])
    sizes = {r["cluster_id"]: r["cluster_id_count"]
             for r in clusters.group_by("cluster_id").aggregate([("cluster_id", "count")]).to_pylist()}
    assert [(r[0], number(r[1])) for r in rows["clusters"]] == sorted(sizes.items(), key=lambda c: (-c[1], c[0]))[:10]
    d1 = next(r for r in rows["publish"] if r[0] == "spotify_mbid_xref")
    assert number(d1[1]) == published["d1_rows"]
    services = {r[0]: r for r in rows["publish"] if r[0] in ("Vectorize", "KV", "R2")}
    assert number(services["Vectorize"][2]) == published["vectors"]
    assert number(services["KV"][2]) == published["kv_keys"]
    assert number(services["R2"][2]) == 1 and f"{published['r2_tracks']:,} tracks" in services["R2"][1]
    costs = {r[0]: r for r in rows["cost"]}
    assert {"Lean", "Balanced", "Standard", "Full", "published"} <= set(costs)
    # under Vectorize's 200K free vectors and every other free tier, the sample costs nothing
    assert costs["published"][6] == "0.00"
    assert float(costs["published sizes, Full vectors"][6]) > float(costs["published sizes, Lean vectors"][6]) > 0


def test_report_on_an_empty_warehouse_says_what_is_missing(spark, tmp_path):
    config = make_config(tmp_path, report__dir=str(tmp_path / "report"))
    summary = report.run(spark, config)
    assert summary["status"] == "succeeded"
    assert set(summary["metrics"]["absent_inputs"]) == set(report.INPUTS)
    text = Path(summary["metrics"]["report"]).read_text()
    for table in report.INPUTS:
        if table.startswith("gold/"):
            assert f"{table} not in the warehouse" in text or f"{table} and " in text, table
    assert "No publish yet" in text
    assert summary["metrics"]["figures"] == 0
