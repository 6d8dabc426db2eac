"""ingest: the Spotify release (real or spec layout) and the MusicBrainz dump → bronze Delta tables.

1. Preflight, before anything is written: every input is located, unpacked from .zst when needed,
   and checked (SQLite header and quick_check, required tables and columns; mbdump files and layout).
   Any problem stops the job with the file named, and no table gets a new version.
2. Every table is read in key ranges on the executors and staged (invisible) in turn; later tables use
   the staged rows of earlier ones to resolve rowid links (tracks need albums and artists, playlist
   rows need tracks).
3. Everything is committed at the end, the quarantine (``bronze/_rejects``) included.
"""

from __future__ import annotations

import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from jobs.ingest import sources, transforms
from lib import delta
from lib.config import Config
from lib.errors import InputError, JobError
from lib.log import get_logger
from lib.rejects import RejectSink, counts_by_reason, split_rejects
from lib.schemas import conform, contract
from lib.sources import mbdump
from lib.sources.sqlite import (
    RangeQuery,
    RangeStats,
    check_database,
    collect_stats,
    plan_ranges,
    read_ranges,
    unpack_zstd,
    write_ranges,
)
from lib.spark import observed_counts

log = get_logger("ingest")


# ----------------------------------------------------------------------------------------------
# Preflight


def _locate(folder: Path, name: str, work_dir: Path) -> tuple[Path, Path | None]:
    """(path to read, compressed source or None): ``name`` itself, else ``name.zst`` to unpack."""
    plain, packed = folder / name, folder / f"{name}.zst"
    if plain.is_file():
        return plain, None
    if packed.is_file():
        return work_dir / name, packed
    raise InputError(f"{plain}: file not found (nor {packed.name}) in {folder}")


def prepare_spotify(config: Config) -> dict[str, Path]:
    """Locate, unpack and check the Spotify files of the configured layout; {logical name: sqlite path}."""
    folder, work_dir = Path(config.paths.spotify), Path(config.paths.work) / "unpacked"
    names, required = (
        (sources.REAL_FILES, sources.REAL_REQUIRED)
        if config.paths.spotify_layout == "real"
        else (sources.SPEC_FILES, sources.SPEC_REQUIRED)
    )
    if not folder.is_dir():
        raise InputError(f"{folder}: Spotify folder (paths.spotify) does not exist")
    located = {key: _locate(folder, name, work_dir) for key, name in names.items()}
    packed = {key: src for key, (_, src) in located.items() if src is not None}
    if packed:
        # zstd releases the GIL: the files unpack in parallel threads.
        with ThreadPoolExecutor(max_workers=min(4, len(packed))) as pool:
            unpacked = dict(zip(packed, pool.map(lambda src: unpack_zstd(src, work_dir), packed.values())))
        log.info("unpacked %s into %s", ", ".join(p.name for p in packed.values()), work_dir)
    else:
        unpacked = {}
    files = {key: unpacked.get(key, path) for key, (path, _) in located.items()}
    for key, path in files.items():
        check_database(path, required[key], quick_check=config.ingest.quick_check)
    return files


# ----------------------------------------------------------------------------------------------
# Staging helpers


