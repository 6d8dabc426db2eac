"""Resolving playlist rows' ``track_rowid`` inside the reading tasks, when the catalog is small enough.

The release links ``playlist_tracks.track_rowid`` to ``tracks.rowid``. For a catalog of a few million
tracks every Python worker can hold the ``(track_rowid, track_id)`` pairs of the landed tracks as a
dense array (~35 bytes per track), and the playlist rows are resolved by array lookups while they are
read: no second pass over the largest table, no shuffle. Above ``ingest.in_task_lookup_max_tracks`` (the
release's 256M tracks) ingest lands the rows first and resolves them with a Spark join
(``transforms.resolve_playlist_tracks``); both give the same rows, the same quarantine and the same
counts.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jobs.ingest.transforms import DANGLING_TRACK, ONLY_AS_TRACK_REF
from lib import delta
from lib.rejects import REJECT_COLUMN

# One lookup per worker process, reused by every task of the run (Python workers are reused).
_LOADED: dict[tuple[str, ...], tuple[int, np.ndarray, pa.Array]] = {}


@dataclass(frozen=True)
class TrackIdLookup:
    """A ``LinkResolver`` (lib.sources.sqlite) for the playlist_tracks range query."""

    folder: str  # the landed tracks (the rows ingest keeps: track_rowid, track_id, ...)
    files: tuple[str, ...]  # their Parquet files, relative to ``folder``

    def output_schema(self, schema: pa.Schema) -> pa.Schema:
        """The Spark path's column order: contract columns first, then the extras."""
        return pa.schema([
            schema.field("playlist_id"), schema.field("position"), pa.field("track_id", pa.string()),
            schema.field("added_at"), schema.field("track_rowid"), schema.field("playlist_rowid"),
            pa.field("in_catalog", pa.bool_()),
        ])

    def _load(self) -> tuple[int, np.ndarray, pa.Array]:
        key = (self.folder, *self.files)
        if key not in _LOADED:
            _LOADED.clear()
            fs, root = delta.filesystem(self.folder)
            paths = [posixpath.join(root, f) for f in self.files]
            table = pq.read_table(paths, columns=["track_rowid", "track_id"], filesystem=fs) if paths else None
            if table is None or table.num_rows == 0:
                _LOADED[key] = (0, np.full(0, -1, dtype=np.int64), pa.array([], pa.string()))
            else:
                rowids = table.column("track_rowid").to_numpy()
                low = int(rowids.min())
                positions = np.full(int(rowids.max()) - low + 1, -1, dtype=np.int64)
                positions[rowids - low] = np.arange(len(rowids))
                _LOADED[key] = (low, positions, table.column("track_id").combine_chunks())
        return _LOADED[key]

    def __call__(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, list[dict[str, Any]], dict[str, int]]:
        low, positions, ids = self._load()
        rowid = batch.column("track_rowid")
        offsets = rowid.to_numpy(zero_copy_only=False) if rowid.null_count == 0 else \
            pc.fill_null(rowid, low - 1).to_numpy()
        offsets = offsets - low
        inside = (offsets >= 0) & (offsets < len(positions))
        found = np.full(len(offsets), -1, dtype=np.int64)
        found[inside] = positions[offsets[inside]]
        hit = found >= 0
        catalog_id = ids.take(pa.array(found, mask=~hit))
        track_id = pc.coalesce(catalog_id, batch.column("track_ref"))
        in_catalog = pa.array(hit)
        dangling = pc.and_(pc.is_valid(rowid), pc.invert(in_catalog))
        resolved = pa.RecordBatch.from_arrays(
            [batch.column("playlist_id"), batch.column("position"), track_id, batch.column("added_at"),
             rowid, batch.column("playlist_rowid"), in_catalog],
            schema=self.output_schema(batch.schema),
        )
        rejected: list[dict[str, Any]] = []
        if pc.any(dangling).as_py():
            rejected = [{**row, REJECT_COLUMN: DANGLING_TRACK} for row in resolved.filter(dangling).to_pylist()]
            resolved = resolved.filter(pc.invert(dangling))
        only_as_ref = resolved.num_rows - pc.sum(resolved.column("in_catalog").cast(pa.int64())).as_py() \
            if resolved.num_rows else 0
        return resolved, rejected, {ONLY_AS_TRACK_REF: int(only_as_ref)}
