"""The cross-reference on real MusicBrainz rows (tests/fixtures/musicbrainz, MB's webservice test data) and
hand-made Spotify tracks that point at them. Every expected value below was worked out by hand from the
fixture files and the confidence formula in jobs/xref/transforms.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import Observation
from pyspark.sql import functions as F

from jobs.ingest import transforms as ingest_transforms
from jobs.xref import job, transforms
from lib.config import ConfigError
from lib.sources import mbdump
from tests.support.contracts import contract_columns

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "musicbrainz" / "mbdump"

ARTISTS = {
    "aChem": "The Chemical Brothers", "aBoA": "BoA", "aMflo": "m-flo", "aWedlock": "Wedlock", "a7": "7人祭",
    "aBlind": "Blind Melon", "aPlone": "Plone", "aDistance": "Distance", "aAllgood": "Paul Allgood",
}
# (track id, title, artist ids, ISRC as written, duration ms)
TRACKS = [
    ("tShared", "Hey Boy Hey Girl", ["aChem"], "GBAAA9900303", 290_100),
    ("tExactJp", "サマーれげぇ!レインボー", ["a7"], "JPA600102450", 296_000),
    ("tLower", "Out of Control", ["aChem"], "gbaaa9900297", 441_000),
    ("tHyphen", "Asleep From Day", ["aChem"], "GB-AAA-99-00301", 287_000),
    ("tSpaced", "Flashback", ["aChem"], " gb aaa 99 00309 ", 318_946),
    ("tInvalid", "Let Forever Be", ["aChem"], "GBAAA990029", 235_500),
    ("tRemaster", "Dream On - 2011 Remaster", ["aChem"], None, 406_200),
    ("tCase", "HEY BOY, HEY GIRL", ["aChem"], None, 83_500),
    ("tFeatMb", "Some Day One Day", ["aBoA"], None, 273_500),
    ("tCredit", "The Love Bug", ["aMflo", "aBoA"], None, 242_000),
    ("tDecoyArtist", "Surrender", ["aWedlock"], None, 269_360),
    ("tDecoyDuration", "Out of Control", ["aChem"], None, 200_000),
    ("tGap", "Got Glint?", ["aChem"], None, 332_906),
    ("tTypo", "Nat Sherman and the Beauty of the Blde", ["aAllgood"], None, 1_071_500),
    ("tOneLetter", "Asseswavin", ["aWedlock"], None, 274_000),
    ("tDigits", "2 X 5", ["aBlind"], None, 240_400),
    ("tNoArtist", "Marbles", [], None, 229_826),
    ("tUnknownArtist", "Marbles", ["aNobody"], None, 229_826),
    ("tIsrcMiss", "Night Vision", ["aDistance"], "ZZZZZ9999999", 369_000),
    ("tNoDuration", "Plock", ["aPlone"], None, None),
    ("tNoLength", "Interview", ["aBoA"], None, 300_000),
    ("tVideo", "Commercial Films", ["aBoA"], None, 60_000),
]
VIDEO_RECORDING = 9538748  # "Commercial Films" by BoA, flagged as a video below
INTERPRETED = {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}
SHARED_ISRC_EXTRA = ("GBAAA9900303", 8106510)  # a second recording for this ISRC ("Hey Boy Hey Girl", 290000 ms)

BASE = transforms.METADATA_MAX_CONFIDENCE
# spotify_id → (method, mbid, confidence, candidate_count, title_similarity, artist_similarity, gap, reason)
EXPECTED = {
    # 8106510 is 100 ms away, 1062699 753 ms: the closer one wins; two recordings carry the code.
    "tShared": ("isrc_exact", "e2020511-784c-4013-8985-c263edb43b8b", 1.0, 2, 1.0, 1.0, 100, None),
    "tExactJp": ("isrc_exact", "162630d9-36d2-4a8d-ade1-1c77440b34e7", 1.0, 1, 1.0, 1.0, 26, None),
    "tLower": ("isrc_fuzzy", "fc336694-71c3-4963-b221-2c0687e26cfb", 0.9, 1, 1.0, 1.0, 66, None),
    "tHyphen": ("isrc_fuzzy", "1344425c-47ea-4d7b-a759-c7f5ec0fa191", 0.9, 1, 1.0, 1.0, 386, None),
    "tSpaced": ("isrc_fuzzy", "6ac6e0d3-e4ba-4cd0-8480-17771b66c3e7", 0.9, 1, 1.0, 1.0, 0, None),
    # Invalid ISRC → metadata: 2726275 (140 ms) and 8106517 (500 ms) both within 3 s; 11484261 is 99 s long.
    "tInvalid": ("metadata_match", "6abc5eed-68a4-4ea3-a092-374772b8f09d", BASE, 2, 1.0, 1.0, 140, None),
    # Remaster stripped: title similarity 0.98 (squared in the confidence); 8106512 (200 ms) beats 2726281.
    "tRemaster": ("metadata_match", "d79b0fda-7004-45fa-86ad-ef6f2ab2b3fc", BASE * 0.98**2, 2, 0.98, 1.0, 200, None),
    # Case and comma only: no cleaning factor; the two full-length "Hey Boy Hey Girl" are 207 s away.
    "tCase": ("metadata_match", "79052eed-d17d-4bd7-8f65-51adade0b8f4", BASE, 1, 1.0, 1.0, 500, None),
    # MB title "SOME DAY ONE DAY (feat. VERBAL (m-flo))": feat stripped → × 0.98.
    "tFeatMb": ("metadata_match", "0c0245df-34f0-416b-8c3f-f20f66e116d0", BASE * 0.98**2, 1, 0.98, 1.0, 500, None),
    # Credit "m-flo♥BoA" found through its first artist "m-flo": artist similarity 0.97.
    "tCredit": ("metadata_match", "0cf3008f-e246-428f-abc1-35f87d584d60", BASE * 0.97, 1, 1.0, 0.97, 226, None),
    "tDecoyArtist": ("no_match", None, 0.0, 0, None, None, None, "no_candidate"),
    "tDecoyDuration": ("no_match", None, 0.0, 0, None, None, None, "below_threshold"),
    # 6.0 s and 6.906 s: factors 1 − 0.1·3000/7000 and 1 − 0.1·3906/7000, both above 0.85.
    "tGap": ("metadata_match", "310a7db0-9a0f-4833-817f-ae4f6adc026e", BASE * (1 - 0.1 * 3000 / 7000), 2, 1.0, 1.0,
             6000, None),
    # Pass B: one edit in the 32-character key "natshermanandthebeautyoftheblade".
    "tTypo": ("metadata_match", "f7b7fcbc-d1af-4366-8a43-506e92c21ed6", BASE * (1 - 1 / 32) ** 2, 1, 1 - 1 / 32,
              1.0, 500, None),
    # Pass B: one edit in 11 characters, 0.909² · 0.995 = 0.82: a different song, not a typo.
    "tOneLetter": ("no_match", None, 0.0, 0, None, None, None, "no_candidate"),
    "tDigits": ("no_match", None, 0.0, 0, None, None, None, "no_candidate"),
    "tNoArtist": ("no_match", None, 0.0, 0, None, None, None, "no_artist_or_title"),
    "tUnknownArtist": ("no_match", None, 0.0, 0, None, None, None, "no_artist_or_title"),
    "tIsrcMiss": ("metadata_match", "c4ef59be-bfa1-4601-81f8-9a65e3d8c1c9", BASE, 1, 1.0, 1.0, 0, None),
    "tNoDuration": ("metadata_match", "6e89c516-b0b6-4735-a758-38e31855dcb6", BASE * 0.93, 1, 1.0, 1.0, None, None),
    "tNoLength": ("metadata_match", "b950c904-ebfc-4eec-af65-1913f78c51c9", BASE * 0.93, 1, 1.0, 1.0, None, None),
    "tVideo": ("no_match", None, 0.0, 0, None, None, None, "no_candidate"),
}


def mb_frames(spark, folder: Path, work: Path) -> dict:
    """Bronze mb_* frames from an mbdump folder, through the ingest code (reader + renaming)."""
    dump = mbdump.locate(folder, work)
    frames = {}
    for table, (dump_table, columns) in ingest_transforms.MB_TABLES.items():
        parsed = mbdump.read_table(spark, dump, dump_table, [(src, kind) for src, _, kind in columns])
        frames[table] = ingest_transforms.mb_rows(parsed, table).drop("_reject", "raw_line")
    return frames


def input_frames(spark, mb: dict) -> dict:
    frames = dict(mb)
    frames["mb_isrc"] = mb["mb_isrc"].unionByName(spark.createDataFrame([SHARED_ISRC_EXTRA], "isrc string, "
                                                                        "recording_id long"))
    frames["mb_recording"] = mb["mb_recording"].withColumn(
        "video", F.col("video") | (F.col("recording_id") == VIDEO_RECORDING))
    frames["spotify_tracks"] = spark.createDataFrame(
        TRACKS, "track_id string, name string, artist_ids array<string>, isrc string, duration_ms int")
    frames["spotify_artists"] = spark.createDataFrame(list(ARTISTS.items()), "artist_id string, name string")
    return frames


def run(frames: dict, **settings) -> tuple[dict, dict]:
    match_settings = transforms.MatchSettings(**settings)
    observations = {"exact_blocks": Observation("exact")}
    if match_settings.fuzzy_titles:
        observations["fuzzy_blocks"] = Observation("fuzzy")
    rows = job.build_frame(frames, match_settings, observations).collect()
    return {r.spotify_id: r for r in rows}, {k: o.get for k, o in observations.items()}


@pytest.fixture(scope="module", autouse=True)
def interpreted(spark):
    """Tiny frames: interpreted expressions beat compiling the long normalisation expressions per stage."""
    previous = {k: spark.conf.get(k, None) for k in INTERPRETED}
    for key, value in INTERPRETED.items():
        spark.conf.set(key, value)
    yield
    for key, value in previous.items():
        if value is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, value)


@pytest.fixture(scope="module")
def fixture_mb(spark, tmp_path_factory):
    return mb_frames(spark, FIXTURE, tmp_path_factory.mktemp("mbwork"))


@pytest.fixture(scope="module")
def result(spark, fixture_mb):
    frames = input_frames(spark, fixture_mb)
    rows, observed = run(frames)
    return frames, rows, observed


def test_one_row_per_track_with_the_contract_columns_first(result):
    _, rows, _ = result
    assert sorted(rows) == sorted(t[0] for t in TRACKS)
    contract = contract_columns("gold", "spotify_mbid_xref")
    assert list(next(iter(rows.values())).asDict())[: len(contract)] == contract


@pytest.mark.parametrize("spotify_id", sorted(EXPECTED))
def test_each_track_gets_the_hand_worked_answer(result, spotify_id):
    _, rows, _ = result
    row = rows[spotify_id]
    method, mbid, confidence, count, title_sim, artist_sim, gap, reason = EXPECTED[spotify_id]
    assert (row.match_method, row.mbid, row.candidate_count, row.duration_gap_ms, row.no_match_reason) == (
        method, mbid, count, gap, reason)
    assert row.match_confidence == pytest.approx(confidence, abs=1e-6)
    for got, want in ((row.title_similarity, title_sim), (row.artist_similarity, artist_sim)):
        assert got == (pytest.approx(want, abs=1e-6) if want is not None else None)


def test_isrc_columns(result):
    _, rows, _ = result
    assert rows["tHyphen"].isrc == "GB-AAA-99-00301" and rows["tHyphen"].isrc_normalized == "GBAAA9900301"
    assert rows["tInvalid"].isrc_normalized is None and rows["tRemaster"].isrc is None
    assert rows["tShared"].recording_id == 8106510 and rows["tDecoyArtist"].recording_id is None


def test_metadata_confidences_lie_in_the_issue_range(result):
    _, rows, _ = result
    metadata = [r.match_confidence for r in rows.values() if r.match_method == "metadata_match"]
    assert metadata and all(0.85 <= c < 1.0 for c in metadata)


def test_no_block_was_skipped_at_the_default_cap(result):
    _, _, observed = result
    assert observed["exact_blocks"] == {"skipped_blocks": 0, "skipped_recordings": 0}


def test_summary_counts(spark, result):
    frames, rows, _ = result
    gold = spark.createDataFrame(list(rows.values()))
    summary = job.summarize(gold, transforms.isrc_codes(frames["mb_isrc"]))
    assert summary["rows"] == 22
    assert summary["matches"] == {"isrc_exact": 2, "isrc_fuzzy": 3, "metadata_match": 10, "no_match": 7}
    assert summary["isrc"] == {"tracks_without_isrc": 15, "tracks_with_invalid_isrc": 1,
                               "mb_isrcs_naming_several_recordings": 1,
                               "tracks_matched_to_one_of_several_recordings": 1}
    assert summary["metadata"]["tracks_considered"] == 17
    assert summary["metadata"]["tracks_with_several_candidates"] == 3  # tInvalid, tRemaster, tGap
    assert summary["no_match_reasons"] == {"no_candidate": 4, "below_threshold": 1, "block_too_large": 0,
                                           "no_artist_or_title": 2}


def test_a_small_cap_skips_and_counts_blocks_and_a_higher_threshold_rejects(spark, result):
    frames, _, _ = result
    rows, observed = run(frames, max_block_size=2, min_confidence=0.99, fuzzy_titles=False)
    # The Chemical Brothers have six titles with three recordings each (Out of Control, Let Forever Be,
    # The Sunshine Underground, Asleep From Day, Got Glint?, Hey Boy Hey Girl / Hey Boy, Hey Girl).
    assert observed["exact_blocks"] == {"skipped_blocks": 6, "skipped_recordings": 18}
    assert rows["tInvalid"].no_match_reason == "block_too_large"
    assert rows["tCase"].no_match_reason == "block_too_large"
    assert rows["tRemaster"].no_match_reason == "below_threshold"  # 0.995 · 0.98² = 0.956 < 0.99
    assert rows["tFeatMb"].no_match_reason == "below_threshold"
    assert rows["tTypo"].no_match_reason == "no_candidate"  # pass B is off
    assert rows["tShared"].match_method == "isrc_exact" and rows["tIsrcMiss"].match_confidence == pytest.approx(BASE)


def test_legacy_isrc_layout_gives_the_same_table(spark, tmp_path, result):
    _, rows, _ = result
    legacy = tmp_path / "mb" / "mbdump"
    legacy.mkdir(parents=True)
    for table in mbdump.TABLES:
        shutil.copy(FIXTURE / table, legacy / table)
    lines = [line.split("\t") for line in (FIXTURE / "isrc").read_text().splitlines()]
    (legacy / "isrc").write_text("".join("\t".join([*f[:3], "0", *f[3:]]) + "\n" for f in lines))
    (legacy / "SCHEMA_SEQUENCE").write_text("30\n")
    legacy_frames = input_frames(spark, mb_frames(spark, legacy.parent, tmp_path / "work"))
    legacy_rows = job.build_frame(legacy_frames, transforms.MatchSettings())
    assert_df_equality(legacy_rows, spark.createDataFrame(list(rows.values()), legacy_rows.schema),
                       ignore_row_order=True)


def test_settings_from_config_check_relations(config):
    settings = transforms.MatchSettings.from_config(config.xref)
    assert (settings.duration_tolerance_ms, settings.max_duration_gap_ms) == (3000, 10000)
    with pytest.raises(ConfigError, match="duration_tolerance_s"):
        transforms.MatchSettings.from_config(config.with_overrides({"xref.duration_tolerance_s": 12}).xref)
    with pytest.raises(ConfigError, match="must be >= 0.85"):
        config.with_overrides({"xref.min_confidence": 0.5})
