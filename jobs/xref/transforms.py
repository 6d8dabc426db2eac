"""Pure DataFrame → DataFrame steps of the cross-reference (Spotify track → MusicBrainz recording).

Tiers, in order; a track takes the first that matches (issue "Cross-reference", spec "Cross-Reference
Strategy"):

1. ``isrc_exact`` (confidence 1.0): the track's ISRC, as written, is an MB ISRC.
2. ``isrc_fuzzy`` (0.9): equal after ``text.isrc_normalized`` (trim, upper-case, separators dropped; the
   result must be a valid ISRC — invalid codes never match here).
   Both ISRC tiers are one equi-join on the normalised code. When one code names several recordings the
   choice is deterministic: closest duration, then title similarity, then lowest recording id;
   ``candidate_count`` says how many there were.
3. ``metadata_match`` (confidence in [min_confidence, 0.995]): only for tracks the ISRC tiers left. Primary
   artist + title + duration, never a cross join:

   - pass A blocks on (artist key, title key) equality — the ListenBrainz combined key, split in two;
   - pass B (``xref.fuzzy_titles``), for tracks pass A left, blocks on (artist key, digits of the title,
     duration bucket) and compares titles by Levenshtein similarity, so typos and small spelling
     differences match while "Part 1"/"Part 2" or "No. 5"/"No. 6" cannot.

   MB artists are compared twice: the full artist-credit name ("A feat. B") and the first credited artist
   ("A", the ListenBrainz "detuned" key, which scores lower). A block holding more than
   ``xref.max_block_size`` MB recordings ("Intro" by "Various Artists") is not expanded: its tracks get
   ``no_match_reason = 'block_too_large'`` and the block is counted, so no key can blow up the join.

Confidence of a metadata candidate (monotone in every factor; the best possible value is 0.995 < 1)::

    confidence = 0.995 × title_similarity² × artist_similarity × duration_factor

- ``title_similarity`` = 1 − Levenshtein(title keys) / longer key length, × 0.98 when the titles as written
  differ and feat./release noise had to be stripped from either ("Song - 2011 Remaster" vs "Song");
- ``artist_similarity`` = max(sim(artist key, credit key), 0.97 × sim(artist key, first-artist key));
- ``duration_factor`` = 1 within ``duration_tolerance_s``, falling linearly to 0.90 at
  ``max_duration_gap_s``; beyond that the candidate is rejected; ``unknown_duration_factor`` when either
  duration is unknown.

A candidate counts when its confidence reaches ``min_confidence`` (0.85 by the issue). The best candidate
wins (confidence, then duration gap, title similarity, lowest recording id).

Output (``gold/spotify_mbid_xref``), one row per bronze track: the contract columns ``spotify_id, isrc`` (as
written), ``mbid`` (recording.gid; NULL for no_match), ``match_confidence`` (0 for no_match),
``match_method``; then ``recording_id``, ``isrc_normalized`` (NULL when missing or invalid),
``candidate_count`` (recordings of the matching ISRC tier / valid metadata candidates; 0 for no_match),
``title_similarity``, ``artist_similarity``, ``duration_gap_ms`` (of the chosen recording; NULL for
no_match) and ``no_match_reason`` (NULL when matched).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame, Observation, Window
from pyspark.sql import functions as F

from jobs.xref import text

# Spec / issue constants.
ISRC_EXACT, ISRC_FUZZY, METADATA_MATCH, NO_MATCH = "isrc_exact", "isrc_fuzzy", "metadata_match", "no_match"
METHODS = (ISRC_EXACT, ISRC_FUZZY, METADATA_MATCH, NO_MATCH)
ISRC_EXACT_CONFIDENCE = 1.0
ISRC_FUZZY_CONFIDENCE = 0.9
# The metadata tier's confidence scale (issue: metadata confidences lie in [0.85, 1)).
METADATA_MAX_CONFIDENCE = 0.995
# ListenBrainz: a match found only on the "detuned" artist (feat. parts removed) is of lower quality.
DETUNED_ARTIST_FACTOR = 0.97
# Titles equal only after feat./release-noise stripping ("Song - 2011 Remaster" vs "Song").
CLEANED_TITLE_FACTOR = 0.98
# duration_factor at max_duration_gap_s (linear from 1.0 at duration_tolerance_s).
DURATION_FACTOR_AT_MAX_GAP = 0.90

# Why a track has no match (column no_match_reason).
REASON_NO_CANDIDATE = "no_candidate"  # no MB recording shares its ISRC or its artist + title
REASON_BELOW_THRESHOLD = "below_threshold"  # same artist + title exists, but confidence < min_confidence
REASON_BLOCK_TOO_LARGE = "block_too_large"  # its artist + title block exceeds max_block_size
REASON_NO_TEXT_KEY = "no_artist_or_title"  # no primary artist name or no title to block on

@dataclass(frozen=True)
class MatchSettings:
    duration_tolerance_ms: int = 3_000
    max_duration_gap_ms: int = 10_000
    unknown_duration_factor: float = 0.93
    min_confidence: float = 0.85
    max_block_size: int = 250
    fuzzy_titles: bool = True

    @classmethod
    def from_config(cls, section: Any) -> MatchSettings:
        """From config section ``xref`` (its relations are checked in lib/config.py, before Spark starts)."""
        return cls(
            duration_tolerance_ms=round(section.duration_tolerance_s * 1000),
            max_duration_gap_ms=round(section.max_duration_gap_s * 1000),
            unknown_duration_factor=float(section.unknown_duration_factor),
            min_confidence=float(section.min_confidence),
            max_block_size=int(section.max_block_size),
            fuzzy_titles=bool(section.fuzzy_titles),
        )


# ----------------------------------------------------------------------------------------------
# Inputs


def prepare_tracks(tracks: DataFrame, artists: DataFrame) -> DataFrame:
    """One row per bronze track with its matching keys: the ISRC as written and normalised, the title
    keys, and the primary artist's (first of ``artist_ids``) name key."""
    # One name per artist id, so the join cannot multiply tracks even if an id were listed twice.
    names = artists.groupBy("artist_id").agg(F.min("name").alias("artist_name"))
    folded = (
        tracks.select(
            F.col("track_id").alias("spotify_id"), "isrc", "name", "duration_ms",
            F.get(F.col("artist_ids"), 0).alias("artist_id"),
        )
        .join(names, on="artist_id", how="left")
        .select("spotify_id", "isrc", "duration_ms", text.fold(F.col("name")).alias("_title"),
                text.fold(F.col("artist_name")).alias("_artist"))
    )
    title_key, title_plain = text.title_keys(F.col("_title"))
    return folded.select(
        "spotify_id", "isrc", text.isrc_normalized(F.col("isrc")).alias("isrc_normalized"),
        F.col("duration_ms").cast("long").alias("duration_ms"),
        title_key.alias("title_key"), title_plain.alias("title_plain"),
        text.artist_key(F.col("_artist")).alias("artist_key"),
    )


