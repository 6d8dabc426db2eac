"""xref: every bronze Spotify track → its MusicBrainz recording (``gold/spotify_mbid_xref``).

Reads bronze ``spotify_tracks``, ``spotify_artists``, ``mb_isrc``, ``mb_recording``, ``mb_artist_credit`` and
``mb_artist_credit_name``; the tiers and the confidence model are described in ``transforms``. The summary
reports match counts and rates per tier, ambiguity (MB ISRCs naming several recordings, tracks with several
candidates) and the blocks the metadata tier skipped.
"""

from __future__ import annotations

import time
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from jobs.xref import transforms
from lib import delta
from lib.config import Config
from lib.log import get_logger
from lib.schemas import conform
from lib.spark import observed_counts

log = get_logger("xref")

OUTPUT = "spotify_mbid_xref"
INPUTS: dict[str, tuple[str, ...]] = {
    "spotify_tracks": ("track_id", "name", "artist_ids", "isrc", "duration_ms"),
    "spotify_artists": ("artist_id", "name"),
    "mb_isrc": ("isrc", "recording_id"),
    "mb_recording": ("recording_id", "mbid", "name", "artist_credit_id", "length_ms", "video"),
    "mb_artist_credit": ("artist_credit_id", "name"),
    "mb_artist_credit_name": ("artist_credit_id", "position", "name"),
}


def read_inputs(spark: SparkSession, config: Config) -> dict[str, DataFrame]:
    """The bronze tables, checked for existence and the columns this job reads."""
    return {
        table: delta.read_input(spark, delta.table_path(config.paths.warehouse, "bronze", table), columns)
        for table, columns in INPUTS.items()
    }


def build(frames: dict[str, DataFrame], settings: transforms.MatchSettings,
          observations: dict[str, Observation] | None = None, persisted: list[DataFrame] | None = None
          ) -> DataFrame:
    """The gold table's rows (contract columns first) from the bronze frames. With ``persisted`` (a list the
    caller unpersists when done), the prepared MB recordings are kept after first use: the ISRC tier and
    both metadata passes read them, and their keys would otherwise be computed three times."""
    tracks = transforms.prepare_tracks(frames["spotify_tracks"], frames["spotify_artists"])
    recordings = transforms.prepare_recordings(
        frames["mb_recording"], frames["mb_artist_credit"], frames["mb_artist_credit_name"])
    if persisted is not None:
        recordings = recordings.persist(StorageLevel.MEMORY_AND_DISK)
        persisted.append(recordings)
    codes = transforms.isrc_codes(frames["mb_isrc"])
    return conform(transforms.cross_reference(tracks, codes, recordings, settings, observations), "gold", OUTPUT)


def run(spark: SparkSession, config: Config) -> dict[str, Any]:
    started = time.perf_counter()
    settings = transforms.MatchSettings.from_config(config.xref)
    frames = read_inputs(spark, config)
    observations = {"exact_blocks": Observation("xref_exact_blocks")}
    if settings.fuzzy_titles:
        observations["fuzzy_blocks"] = Observation("xref_fuzzy_blocks")
    uri = delta.table_path(config.paths.warehouse, "gold", OUTPUT)
    persisted: list[DataFrame] = []
    try:
        version = delta.write(build(frames, settings, observations, persisted), uri, mode="overwrite")
    finally:
        for frame in persisted:
            frame.unpersist()
    written = time.perf_counter() - started
    log.info("wrote gold/%s version %d in %.1f s", OUTPUT, version, written)
    summary = summarize(delta.read(spark, uri), transforms.isrc_codes(frames["mb_isrc"]))
    summary["blocks"] = {
        name: observed_counts(obs) for name, obs in observations.items()
    }
    summary.update({"version": version, "seconds": round(time.perf_counter() - started, 1),
                    "seconds_write": round(written, 1), "settings": settings.__dict__})
    return summary


def summarize(xref: DataFrame, codes: DataFrame) -> dict[str, Any]:
    """Counts and rates per tier, ISRC quality, ambiguity and no-match reasons, from the written table."""
    method = F.col("match_method")
    reasons = (transforms.REASON_NO_CANDIDATE, transforms.REASON_BELOW_THRESHOLD, transforms.REASON_BLOCK_TOO_LARGE,
               transforms.REASON_NO_TEXT_KEY)
    isrc_tier = method.isin(transforms.ISRC_EXACT, transforms.ISRC_FUZZY)
    row = xref.agg(
        F.count(F.lit(1)).alias("rows"),
        *(F.count_if(method == m).alias(m) for m in transforms.METHODS),
        F.count_if(F.col("isrc").isNull()).alias("isrc_missing"),
        F.count_if(F.col("isrc").isNotNull() & F.col("isrc_normalized").isNull()).alias("isrc_invalid"),
        F.count_if(isrc_tier & (F.col("candidate_count") > 1)).alias("isrc_tracks_with_several_recordings"),
        F.count_if((method == transforms.METADATA_MATCH) & (F.col("candidate_count") > 1)).alias(
            "metadata_tracks_with_several_candidates"),
        *(F.count_if(F.col("no_match_reason") == r).alias(f"reason_{r}") for r in reasons),
    ).first()
    assert row is not None
    rows = int(row["rows"])
    counts = {m: int(row[m]) for m in transforms.METHODS}
    considered = rows - counts[transforms.ISRC_EXACT] - counts[transforms.ISRC_FUZZY]
    shared = codes.groupBy("isrc_normalized").count().where(F.col("count") > 1).count()
    return {
        "rows": rows,
        "matches": counts,
        "match_rates": {m: round(c / rows, 6) if rows else 0.0 for m, c in counts.items()},
        "isrc": {
            "tracks_without_isrc": int(row["isrc_missing"]),
            "tracks_with_invalid_isrc": int(row["isrc_invalid"]),
            "mb_isrcs_naming_several_recordings": int(shared),
            "tracks_matched_to_one_of_several_recordings": int(row["isrc_tracks_with_several_recordings"]),
        },
        "metadata": {
            "tracks_considered": considered,
            "matched": counts[transforms.METADATA_MATCH],
            "match_rate_of_considered": round(counts[transforms.METADATA_MATCH] / considered, 6) if considered else 0.0,
            "tracks_with_several_candidates": int(row["metadata_tracks_with_several_candidates"]),
        },
        "no_match_reasons": {r: int(row[f"reason_{r}"]) for r in reasons},
    }