@dataclass
class IngestRun:
    spark: SparkSession
    config: Config
    sink: RejectSink
    staged: dict[str, delta.StagedWrite] = field(default_factory=dict)
    read_stats: dict[str, RangeStats] = field(default_factory=dict)
    observed: dict[str, Observation] = field(default_factory=dict)

    @property
    def stats_dir(self) -> str:
        return f"{self.sink.staging_dir}/_stats"

    def uri(self, table: str) -> str:
        return delta.table_path(self.config.paths.warehouse, "bronze", table)

    def ranges(self, query: RangeQuery, table: str, key: str = "rowid") -> list[tuple[int, int]]:
        return plan_ranges(query.db_path, table, key, self.config.ingest.rows_per_task)

    def read(self, query: RangeQuery, table: str, key: str = "rowid") -> DataFrame:
        self.read_stats.setdefault(query.name, RangeStats())
        return read_ranges(self.spark, query, self.ranges(query, table, key), self.sink, self.stats_dir)

    def stage(self, table: str, frame: DataFrame) -> delta.StagedWrite:
        started = time.perf_counter()
        staged = delta.stage(conform(frame, "bronze", table), self.uri(table), mode="overwrite")
        self.staged[table] = staged
        log.info("staged bronze/%s: %d rows in %.1f s", table, staged.rows, time.perf_counter() - started)
        return staged

    def stage_direct(self, query: RangeQuery, table: str) -> delta.StagedWrite:
        """A table whose rows need no Spark transformation: pyarrow writes them in the tasks
        (``ingest.arrow_native``), or Spark's writer does."""
        _check_contract(query, query.name)
        if not self.config.ingest.arrow_native:
            return self.stage(query.name, self.read(query, table))
        started = time.perf_counter()
        self.read_stats.setdefault(query.name, RangeStats())
        uri = self.uri(query.name)
        plan = delta.plan_write(uri, query.spark_schema(), mode="overwrite")
        write_id = delta.new_write_id()
        write_ranges(self.spark, query, self.ranges(query, table), self.sink, self.stats_dir,
                     delta.staging_path(uri, write_id))
        staged = delta.stage_files(plan, write_id)
        self.staged[query.name] = staged
        log.info("staged bronze/%s (arrow-native): %d rows in %.1f s", query.name, staged.rows,
                 time.perf_counter() - started)
        return staged

    def staged_frame(self, table: str, *columns: str) -> DataFrame:
        return delta.read_staged(self.spark, self.staged[table]).select(*columns)

    def observe(self, name: str, frame: DataFrame, *metrics: Any) -> DataFrame:
        observation = Observation(name)
        self.observed[name] = observation
        return frame.observe(observation, *metrics)


def _check_contract(query: RangeQuery, table: str) -> None:
    """Arrow-native tables skip ``conform``: their query must already list the contract first."""
    wanted = contract("bronze", table)
    schema = query.spark_schema()
    head = [(f.name, f.dataType) for f in schema.fields[: len(wanted.fields)]]
    if head != [(f.name, f.dataType) for f in wanted.fields]:
        raise JobError(f"query for bronze/{table} does not start with the contract columns {wanted.fieldNames()}")


# ----------------------------------------------------------------------------------------------
# Layouts


def ingest_real(run: IngestRun, files: dict[str, Path]) -> None:
    q = sources.real_queries(files)
    run.stage_direct(q.albums, "albums")
    artists = transforms.attach_genres(run.read(q.artists, "artists"), run.read(q.artist_genres, "artist_genres"))
    run.stage("spotify_artists", artists)

    links = transforms.artist_lists(
        run.read(q.track_artists, "track_artists"), run.staged_frame("spotify_artists", "artist_rowid", "artist_id")
    )
    tracks = transforms.resolve_tracks(
        run.read(q.tracks, "tracks"), run.staged_frame("spotify_albums", "album_rowid", "album_id"), links
    )
    tracks = run.observe(
        "spotify_tracks", tracks,
        F.sum("unresolved_artists").alias("artist links to no ingested artist"),
        F.sum("orphan_links").alias("artist links of no ingested track"),
        F.count_if(F.col("album_rowid").isNotNull() & F.col("album_id").isNull()).alias(
            "album_rowid to no ingested album"),
    )
    tracks = tracks.where(F.col("track_id").isNotNull())
    run.stage("spotify_tracks", tracks.drop("unresolved_artists", "orphan_links", "album_rowid"))

    run.stage_direct(q.audio_features, "track_audio_features")
    run.stage_direct(q.playlists, "playlists")
    rows = transforms.resolve_playlist_tracks(
        run.read(q.playlist_tracks, "playlist_tracks", key="playlist_rowid"),
        run.staged_frame("spotify_tracks", "track_rowid", "track_id"),
    )
    rows = split_rejects(rows, "spotify_playlist_tracks", run.sink, q.playlist_tracks.db_path,
                         ("playlist_rowid", "position"))
    rows = run.observe("spotify_playlist_tracks", rows,
                       F.count_if(~F.col("in_catalog")).alias("tracks only as id_if_not_in_tracks_table"))
    run.stage("spotify_playlist_tracks", rows)