def prepare_recordings(recording: DataFrame, artist_credit: DataFrame, artist_credit_name: DataFrame) -> DataFrame:
    """MB recordings with title keys and both artist keys: the full credit name and the first credited
    artist (position 0)."""
    credit = artist_credit.select("artist_credit_id", F.col("name").alias("credit_name"))
    first = artist_credit_name.where(F.col("position") == 0).select(
        "artist_credit_id", F.col("name").alias("first_artist_name"))
    folded = (
        recording.join(credit, on="artist_credit_id", how="left")
        .join(first, on="artist_credit_id", how="left")
        .select(
            "recording_id", "mbid", "length_ms", F.coalesce(F.col("video"), F.lit(False)).alias("video"),
            text.fold(F.col("name")).alias("_title"), text.fold(F.col("credit_name")).alias("_credit"),
            text.fold(F.col("first_artist_name")).alias("_first"),
        )
    )
    title_key, title_plain = text.title_keys(F.col("_title"))
    return folded.select(
        "recording_id", "mbid", "length_ms", "video", title_key.alias("title_key"), title_plain.alias("title_plain"),
        text.artist_key(F.col("_credit")).alias("credit_key"), text.artist_key(F.col("_first")).alias("first_key"),
    )


def isrc_codes(mb_isrc: DataFrame) -> DataFrame:
    """(isrc_normalized, recording_id, mb_isrcs): one row per valid normalised code and recording, with the
    code(s) as MB writes them (for the exact tier)."""
    return (
        mb_isrc.select(text.isrc_normalized(F.col("isrc")).alias("isrc_normalized"), "recording_id", "isrc")
        .where(F.col("isrc_normalized").isNotNull() & F.col("recording_id").isNotNull())
        .groupBy("isrc_normalized", "recording_id")
        .agg(F.collect_set("isrc").alias("mb_isrcs"))
    )


