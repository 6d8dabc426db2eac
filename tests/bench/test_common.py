"""bench/common.py on real processes: the peak memory of a process tree is its summed resident memory (more
than any single process holds), CPU of a live process tree is seen from outside, results append as JSON lines."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from bench.common import Timing, run_process, timed, write_result

MB = 1 << 20
# A parent holding 100 MB starts a child holding another 100 MB; both live together for a while (the
# sampler takes a sample every 0.05 s), then the parent exits with code 3.
TREE = textwrap.dedent("""
    import subprocess, sys
    held = b"p" * (100 << 20)
    child = "import time; held = b'c' * (100 << 20); time.sleep(1.5)"
    subprocess.run([sys.executable, "-c", child], check=True)
    sys.exit(3)
""")


def test_run_process_reports_the_peak_of_the_whole_tree():
    run = run_process([sys.executable, "-c", TREE], interval=0.05)
    assert run.returncode == 3 and run.samples >= 1
    assert run.max_process_hwm_bytes >= 100 * MB  # each process held 100 MB ...
    assert run.peak_rss_bytes >= 200 * MB  # ... and the tree held both at once
    assert run.peak_rss_bytes > run.max_process_hwm_bytes
    assert run.cpu >= 0 and run.wall > 0


def test_timed_sees_the_cpu_of_another_process_tree():
    burner = subprocess.Popen(
        [sys.executable, "-c", "sum(i * i for i in range(3_000_000)); print('done', flush=True); input()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        with timed(pid=burner.pid) as timing:
            assert burner.stdout.readline() == "done\n"
    finally:
        burner.communicate("\n")
    assert timing.cpu > 0 and timing.wall > 0


def test_results_append_as_json_lines(tmp_path):
    first = write_result("demo", {"size": 1, "job": Timing(1.5, 2.0, {"rows": 3})}, results_dir=tmp_path)
    second = write_result("demo", {"size": 2}, results_dir=tmp_path)
    assert first == second == tmp_path / "demo.jsonl"
    lines = [json.loads(line) for line in first.read_text().splitlines()]
    assert [line["size"] for line in lines] == [1, 2]
    assert lines[0]["job"] == {"wall": 1.5, "cpu": 2.0, "extra": {"rows": 3}}
    assert {"at", "commit", "cores", "load_average", "argv"} <= set(lines[0])
