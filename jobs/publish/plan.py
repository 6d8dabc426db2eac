"""The publish summary (also the dry run's plan): per target rows, bytes, batches and requests against the
fewest the limits allow, the D1 fill and what overflows, and the monthly cost at the spec's prices."""

from __future__ import annotations

from typing import Any

from lib.cloudflare.pricing import SOURCE, Usage, monthly_cost


def cost(reports: dict[str, Any], d1_bytes: int) -> dict[str, Any]:
    """Monthly cost of what this publish leaves in the targets (storage) plus the writes it makes (in the month
    it runs). Reads depend on traffic, which publish cannot know: they are left at 0."""
    d1 = reports.get("d1")
    r2 = reports.get("r2")
    vec = reports.get("vectorize")
    kv = reports.get("kv")
    usage = Usage(
        r2={"storage_bytes": r2.details.get("stored_bytes", 0) if r2 else 0,
            "class_a_ops": r2.requests if r2 else 0},
        d1={"storage_bytes": d1_bytes, "rows_written": d1.rows if d1 and d1.changed else 0},
        vectorize={"stored_vectors": vec.details.get("vectors", 0) if vec else 0},
        kv={"storage_bytes": kv.details.get("stored_bytes", 0) if kv else 0,
            "writes": kv.rows if kv and kv.changed else 0},
    )
    dollars = monthly_cost(usage)
    return {"dollars": {k: round(v, 4) for k, v in dollars.items()}, "usage": usage.__dict__, "source": SOURCE,
            "reads": "not included (they depend on traffic)"}


def requests(reports: dict[str, Any]) -> dict[str, Any]:
    issued = sum(r.requests for r in reports.values())
    minimum = sum(r.minimum_requests for r in reports.values())
    return {"issued": issued, "minimum": minimum, "ratio": round(issued / minimum, 3) if minimum else None,
            "per_target": {name: {"issued": r.requests, "minimum": r.minimum_requests} for name, r in reports.items()}}


def render(summary: dict[str, Any]) -> str:
    """The plan as text, for ``publish.dry_run``."""
    lines = [f"publish plan (dry run) → {summary['target']}"]
    for name, report in summary["objects"].items():
        state = "changes" if report["changed"] else "unchanged"
        lines.append(f"  {name:<10} {state:<9} rows {report['rows']:>12,}  bytes {report['bytes']:>14,}  "
                     f"batches {report['batches']:>7,} (done before {report['done_before']:,})  "
                     f"requests {report['requests']:>7,} (minimum {report['minimum_requests']:,})")
    fill = summary["objects"].get("d1", {}).get("fill")
    if fill:
        lines.append(f"  D1 fill: {fill['estimated_bytes']:,} of {fill['budget_bytes']:,} bytes (estimated)")
        for table, t in fill["tables"].items():
            over = f", {t['overflow_rows']:,} rows over → {t['overflow_to']}" if t["overflow_rows"] else ""
            lines.append(f"    {table:<30} {t['rows']:>12,} rows {t['estimated_bytes']:>14,} bytes{over}")
    req = summary["requests"]
    lines.append(f"  requests: {req['issued']:,} (fewest the limits allow: {req['minimum']:,})")
    dollars = summary["cost_per_month"]["dollars"]
    lines.append("  monthly cost: " + ", ".join(f"{k} ${v:,.2f}" for k, v in dollars.items())
                 + f"  ({summary['cost_per_month']['source']}; reads not included)")
    return "\n".join(lines)