# ----------------------------------------------------------------------------------------------
# Scores (track columns against ``cand_*`` candidate columns)


def artist_similarity(artist_key: Column, credit_key: Column, first_key: Column) -> Column:
    return F.greatest(
        F.coalesce(text.similarity(artist_key, credit_key), F.lit(0.0)),
        F.coalesce(text.similarity(artist_key, first_key) * DETUNED_ARTIST_FACTOR, F.lit(0.0)),
    )


def title_similarity(title_key: Column, title_plain: Column, mb_title_key: Column, mb_title_plain: Column
                     ) -> Column:
    """Levenshtein similarity of the title keys, × CLEANED_TITLE_FACTOR when the titles differ as written
    (plain keys) and stripping feat./release noise changed either of them."""
    stripped = (title_key != title_plain) | (mb_title_key != mb_title_plain)
    cleaned = F.coalesce((title_plain != mb_title_plain) & stripped, F.lit(False))
    return (F.coalesce(text.similarity(title_key, mb_title_key), F.lit(0.0))
            * F.when(cleaned, F.lit(CLEANED_TITLE_FACTOR)).otherwise(F.lit(1.0)))


def duration_factor(gap_ms: Column, settings: MatchSettings) -> Column:
    """1 within the tolerance, linear down to DURATION_FACTOR_AT_MAX_GAP at the maximum gap, 0 beyond;
    ``unknown_duration_factor`` when the gap is unknown."""
    span = max(settings.max_duration_gap_ms - settings.duration_tolerance_ms, 1)
    slope = (1.0 - DURATION_FACTOR_AT_MAX_GAP) / span
    return (
        F.when(gap_ms.isNull(), F.lit(settings.unknown_duration_factor))
        .when(gap_ms <= settings.duration_tolerance_ms, F.lit(1.0))
        .when(gap_ms <= settings.max_duration_gap_ms, 1.0 - (gap_ms - settings.duration_tolerance_ms) * slope)
        .otherwise(F.lit(0.0))
    )


def _with_scores(pairs: DataFrame) -> DataFrame:
    """``_title_sim``, ``_artist_sim`` and ``_gap`` of each (track, candidate) pair."""
    return pairs.select(
        "*",
        title_similarity(F.col("title_key"), F.col("title_plain"), F.col("cand_title_key"),
                         F.col("cand_title_plain")).alias("_title_sim"),
        artist_similarity(F.col("artist_key"), F.col("cand_credit_key"), F.col("cand_first_key")).alias("_artist_sim"),
        F.abs(F.col("duration_ms") - F.col("cand_length_ms")).alias("_gap"),
    )


def metadata_confidence(settings: MatchSettings) -> Column:
    """Title similarity enters squared: one letter in a short title ("Close to You" / "Closer to You",
    0.909² = 0.83) is a different song, a typo in a long one (0.97² = 0.94) is not."""
    return (METADATA_MAX_CONFIDENCE * F.col("_title_sim") * F.col("_title_sim") * F.col("_artist_sim")
            * duration_factor(F.col("_gap"), settings))


# ----------------------------------------------------------------------------------------------
# The matching state: one row per track, carried through the tiers

TRACK_COLUMNS = ("spotify_id", "isrc", "isrc_normalized", "duration_ms", "title_key", "title_plain", "artist_key")
RESULT_COLUMNS = ("recording_id", "mbid", "match_method", "match_confidence", "candidate_count",
                  "title_similarity", "artist_similarity", "duration_gap_ms", "no_match_reason")
CANDIDATE_COLUMNS = ("recording_id", "mbid", "length_ms", "title_key", "title_plain", "credit_key", "first_key")
# Join keys of rows that must not find candidates: unique per track (so they spread evenly over the
# shuffle instead of piling up like NULL keys would) and unlike any real key (keys hold no control codes).
NO_KEY_PREFIX = "\u0001"


