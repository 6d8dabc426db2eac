"""Resolving the release's rowid links inside the reading tasks, when the catalog's lookups fit a worker.

Artists link to genres, tracks to albums (``album_rowid``) and artists (``track_artists``), playlist rows
to tracks (``track_rowid``). When every Python worker can hold the ingested rows' ``(rowid, id)`` pairs as
dense arrays and the artist links grouped by track (``lookup_memory``: ~170 bytes per catalog track at the
peak), they are resolved by array lookups while the rows are read: no second pass, no shuffle. Otherwise
(the release's 256M tracks on ordinary executors) the rows land first and Spark joins them
(``transforms.resolve_tracks``, ``resolve_playlist_tracks``); both paths give the same rows, quarantine
and counts (tests/jobs/test_ingest.py, test_ingest_paths.py).
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jobs.ingest.transforms import (
    ALBUM_UNRESOLVED,
    ARTISTS_UNRESOLVED,
    DANGLING_TRACK,
    LINKS_ORPHANED,
    ONLY_AS_TRACK_REF,
)
from lib import delta, storage
from lib.rejects import REJECT_COLUMN
from lib.sources.sqlite import RangeQuery, key_bounds, read_range

# The memory rule (``ingest.in_task_lookup_max_tracks = -1``). Measured with the sample generator's dumps,
# local[2]: a Python worker's resident peak is ~255 MB with a 20K-track catalog, 398 MB with 1M tracks and
# 517 MB with 2M (docs/benchmarks.md); the peak is the tracks phase (album and artist ids, the links grouped
# by track, and the transient read of them), so ~130-170 bytes per catalog track on top of the worker.
WORKER_BASE_BYTES = 300 << 20
BYTES_PER_TRACK = 170
LOCAL_MEMORY_SHARE = 0.5  # local mode: of the memory the driver heap leaves, shared by the cores' workers


@dataclass(frozen=True)
class LookupMemory:
    """Whether the in-task lookups fit a Python worker, with the figures that decided it."""

    planned_tracks: int
    needed_bytes: int
    worker_bytes: int | None  # None: decided by a fixed track limit
    source: str

    @property
    def fits(self) -> bool:
        return self.worker_bytes is not None and self.needed_bytes <= self.worker_bytes

    def to_dict(self) -> dict[str, Any]:
        return {"planned_tracks": self.planned_tracks, "needed_mb": self.needed_bytes >> 20,
                "worker_mb": None if self.worker_bytes is None else self.worker_bytes >> 20, "source": self.source}


def worker_memory(spark: Any, configured_mb: int) -> tuple[int, str]:
    """Memory one Python worker may use, and where the figure comes from."""
    if configured_mb:
        return configured_mb << 20, "ingest.worker_memory_mb"
    context = spark.sparkContext
    conf = context.getConf()
    mib = context._jvm.org.apache.spark.network.util.JavaUtils.byteStringAsMb
    if context.master.startswith("local"):
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        heap = mib(conf.get("spark.driver.memory", "1g")) << 20
        share = int(max(0, physical - heap) * LOCAL_MEMORY_SHARE / max(1, context.defaultParallelism))
        cores = context.defaultParallelism
        return share, f"local mode: {LOCAL_MEMORY_SHARE:g} x (machine - driver heap) / {cores} cores"
    cores = int(conf.get("spark.executor.cores", "1"))
    if conf.contains("spark.executor.pyspark.memory"):
        return (mib(conf.get("spark.executor.pyspark.memory")) << 20) // cores, "spark.executor.pyspark.memory / cores"
    executor = mib(conf.get("spark.executor.memory", "1g"))
    overhead = mib(conf.get("spark.executor.memoryOverhead")) if conf.contains("spark.executor.memoryOverhead") \
        else max(384, executor // 10)
    return (overhead << 20) // cores, "executor memory overhead / cores"


def lookup_memory(spark: Any, planned_tracks: int, track_limit: int, configured_mb: int) -> LookupMemory:
    needed = WORKER_BASE_BYTES + BYTES_PER_TRACK * planned_tracks
    if track_limit >= 0:
        fits = planned_tracks <= track_limit
        return LookupMemory(planned_tracks, needed, needed if fits else None,
                            f"ingest.in_task_lookup_max_tracks = {track_limit:,}")
    budget, source = worker_memory(spark, configured_mb)
    return LookupMemory(planned_tracks, needed, budget, source)


# What a worker process has loaded, reused by every task of the run (Python workers are reused).
_LOADED: dict[Any, Any] = {}


@dataclass(frozen=True)
class ParquetFiles:
    """Parquet files of a landed or staged table, readable from any executor."""

    folder: str
    files: tuple[str, ...]  # relative to ``folder``

    @classmethod
    def landed(cls, folder: str) -> ParquetFiles:
        return cls(folder, tuple(storage.list_names(folder, ".parquet")))

    @classmethod
    def staged(cls, staged: delta.StagedWrite) -> ParquetFiles:
        return cls(staged.uri, tuple(add.path for add in staged.adds))

    def read(self, schema: pa.Schema) -> pa.Table:
        if not self.files:
            return schema.empty_table()
        fs, root = delta.filesystem(self.folder)
        paths = [posixpath.join(root, f) for f in self.files]
        return pq.read_table(paths, columns=schema.names, filesystem=fs).cast(schema)


def _cached(key: Any, load: Any) -> Any:
    if key not in _LOADED:
        _LOADED.clear()
        _LOADED[key] = load()
    return _LOADED[key]


@dataclass(frozen=True)
class DenseIndex:
    """rowid → row position by array index (rowids of one table are dense integers)."""

    low: int
    positions: np.ndarray

    @classmethod
    def of(cls, rowids: np.ndarray) -> DenseIndex:
        if len(rowids) == 0:
            return cls(0, np.full(0, -1, dtype=np.int64))
        low = int(rowids.min())
        # int32 positions: 4 bytes per rowid of the span (a worker holds one per catalog track).
        positions = np.full(int(rowids.max()) - low + 1, -1, dtype=np.int32 if len(rowids) < 2**31 else np.int64)
        positions[rowids - low] = np.arange(len(rowids))
        return cls(low, positions)

    def find(self, keys: pa.Array) -> np.ndarray:
        """Position of each key, -1 where the key is NULL or not indexed."""
        offsets = pc.fill_null(keys, self.low - 1).to_numpy(zero_copy_only=False).astype(np.int64) - self.low
        inside = (offsets >= 0) & (offsets < len(self.positions))
        found = np.full(len(offsets), -1, dtype=np.int64)
        found[inside] = self.positions[offsets[inside]]
        return found


def _ids(table: pa.Table, rowid: str, ident: str) -> tuple[DenseIndex, pa.Array]:
    return DenseIndex.of(table.column(rowid).to_numpy()), table.column(ident).combine_chunks()


def _take(ids: pa.Array, found: np.ndarray) -> pa.Array:
    return ids.take(pa.array(found, mask=found < 0))


# The columns each lookup reads from landed or staged files.
ID_PAIRS = {
    "track": pa.schema([("track_rowid", pa.int64()), ("track_id", pa.string())]),
    "album": pa.schema([("album_rowid", pa.int64()), ("album_id", pa.string())]),
    "artist": pa.schema([("artist_rowid", pa.int64()), ("artist_id", pa.string())]),
}
LINKS = pa.schema([("track_rowid", pa.int64()), ("artist_rowid", pa.int64()), ("link_order", pa.int64())])


# ----------------------------------------------------------------------------------------------
# Playlist rows


@dataclass(frozen=True)
class TrackIdLookup:
    """A ``LinkResolver`` (lib.sources.sqlite) for the playlist_tracks range query."""

    tracks: ParquetFiles  # the ingested tracks (track_rowid, track_id, ...)

    def output_schema(self, schema: pa.Schema) -> pa.Schema:
        """The Spark path's column order: contract columns first, then the extras."""
        return pa.schema([
            schema.field("playlist_id"), schema.field("position"), pa.field("track_id", pa.string()),
            schema.field("added_at"), schema.field("track_rowid"), schema.field("playlist_rowid"),
            pa.field("in_catalog", pa.bool_()),
        ])

    def __call__(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, list[dict[str, Any]], dict[str, int]]:
        index, ids = _cached(self, lambda: _ids(self.tracks.read(ID_PAIRS["track"]), "track_rowid", "track_id"))
        rowid = batch.column("track_rowid")
        found = index.find(rowid)
        track_id = pc.coalesce(_take(ids, found), batch.column("track_ref"))
        in_catalog = pa.array(found >= 0)
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
        only_as_ref = int(np.count_nonzero(~resolved.column("in_catalog").to_numpy(zero_copy_only=False)))
        return resolved, rejected, {ONLY_AS_TRACK_REF: only_as_ref}


