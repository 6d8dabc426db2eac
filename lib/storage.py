"""Files that executor tasks write themselves and the driver reads back (landed Parquet, quarantine side
files, per-range statistics), through pyarrow's file systems so the same code serves a local path, a
shared mount and object storage (``s3://``; endpoint and credentials from the standard ``AWS_*``
environment variables, which pyarrow and delta-rs both read).

A file appears under its name only once it is complete: it is written under a temporary name next to
it and moved at the end (a rename on a POSIX file system, a server-side copy on object storage), so a
task that dies mid-write leaves no half file that a reader or ``delta.stage_files`` could pick up, and
a retried task replaces its own file.
"""

from __future__ import annotations

import contextlib
import posixpath
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow.fs as pafs

from lib.delta import filesystem

TEMP_SUFFIX = ".tmp"


@dataclass
class PendingFile:
    """Where to write (``fs``, ``path``: the temporary name); set ``keep = False`` to publish nothing."""

    fs: pafs.FileSystem
    path: str
    keep: bool = True


@contextlib.contextmanager
def atomic_output(uri: str) -> Iterator[PendingFile]:
    """``with atomic_output(uri) as out: pq.write_table(t, out.path, filesystem=out.fs)`` publishes the file
    at ``uri`` when the block ends without an exception (and ``out.keep``); else nothing is left."""
    fs, path = filesystem(uri)
    fs.create_dir(posixpath.dirname(path), recursive=True)
    pending = PendingFile(fs, f"{path}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")
    published = False
    try:
        yield pending
        if pending.keep:
            fs.move(pending.path, path)
            published = True
    finally:
        if not published:
            with contextlib.suppress(OSError):
                fs.delete_file(pending.path)


def write_bytes(uri: str, data: bytes) -> None:
    with atomic_output(uri) as out, out.fs.open_output_stream(out.path) as handle:
        handle.write(data)


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    with fs.open_input_stream(path) as handle:
        return handle.read()


def list_names(folder: str, suffix: str = "") -> list[str]:
    """Sorted names of the files directly in ``folder`` ending in ``suffix`` ([] when it does not exist);
    temporary files of writes in progress are never listed."""
    fs, path = filesystem(folder)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return sorted(
        info.base_name for info in infos
        if info.type == pafs.FileType.File and info.base_name.endswith(suffix)
        and not info.base_name.endswith(TEMP_SUFFIX)
    )
