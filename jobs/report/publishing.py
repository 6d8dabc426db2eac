"""What the last publish left in D1, Vectorize, KV and R2, and what it costs a month.

The figures come from the latest non-dry-run publish run record (its ``metrics``: ``objects`` per service and
``cost_per_month.usage``, see jobs/publish/plan.py); without one, from the local target's folder
(``publish.local_dir``, laid out as docs/publish-layout.md says). Prices come only from
``lib.cloudflare.pricing``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.cloudflare import pricing


@dataclass
class D1Table:
    name: str
    rows: int
    bytes: int | None = None
    overflow_rows: int = 0
    overflow_to: str | None = None


@dataclass
class Footprint:
    """The published sizes; ``None`` where the source does not say."""

    source: str
    d1_budget: int | None = None
    d1_bytes: int | None = None
    d1_tables: list[D1Table] = field(default_factory=list)
    vectorize_indexes: list[str] = field(default_factory=list)
    vectors: int | None = None
    kv_keys: int | None = None
    kv_bytes: int | None = None
    r2_shards: int | None = None
    r2_bytes: int | None = None
    r2_tracks: int | None = None
    usage: pricing.Usage = field(default_factory=pricing.Usage)


def latest_publish(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest succeeded publish run that changed the targets (dry runs publish nothing)."""
    for summary in reversed(history):
        if summary.get("job") != "publish" or summary.get("status") != "succeeded":
            continue
        if _figures(summary).get("dry_run"):
            continue
        return summary
    return None


def _figures(summary: dict[str, Any]) -> dict[str, Any]:
    """The publish figures: the frame's ``metrics``, or the summary itself for a publish written before it."""
    metrics = summary.get("metrics") or {}
    return metrics if "objects" in metrics else summary


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def from_record(summary: dict[str, Any], budget: int) -> Footprint:
    figures = _figures(summary)
    objects = figures.get("objects") or {}
    d1, vec, kv, r2 = (objects.get(name) or {} for name in ("d1", "vectorize", "kv", "r2"))
    fill = d1.get("fill") or {}
    footprint = Footprint(
        source=f"publish run {str(summary.get('run_id', ''))[:12]} of {summary.get('started_at', '?')}",
        d1_budget=_int(fill.get("budget_bytes", budget)),
        d1_bytes=_int(fill.get("estimated_bytes", d1.get("estimated_bytes"))),
        d1_tables=[D1Table(name, int(t.get("rows") or 0), _int(t.get("estimated_bytes")),
                           int(t.get("overflow_rows") or 0), t.get("overflow_to"))
                   for name, t in (fill.get("tables") or {}).items()],
        vectorize_indexes=list(vec.get("indexes") or []),
        vectors=_int(vec.get("vectors")),
        kv_keys=_int(kv.get("keys")),
        kv_bytes=_int(kv.get("stored_bytes")),
        r2_shards=_int(r2.get("shards")),
        r2_bytes=_int(r2.get("stored_bytes")),
        r2_tracks=_int(r2.get("tracks")),
    )
    recorded = (figures.get("cost_per_month") or {}).get("usage")
    footprint.usage = pricing.Usage(**recorded) if recorded else storage_usage(footprint)
    return footprint


def storage_usage(footprint: Footprint) -> pricing.Usage:
    """A month of holding what was published (no traffic: reads and writes depend on it)."""
    return pricing.Usage(
        r2={"storage_bytes": footprint.r2_bytes or 0},
        d1={"storage_bytes": footprint.d1_bytes or 0},
        vectorize={"stored_vectors": footprint.vectors or 0},
        kv={"storage_bytes": footprint.kv_bytes or 0},
    )


