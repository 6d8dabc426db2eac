"""What the local target should hold, computed in plain Python from the rows ``publish_gold`` wrote (never
from publish's code), and readers that turn a ``publish.local_dir`` — or the Cloudflare stand-in and an S3
bucket — back into the same plain values."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import sqlite3
from typing import Any

import numpy as np

from tests.support.publish_gold import World

FEATURES = ("tempo", "time_signature", "key", "mode", "loudness", "energy", "danceability", "speechiness",
            "acousticness", "instrumentalness", "liveness", "valence", "duration_ms")
D1_COLUMNS = {
    "spotify_mbid_xref": ("spotify_id", "isrc", "mbid", "match_confidence", "match_method"),
    "spotify_audio_features_cache": ("spotify_id", *FEATURES, "popularity"),
    "playlist_cooccurrence": ("track_a", "track_b", "cooccurrence_count", "pmi_score", "jaccard_score", "score"),
    "spotify_artist_genres": ("spotify_artist_id", "genre"),
    "precomputed_similar": ("seed_spotify_id", "similar_spotify_id", "similarity_score", "rank"),
}


# -- expectations ------------------------------------------------------------------------------


def features_by_track(world: World) -> dict[str, dict[str, Any]]:
    """The fullest features row per track (the world plants one emptier duplicate)."""
    best: dict[str, dict[str, Any]] = {}
    for row in world.rows("spotify_audio_features"):
        filled = sum(v is not None for v in row.values())
        if row["track_id"] not in best or filled > sum(v is not None for v in best[row["track_id"]].values()):
            best[row["track_id"]] = row
    return best


def expected_d1(world: World, inferred: list[tuple[Any, ...]] | None = None) -> dict[str, set[tuple[Any, ...]]]:
    vectors = {r["spotify_id"]: r for r in world.rows("audio_vectors")}
    feats = features_by_track(world)
    hot = {t for t, v in vectors.items() if v["tier"] in ("A", "B")}
    pairs = {(min(r["track_id"], r["neighbor_id"]), max(r["track_id"], r["neighbor_id"]))
             for r in world.rows("cooccurrence_top") if r["track_id"] in hot}
    genres = {(r["artist_id"], g) for r in world.rows("spotify_artists") for g in r["genres"] if g}
    genres |= {(a, g) for a, g, *_ in inferred or []}
    return {
        "spotify_mbid_xref": {tuple(r[c] for c in D1_COLUMNS["spotify_mbid_xref"])
                              for r in world.rows("spotify_mbid_xref") if r["mbid"] and r["isrc"]},
        "spotify_audio_features_cache": {(t, *(feats[t][c] for c in FEATURES), vectors[t]["popularity"]) for t in hot},
        "playlist_cooccurrence": {tuple(r[c] for c in D1_COLUMNS["playlist_cooccurrence"])
                                  for r in world.rows("playlist_cooccurrence")
                                  if (r["track_a"], r["track_b"]) in pairs},
        "spotify_artist_genres": genres,
        "precomputed_similar": {tuple(r.values()) for r in world.rows("precomputed_similar")},
    }


def expected_vectors(world: World) -> dict[str, dict[str, Any]]:
    out = {}
    for r in world.rows("audio_vectors"):
        if r["tier"] != "A":
            continue
        meta: dict[str, Any] = {k: r[k] for k in ("isrc", "mbid", "title", "artist", "popularity") if r[k] is not None}
        meta["genres"] = list(r["genres"])
        if r["year"] is not None:
            meta["year"] = r["year"]
        out[r["spotify_id"]] = {"values": np.asarray(r["vector"], dtype=np.float32), "metadata": meta}
    return out


def expected_kv(world: World, count: int) -> dict[str, tuple[Any, int | None]]:
    """key → (decoded value, ttl), shard map left out (its content depends on the index count)."""
    vectors = sorted(world.rows("audio_vectors"), key=lambda r: (-r["popularity"], r["spotify_id"]))[:count]
    feats = features_by_track(world)
    top = {r["spotify_id"] for r in vectors}
    out: dict[str, tuple[Any, int | None]] = {}
    order = ("tempo", "energy", "danceability", "valence", "acousticness", "instrumentalness", "speechiness",
             "liveness", "loudness", "key", "mode", "time_signature", "duration_ms")
    for r in vectors:
        f = {k: feats[r["spotify_id"]][k] for k in order}  # a null feature is an explicit null
        f["popularity"] = r["popularity"]
        out[f"spotify:af:{r['spotify_id']}"] = ({"spotify_id": r["spotify_id"], "features": f}, 7 * 86400)
    similar: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(world.rows("precomputed_similar"), key=lambda r: r["rank"]):
        if r["seed_spotify_id"] in top:
            similar.setdefault(r["seed_spotify_id"], []).append(
                {"spotify_id": r["similar_spotify_id"], "score": r["similarity_score"], "rank": r["rank"]})
    for seed, items in similar.items():
        out[f"spotify:topsim:{seed}"] = (items, 7 * 86400)
    for r in world.rows("spotify_mbid_xref"):
        if r["spotify_id"] in top and r["mbid"] and r["isrc"]:  # the rows D1 holds (isrc NOT NULL)
            value = {k: r[k] for k in ("spotify_id", "isrc", "mbid", "match_confidence", "match_method")}
            out[f"spotify:xref:{r['spotify_id']}"] = (value, 30 * 86400)
    return out


def expected_shard_rows(world: World) -> dict[str, tuple[Any, ...]]:
    feats = features_by_track(world)
    tracks = {r["track_id"]: r for r in world.rows("spotify_tracks")}
    out = {}
    for r in world.rows("audio_vectors"):
        f = feats[r["spotify_id"]]
        out[r["spotify_id"]] = (
            r["spotify_id"], f["tempo"], f["energy"], f["danceability"], f["valence"], f["acousticness"],
            f["instrumentalness"], f["speechiness"], f["liveness"], f["loudness"], f["key"], f["mode"],
            f["time_signature"], f["duration_ms"], r["popularity"], r["title"], r["artist"], r["isrc"],
            tracks[r["spotify_id"]]["album_id"], r["year"])
    return out


# -- readers ------------------------------------------------------------------------------------


def d1_tables(db_path: str) -> dict[str, set[tuple[Any, ...]]]:
    conn = sqlite3.connect(db_path)
    try:
        return {t: set(conn.execute(f"SELECT {', '.join(cols)} FROM {t}").fetchall()) for t, cols in D1_COLUMNS.items()}
    finally:
        conn.close()


def vectorize_contents(root: str) -> dict[str, dict[str, dict[str, Any]]]:
    """index → id → record; fails if an id appears twice (the folder must hold each live vector once)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for path in sorted(glob.glob(os.path.join(root, "vectorize", "*", "*.ndjson"))):
        index = os.path.basename(os.path.dirname(path))
        with open(path) as handle:
            for line in handle:
                record = json.loads(line)
                assert record["id"] not in out.setdefault(index, {}), f"{record['id']} twice in {index}"
                out[index][record["id"]] = record
    return out