def initial_state(tracks: DataFrame) -> DataFrame:
    """Prepared tracks with empty result columns; tracks without artist or title key are marked."""
    return tracks.select(
        *TRACK_COLUMNS,
        F.lit(None).cast("long").alias("recording_id"), F.lit(None).cast("string").alias("mbid"),
        F.lit(None).cast("string").alias("match_method"), F.lit(None).cast("double").alias("match_confidence"),
        F.lit(0).alias("candidate_count"), F.lit(None).cast("double").alias("title_similarity"),
        F.lit(None).cast("double").alias("artist_similarity"), F.lit(None).cast("long").alias("duration_gap_ms"),
        F.when(F.col("artist_key").isNull() | F.col("title_key").isNull(), F.lit(REASON_NO_TEXT_KEY))
        .otherwise(F.lit(REASON_NO_CANDIDATE)).alias("no_match_reason"),
    )


def candidates(recordings: DataFrame, *extra: Column | str) -> DataFrame:
    """Prepared recordings under ``cand_*`` names, so they sit next to the track columns."""
    return recordings.select(*(F.col(c).alias(f"cand_{c}") for c in CANDIDATE_COLUMNS), *extra)


def _no_key() -> Column:
    return F.concat(F.lit(NO_KEY_PREFIX), F.col("spotify_id"))


def _adopt(ranked: DataFrame, take: Column, method: Column, confidence: Column, count: Column, reason: Column
           ) -> DataFrame:
    """The state columns, with the candidate's values where ``take`` holds and ``reason`` as the new
    no_match_reason."""
    picked = {
        "recording_id": F.col("cand_recording_id"), "mbid": F.col("cand_mbid"), "match_method": method,
        "match_confidence": confidence, "candidate_count": count, "title_similarity": F.col("_title_sim"),
        "artist_similarity": F.col("_artist_sim"), "duration_gap_ms": F.col("_gap"),
    }
    return ranked.select(
        *TRACK_COLUMNS,
        *(F.when(take, value).otherwise(F.col(name)).alias(name) for name, value in picked.items()),
        F.when(take, F.lit(None).cast("string")).otherwise(reason).alias("no_match_reason"),
    )


# ----------------------------------------------------------------------------------------------
# ISRC tiers


def add_isrc_matches(state: DataFrame, codes: DataFrame, recordings: DataFrame) -> DataFrame:
    """ISRC tiers: the exact tier wins when it has any recording, else the normalised one. Among a tier's
    recordings: closest duration, then title similarity, then lowest recording id; ``candidate_count``
    recordings in the tier. Tracks without a valid normalised ISRC pass through unchanged."""
    mb = codes.join(recordings, on="recording_id", how="inner")
    mb = candidates(mb, F.col("isrc_normalized").alias("_isrc_key"), "mb_isrcs")
    probe = state.withColumn("_isrc_key", F.coalesce(F.col("isrc_normalized"), _no_key()))
    pairs = _with_scores(probe.join(mb, on="_isrc_key", how="left"))
    exact = F.coalesce(F.array_contains(F.col("mb_isrcs"), F.col("isrc")) & text.isrc_valid(F.col("isrc")),
                       F.lit(False))
    per_track = Window.partitionBy("_isrc_key", "spotify_id")
    pairs = pairs.withColumn("_exact", exact).withColumn("_tier_exact", F.max("_exact").over(per_track))
    ranked = pairs.where(F.col("_exact") == F.col("_tier_exact")).select(
        "*",
        F.count("cand_recording_id").over(per_track).cast("int").alias("_candidates"),
        F.row_number().over(per_track.orderBy(
            F.col("_gap").asc_nulls_last(), F.col("_title_sim").desc(), F.col("cand_recording_id").asc_nulls_last(),
        )).alias("_rank"),
    ).where(F.col("_rank") == 1)
    exact_match = F.col("_exact")
    return _adopt(
        ranked, take=F.col("cand_recording_id").isNotNull(),
        method=F.when(exact_match, F.lit(ISRC_EXACT)).otherwise(F.lit(ISRC_FUZZY)),
        confidence=F.when(exact_match, F.lit(ISRC_EXACT_CONFIDENCE)).otherwise(F.lit(ISRC_FUZZY_CONFIDENCE)),
        count=F.col("_candidates"), reason=F.col("no_match_reason"),
    )


