"""Timing helpers shared by the benchmarks, so every figure is taken the same way:

- ``timed()`` / ``measure()``: wall and CPU seconds of a block. CPU is this process's (all its threads:
  DuckDB, faiss, numpy), or with ``pid`` that process and all its descendants, read from /proc — the Spark
  JVM and its Python workers (``spark_pid``), which ``time.process_time`` in the driver cannot see.
- ``run_process()``: a whole command (``./spark-submit.sh …``) with its wall time, CPU time and peak memory.
  Peak memory is what a machine must hold: the resident memory of the whole process tree (launcher script,
  JVM, Python workers) summed at each /proc sample, every ``interval`` seconds. ``getrusage`` cannot give
  that: its ``ru_maxrss`` is the largest *single* descendant, and a maximum over the caller's whole life, so
  a delta of it is meaningless. The kernel's exact per-process high-water mark (VmHWM) is reported too.
  CPU comes from ``getrusage(RUSAGE_CHILDREN)`` deltas (exact for every descendant that was waited for).
- ``write_result()``: one JSON line per run in bench/results/<bench>.jsonl (git-ignored), with when, on
  which commit and how busy the machine was, so figures taken on a shared machine can be read later.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
T = TypeVar("T")


# ------------------------------------------------------------------------------------------------
# /proc


def _processes(own: dict[int, int] | None = None) -> dict[int, tuple[int, int]]:
    """pid → (parent pid, utime + stime + cutime + cstime in clock ticks) of every live process; ``own``
    receives each one's own utime + stime."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()  # the command name may hold spaces
        except OSError:  # exited meanwhile
            continue
        table[int(name)] = (int(fields[1]), sum(int(value) for value in fields[11:15]))
        if own is not None:
            own[int(name)] = int(fields[11]) + int(fields[12])
    return table


def _tree(root_pid: int, table: Mapping[int, tuple[int, int]]) -> list[int]:
    """``root_pid`` and its live descendants."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, stack = [], [root_pid] if root_pid in table else []
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, ()))
    return found


def tree_cpu_seconds(root_pid: int) -> float:
    """utime + stime (with reaped children) of a process and all its live descendants."""
    table = _processes()
    return sum(table[pid][1] for pid in _tree(root_pid, table)) / os.sysconf("SC_CLK_TCK")


def _memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in bytes; (0, 0) once it has gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, hwm


# ------------------------------------------------------------------------------------------------
# Blocks


@dataclass
class Timing:
    wall: float = 0.0  # seconds
    cpu: float = 0.0  # seconds, user + system
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.wall:.1f} s wall, {self.cpu:.1f} s CPU"


def spark_pid(spark: Any) -> int:
    """The pid of the Spark driver JVM (its descendants are the Python workers)."""
    return int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())


def _cpu(pid: int | None) -> float:
    return time.process_time() if pid is None else tree_cpu_seconds(pid)


@contextmanager
def timed(pid: int | None = None) -> Iterator[Timing]:
    """Time the ``with`` block; the Timing it yields is filled in when the block ends. CPU is this
    process's, or with ``pid`` that process tree's."""
    timing = Timing()
    cpu, wall = _cpu(pid), time.perf_counter()
    try:
        yield timing
    finally:
        timing.wall = time.perf_counter() - wall
        timing.cpu = _cpu(pid) - cpu


def measure(work: Callable[[], T], pid: int | None = None) -> tuple[Timing, T]:
    """``work()`` timed like ``timed``, with its result."""
    with timed(pid) as timing:
        result = work()
    return timing, result


# ------------------------------------------------------------------------------------------------
# Whole processes


@dataclass
class ProcessRun:
    argv: list[str]
    returncode: int
    wall: float  # seconds
    cpu: float  # seconds of every waited-for descendant, user + system
    peak_rss_bytes: int  # largest sum of the tree's resident memory over the samples
    max_process_hwm_bytes: int  # largest single-process high-water mark (kernel-exact, last sample)
    samples: int
    # user + system seconds of every process seen in the tree, from the samples: counts descendants nobody
    # waits for (Spark's Python workers are killed with the JVM, so ``cpu`` misses them); misses at most
    # the last ``interval`` of each process.
    tree_cpu: float = 0.0


class _Sampler(threading.Thread):
    def __init__(self, pid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak = self.hwm = self.samples = 0
        self.cpu_ticks: dict[int, int] = {}
        self.done = threading.Event()

    def sample(self) -> None:
        total, own = 0, {}
        for pid in _tree(self.pid, _processes(own)):
            rss, hwm = _memory(pid)
            total += rss
            self.hwm = max(self.hwm, hwm)
            self.cpu_ticks[pid] = max(self.cpu_ticks.get(pid, 0), own.get(pid, 0))
        self.peak = max(self.peak, total)
        self.samples += 1

    def run(self) -> None:
        while not self.done.is_set():
            self.sample()
            self.done.wait(self.interval)


def run_process(argv: Sequence[str], interval: float = 0.1, **popen: Any) -> ProcessRun:
    """Run ``argv`` to completion (``popen`` goes to subprocess.Popen: cwd, env, stdout, …) and measure it.
    Descendants that outlive the root (daemonised) are not followed after it exits."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(list(argv), **popen)
    sampler = _Sampler(process.pid, interval)
    sampler.start()
    try:
        returncode = process.wait()
    finally:
        sampler.done.set()
        sampler.join()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    tree_cpu = sum(sampler.cpu_ticks.values()) / os.sysconf("SC_CLK_TCK")
    return ProcessRun(list(argv), returncode, wall, cpu, sampler.peak, sampler.hwm, sampler.samples, tree_cpu)


# ------------------------------------------------------------------------------------------------
# Results


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def _commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def write_result(bench: str, record: Mapping[str, Any], results_dir: Path = RESULTS) -> Path:
    """Append ``record`` as one JSON line to ``<results_dir>/<bench>.jsonl``, with the time, the command
    line, the commit and the machine's cores and load (timings on a busy machine read differently)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{bench}.jsonl"
    line = {
        "bench": bench,
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv[1:],
        "commit": _commit(),
        "cores": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        **record,
    }
    with path.open("a") as handle:
        handle.write(json.dumps(line, default=_jsonable) + "\n")
    return path
