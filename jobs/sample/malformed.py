"""Rows ingest must quarantine, appended after the valid ones and referenced by nothing else.

max(3, T/10,000) rows per reason (1 when T < 1000): tracks with a NULL / non-base62 / wrong-length id or
popularity 150 / -3; audio-feature rows with 'n/a' in a REAL column or a bad track_id; artists with a bad id.
Few rows, so plain Python lists are fine here.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from jobs.sample import ids
from jobs.sample import rates as R
from jobs.sample.catalog import Plan


def _broken_ids(seed: int, reason: str, n: int, offset: int) -> list[str | None]:
    valid = ids.base62_ids(seed, ids.NS_MALFORMED, np.arange(offset, offset + n)).to_pylist()
    if reason == "null_id":
        return [None] * n
    if reason in ("non_base62_id", "bad_id"):
        return [x[:5] + "-" + x[6:] if i % 2 else x[:10] + "!" + x[11:] for i, x in enumerate(valid)]
    if reason in ("wrong_length_id", "bad_track_id"):
        return [x[:21] if i % 2 else x + "x" for i, x in enumerate(valid)]
    return valid


def malformed_artists(plan: Plan) -> pa.Table:
    """Artists with a bad ID, appended after the valid ones and referenced by nothing."""
    n = plan.n_malformed
    rowid = np.arange(plan.artists + 1, plan.artists + n + 1)
    return pa.table({
        "rowid": rowid,
        "id": pa.array(_broken_ids(plan.seed, "bad_id", n, 10_000_000), pa.string()),
        "fetched_at": np.full(n, R.FETCHED_AT_MS),
        "name": pa.array([f"Unknown Artist {i + 1}" for i in range(n)]),
        "followers_total": np.zeros(n, np.int64),
        "popularity": np.zeros(n, np.int64),
    })


def malformed_tracks(plan: Plan) -> tuple[pa.Table, pa.Table, dict[str, int]]:
    """Tracks ingest must quarantine (NULL / non-base62 / wrong-length ID, popularity 150 or -3), after
    the valid ones; each keeps one ``track_artists`` link, nothing else points at them."""
    n = plan.n_malformed
    reasons = R.TRACK_MALFORMED_REASONS
    ids_out: list[str | None] = []
    popularity: list[int] = []
    for j, reason in enumerate(reasons):
        ids_out += _broken_ids(plan.seed, reason, n, j * n)
        popularity += [150 if reason == "popularity_too_high" else -3 if reason == "popularity_negative" else 10] * n
    total = len(ids_out)
    rowid = np.arange(plan.tracks + 1, plan.tracks + total + 1)
    album = np.arange(total) % plan.n_albums + 1
    tracks = pa.table({
        "rowid": rowid,
        "id": pa.array(ids_out, pa.string()),
        "fetched_at": np.full(total, R.FETCHED_AT_MS),
        "name": pa.array([f"Broken Track {i + 1}" for i in range(total)]),
        "preview_url": pa.nulls(total, pa.string()),
        "album_rowid": album,
        "track_number": np.ones(total, np.int64),
        "external_id_isrc": pa.nulls(total, pa.string()),
        "external_id_ean": pa.nulls(total, pa.string()),
        "external_id_upc": pa.nulls(total, pa.string()),
        "popularity": np.array(popularity, np.int64),
        "available_markets_rowid": np.ones(total, np.int64),
        "disc_number": np.ones(total, np.int64),
        "duration_ms": np.full(total, 180_000),
        "explicit": np.zeros(total, np.int64),
    })
    links = pa.table({"track_rowid": rowid, "artist_rowid": plan.album_artist[album - 1].astype(np.int64) + 1})
    return tracks, links, {reason: n for reason in reasons}


def malformed_audio_features(plan: Plan) -> tuple[list[pa.Table], dict[str, int]]:
    """Feature rows ingest must quarantine: 'n/a' in ``energy`` (a TEXT value in a REAL column), or a bad
    ``track_id``. Their track IDs match no track, so no valid track loses or gains features."""
    n = plan.n_malformed
    tables = []
    for j, reason in enumerate(R.AF_MALFORMED_REASONS):
        rowid = np.arange(plan.tracks + 1 + j * n, plan.tracks + 1 + (j + 1) * n)
        track_id = _broken_ids(plan.seed, reason, n, 20_000_000 + j * n)
        energy = pa.array(["n/a"] * n) if reason == "non_numeric_feature" else pa.array(np.full(n, 0.5))
        tables.append(pa.table({
            "rowid": rowid,
            "track_id": pa.array(track_id, pa.string()),
            "fetched_at": np.full(n, R.FETCHED_AT_MS),
            "null_response": np.zeros(n, np.int64),
            "duration_ms": np.full(n, 180_000),
            "time_signature": np.full(n, 4),
            "tempo": np.full(n, 120.0),
            "key": np.zeros(n, np.int64),
            "mode": np.ones(n, np.int64),
            "danceability": np.full(n, 0.5),
            "energy": energy,
            "loudness": np.full(n, -7.0),
            "speechiness": np.full(n, 0.05),
            "acousticness": np.full(n, 0.2),
            "instrumentalness": np.full(n, 0.0),
            "liveness": np.full(n, 0.1),
            "valence": np.full(n, 0.5),
        }))
    return tables, {reason: n for reason in R.AF_MALFORMED_REASONS}