# ----------------------------------------------------------------------------------------------
# Tracks


@dataclass(frozen=True)
class ListsByKey:
    """Lists of strings by integer key: for the sorted distinct ``tracks`` (keys), ``values`` sliced by
    ``offsets``."""

    tracks: np.ndarray
    offsets: np.ndarray
    values: pa.Array

    def groups(self, track_rowid: np.ndarray) -> np.ndarray:
        """Group of each key, -1 for a key without a list."""
        group = np.searchsorted(self.tracks, track_rowid)
        inside = group < len(self.tracks)
        hit = np.zeros(len(track_rowid), dtype=bool)
        hit[inside] = self.tracks[group[inside]] == track_rowid[inside]
        return np.where(hit, group, -1)

    def lists(self, group: np.ndarray) -> pa.Array:
        """One list per group (empty for -1)."""
        has = group >= 0
        starts = np.where(has, self.offsets[np.maximum(group, 0)], 0)
        lengths = np.where(has, self.offsets[np.maximum(group, 0) + 1] - starts, 0)
        list_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        take = np.repeat(starts - list_offsets[:-1], lengths) + np.arange(list_offsets[-1])
        return pa.ListArray.from_arrays(pa.array(list_offsets), self.items(pa.array(take, pa.int64())))

    def items(self, positions: pa.Array) -> pa.Array:
        return self.values.take(positions)


