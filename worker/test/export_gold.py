#!/usr/bin/env python3
"""Export what the Worker's answers must equal, straight from the warehouse, for the Worker tests.

    python worker/test/export_gold.py WAREHOUSE_DIR OUT.json [--sample N]

Reads the Delta tables with delta-rs (no Spark): bronze ``spotify_audio_features`` and ``spotify_tracks``
(the raw features and popularity), gold ``audio_vectors`` (tier and vector), ``precomputed_similar``,
``playlist_cooccurrence`` and ``cooccurrence_top`` (its K), ``spotify_mbid_xref``. run-tests.sh runs it when
WAREHOUSE_DIR is set and hands the file to the tests as WORKER_GOLD. The tests compare the Worker with it, never
with the publish output alone.

Only tracks with exactly one bronze features row and one bronze tracks row are sampled: which of several rows
publish keeps is the vectors job's rule, not something to re-implement here. The sample is every k-th such id
in id order (so it spans every R2 shard), plus every k-th matched cross-reference and every k-th track with
co-occurrence pairs, each about N.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

FEATURES = ("tempo", "energy", "danceability", "valence", "acousticness", "instrumentalness", "speechiness",
            "liveness", "loudness", "key", "mode", "time_signature", "duration_ms")
XREF = ("spotify_id", "isrc", "mbid", "match_confidence", "match_method")


def table(warehouse: Path, layer: str, name: str, columns: list[str]) -> list[dict[str, Any]]:
    from deltalake import DeltaTable

    path = warehouse / layer / name
    if not (path / "_delta_log").is_dir():
        sys.exit(f"export_gold: {path} is not a Delta table (run the pipeline into this warehouse first)")
    frame = DeltaTable(str(path)).to_pyarrow_table()
    missing = [c for c in columns if c not in frame.column_names]
    if missing:
        sys.exit(f"export_gold: {layer}/{name} has no column {', '.join(missing)}")
    return frame.select(columns).to_pylist()


def every_kth(ids: list[str], n: int) -> list[str]:
    ids = sorted(ids)
    step = max(1, len(ids) // max(1, n))
    return ids[::step][:n]


def export(warehouse: Path, sample_size: int) -> dict[str, Any]:
    features = table(warehouse, "bronze", "spotify_audio_features", ["track_id", *FEATURES])
    tracks = table(warehouse, "bronze", "spotify_tracks", ["track_id", "popularity"])
    vectors = table(warehouse, "gold", "audio_vectors", ["spotify_id", "tier", "vector"])
    similar = table(warehouse, "gold", "precomputed_similar",
                    ["seed_spotify_id", "similar_spotify_id", "similarity_score", "rank"])
    pairs = table(warehouse, "gold", "playlist_cooccurrence", ["track_a", "track_b", "cooccurrence_count", "score"])
    top = table(warehouse, "gold", "cooccurrence_top", ["rank"])
    xref = table(warehouse, "gold", "spotify_mbid_xref", [*XREF, "isrc_normalized"])

    feature_rows = Counter(r["track_id"] for r in features)
    track_rows = Counter(r["track_id"] for r in tracks)
    popularity = {r["track_id"]: r["popularity"] for r in tracks}
    single = [t for t, n in feature_rows.items() if n == 1 and track_rows.get(t) == 1]
    partners: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in pairs:
        for me, other in ((p["track_a"], p["track_b"]), (p["track_b"], p["track_a"])):
            partners[me].append({"spotify_id": other, "score": p["score"],
                                 "cooccurrence_count": p["cooccurrence_count"]})
    matched = [r["spotify_id"] for r in xref if r["mbid"] is not None]

    sample = set(every_kth(single, sample_size))
    sample |= set(every_kth(matched, sample_size // 2))
    sample |= set(every_kth([t for t in partners if t in feature_rows], sample_size // 2))
    sample_ids = sorted(sample)

    by_seed: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in similar:
        if r["seed_spotify_id"] in sample:
            by_seed[r["seed_spotify_id"]].append(
                {"spotify_id": r["similar_spotify_id"], "score": r["similarity_score"], "rank": r["rank"]})
    xref_by_id = {r["spotify_id"]: r for r in xref}
    sample_isrcs = {xref_by_id[t]["isrc_normalized"] for t in sample_ids
                    if t in xref_by_id and xref_by_id[t]["isrc_normalized"]}
    by_isrc: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in xref:
        if r["isrc_normalized"] in sample_isrcs:
            by_isrc[r["isrc_normalized"]].append({k: r[k] for k in (*XREF, "isrc_normalized")})

    features_by_id = {r["track_id"]: r for r in features}
    return {
        "warehouse": str(warehouse),
        "feature_ids": sorted(feature_rows),
        "vector_tiers": dict(Counter(r["tier"] for r in vectors)),
        "sample": sample_ids,
        "features": {t: {**{f: features_by_id[t][f] for f in FEATURES}, "popularity": popularity.get(t)}
                     for t in sample_ids if feature_rows.get(t) == 1 and track_rows.get(t) == 1},
        "vectors": {r["spotify_id"]: {"tier": r["tier"], "vector": r["vector"]} for r in vectors
                    if r["spotify_id"] in sample},
        "precomputed_similar": {seed: sorted(rows, key=lambda r: r["rank"]) for seed, rows in by_seed.items()},
        "cooccurrence_top_k": max((r["rank"] for r in top), default=0),
        # every partner of the track, in the Worker's (and gold/cooccurrence_top's) order
        "cooccurrence": {t: sorted(partners[t], key=lambda r: (-r["score"], -r["cooccurrence_count"],
                                                                 r["spotify_id"]))
                         for t in sample_ids if t in partners},
        "xref": {t: {k: xref_by_id[t][k] for k in (*XREF, "isrc_normalized")} for t in sample_ids if t in xref_by_id},
        "xref_by_isrc": dict(by_isrc),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("warehouse", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--sample", type=int, default=120, help="about this many tracks per kind (default 120)")
    args = parser.parse_args()
    gold = export(args.warehouse.resolve(), args.sample)
    args.out.write_text(json.dumps(gold, allow_nan=False))
    print(f"export_gold: {len(gold['sample'])} sample tracks of {len(gold['feature_ids'])} from {args.warehouse}")


if __name__ == "__main__":
    main()
