"""The report's reading of publish run records (the shape jobs/publish writes: ``objects`` per service and
``cost_per_month.usage``), without Spark."""

from __future__ import annotations

from typing import Any

from jobs.report import publishing
from lib.cloudflare import pricing

BUDGET = 5_000_000_000


def publish_metrics(vectors: int, rows_written: int, dry_run: bool = False) -> dict[str, Any]:
    return {
        "target": "local", "dry_run": dry_run,
        "objects": {
            "d1": {"rows": 700, "changed": True, "estimated_bytes": 81_920, "fill": {
                "budget_bytes": BUDGET, "estimated_bytes": 81_920, "tables": {
                    "spotify_mbid_xref": {"rows": 400, "estimated_bytes": 40_960, "candidate_rows": 400,
                                          "overflow_rows": 0, "overflow_to": None},
                    "spotify_audio_features_cache": {"rows": 300, "estimated_bytes": 40_960, "candidate_rows": 389,
                                                     "overflow_rows": 89, "overflow_to": "r2 shards"}}}},
            "vectorize": {"vectors": vectors, "indexes": ["aria-tracks-0", "aria-tracks-1"]},
            "kv": {"keys": 120, "stored_bytes": 18_000},
            "r2": {"shards": 2, "stored_bytes": 70_000, "tracks": 389},
        },
        "cost_per_month": {"usage": {"r2": {"storage_bytes": 70_000, "class_a_ops": 3},
                                     "d1": {"storage_bytes": 81_920, "rows_written": rows_written},
                                     "vectorize": {"stored_vectors": vectors},
                                     "kv": {"storage_bytes": 18_000, "writes": 120}}},
    }


def run(job: str, status: str, started: str, metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"job": job, "run_id": f"{job}-{started}", "status": status, "started_at": started,
            "metrics": metrics or {}}


def test_the_latest_real_publish_is_read_and_dry_runs_and_failures_are_not():
    history = [
        run("publish", "succeeded", "2026-01-01T00:00:00+00:00", publish_metrics(40, 700)),
        run("publish", "succeeded", "2026-01-02T00:00:00+00:00", publish_metrics(50, 700)),
        run("publish", "failed", "2026-01-03T00:00:00+00:00", publish_metrics(60, 700)),
        run("publish", "succeeded", "2026-01-04T00:00:00+00:00", publish_metrics(70, 700, dry_run=True)),
        run("report", "succeeded", "2026-01-05T00:00:00+00:00"),
    ]
    footprint = publishing.footprint(history, "", BUDGET)
    assert footprint is not None and footprint.vectors == 50
    assert "2026-01-02" in footprint.source
    assert footprint.vectorize_indexes == ["aria-tracks-0", "aria-tracks-1"]
    assert (footprint.kv_keys, footprint.r2_shards, footprint.r2_tracks, footprint.d1_bytes) == (120, 2, 389, 81_920)
    cache = next(t for t in footprint.d1_tables if t.name == "spotify_audio_features_cache")
    assert (cache.rows, cache.overflow_rows, cache.overflow_to) == (300, 89, "r2 shards")


def test_a_publish_summary_from_before_the_job_frame_is_read_too():
    summary = {"job": "publish", "run_id": "old", "status": "succeeded", "started_at": "2026-01-01",
               "metrics": {}, **publish_metrics(40, 700)}
    footprint = publishing.from_record(summary, BUDGET)
    assert footprint.vectors == 40 and footprint.kv_keys == 120


def test_the_recorded_usage_is_priced_writes_included():
    over_free_writes = int(pricing.D1["rows_written"].free) + 10_000_000
    footprint = publishing.from_record(run("publish", "succeeded", "t", publish_metrics(40, over_free_writes)),
                                       BUDGET)
    published = publishing.published_rows(footprint)[0]
    assert published.name == "published" and published.vectors == 40
    assert published.dollars["d1"] > 0  # the writes above D1's free tier
    storage_only = pricing.monthly_cost(publishing.storage_usage(footprint))
    assert storage_only["total"] == 0  # holding a few KB stays in every free tier


def test_published_sizes_priced_at_each_deployments_vector_count():
    footprint = publishing.from_record(run("publish", "succeeded", "t", publish_metrics(40, 700)), BUDGET)
    rows = {row.name: row for row in publishing.published_rows(footprint)}
    scaled = [rows[f"published sizes, {name} vectors"] for name in pricing.DEPLOYMENTS]
    assert [row.vectors for row in scaled] == list(pricing.DEPLOYMENTS.values())
    totals = [row.dollars["total"] for row in scaled]
    assert totals == sorted(totals) and totals[0] > rows["published"].dollars["total"]
    for row in scaled:  # only the vector count changes: the other products cost what the published sizes cost
        assert row.dollars["r2"] == rows["published"].dollars["r2"]
        assert row.dollars["kv"] == rows["published"].dollars["kv"]