def _grouped(keys: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the row order that sorts by ``(keys, order)``, the sorted distinct keys, each sorted row's group)."""
    sorting = np.lexsort((order, keys))
    distinct, group = np.unique(keys[sorting], return_inverse=True)
    return sorting, distinct, group


@dataclass(frozen=True)
class ArtistLinks(ListsByKey):
    """The artist links grouped by track: for the sorted distinct ``tracks`` of the links, the resolved
    artists in link order (``values``: int32 positions in ``artist_ids``, 4 bytes a link instead of an id's
    26) and the count of links to no ingested artist."""

    unresolved: np.ndarray
    artist_ids: pa.Array

    def items(self, positions: pa.Array) -> pa.Array:
        return self.artist_ids.take(self.values.take(positions))

    @classmethod
    def load(cls, links: ParquetFiles, artists: ParquetFiles) -> ArtistLinks:
        table = links.read(LINKS)
        index, artist_ids = _ids(artists.read(ID_PAIRS["artist"]), "artist_rowid", "artist_id")
        order, tracks, group = _grouped(table.column("track_rowid").to_numpy(), table.column("link_order").to_numpy())
        artist = index.find(table.column("artist_rowid").take(pa.array(order)))
        resolved = artist >= 0
        counts = np.bincount(group[resolved], minlength=len(tracks))
        return cls(
            tracks=tracks,
            offsets=np.concatenate([[0], np.cumsum(counts)]),
            values=pa.array(artist[resolved].astype(np.int32)),
            unresolved=np.bincount(group[~resolved], minlength=len(tracks)).astype(np.int32),
            artist_ids=artist_ids,
        )

    def orphans(self, ingested_tracks: np.ndarray) -> dict[str, int]:
        """Counts for the link groups of tracks that were not ingested (quarantined or missing)."""
        orphan = ~np.isin(self.tracks, ingested_tracks)
        resolved = np.diff(self.offsets)
        return {LINKS_ORPHANED: int(resolved[orphan].sum()), ARTISTS_UNRESOLVED: int(self.unresolved[orphan].sum())}


TRACK_EXTRAS = ("track_rowid",)


@dataclass(frozen=True)
class TrackAssembly:
    """A ``LinkResolver`` for the tracks range query: album_id and the ordered artist_ids."""

    albums: ParquetFiles  # the ingested albums (album_rowid, album_id, ...)
    artists: ParquetFiles  # the ingested artists (artist_rowid, artist_id, ...)
    links: ParquetFiles  # the landed track_artists

    def output_schema(self, schema: pa.Schema) -> pa.Schema:
        fields = [schema.field(n) for n in schema.names if n != "album_rowid" and n not in TRACK_EXTRAS]
        fields.insert(2, pa.field("album_id", pa.string()))
        fields.insert(3, pa.field("artist_ids", pa.list_(pa.string())))
        return pa.schema([*fields, *(schema.field(n) for n in TRACK_EXTRAS)])

    def load(self) -> tuple[DenseIndex, pa.Array, ArtistLinks]:
        def build() -> tuple[DenseIndex, pa.Array, ArtistLinks]:
            album_index, album_ids = _ids(self.albums.read(ID_PAIRS["album"]), "album_rowid", "album_id")
            return album_index, album_ids, ArtistLinks.load(self.links, self.artists)

        return _cached(self, build)

    def __call__(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, list[dict[str, Any]], dict[str, int]]:
        album_index, album_ids, links = self.load()
        album_rowid = batch.column("album_rowid")
        album_id = _take(album_ids, album_index.find(album_rowid))
        group = links.groups(batch.column("track_rowid").to_numpy(zero_copy_only=False))
        columns = {name: batch.column(name) for name in batch.schema.names}
        columns["album_id"] = album_id
        columns["artist_ids"] = links.lists(group)
        schema = self.output_schema(batch.schema)
        resolved = pa.RecordBatch.from_arrays([columns[n] for n in schema.names], schema=schema)
        noted = {
            ARTISTS_UNRESOLVED: int(links.unresolved[group[group >= 0]].sum()),
            ALBUM_UNRESOLVED: int(pc.sum(pc.and_(pc.is_valid(album_rowid), pc.is_null(album_id))).as_py() or 0),
        }
        return resolved, [], noted


# ----------------------------------------------------------------------------------------------
# Artists


@dataclass(frozen=True)
class ArtistGenres:
    """A ``LinkResolver`` for the artists range query: each artist's genres in ``artist_genres`` row order
    (``transforms.attach_genres``'s lists), from the genre rows every worker reads itself with the
    artist_genres query (the rows that query keeps, so the quarantined ones give no genre)."""

    genres: RangeQuery  # the artist_genres query

    def output_schema(self, schema: pa.Schema) -> pa.Schema:
        """The Spark path's column order: the contract (genres after popularity), then the extras."""
        fields = [schema.field(n) for n in schema.names]
        fields.insert(schema.get_field_index("popularity") + 1, pa.field("genres", pa.list_(pa.string())))
        return pa.schema(fields)

    def load(self) -> ListsByKey:
        def build() -> ListsByKey:
            bounds = key_bounds(self.genres.db_path, self.genres.from_clause, self.genres.key)
            batches = [good for good, _, _ in read_range(self.genres, *bounds)] if bounds else []
            table = pa.Table.from_batches(batches, schema=self.genres.arrow_schema())
            order, artists, group = _grouped(table.column("artist_rowid").to_numpy(),
                                             table.column("link_order").to_numpy())
            counts = np.bincount(group, minlength=len(artists))
            return ListsByKey(artists, np.concatenate([[0], np.cumsum(counts)]),
                              table.column("genre").combine_chunks().take(pa.array(order)))

        return _cached(self, build)

    def __call__(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, list[dict[str, Any]], dict[str, int]]:
        genres = self.load()
        columns = {name: batch.column(name) for name in batch.schema.names}
        columns["genres"] = genres.lists(genres.groups(batch.column("artist_rowid").to_numpy(zero_copy_only=False)))
        schema = self.output_schema(batch.schema)
        return pa.RecordBatch.from_arrays([columns[n] for n in schema.names], schema=schema), [], {}