def from_local_dir(folder: str, budget: int) -> Footprint | None:
    """Sizes read from the local target's files; None when the folder holds no publish."""
    root = Path(folder)
    if not root.is_dir() or not any(root.iterdir()):
        return None
    footprint = Footprint(source=f"local publish folder {root}", d1_budget=budget)
    database = root / "d1.sqlite"
    if database.is_file():
        footprint.d1_bytes = database.stat().st_size
        footprint.d1_tables = _d1_tables(database)
    indexes = sorted(p.parent for p in (root / "vectorize").glob("*/index.json"))
    if indexes:
        footprint.vectorize_indexes = [p.name for p in indexes]
        footprint.vectors = sum(_lines(f) for folder in indexes for f in folder.glob("*.ndjson"))
    kv_files = sorted((root / "kv").glob("*.json"))
    if kv_files:
        keys = bytes_ = 0
        for path in kv_files:
            for item in json.loads(path.read_text()):
                keys += 1
                bytes_ += len(str(item["key"]).encode()) + len(str(item["value"]).encode())
        footprint.kv_keys, footprint.kv_bytes = keys, bytes_
    manifest = root / "r2" / "manifest.json"
    if manifest.is_file():
        shards = json.loads(manifest.read_text()).get("shards") or []
        footprint.r2_shards = len(shards)
        footprint.r2_tracks = sum(int(s.get("rows") or 0) for s in shards)
    if (root / "r2").is_dir():
        footprint.r2_bytes = sum(p.stat().st_size for p in (root / "r2").rglob("*") if p.is_file())
    footprint.usage = storage_usage(footprint)
    return footprint


def _lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def _d1_tables(database: Path) -> list[D1Table]:
    """Rows per table, and bytes per table with its indexes where SQLite has the dbstat table."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        names = [r[0] for r in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        sizes: dict[str, int] = {}
        with contextlib.suppress(sqlite3.OperationalError):  # dbstat is a compile-time option
            owner = {r[0]: r[1] for r in connection.execute("SELECT name, tbl_name FROM sqlite_master")}
            for name, size in connection.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
                table = owner.get(name, name)
                sizes[table] = sizes.get(table, 0) + int(size)
        return [D1Table(name, int(connection.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0]),
                        sizes.get(name)) for name in names]
    finally:
        connection.close()


def footprint(history: list[dict[str, Any]], local_dir: str, budget: int) -> Footprint | None:
    summary = latest_publish(history)
    if summary is not None:
        return from_record(summary, budget)
    return from_local_dir(local_dir, budget) if local_dir and "://" not in local_dir else None


# -- costs -----------------------------------------------------------------------------------------------

COST_COLUMNS = ("r2", "d1", "vectorize", "kv", "total")


@dataclass
class CostRow:
    name: str
    vectors: int
    dollars: dict[str, float]  # per product and total, every free tier applied
    spec_arithmetic: float  # total with only the storage free tiers deducted, as the spec's table does
    spec_total: float | None = None  # the spec's own figure


def _row(name: str, usage: pricing.Usage, spec_total: float | None = None) -> CostRow:
    return CostRow(name, int(usage.vectorize.get("stored_vectors", 0)), pricing.monthly_cost(usage),
                   pricing.monthly_cost(usage, "storage")["total"], spec_total)


def deployment_rows() -> list[CostRow]:
    """The spec's four deployments as its Monthly Cost Summary defines them."""
    return [_row(name, pricing.deployment_usage(vectors), pricing.SPEC_TOTALS.get(name))
            for name, vectors in pricing.DEPLOYMENTS.items()]


def published_rows(footprint: Footprint) -> list[CostRow]:
    """What was published, then the same D1, KV and R2 sizes with each deployment's vector count."""
    usage = footprint.usage
    rows = [_row("published", usage)]
    for name, vectors in pricing.DEPLOYMENTS.items():
        scaled = pricing.Usage(r2=dict(usage.r2), d1=dict(usage.d1), kv=dict(usage.kv),
                               vectorize={**usage.vectorize, "stored_vectors": vectors})
        rows.append(_row(f"published sizes, {name} vectors", scaled))
    return rows