# ----------------------------------------------------------------------------------------------
# Metadata tier


def blocking_rows(recordings: DataFrame) -> DataFrame:
    """Each non-video MB recording (as ``cand_*``) once per distinct artist key, ``block_artist``: its
    credit key, and its first credited artist's key when that differs ("A feat. B" → also "A")."""
    rows = candidates(recordings.where(~F.col("video") & F.col("title_key").isNotNull()))
    keys = F.array_distinct(F.filter(F.array(F.col("cand_credit_key"), F.col("cand_first_key")),
                                     lambda k: k.isNotNull()))
    return rows.select("*", F.explode(keys).alias("block_artist"))


def block_pairs(probe: DataFrame, mb_rows: DataFrame, keys: list[str], max_block_size: int,
                observation: Observation | None = None) -> DataFrame:
    """``probe`` LEFT JOIN MB rows on equal ``keys``. A block with more than ``max_block_size`` MB rows is
    replaced by one marker row (``_block_skipped``, no candidate), so every track's comparisons are bounded
    by the cap and the tracks of skipped blocks are known. ``observation`` receives ``skipped_blocks`` and
    ``skipped_recordings`` (MB rows in them)."""
    block = Window.partitionBy(*keys)
    sized = mb_rows.select(
        "*", F.count(F.lit(1)).over(block).alias("_block_rows"),
        F.row_number().over(block.orderBy("cand_recording_id")).alias("_block_row"),
    )
    skipped = F.col("_block_rows") > max_block_size
    candidate_columns = [c for c in mb_rows.columns if c not in keys]
    mb_side = sized.where(~skipped | (F.col("_block_row") == 1)).select(
        *keys,
        *(F.when(~skipped, F.col(c)).alias(c) for c in candidate_columns),
        skipped.alias("_block_skipped"), F.when(skipped, F.col("_block_rows")).alias("_skipped_rows"),
    )
    if observation is not None:
        mb_side = mb_side.observe(observation, F.count_if(F.col("_block_skipped")).alias("skipped_blocks"),
                                  F.coalesce(F.sum("_skipped_rows"), F.lit(0)).alias("skipped_recordings"))
    return probe.join(mb_side.drop("_skipped_rows"), on=keys, how="left")


def add_metadata_matches(state: DataFrame, mb_rows: DataFrame, keys: dict[str, Column], settings: MatchSettings,
                         observation: Observation | None = None, sets_reason: bool = True) -> DataFrame:
    """One blocking pass of the metadata tier. ``keys``: block column of ``mb_rows`` → the track's value.
    Tracks still unmatched with every key present probe their block; the others get a key no block has.
    A track adopts its best candidate when its confidence reaches ``min_confidence``. With ``sets_reason``
    an unmatched probing track's no_match_reason becomes what this pass saw (skipped block, candidates
    below threshold, none)."""
    names = list(keys)
    probing = F.col("match_method").isNull()
    for value in keys.values():
        probing = probing & value.isNotNull()
    probe = state.select(
        "*", probing.alias("_probing"),
        *(F.when(probing, value).otherwise(_no_key() if i == 0 else F.lit(None)).cast(mb_rows.schema[name].dataType)
          .alias(name) for i, (name, value) in enumerate(keys.items())),
    )
    pairs = _with_scores(block_pairs(probe, mb_rows, names, settings.max_block_size, observation))
    confidence = metadata_confidence(settings)
    valid = F.coalesce(confidence >= settings.min_confidence, F.lit(False))
    per_track = Window.partitionBy(*names, "spotify_id")
    ranked = pairs.select(
        "*", confidence.alias("_confidence"), valid.alias("_valid"),
        F.count(F.when(valid, 1)).over(per_track).cast("int").alias("_candidates"),
        F.count("cand_recording_id").over(per_track).alias("_seen"),
        F.max(F.coalesce(F.col("_block_skipped"), F.lit(False))).over(per_track).alias("_skipped"),
        F.row_number().over(per_track.orderBy(
            valid.desc(), confidence.desc_nulls_last(), F.col("_gap").asc_nulls_last(), F.col("_title_sim").desc(),
            F.col("cand_recording_id").asc_nulls_last(),
        )).alias("_rank"),
    ).where(F.col("_rank") == 1)
    reason = F.col("no_match_reason")
    if sets_reason:
        reason = (F.when(~F.col("_probing"), reason)
                  .when(F.col("_skipped"), F.lit(REASON_BLOCK_TOO_LARGE))
                  .when(F.col("_seen") > 0, F.lit(REASON_BELOW_THRESHOLD))
                  .otherwise(F.lit(REASON_NO_CANDIDATE)))
    return _adopt(ranked, take=F.col("_probing") & F.col("_valid"), method=F.lit(METADATA_MATCH),
                  confidence=F.col("_confidence"), count=F.col("_candidates"), reason=reason)


