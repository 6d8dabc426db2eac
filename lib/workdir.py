"""A job's scratch folder: intermediate tables plus one marker per finished step, so a rerun with the
same input version and settings skips what a failed run already finished (resume).

Layout: ``{paths.work}/{job}/{fingerprint}/{step}/`` (Parquet written by Spark) and
``{step}/_done.json`` (written after the step's data, holding the step's metrics). A step without its
marker is redone from scratch. The folder is removed after the job's outputs are committed.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from typing import Any

import pyarrow.fs as pafs

from lib.delta import filesystem

MARKER = "_done.json"
# Scratch Parquet (step outputs, round checkpoints) is read once or twice and then deleted: a fast codec
# beats a small one.
CODEC = "lz4_raw"


def fingerprint(settings: dict[str, Any]) -> str:
    """Short stable hash of everything an intermediate result depends on."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


class WorkDir:
    def __init__(self, root: str) -> None:
        self.root = root
        self._fs, self._base = filesystem(root)

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def _local(self, *parts: str) -> str:
        return posixpath.join(self._base, *parts)

    def done(self, step: str) -> dict[str, Any] | None:
        """The metrics of a finished step, or None when it has to run."""
        try:
            with self._fs.open_input_stream(self._local(step, MARKER)) as handle:
                return json.loads(handle.read().decode())
        except (FileNotFoundError, OSError):
            return None

    def mark_done(self, step: str, metrics: dict[str, Any]) -> None:
        self._fs.create_dir(self._local(step), recursive=True)
        with self._fs.open_output_stream(self._local(step, MARKER)) as handle:
            handle.write(json.dumps(metrics, sort_keys=True).encode())

    def remove(self) -> None:
        info = self._fs.get_file_info(self._base)
        if info.type != pafs.FileType.NotFound:
            self._fs.delete_dir(self._base)