def kv_contents(root: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(glob.glob(os.path.join(root, "kv", "*.json"))):
        with open(path) as handle:
            for item in json.load(handle):
                assert item["key"] not in out, f"{item['key']} twice in kv/"
                out[item["key"]] = item
    return out


def r2_contents(root: str) -> tuple[dict[str, Any], dict[str, tuple[Any, ...]], list[str]]:
    """(manifest, spotify_id → shard row over all shards, every object key)."""
    bucket = os.path.join(root, "r2")
    keys = sorted(os.path.relpath(os.path.join(d, f), bucket) for d, _, fs in os.walk(bucket) for f in fs)
    with open(os.path.join(bucket, "manifest.json")) as handle:
        manifest = json.load(handle)
    rows: dict[str, tuple[Any, ...]] = {}
    for shard in manifest["shards"]:
        path = os.path.join(bucket, shard["key"])
        with open(path, "rb") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == shard["sha256"], shard["key"]
        conn = sqlite3.connect(path)
        for row in conn.execute("SELECT * FROM tracks ORDER BY spotify_id"):
            assert row[0] not in rows
            assert shard["first_id"] <= row[0] <= shard["last_id"], (row[0], shard)
            rows[row[0]] = row
        conn.close()
    return manifest, rows, keys


def standin_vectors(standin: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """index → id → record of the stand-in's applied vectors (``vectorize_contents``'s shape; empty indexes too)."""
    return {index: {i: {"id": i, **v} for i, v in standin.vectors(index).items()} for index in standin.index_names()}


def standin_kv(standin: Any, namespace: str) -> dict[str, dict[str, Any]]:
    """key → item ``{key, value, expiration_ttl?}`` as stored (``kv_contents``'s shape)."""
    return {k: {"key": k, "value": v["value"], **({"expiration_ttl": v["expiration_ttl"]}
                                                  if v["expiration_ttl"] is not None else {})}
            for k, v in standin.kv_items(namespace).items()}


def download_bucket(s3: Any, bucket: str, root: str) -> str:
    """Every object of ``bucket`` to ``root/r2/<key>`` (the local target's layout, for ``r2_contents``)."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            path = os.path.join(root, "r2", item["Key"])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as handle:
                handle.write(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
    return root


def snapshot(root: str) -> dict[str, str]:
    """Every file under a local target (its content hash), to see that nothing changed."""
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as handle:
                out[os.path.relpath(path, root)] = hashlib.sha256(handle.read()).hexdigest()
    return out


def publish_figures(spark: Any, config: Any, factory: Any = None) -> dict[str, Any]:
    """publish through the job frame; its own figures (the summary's ``metrics``)."""
    from jobs.publish import job

    return job.run(spark, config, *([factory] if factory else []))["metrics"]


def promote_figures(spark: Any, config: Any, factory: Any = None) -> dict[str, Any]:
    from jobs.promote import job

    return job.run(spark, config, *([factory] if factory else []))["metrics"]
