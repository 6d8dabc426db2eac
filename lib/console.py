"""What a person sees after a job: a short aligned table on stdout (log lines go to stderr). ``--json``
prints the whole summary instead, as exactly one JSON document, for schedulers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

MAX_REASONS = 8  # left-out reasons shown per summary; the run record has all of them
NO_COUNT = "–"  # an output whose rows the job does not count (publish's own bookkeeping tables)


def rows_out(outputs: dict[str, dict[str, Any]]) -> int | None:
    """Rows written over a job's outputs; None when none of them has a count (publish's state and ledger,
    the report's file), so a table shows "–" (as the report does) rather than a 0 that reads as "wrote nothing"."""
    counts = [o["rows"] for o in outputs.values() if o.get("rows") is not None]
    return sum(counts) if counts else None


def rows_left_out(left_out: dict[str, dict[str, int]]) -> int:
    """Rows left out over every table and reason of a summary's ``left_out``."""
    return sum(sum(reasons.values()) for reasons in left_out.values())


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    cells = [[str(c) for c in header]] + [[f"{c:,}" if isinstance(c, int) else NO_COUNT if c is None else str(c)
                                           for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    right = [all(isinstance(row[i], (int, float)) or row[i] is None for row in rows) for i in range(len(header))]
    lines = []
    for row in cells:
        parts = [cell.rjust(w) if r else cell.ljust(w) for cell, w, r in zip(row, widths, right)]
        lines.append("  " + "  ".join(parts).rstrip())
    return lines


def _left_out_rows(left_out: dict[str, dict[str, int]]) -> list[tuple[str, str, int]]:
    rows = [(table, reason, count) for table, reasons in left_out.items() for reason, count in reasons.items()]
    return sorted(rows, key=lambda r: -r[2])


def render(summary: dict[str, Any]) -> str:
    status = summary.get("status", "?")
    seconds = summary.get("seconds") or 0
    lines = [f"{summary['job']} {status} in {seconds:.1f} s  (run {str(summary.get('run_id', ''))[:12]})"]
    jobs = summary.get("metrics", {}).get("jobs")
    if jobs:  # the pipeline: one line per job
        lines += _table(("job", "status", "seconds", "rows out", "rows left out"),
                        [(name, j["status"], round(j["seconds"], 1), j["rows_out"], j["rows_left_out"])
                         for name, j in jobs.items()])
    elif summary.get("outputs"):
        lines += _table(("output", "rows", "version"),
                        [(table, o.get("rows"), o.get("version")) for table, o in summary["outputs"].items()])
    left = _left_out_rows(summary.get("left_out") or {})
    if left:
        lines.append("rows left out:")
        lines += _table(("table", "reason", "rows"), left[:MAX_REASONS])
        if len(left) > MAX_REASONS:
            lines.append(f"  … {len(left) - MAX_REASONS} more reason(s) in the run record (--json)")
    lines += (summary.get("metrics") or {}).get("plan") or []  # a job's own table (publish's dry-run plan)
    steps = summary.get("steps") or {}
    if steps and not jobs:
        lines.append("steps: " + ", ".join(f"{name} {sec:.1f} s" for name, sec in steps.items()))
    for note in (summary.get("notes") or [])[:5]:
        lines.append(f"note: {note}")
    if summary.get("error"):
        lines.append(f"error: {summary['error']}")
    return "\n".join(lines)


def to_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, default=str)  # insertion order: jobs and steps in the order they ran


def render_runs(runs: Sequence[dict[str, Any]]) -> str:
    """The run history as a table: job, status, start, seconds, rows out, rows left out, skipped/forced."""
    rows = []
    for run in runs:
        metrics = run.get("metrics") or {}
        how = "skipped" if run["status"] == "skipped" else "forced" if metrics.get("forced") else ""
        rows.append((run["job"], run["status"], str(run.get("started_at") or "")[:19].replace("T", " "),
                     round(float(run.get("seconds") or 0), 1),
                     rows_out(run.get("outputs") or {}),
                     rows_left_out(run.get("left_out") or {}), how))
    return "\n".join(_table(("job", "status", "started (UTC)", "seconds", "rows out", "rows left out", ""), rows))
