"""The vectors job's pure transforms on tiny inline frames: every normalisation rule at its edges
(expected values computed by hand from Appendix B), tiers at their boundaries, facets, duplicates and
the genre profiles (checked against a plain-Python implementation of the documented similarity)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from pyspark.sql import functions as F

from jobs.vectors import transforms
from jobs.vectors.genres import GENRE_PROFILES, detected_genres
from lib.schemas import BRONZE

FEATURES = (
    "tempo", "energy", "danceability", "valence", "acousticness", "instrumentalness", "speechiness",
    "liveness", "loudness", "key", "mode", "time_signature",
)
# An ordinary row: every component lies strictly inside [0, 1].
BASE = {
    "tempo": 130.0, "energy": 0.8, "danceability": 0.6, "valence": 0.4, "acousticness": 0.1,
    "instrumentalness": 0.0, "speechiness": 0.05, "liveness": 0.2, "loudness": -6.0, "key": 5, "mode": 1,
    "time_signature": 4,
}
BASE_VECTOR = [0.5, 0.8, 0.6, 0.4, 0.1, 0.0, 0.05, 0.2, 0.9, 5 / 11, 1.0, 0.25]


FEATURES_SCHEMA = BRONZE["spotify_audio_features"] + ", fetched_at timestamp"
OLD, NEW = dt.datetime(2024, 1, 1), dt.datetime(2025, 1, 1)

EDGES = [
    # (feature, raw value, component index, expected component) — by hand from Appendix B
    ("tempo", 0.0, 0, 0.0),
    ("tempo", 60.0, 0, 0.0),
    ("tempo", 200.0, 0, 1.0),
    ("tempo", 250.0, 0, 1.0),
    ("loudness", 3.0, 8, 1.0),
    ("loudness", 0.0, 8, 1.0),
    ("loudness", -30.0, 8, 0.5),
    ("loudness", -60.0, 8, 0.0),
    ("loudness", -70.0, 8, 0.0),
    ("key", -1, 9, 0.0),
    ("key", 0, 9, 0.0),
    ("key", 11, 9, 1.0),
    ("time_signature", 0, 11, 0.0),
    ("time_signature", 1, 11, 0.0),
    ("time_signature", 3, 11, 0.0),
    ("time_signature", 5, 11, 0.5),
    ("time_signature", 7, 11, 1.0),
    ("energy", 1.2, 1, 1.0),
    ("valence", -0.1, 3, 0.0),
    ("mode", 0, 10, 0.0),
]
TIER_POPULARITY = {"p9": 9, "p10": 10, "p29": 29, "p30": 30, "p100": 100, "p0": 0}
EDM_LIKE = {"energy": 0.85, "danceability": 0.75, "acousticness": 0.05, "tempo": 128.0, "speechiness": 0.15,
            "loudness": -5.0}


def feature_row(track_id, overrides, fetched_at=None):
    v = {**BASE, **overrides}
    return (
        track_id, v["danceability"], v["energy"], v["key"], v["loudness"], v["mode"], v["speechiness"],
        v["acousticness"], v["instrumentalness"], v["liveness"], v["valence"], v["tempo"], 200_000,
        v["time_signature"], fetched_at,
    )


def track_row(track_id, name, album_id, artist_ids, isrc, popularity):
    return (track_id, name, album_id, artist_ids, isrc, popularity, 200_000, False, 1, 1, NEW)


@pytest.fixture(scope="module")
def built(spark):
    """One audio_vectors computation over every case below (a Spark query per case would be slow)."""
    rng = np.random.default_rng(5)
    features = [feature_row(f"edge{i}", {name: raw}) for i, (name, raw, _, _) in enumerate(EDGES)]
    features += [feature_row(t, {}) for t in ("t1", "t2", "t3", "no_track", *TIER_POPULARITY)]
    features += [
        feature_row("t_null", {name: None for name in FEATURES}),
        feature_row("t_tempo", {"tempo": None}),
        feature_row("t_nan", {"loudness": float("nan")}),
        feature_row("dup", {"energy": 0.9}, OLD),
        feature_row("dup", {"energy": 0.3}, NEW),
        feature_row("edm", EDM_LIKE),
    ]
    features += [
        feature_row(f"r{i}", {name: float(rng.random()) for name in ("energy", "danceability", "acousticness",
                                                                    "instrumentalness", "speechiness", "liveness")})
        for i in range(40)
    ]
    tracks = [
        track_row("t1", "First", "al1", ["ar2", "ar1"], "USAAA0000001", 73),
        track_row("t2", "Second", "al2", [], "USAAA0000002", 12),
        track_row("t3", "Third", "al_missing", ["ar_missing"], None, 5),
        track_row("t_null", "Null", None, [], None, None),
        *(track_row(t, t, None, [], None, p) for t, p in TIER_POPULARITY.items()),
    ]
    artists = [("ar1", "Other", 10, 50, ["pop"]), ("ar2", "Primary", 99, 60, ["indie rock", "shoegaze"])]
    albums = [("al1", "A", "album", None, "1999-05-01", "day", 1999, 10, None, 1),
              ("al2", "B", "album", None, "2000", "year", 2000, 10, None, 1)]
    xref = [("t1", "USAAA0000001", "mbid-low", 0.5, "isrc"), ("t1", "USAAA0000001", "mbid-high", 1.0, "isrc"),
            ("t2", "USAAA0000002", None, None, "none")]
    frame, observations = transforms.audio_vectors(
        spark.createDataFrame(features, FEATURES_SCHEMA),
        spark.createDataFrame(tracks, BRONZE["spotify_tracks"]),
        spark.createDataFrame(artists, BRONZE["spotify_artists"]),
        spark.createDataFrame(albums, BRONZE["spotify_albums"]),
        spark.createDataFrame(xref, "spotify_id string, isrc string, mbid string, match_confidence double, "
                                    "match_method string"),
        30,
        10,
    )
    rows = frame.collect()
    return {r.spotify_id: r for r in rows}, rows, observations


def f32(values):
    return [float(np.float32(v)) for v in values]


# ----------------------------------------------------------------------------------------------
# Normalisation


def test_normalisation_edges(built):
    got, _, _ = built
    for i, (name, raw, index, expected) in enumerate(EDGES):
        vector = got[f"edge{i}"].vector
        assert len(vector) == 13
        assert vector[index] == pytest.approx(expected, abs=1e-7), (name, raw)
        others = [v for j, v in enumerate(vector[:12]) if j != index]
        assert others == pytest.approx([v for j, v in enumerate(BASE_VECTOR) if j != index], abs=1e-7)


def test_base_row_follows_appendix_b_order_and_popularity_comes_from_tracks(built):
    got, _, _ = built
    assert got["t1"].vector == f32([*BASE_VECTOR, 0.73])
    assert got["t1"].popularity == 73
    assert got["no_track"].vector == f32([*BASE_VECTOR, 0.0])  # no tracks row: popularity 0, tier C
    assert (got["no_track"].popularity, got["no_track"].tier, got["no_track"].title) == (0, "C", None)


def test_null_and_nan_inputs_give_zero(built):
    got, _, _ = built
    assert got["t_null"].vector == [0.0] * 13  # every feature NULL and popularity NULL: the zero vector
    assert got["t_null"].detected_genres == []
    assert got["t_tempo"].vector[0] == 0.0 and got["t_tempo"].vector[1:12] == f32(BASE_VECTOR[1:])
    assert got["t_nan"].vector[8] == 0.0


def test_tiers_at_their_boundaries(built):
    got, _, _ = built
    assert {t: got[t].tier for t in TIER_POPULARITY} == {
        "p9": "C", "p10": "B", "p29": "B", "p30": "A", "p100": "A", "p0": "C"
    }


def test_tier_thresholds_come_from_the_arguments(spark):
    frame = spark.createDataFrame([(4,), (5,), (28,), (29,)], "popularity int")
    tiers = frame.select(transforms.tier_column(F.col("popularity"), 29, 5).alias("t")).collect()
    assert [r.t for r in tiers] == ["C", "B", "B", "A"]


# ----------------------------------------------------------------------------------------------
# Facets and duplicates


def test_facets_from_primary_artist_album_and_xref(built):
    got, _, _ = built
    t1, t2, t3 = got["t1"], got["t2"], got["t3"]
    assert (t1.title, t1.isrc, t1.artist, t1.genres, t1.year, t1.decade, t1.mbid, t1.tier) == (
        "First", "USAAA0000001", "Primary", ["indie rock", "shoegaze"], 1999, 1990, "mbid-high", "A"
    )
    assert (t2.artist, t2.genres, t2.year, t2.decade, t2.mbid, t2.tier) == (None, [], 2000, 2000, None, "B")
    assert (t3.artist, t3.genres, t3.year, t3.decade, t3.isrc, t3.mbid) == (None, [], None, None, None, None)


def test_one_row_per_track_duplicates_keep_the_latest_fetch_and_are_counted(built):
    got, rows, observations = built
    assert len(rows) == len(got)  # spotify_id is unique
    assert got["dup"].vector[1] == pytest.approx(0.3)  # energy of the 2025 fetch
    assert observations["feature_duplicates"].get["duplicates"] == 1
    assert observations["xref_duplicates"].get["duplicates"] == 1
    totals = observations["totals"].get
    assert totals["rows"] == len(rows)
    assert totals["without_track"] == len(rows) - len({"t1", "t2", "t3", "t_null", *TIER_POPULARITY})
    assert totals["with_mbid"] == 1
    assert totals["tier_A"] == sum(1 for r in rows if r.tier == "A") == 3


# ----------------------------------------------------------------------------------------------
# Genre profiles


def reference_genres(vector):
    """The documented similarity, independently: raw profile values scaled by hand."""
    index = {"tempo": 0, "energy": 1, "danceability": 2, "acousticness": 4, "instrumentalness": 5,
             "speechiness": 6, "liveness": 7, "loudness": 8}
    scaled = {"tempo": lambda x: (x - 60) / 140, "loudness": lambda x: (x + 60) / 60}
    scores = []
    for genre, profile in GENRE_PROFILES.items():
        diffs = [abs(vector[index[f]] - scaled.get(f, lambda x: x)(v)) for f, v in profile.items()]
        scores.append((1 - sum(diffs) / len(diffs), genre))
    ranked = sorted(scores, key=lambda s: (-s[0], s[1]))[:3]
    return [genre for score, genre in ranked if score > 0.7]


def test_detected_genres_hand_computed_and_against_reference(built):
    got, _, _ = built
    # edm matches exactly (1.0); metal: |.85-.95|, |.9167-.9167|, |.05-.02| → 1 - .13/3 = .957;
    # hip-hop: |.15-.15|, |.75-.7|, |.85-.65| → 1 - .25/3 = .917; acoustic-folk, classical, jazz < .7.
    assert got["edm"].detected_genres == ["edm", "metal", "hip-hop"]
    matched = 0
    for track_id, row in got.items():
        assert row.detected_genres == reference_genres(row.vector), track_id
        matched += bool(row.detected_genres)
    assert 0 < matched < len(got)  # the threshold really filters


def test_nearest_genre_rule_keeps_the_best_profile_only(spark, built):
    got, _, _ = built
    vectors = spark.createDataFrame([(t, r.vector) for t, r in got.items()], "spotify_id string, vector array<float>")
    nearest = {r.spotify_id: r.g for r in vectors.select("spotify_id", detected_genres(F.col("vector"), "nearest")
                                                          .alias("g")).collect()}
    assert nearest == {t: reference_genres(r.vector)[:1] for t, r in got.items()}
    assert nearest["edm"] == ["edm"]
    with pytest.raises(ValueError, match="genre rule must be one of spec, nearest"):
        detected_genres(F.col("vector"), "calibrated")


def test_seeds_order_by_popularity_then_id_and_candidates_are_tier_a(spark):
    frame = spark.createDataFrame(
        [("b", [0.0], "A", 50), ("a", [0.0], "A", 50), ("c", [0.0], "B", 20), ("d", [0.0], "A", 90),
         ("e", [0.0], "C", 1)],
        "spotify_id string, vector array<float>, tier string, popularity int",
    )
    assert [r.spotify_id for r in transforms.seeds(frame, 3).collect()] == ["d", "a", "b"]
    assert sorted(r.spotify_id for r in transforms.candidates(frame).collect()) == ["a", "b", "d"]
    assert [r.spotify_id for r in transforms.seeds(frame.where(F.lit(False)), 3).collect()] == []
