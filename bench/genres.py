"""Measurement: how well do genres from audio features (``detected_genres``) and genres voted by similar
artists (the graph job) agree with the genres Spotify gives the artists?

    .venv/bin/python bench/genres.py                 # a 50,000-track sample dump (generated once)
    .venv/bin/python bench/genres.py --tracks 20000

Runs sample → ingest → cooccurrence → vectors → graph into --dir (kept between runs), then scores, on
every track with audio features whose primary artist has Spotify genres:

- truth: the artist's Spotify genres mapped onto the six profile names (``PROFILE_KEYWORDS``; a genre
  such as "pop" maps to none, so a pop track's truth is empty and any label on it is a false positive);
- (a) ``detected_genres`` (the spec's rule: every profile with similarity > 0.7, top 3), and the
  alternatives a calibrated rule could use, recomputed from the stored vectors: ``nearest`` (the best
  profile only, if > 0.7) and ``per-profile`` (each profile its own threshold, chosen on half of the
  artists to maximise that profile's F1, scored on the other half);
- (b) the graph's genre votes for the artist computed with the artist's own genres hidden
  (``transforms.genre_votes`` over gold/artist_similarity uses only the neighbours' genres; every
  artist of the sample is among graph.artist_count), mapped the same way.

Micro precision / recall / F1 over (track, profile) labels, and per profile. The sample generator draws
features around each macro genre's profile (jobs/sample/rates.py), so (a) is measured on data built to
agree with the profiles: an upper bound for real tracks.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

from jobs.vectors.genres import GENRE_PROFILES, MAX_GENRES, SIMILARITY_THRESHOLD  # noqa: E402
from jobs.vectors.layout import COMPONENT_INDEX, scale  # noqa: E402

# Spotify genre strings → profile names: a genre maps to a profile when one of these words or phrases
# occurs in it as whole words ("electro house" → edm, "electropop" → none).
PROFILE_KEYWORDS: dict[str, tuple[str, ...]] = {
    "hip-hop": ("hip hop", "rap", "trap", "drill"),
    "edm": ("edm", "house", "electro", "techno", "trance", "dubstep", "drum and bass"),
    "acoustic-folk": ("folk", "acoustic", "singer-songwriter", "americana"),
    "classical": ("classical", "baroque", "orchestral", "opera", "early music", "medieval"),
    "metal": ("metal", "metalcore"),
    "jazz": ("jazz", "bebop", "hard bop"),
}
PROFILES = tuple(GENRE_PROFILES)
_PATTERNS = {p: re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b") for p, words in PROFILE_KEYWORDS.items()}


def profiles_of(genres: Any) -> frozenset[str]:
    """The profile names a list of Spotify genre strings maps to."""
    found = set()
    for genre in genres if genres is not None else ():
        for profile, pattern in _PATTERNS.items():
            if pattern.search(str(genre).lower()):
                found.add(profile)
    return frozenset(found)


def similarities(vectors: np.ndarray) -> np.ndarray:
    """(tracks × 6) profile similarity, as jobs.vectors.genres.profile_similarity (float64)."""
    out = np.empty((len(vectors), len(PROFILES)))
    for j, name in enumerate(PROFILES):
        profile = GENRE_PROFILES[name]
        idx = [COMPONENT_INDEX[f] for f in profile]
        target = np.array([scale(f, raw) for f, raw in profile.items()])
        out[:, j] = 1.0 - np.abs(vectors[:, idx] - target).mean(axis=1)
    return out


def spec_rule(sim: np.ndarray) -> list[frozenset[str]]:
    """Top 3 by similarity (ties by name), kept above the threshold: the spec's detectGenreFromFeatures."""
    result = []
    names = np.array(PROFILES)
    for row in sim:
        order = sorted(range(len(PROFILES)), key=lambda j: (-row[j], PROFILES[j]))[:MAX_GENRES]
        result.append(frozenset(names[j] for j in order if row[j] > SIMILARITY_THRESHOLD))
    return result


