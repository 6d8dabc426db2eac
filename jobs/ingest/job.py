"""ingest: the Spotify release (real or spec layout) and the MusicBrainz dump → bronze Delta tables.

1. Preflight, before anything is written: every input is located, unpacked from .zst when needed,
   and checked (SQLite header and quick_check, required tables and columns; mbdump files and layout).
   Any problem stops the job with the file named, and no table gets a new version.
2. Every table is read in key ranges by executor tasks that write Parquet with pyarrow (one Spark job
   per group of tables, largest ranges first): SQLite tables by rowid ranges, MusicBrainz files by byte
   ranges (musicbrainz.py). Tables that need no Spark transformation land straight in their bronze
   staging folder. Artists (genres), tracks (album, artists) and playlist rows (track) resolve their
   rowid links while they are read, from per-worker copies of the ingested ids (track_lookup.py), or,
   for a catalog too big for that, land under ``paths.work`` and Spark resolves them with joins. So a
   catalog that fits runs three Spark jobs in all: everything without links, tracks, playlist rows.
3. Everything is committed at the end, the quarantine (``bronze/_rejects``) included.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from jobs.ingest import musicbrainz, sources, transforms
from jobs.ingest.track_lookup import (
    ID_PAIRS,
    ArtistGenres,
    ArtistLinks,
    ParquetFiles,
    TrackAssembly,
    TrackIdLookup,
    lookup_memory,
)
from lib import delta
from lib.config import Config
from lib.errors import InputError, JobError
from lib.fingerprint import fingerprints
from lib.job import JobSpec, Run
from lib.log import get_logger
from lib.rejects import REJECTS_TABLE, RejectSink, counts_by_reason, split_rejects
from lib.schemas import BRONZE, contract
from lib.sources import mbdump
from lib.sources.sqlite import (
    Landing,
    LinkResolver,
    RangeQuery,
    RangeSource,
    RangeStats,
    check_database,
    collect_stats,
    land_ranges,
    plan_ranges_with_rows,
    unpack_zstd,
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
# Landing and staging


@dataclass
class IngestRun:
    """One ingest on the frame's ``Run``: SQLite tables are landed as Parquet by executor tasks (``land``),
    straight into a bronze table's staging folder when the rows need no Spark transformation, else into a
    landing folder under ``paths.work`` that Spark then reads to resolve links; every result is staged on the
    frame, which commits them together at the end."""

    frame: Run
    sink: RejectSink
    landing_dir: str
    read_stats: dict[str, RangeStats] = field(default_factory=dict)
    observed: dict[str, Observation] = field(default_factory=dict)
    pending: dict[str, tuple[delta.WritePlan, str]] = field(default_factory=dict)  # bronze files being landed
    noted: dict[str, dict[str, int]] = field(default_factory=dict)  # counts found outside the tasks

    @property
    def spark(self) -> SparkSession:
        assert self.frame.spark is not None
        return self.frame.spark

    @property
    def config(self) -> Config:
        return self.frame.config

    @property
    def staged(self) -> dict[str, delta.StagedWrite]:
        """The bronze tables staged so far, by bare name."""
        return {table.partition("/")[2]: staged for table, staged in self.frame.staged.items()}

    @property
    def stats_dir(self) -> str:
        return f"{self.sink.staging_dir}/_stats"

    def uri(self, table: str) -> str:
        return delta.table_path(self.config.paths.warehouse, "bronze", table)

    def ranges(self, query: RangeQuery, table: str, key: str = "rowid") -> tuple[tuple[int, int, int], ...]:
        return tuple(plan_ranges_with_rows(query.db_path, table, key, self.config.ingest.rows_per_task))

    def to_bronze(self, query: RangeQuery, table: str, key: str = "rowid",
                  resolver: LinkResolver | None = None) -> Landing:
        """Rows that go into bronze ``query.name`` as the tasks write them (pyarrow, zstd)."""
        schema = resolver.output_schema(query.arrow_schema()) if resolver else query.arrow_schema()
        return Landing(query, self.ranges(query, table, key), self.bronze_staging(query.name, schema), resolver)

    def musicbrainz(self, dump: mbdump.MbDump) -> list[RangeSource]:
        """Every MusicBrainz table, landed straight into bronze by the tasks."""
        return [musicbrainz.landing(dump, table, self.bronze_staging(table, musicbrainz.arrow_schema(table)))
                for table in transforms.MB_TABLES]

    def bronze_staging(self, table: str, schema: pa.Schema) -> str:
        """Plan the write of bronze ``table`` from the schema its tasks write; the folder they write to."""
        from pyspark.sql.pandas.types import from_arrow_schema

        uri, write_id = self.uri(table), delta.new_write_id()
        _check_contract(from_arrow_schema(schema), table)
        self.pending[table] = (delta.plan_write(uri, from_arrow_schema(schema), "overwrite"), write_id)
        return delta.staging_path(uri, write_id)

    def to_landing(self, query: RangeQuery, table: str, key: str = "rowid") -> Landing:
        """Rows that Spark transforms before they become bronze (``landed`` reads them)."""
        return Landing(query, self.ranges(query, table, key), self.landing_folder(query))

    def landing_folder(self, query: RangeQuery) -> str:
        return f"{self.landing_dir}/{query.name}"

    def land(self, *landings: RangeSource) -> None:
        """One Spark job for all ``landings``; bronze ones are staged right after."""
        started = time.perf_counter()
        for landing in landings:
            self.read_stats.setdefault(landing.name, RangeStats())
        written = land_ranges(self.spark, landings, self.sink, self.stats_dir)
        log.info("landed %s in %.1f s", ", ".join(f"{name} ({rows:,} rows)" for name, rows in written.items()),
                 time.perf_counter() - started)
        for landing in landings:
            if landing.name in self.pending:
                plan, write_id = self.pending.pop(landing.name)
                self.frame.add_staged(f"bronze/{landing.name}", delta.stage_files(plan, write_id))

    def landed(self, query: RangeQuery) -> DataFrame:
        schema = query.spark_schema()
        files = ParquetFiles.landed(self.landing_folder(query))
        if not files.files:
            return self.spark.createDataFrame([], schema)
        return self.spark.read.schema(schema).parquet(files.folder)

    def stage(self, table: str, frame: DataFrame) -> delta.StagedWrite:
        return self.frame.write(f"bronze/{table}", frame)

    def staged_frame(self, table: str, *columns: str) -> DataFrame:
        return self.frame.read_staged(f"bronze/{table}").select(*columns)

    def observe(self, name: str, frame: DataFrame, *metrics: Any) -> DataFrame:
        observation = Observation(name)
        self.observed[name] = observation
        return frame.observe(observation, *metrics)

    def discard(self) -> None:
        """After a failure: no half-landed file stays behind (the frame aborts what was staged)."""
        for plan, write_id in self.pending.values():
            delta.drop_staging(plan.uri, write_id)
        shutil.rmtree(self.sink.staging_dir, ignore_errors=True)


def _check_contract(schema: StructType, table: str) -> None:
    """Tables landed straight into bronze skip ``conform``: their rows must already list the contract first."""
    wanted = contract("bronze", table)
    head = [(f.name, f.dataType) for f in schema.fields[: len(wanted.fields)]]
    if head != [(f.name, f.dataType) for f in wanted.fields]:
        raise JobError(f"rows for bronze/{table} do not start with the contract columns {wanted.fieldNames()}")


# ----------------------------------------------------------------------------------------------
# Layouts


def ingest_real(run: IngestRun, files: dict[str, Path], more: Sequence[RangeSource] = ()) -> None:
    """``more``: other landings (MusicBrainz) that share the first Spark job."""
    q = sources.real_queries(files)
    link_free = (run.to_bronze(q.albums, "albums"), run.to_bronze(q.audio_features, "track_audio_features"),
                 run.to_bronze(q.playlists, "playlists"))
    links = (run.to_landing(q.artist_genres, "artist_genres"), run.to_landing(q.track_artists, "track_artists"))
    # Tracks and playlist rows resolve their links while they are read when every worker can hold the
    # catalog (its size estimated from the planned ranges); otherwise they land and Spark joins them.
    planned_tracks = sum(rows for _, _, rows in run.ranges(q.tracks, "tracks"))
    memory = lookup_memory(run.spark, planned_tracks, run.config.ingest.in_task_lookup_max_tracks,
                           run.config.ingest.worker_memory_mb)
    run.frame.metrics["link_resolution"] = {"path": "in_task" if memory.fits else "spark_joins", **memory.to_dict()}
    if not memory.fits:
        run.land(*link_free, *links, *more, run.to_landing(q.artists, "artists"), run.to_landing(q.tracks, "tracks"),
                 run.to_landing(q.playlist_tracks, "playlist_tracks", "playlist_rowid"))
        stage_artists(run, q)
        stage_tracks_by_join(run, q)
        stage_playlist_tracks_by_join(run, q)
        return
    # Artists get their genres while read (each worker reads the genre rows itself), in the first job.
    run.land(*link_free, *links, *more, run.to_bronze(q.artists, "artists", resolver=ArtistGenres(q.artist_genres)))
    # The staged artists are exactly the ingested ones: rows that fail the checks were quarantined while read.
    artists = ParquetFiles.staged(run.staged["spotify_artists"])
    track_links = ParquetFiles.landed(run.landing_folder(q.track_artists))
    run.land(run.to_bronze(q.tracks, "tracks", resolver=TrackAssembly(
        ParquetFiles.staged(run.staged["spotify_albums"]), artists, track_links)))
    tracks = ParquetFiles.staged(run.staged["spotify_tracks"])

    def orphans() -> dict[str, int]:
        ingested = tracks.read(ID_PAIRS["track"]).column("track_rowid").to_numpy()
        return ArtistLinks.load(track_links, artists).orphans(ingested)

    # The driver counts the orphaned links (seconds of numpy on a large catalog) while the cores read.
    with ThreadPoolExecutor(max_workers=1) as pool:
        counted = pool.submit(orphans)
        run.land(run.to_bronze(q.playlist_tracks, "playlist_tracks", "playlist_rowid", resolver=TrackIdLookup(tracks)))
        run.noted["spotify_tracks"] = counted.result()


def stage_artists(run: IngestRun, q: sources.RealQueries) -> None:
    run.stage("spotify_artists", transforms.attach_genres(run.landed(q.artists), run.landed(q.artist_genres)))


def stage_tracks_by_join(run: IngestRun, q: sources.RealQueries) -> None:
    """For catalogs whose lookups do not fit a worker (``lookup_memory``): Spark joins on the landed rows."""
    links = transforms.artist_lists(
        run.landed(q.track_artists), run.staged_frame("spotify_artists", "artist_rowid", "artist_id")
    )
    tracks = transforms.resolve_tracks(
        run.landed(q.tracks), run.staged_frame("spotify_albums", "album_rowid", "album_id"), links
    )
    tracks = run.observe(
        "spotify_tracks", tracks,
        F.sum("unresolved_artists").alias(transforms.ARTISTS_UNRESOLVED),
        F.sum("orphan_links").alias(transforms.LINKS_ORPHANED),
        F.count_if(F.col("album_rowid").isNotNull() & F.col("album_id").isNull()).alias(transforms.ALBUM_UNRESOLVED),
    )
    tracks = tracks.where(F.col("track_id").isNotNull())
    run.stage("spotify_tracks", tracks.drop("unresolved_artists", "orphan_links", "album_rowid"))


def stage_playlist_tracks_by_join(run: IngestRun, q: sources.RealQueries) -> None:
    """For catalogs whose lookups do not fit a worker: a Spark join on the landed rows."""
    rows = transforms.resolve_playlist_tracks(
        run.landed(q.playlist_tracks), run.staged_frame("spotify_tracks", "track_rowid", "track_id")
    )
    rows = split_rejects(rows, "spotify_playlist_tracks", run.sink, q.playlist_tracks.db_path,
                         ("playlist_rowid", "position"))
    rows = run.observe("spotify_playlist_tracks", rows,
                       F.count_if(~F.col("in_catalog")).alias(transforms.ONLY_AS_TRACK_REF))
    run.stage("spotify_playlist_tracks", rows)


def ingest_spec(run: IngestRun, files: dict[str, Path], more: Sequence[RangeSource] = ()) -> None:
    q = sources.spec_queries(files)
    run.land(
        *more,
        run.to_bronze(q.albums, "albums"),
        run.to_landing(q.artists, "artists"),
        run.to_landing(q.tracks, "tracks"),
        run.to_bronze(q.audio_features, "audio_features"),
        run.to_bronze(q.playlists, "playlists"),
        run.to_landing(q.playlist_tracks, "playlist_tracks"),
    )
    artists = split_rejects(transforms.spec_artists(run.landed(q.artists)), "spotify_artists",
                            run.sink, q.artists.db_path, ("artist_id",))
    run.stage("spotify_artists", artists)
    tracks = split_rejects(transforms.spec_tracks(run.landed(q.tracks)), "spotify_tracks",
                           run.sink, q.tracks.db_path, ("track_id",))
    run.stage("spotify_tracks", tracks)
    run.stage("spotify_playlist_tracks", transforms.spec_playlist_tracks(run.landed(q.playlist_tracks)))


# ----------------------------------------------------------------------------------------------
# The job

# Counts the readers note about kept rows, and which of them are links that did not make it.
LINKS_LEFT_OUT = (transforms.LINKS_ORPHANED, transforms.ARTISTS_UNRESOLVED, transforms.ALBUM_UNRESOLVED)
OUTPUTS = (*(f"bronze/{table}" for table in BRONZE), f"bronze/{REJECTS_TABLE}")


def build(frame: Run) -> None:
    config = frame.config
    with frame.timed("preflight"):
        files = prepare_spotify(config)
        dump = mbdump.locate(Path(config.paths.musicbrainz), Path(config.paths.work) / "unpacked")
    log.info("inputs checked (%s layout; mbdump isrc layout %s)", config.paths.spotify_layout, dump.isrc_layout)
    frame.metrics["inputs"] = {"spotify_layout": config.paths.spotify_layout, "mbdump_isrc_layout": dump.isrc_layout,
                               "files": {key: str(path) for key, path in files.items()}}

    landing_dir = str(Path(config.paths.work).resolve() / "ingest-landing" / frame.run_id[:12])
    run = IngestRun(frame, RejectSink.new(config.paths.warehouse, frame.run_id[:12]), landing_dir)
    try:
        spotify = ingest_real if config.paths.spotify_layout == "real" else ingest_spec
        with frame.timed("land_and_stage"):
            spotify(run, files, run.musicbrainz(dump))
        for name in run.read_stats:
            run.read_stats[name] = collect_stats(run.stats_dir, name)
        with frame.timed("quarantine"):
            rejects = frame.add_staged(f"bronze/{REJECTS_TABLE}",
                                       run.sink.stage(run.spark, sorted({*run.staged, *run.read_stats})))
            rejected = counts_by_reason(rejects)
    except BaseException:
        run.discard()
        raise
    finally:
        shutil.rmtree(landing_dir, ignore_errors=True)
    _summarize(run, rejected)


def _summarize(run: IngestRun, rejected: dict[str, dict[str, int]]) -> None:
    """Per table: rows read, kept, left out by reason (excluded by design, rejected, unresolved links) and
    noted counts of kept rows; left-out rows also go to the frame's ``left_out``."""
    frame = run.frame
    tables: dict[str, Any] = {}
    for name in sorted({*run.staged, *run.read_stats}):
        stats = run.read_stats.get(name)
        entry: dict[str, Any] = {}
        if name in run.staged:
            entry["rows"] = run.staged[name].rows
        if stats is not None:
            entry["rows_read"] = stats.read
            if stats.read_exactly:
                entry["rows_read_by_exact_sql"] = stats.read_exactly  # windows the plain read could not type
            if stats.excluded:
                entry["excluded"] = stats.excluded
                for reason, rows in stats.excluded.items():
                    frame.left_out(f"bronze/{name}", f"excluded: {reason}", rows)
        if rejected.get(name):
            entry["rejected"] = rejected[name]
            for reason, rows in rejected[name].items():
                frame.left_out(f"bronze/{name}", f"rejected: {reason}", rows)
        noted: dict[str, int] = {}
        for counts in (stats.noted if stats else {}, run.noted.get(name, {}),
                       observed_counts(run.observed[name]) if name in run.observed else {}):
            for what, count in counts.items():
                noted[what] = noted.get(what, 0) + count
        if any(noted.values()):
            entry["noted"] = {k: v for k, v in noted.items() if v}
            for what in LINKS_LEFT_OUT:
                frame.left_out(f"bronze/{name}", what, noted.get(what, 0))
        if entry.get("rows") == 0:
            frame.note(f"bronze/{name} is empty (its source table has no rows)")
        tables[name] = entry
    frame.metrics["tables"] = tables
    frame.metrics["rows_total"] = sum(s.rows for s in run.staged.values())


def source_files(config: Config) -> dict[str, str]:
    """Fingerprints of every file ingest reads (lib/fingerprint.py): the pipeline's skip compares them."""
    folder, mb = Path(config.paths.spotify), Path(config.paths.musicbrainz)
    names = sources.REAL_FILES if config.paths.spotify_layout == "real" else sources.SPEC_FILES
    candidates = [folder / n for n in names.values()] + [folder / f"{n}.zst" for n in names.values()]
    candidates += [d / t for d in (mb / "mbdump", mb) for t in (*mbdump.TABLES, *mbdump.META_FILES)]
    candidates += [d / f"{t}_sanitised" for d in (mb / "mbdump", mb) for t in mbdump.TABLES]
    candidates += sorted(mb.glob("mbdump*.tar.bz2")) if mb.is_dir() else []
    return fingerprints(candidates, Path(config.paths.work) / "fingerprints.json")


JOB = JobSpec(name="ingest", body=build, outputs=OUTPUTS, config_sections=("ingest",), sources=source_files)


def run(spark: SparkSession, config: Config) -> dict[str, Any]:
    """Notebook and test entry point: the job through the frame; returns the summary."""
    from lib.job import execute

    return execute(JOB, spark, config)