def exact_key_rows(mb_rows: DataFrame) -> DataFrame:
    """Pass A blocks: (artist key, title key)."""
    return mb_rows.withColumn("block_title", F.col("cand_title_key"))


def fuzzy_key_rows(mb_rows: DataFrame, bucket_ms: int) -> DataFrame:
    """Pass B blocks: (artist key, digits of the title, duration bucket). A recording with a known length
    appears in its own bucket and both neighbours: a track of duration d lies in bucket floor(d / bucket_ms),
    and |d − length| ≤ bucket_ms puts it within one bucket of the recording's."""
    own = F.floor(F.col("cand_length_ms") / bucket_ms)
    return mb_rows.where(F.col("cand_length_ms").isNotNull()).select(
        "*", text.digits(F.col("cand_title_key")).alias("block_digits"),
        F.explode(F.array(own - 1, own, own + 1)).alias("block_bucket"),
    )


# ----------------------------------------------------------------------------------------------
# The whole cross-reference


def cross_reference(tracks: DataFrame, codes: DataFrame, recordings: DataFrame, settings: MatchSettings,
                    observations: Mapping[str, Observation] | None = None) -> DataFrame:
    """Every track once, in one stream (no branches, so nothing is computed twice): ISRC tiers, then pass A
    and pass B of the metadata tier for the tracks still unmatched."""
    observations = observations or {}
    state = add_isrc_matches(initial_state(tracks), codes, recordings)
    mb_rows = blocking_rows(recordings)
    state = add_metadata_matches(
        state, exact_key_rows(mb_rows),
        {"block_artist": F.col("artist_key"), "block_title": F.col("title_key")},
        settings, observations.get("exact_blocks"))
    if settings.fuzzy_titles:
        bucket_ms = max(settings.max_duration_gap_ms, 1)
        state = add_metadata_matches(
            state, fuzzy_key_rows(mb_rows, bucket_ms),
            {"block_artist": F.col("artist_key"), "block_digits": text.digits(F.col("title_key")),
             "block_bucket": F.floor(F.col("duration_ms") / bucket_ms)},
            settings, observations.get("fuzzy_blocks"), sets_reason=False)
    return finalize(state)


def finalize(state: DataFrame) -> DataFrame:
    """The output columns: no_match rows get method no_match, confidence 0, no mbid, candidate_count 0."""
    matched = F.col("match_method").isNotNull()
    return state.select(
        "spotify_id", "isrc",
        F.when(matched, F.col("mbid")).alias("mbid"),
        F.when(matched, F.round(F.col("match_confidence"), 6)).otherwise(F.lit(0.0)).alias("match_confidence"),
        F.coalesce(F.col("match_method"), F.lit(NO_MATCH)).alias("match_method"),
        F.when(matched, F.col("recording_id")).alias("recording_id"),
        "isrc_normalized",
        F.when(matched, F.col("candidate_count")).otherwise(F.lit(0)).cast("int").alias("candidate_count"),
        F.round(F.when(matched, F.col("title_similarity")), 6).alias("title_similarity"),
        F.round(F.when(matched, F.col("artist_similarity")), 6).alias("artist_similarity"),
        F.when(matched, F.col("duration_gap_ms")).cast("long").alias("duration_gap_ms"),
        F.when(~matched, F.col("no_match_reason")).alias("no_match_reason"),
    )
