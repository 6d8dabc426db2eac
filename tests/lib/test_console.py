"""The console tables: rows out summed over the outputs that count their rows, a dash where none does."""

from __future__ import annotations

from lib import console


def test_rows_out_sums_counted_outputs_and_is_none_when_none_counts():
    assert console.rows_out({"a": {"rows": 3, "version": 1}, "b": {"rows": 0, "version": 2}}) == 3
    assert console.rows_out({"a": {"rows": None, "version": 0}, "b": {"rows": 4}}) == 4
    assert console.rows_out({"state": {"rows": None, "version": 0}}) is None
    assert console.rows_out({}) is None


def test_a_job_without_counts_shows_a_dash_not_zero():
    text = console.render({"job": "pipeline", "status": "succeeded", "seconds": 1.0, "run_id": "r", "metrics": {
        "jobs": {"ingest": {"status": "succeeded", "seconds": 1.0, "rows_out": 1200, "rows_left_out": 0},
                 "publish": {"status": "succeeded", "seconds": 2.0, "rows_out": None, "rows_left_out": 0}}}})
    lines = {line.split()[0]: line.split() for line in text.splitlines()[2:4]}
    assert lines["ingest"][3] == "1,200" and lines["publish"][3] == console.NO_COUNT
