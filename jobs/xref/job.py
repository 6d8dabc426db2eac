"""xref: every bronze Spotify track → its MusicBrainz recording (``gold/spotify_mbid_xref``).

Reads bronze ``spotify_tracks``, ``spotify_artists``, ``mb_isrc``, ``mb_recording``, ``mb_artist_credit`` and
``mb_artist_credit_name``; the tiers and the confidence model are described in ``transforms``. The summary
reports match counts and rates per tier, ambiguity (MB ISRCs naming several recordings, tracks with several
candidates) and the blocks the metadata tier skipped.
"""

from __future__ import annotations

from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Observation
from pyspark.sql import functions as F

from jobs.xref import transforms
from lib.job import Input, JobSpec, Run
from lib.schemas import conform
from lib.spark import observed_counts

OUTPUT = "gold/spotify_mbid_xref"
INPUTS: dict[str, tuple[str, ...]] = {
    "spotify_tracks": ("track_id", "name", "artist_ids", "isrc", "duration_ms"),
    "spotify_artists": ("artist_id", "name"),
    "mb_isrc": ("isrc", "recording_id"),
    "mb_recording": ("recording_id", "mbid", "name", "artist_credit_id", "length_ms", "video"),
    "mb_artist_credit": ("artist_credit_id", "name"),
    "mb_artist_credit_name": ("artist_credit_id", "position", "name"),
}


def build_frame(frames: dict[str, DataFrame], settings: transforms.MatchSettings,
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
    return conform(transforms.cross_reference(tracks, codes, recordings, settings, observations), "gold",
                   "spotify_mbid_xref")


def build(run: Run) -> None:
    settings = transforms.MatchSettings.from_config(run.config.xref)
    run.metrics["settings"] = settings.__dict__
    if run.input_rows("bronze/spotify_tracks") == 0:
        run.note("bronze/spotify_tracks is empty: gold/spotify_mbid_xref is written empty")
        run.write_empty(OUTPUT)
        return
    frames = {table: run.input(f"bronze/{table}") for table in INPUTS}
    observations = {"exact_blocks": Observation("xref_exact_blocks")}
    if settings.fuzzy_titles:
        observations["fuzzy_blocks"] = Observation("xref_fuzzy_blocks")
    persisted: list[DataFrame] = []
    try:
        with run.timed("match"):
            run.write(OUTPUT, build_frame(frames, settings, observations, persisted))
    finally:
        for frame in persisted:
            frame.unpersist()
    with run.timed("summarize"):
        figures = summarize(run.read_staged(OUTPUT), transforms.isrc_codes(frames["mb_isrc"]))
    figures["blocks"] = {name: observed_counts(obs) for name, obs in observations.items()}
    run.metrics.update(figures)
    for reason, rows in figures["no_match_reasons"].items():
        run.left_out(OUTPUT, f"no match: {reason}", rows)


JOB = JobSpec(
    name="xref",
    body=build,
    inputs=tuple(Input(f"bronze/{table}", columns) for table, columns in INPUTS.items()),
    outputs=(OUTPUT,),
    config_sections=("xref",),
)


def run(spark: Any, config: Any) -> dict[str, Any]:
    """Notebook and test entry point: the job through the frame; returns the summary."""
    from lib.job import execute

    return execute(JOB, spark, config)


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
