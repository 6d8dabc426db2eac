"""Progress of a long push, logged by the driver at a steady interval: batches done / total, rate and ETA.

The executors' write-ahead records are the progress source (one per batch sent, written as it completes),
so the driver needs no accumulator and sees batches of tasks still running.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    def __init__(self, log: logging.Logger, what: str, total: int, count: Callable[[], int],
                 interval: float) -> None:
        self.log, self.what, self.total, self.count, self.interval = log, what, total, count, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"progress-{what}", daemon=True)
        self._start = time.monotonic()
        self._first = 0

    def line(self) -> str:
        done = self.count() - self._first
        elapsed = max(time.monotonic() - self._start, 1e-9)
        rate = done / elapsed
        left = max(self.total - done, 0)
        eta = _duration(left / rate) if rate > 0 else "?"
        share = f" ({100 * done / self.total:.0f}%)" if self.total else ""
        return f"{self.what}: {done}/{self.total} batches{share}, {rate:.2f}/s, ETA {eta}"

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.log.info("%s", self.line())
            except OSError:  # a listing that races with a rename: try again next time
                continue

    def __enter__(self) -> Progress:
        self._first = self.count()
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