def nearest_rule(sim: np.ndarray) -> list[frozenset[str]]:
    best = np.argmax(sim, axis=1)
    return [frozenset([PROFILES[j]]) if sim[i, j] > SIMILARITY_THRESHOLD else frozenset() for i, j in enumerate(best)]


def threshold_rule(sim: np.ndarray, thresholds: dict[str, float]) -> list[frozenset[str]]:
    return [frozenset(p for j, p in enumerate(PROFILES) if row[j] > thresholds[p]) for row in sim]


def fit_thresholds(sim: np.ndarray, truth: list[frozenset[str]]) -> dict[str, float]:
    """Per profile, the similarity threshold with the best F1 for that profile on these tracks."""
    thresholds = {}
    for j, profile in enumerate(PROFILES):
        positive = np.array([profile in t for t in truth])
        best = (-1.0, 1.0)
        for cut in np.quantile(sim[:, j], np.linspace(0.5, 0.999, 120)):
            predicted = sim[:, j] > cut
            tp = int((predicted & positive).sum())
            f1 = 2 * tp / (predicted.sum() + positive.sum()) if tp else 0.0
            best = max(best, (f1, float(cut)))
        thresholds[profile] = best[1]
    return thresholds


def scores(truth: list[frozenset[str]], predicted: list[frozenset[str]]) -> dict[str, Any]:
    """Micro precision / recall / F1 and per-profile precision / recall, and the share labelled with each."""
    tp = sum(len(t & p) for t, p in zip(truth, predicted))
    n_pred, n_true = sum(len(p) for p in predicted), sum(len(t) for t in truth)
    precision, recall = (tp / n_pred if n_pred else 0.0), (tp / n_true if n_true else 0.0)
    per = {}
    for profile in PROFILES:
        hit = sum(profile in t and profile in p for t, p in zip(truth, predicted))
        said = sum(profile in p for p in predicted)
        real = sum(profile in t for t in truth)
        per[profile] = {
            "precision": round(hit / said, 3) if said else None,
            "recall": round(hit / real, 3) if real else None,
            "labelled_share": round(said / len(truth), 3),
            "truth_share": round(real / len(truth), 3),
        }
    return {
        "precision": round(precision, 3), "recall": round(recall, 3),
        "f1": round(2 * precision * recall / (precision + recall), 3) if precision + recall else 0.0,
        "tracks_labelled": round(sum(bool(p) for p in predicted) / len(truth), 3),
        "per_profile": per,
    }


# ------------------------------------------------------------------------------------------------
# Data


def build(spark: Any, base: Path, tracks: int) -> Any:
    """Config of a warehouse holding every table the measurement reads (built once per size)."""
    from jobs.cooccurrence import job as cooccurrence
    from jobs.graph import job as graph
    from jobs.ingest import job as ingest
    from jobs.sample import job as sample
    from jobs.vectors import job as vectors
    from lib.config import load_config

    root = base / f"tracks{tracks}"
    config = load_config(use_default_file=False, base_dir=root).with_overrides({
        "paths.spotify": str(root / "spotify"), "paths.musicbrainz": str(root / "musicbrainz"),
        "paths.warehouse": str(root / "warehouse"), "paths.work": str(root / "work"),
        "spark.master": "local[2]", "sample.tracks": tracks,
        "runs.skip_unchanged": False,  # benchmarks rerun jobs on unchanged data on purpose
    }, base_dir=root)
    marker = root / "_built.json"
    wanted = {"tracks": tracks, "seed": config.sample.seed, "builder": 1}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return config
    for name, job in (("sample", sample), ("ingest", ingest), ("cooccurrence", cooccurrence),
                      ("vectors", vectors), ("graph", graph)):
        started = time.perf_counter()
        job.run(spark, config)
        print(f"{name}: {time.perf_counter() - started:.1f} s", flush=True)
    marker.write_text(json.dumps(wanted))
    return config