def ingest_spec(run: IngestRun, files: dict[str, Path]) -> None:
    q = sources.spec_queries(files)
    run.stage_direct(q.albums, "albums")
    artists = split_rejects(transforms.spec_artists(run.read(q.artists, "artists")), "spotify_artists",
                            run.sink, q.artists.db_path, ("artist_id",))
    run.stage("spotify_artists", artists)
    tracks = split_rejects(transforms.spec_tracks(run.read(q.tracks, "tracks")), "spotify_tracks",
                           run.sink, q.tracks.db_path, ("track_id",))
    run.stage("spotify_tracks", tracks)
    run.stage_direct(q.audio_features, "audio_features")
    run.stage_direct(q.playlists, "playlists")
    rows = transforms.spec_playlist_tracks(run.read(q.playlist_tracks, "playlist_tracks"))
    run.stage("spotify_playlist_tracks", rows)


def ingest_musicbrainz(run: IngestRun, dump: mbdump.MbDump) -> None:
    for bronze_table, (dump_table, columns) in transforms.MB_TABLES.items():
        parsed = mbdump.read_table(run.spark, dump, dump_table, [(src, kind) for src, _, kind in columns])
        rows = transforms.mb_rows(parsed, bronze_table)
        key = columns[0][1]
        rows = split_rejects(rows, bronze_table, run.sink, str(dump.table_file(dump_table)), (key,))
        run.stage(bronze_table, rows.drop("raw_line"))


# ----------------------------------------------------------------------------------------------
# The job


def run(spark: SparkSession, config: Config) -> dict[str, Any]:
    started = time.perf_counter()
    files = prepare_spotify(config)
    dump = mbdump.locate(Path(config.paths.musicbrainz), Path(config.paths.work) / "unpacked")
    log.info("inputs checked in %.1f s (%s layout; mbdump isrc layout %s)",
             time.perf_counter() - started, config.paths.spotify_layout, dump.isrc_layout)

    run_state = IngestRun(spark, config, RejectSink.new(config.paths.warehouse, uuid.uuid4().hex[:12]))
    rejects_staged: delta.StagedWrite | None = None
    try:
        (ingest_real if config.paths.spotify_layout == "real" else ingest_spec)(run_state, files)
        ingest_musicbrainz(run_state, dump)
        for name in run_state.read_stats:
            run_state.read_stats[name] = collect_stats(run_state.stats_dir, name)
        rejects_staged = run_state.sink.stage(spark, sorted({*run_state.staged, *run_state.read_stats}))
        rejected = counts_by_reason(spark, rejects_staged)
        versions = delta.commit_all([*run_state.staged.values(), rejects_staged])
    except BaseException:
        delta.abort_all([*run_state.staged.values(), *([rejects_staged] if rejects_staged else [])])
        shutil.rmtree(run_state.sink.staging_dir, ignore_errors=True)
        raise
    return _summary(run_state, rejected, versions, time.perf_counter() - started)


def _summary(run: IngestRun, rejected: dict[str, dict[str, int]], versions: list[int], seconds: float
             ) -> dict[str, Any]:
    tables: dict[str, Any] = {}
    names = sorted({*run.staged, *run.read_stats})
    for name in names:
        stats = run.read_stats.get(name)
        entry: dict[str, Any] = {}
        if name in run.staged:
            entry["rows"] = run.staged[name].rows
            entry["version"] = run.staged[name].committed_version
        if stats is not None:
            entry["rows_read"] = stats.read
            if stats.excluded:
                entry["excluded"] = stats.excluded
        if rejected.get(name):
            entry["rejected"] = rejected[name]
        if name in run.observed:
            counts = observed_counts(run.observed[name])
            entry["noted"] = {k: v for k, v in counts.items() if v}
        tables[name] = entry
    return {
        "seconds": round(seconds, 1),
        "tables": tables,
        "rejects_version": versions[-1] if versions else None,
        "rows_total": sum(s.rows for s in run.staged.values()),
    }
