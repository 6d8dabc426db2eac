"""Fingerprints of source files, so a rerun can tell an unchanged dump from a changed one without reading it.

- a SQLite file: size, mtime and the header's file change counter (bytes 24..27, bumped by every write
  transaction), so a rewrite that keeps size and mtime still shows;
- a compressed file (``.zst``, ``.tar.bz2``): size, mtime and a sha256 of its content, cached in
  ``paths.work/fingerprints.json`` by (path, size, mtime) so an unchanged multi-GB file is hashed once;
- anything else (mbdump table files): size and mtime.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

SQLITE_MAGIC = b"SQLite format 3\x00"
CHUNK = 8 * 1024 * 1024


def _sqlite_counter(path: Path) -> int | None:
    with path.open("rb") as handle:
        header = handle.read(28)
    if len(header) < 28 or not header.startswith(SQLITE_MAGIC):
        return None
    return int.from_bytes(header[24:28], "big")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(path: Path, cache_file: Path | None = None) -> str:
    stat = path.stat()
    base = f"{stat.st_size}:{stat.st_mtime_ns}"
    if path.suffix in (".zst", ".bz2", ".gz"):
        cache: dict[str, str] = {}
        if cache_file is not None and cache_file.is_file():
            try:
                cache = json.loads(cache_file.read_text())
            except ValueError:
                cache = {}
        key = f"{path.resolve()}|{base}"
        if key not in cache:
            cache[key] = _sha256(path)
            if cache_file is not None:
                cache_file.parent.mkdir(parents=True, exist_ok=True)
                temp = cache_file.with_suffix(f".{os.getpid()}.tmp")
                temp.write_text(json.dumps(cache, sort_keys=True))
                os.replace(temp, cache_file)
        return f"{base}:sha256={cache[key][:16]}"
    counter = _sqlite_counter(path) if path.suffix in (".sqlite3", ".db", ".sqlite") else None
    return f"{base}:changes={counter}" if counter is not None else base


def fingerprints(paths: list[Path], cache_file: Path | None = None) -> dict[str, str]:
    """``{"file:<path>": fingerprint}`` for every existing path (missing ones are left to the job's checks)."""
    return {f"file:{path}": fingerprint(path, cache_file) for path in sorted(paths) if path.is_file()}