def tables(spark: Any, config: Any, min_confidence: float) -> pd.DataFrame:
    """One row per track with features whose primary artist has Spotify genres: vector, detected genres,
    truth and the graph's leave-one-out profiles."""
    from pyspark.sql import functions as F

    from jobs.graph import transforms
    from lib import delta

    def read(layer: str, name: str) -> Any:
        return delta.read(spark, delta.table_path(config.paths.warehouse, layer, name))

    artists = transforms.artists_once(read("bronze", "spotify_artists"))
    votes = transforms.genre_votes(read("gold", "artist_similarity"), artists, min_confidence)
    voted = votes.groupBy("artist_id").agg(F.collect_list("genre").alias("voted"))
    primary = transforms.primary_artists(read("bronze", "spotify_tracks"))
    frame = (
        read("gold", "audio_vectors").select(F.col("spotify_id").alias("track_id"), "vector", "genres",
                                             "detected_genres")
        .where(F.size("genres") > 0)
        .join(primary, on="track_id", how="inner")
        .join(voted, on="artist_id", how="left")
    )
    rows = frame.toPandas()
    rows["truth"] = rows["genres"].map(profiles_of)
    rows["graph"] = rows["voted"].map(profiles_of)
    rows["detected"] = rows["detected_genres"].map(lambda g: frozenset(g if g is not None else ()))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=50_000, help="tracks of the generated sample dump")
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "aria-bench", "genres"))
    parser.add_argument("--min-confidence", type=float, nargs="*", default=[0.0, 0.05, 0.1, 0.2],
                        help="graph.min_genre_confidence values to score the votes with")
    args = parser.parse_args(argv)

    from lib.config import load_config
    from lib.spark import build_session

    spark = build_session(load_config(use_default_file=False).with_overrides({"spark.master": "local[2]"}),
                          "bench-genres")
    config = build(spark, Path(args.dir), args.tracks)
    rows = tables(spark, config, min(args.min_confidence))
    vectors = np.stack(rows["vector"].map(lambda v: np.asarray(v, dtype=np.float64)).to_numpy())
    sim = similarities(vectors)
    truth = list(rows["truth"])
    results: dict[str, Any] = {"tracks": len(rows), "tracks_with_profile_truth": round(
        sum(bool(t) for t in truth) / len(rows), 3)}
    spec = spec_rule(sim)
    results["recomputed_spec_rule_equals_detected_genres"] = round(
        float(np.mean([a == b for a, b in zip(spec, rows["detected"])])), 4)
    results["detected_genres (spec rule)"] = scores(truth, list(rows["detected"]))
    results["nearest profile only"] = scores(truth, nearest_rule(sim))
    # Per-profile thresholds: fitted on the tracks of half of the artists, scored on the other half.
    fit = (pd.util.hash_pandas_object(rows["artist_id"], index=False).to_numpy() % 2) == 0
    thresholds = fit_thresholds(sim[fit], [t for t, f in zip(truth, fit) if f])
    held = ~fit
    results["per-profile thresholds (held-out artists)"] = {
        **scores([t for t, h in zip(truth, held) if h], threshold_rule(sim[held], thresholds)),
        "thresholds": {p: round(v, 4) for p, v in thresholds.items()},
    }
    results["spec rule on the same held-out artists"] = scores(
        [t for t, h in zip(truth, held) if h], [p for p, h in zip(spec, held) if h])
    for minimum in args.min_confidence:
        voted = tables(spark, config, minimum) if minimum != min(args.min_confidence) else rows
        results[f"graph votes, own genres hidden (min_confidence {minimum})"] = {
            **scores(list(voted["truth"]), list(voted["graph"])),
            "artists_with_votes": round(float(voted["voted"].notna().mean()), 3),
        }
    print(json.dumps(results, indent=1))
    print("\n| rule | precision | recall | F1 | tracks labelled |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        if isinstance(r, dict):
            print(f"| {name} | {r['precision']} | {r['recall']} | {r['f1']} | {r['tracks_labelled']} |")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
