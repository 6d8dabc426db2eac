"""Small, deterministic gold (and the bronze publish reads) for the publish and promote tests.

Written straight into a warehouse with the project's table contracts (``lib.schemas.conform``), not by
running the other jobs: publish only reads these tables, and a test can then change one table and see the
change reach every target. Titles, artists and genres include the strings SQL and JSON get wrong (quotes,
backslashes, newlines, NUL, emoji, an injection attempt).
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from lib import delta
from lib.schemas import BRONZE, GOLD, conform

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
NASTY = ["O'Brien", "back\\slash", "emoji 😀🎵", "'); DROP TABLE x; --", "new\nline", "nul\x00byte", "tab\there",
         'double "quotes"', "ünïcödé — ≠", ""]


def spotify_id(rng: random.Random) -> str:
    return "".join(rng.choice(BASE62) for _ in range(22))


@dataclass
class World:
    """The rows written, as Python values (what the tests compare the targets with)."""

    tables: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)

    def rows(self, table: str) -> list[dict[str, Any]]:
        layer = BRONZE if table in BRONZE else GOLD
        names = [part.split(" ")[0] for part in layer[table].split(", ")]
        return [dict(zip(names, row)) for row in self.tables[table]]


def build_world(tracks: int = 600, seed: int = 7, artists: int = 40) -> World:
    rng = random.Random(seed)
    ids = sorted({spotify_id(rng) for _ in range(tracks)})
    artist_ids = [spotify_id(rng) for _ in range(artists)]
    genres_pool = ["pop", "rock", "hip hop", "r&b", "k-pop", "drum'n'bass", "jazz \\ fusion", "metal", "indie"]
    world = World()
    world.tables["spotify_artists"] = [
        (a, rng.choice(NASTY) + f" artist {n}", rng.randint(0, 10**6), rng.randint(0, 100),
         rng.sample(genres_pool, rng.randint(0, 3)))
        for n, a in enumerate(artist_ids)
    ]
    artist_name = {row[0]: row[1] for row in world.tables["spotify_artists"]}
    artist_genres = {row[0]: row[4] for row in world.tables["spotify_artists"]}
    when = dt.datetime(2025, 7, 1)
    track_rows, features, vectors, xref = [], [], [], []
    for n, t in enumerate(ids):
        popularity = rng.randint(0, 100)
        artist = rng.choice(artist_ids)
        isrc = None if n % 17 == 0 else f"US{rng.randint(100, 999)}{rng.randint(10, 99)}{rng.randint(10**6, 10**7 - 1)}"
        title = (NASTY[n % len(NASTY)] + f" track {n}") if n % 3 == 0 else f"Track {n}"
        track_rows.append((t, title, f"al{n % 50:03d}", [artist], isrc, popularity, 180_000 + n, False, 1, 1, when))
        f = [round(rng.random(), 3) for _ in range(8)]
        key = rng.randint(-1, 11)
        features.append((t, f[0], f[1], key, round(-60 * f[2], 2), rng.randint(0, 1), f[3], f[4], f[5], f[6], f[7],
                         round(60 + 140 * rng.random(), 2), 180_000 + n, rng.choice([3, 4, 5])))
        vector = [round(rng.random(), 4) for _ in range(12)] + [popularity / 100]
        tier = "A" if popularity >= 30 else "B" if popularity >= 10 else "C"
        mbid = str(uuid.UUID(int=rng.getrandbits(128))) if n % 4 else None
        year = None if n % 11 == 0 else 1970 + n % 50
        vectors.append((t, vector, tier, popularity, isrc, title, artist_name[artist], list(artist_genres[artist]),
                        year, None if year is None else year - year % 10, mbid, []))
        method = "isrc_exact" if mbid and isrc else "metadata_match" if mbid else "no_match"
        xref.append((t, isrc, mbid, 1.0 if method == "isrc_exact" else 0.9 if mbid else 0.0, method))
    # One track with a second, emptier features row (the latest/fullest must win, as in the vectors job).
    first = features[0]
    features.append((first[0], None, None, first[3], None, None, None, None, None, None, None, None, first[12], None))
    world.tables["spotify_tracks"] = track_rows
    world.tables["spotify_audio_features"] = features
    world.tables["audio_vectors"] = vectors
    world.tables["spotify_mbid_xref"] = xref

    pairs = set()
    while len(pairs) < tracks * 2:
        a, b = rng.sample(ids, 2)
        pairs.add((min(a, b), max(a, b)))
    cooc = []
    for a, b in sorted(pairs):
        count = rng.randint(3, 40)
        pmi, jac = round(rng.uniform(-2, 8), 4), round(rng.random(), 4)
        score = round(0.6 * min(1.0, max(0.0, (pmi + 5) / 15)) + 0.4 * jac, 6)
        cooc.append((a, b, count, pmi, jac, score, round(rng.uniform(0, 50), 3)))
    world.tables["playlist_cooccurrence"] = cooc
    neighbours: dict[str, list[tuple[str, tuple[Any, ...]]]] = {}
    for row in cooc:
        neighbours.setdefault(row[0], []).append((row[1], row))
        neighbours.setdefault(row[1], []).append((row[0], row))
    top = []
    for track, items in neighbours.items():
        ranked = sorted(items, key=lambda it: (-it[1][5], -it[1][2], it[0]))[:5]
        for rank, (other, row) in enumerate(ranked, 1):
            top.append((track, other, rank, row[2], row[3], row[4], row[5]))
    world.tables["cooccurrence_top"] = top

    tier_a = [v[0] for v in vectors if v[2] == "A"]
    by_popularity = sorted(vectors, key=lambda v: (-v[3], v[0]))
    similar = []
    for seed_row in by_popularity[: max(1, tracks // 10)]:
        others = rng.sample([t for t in tier_a if t != seed_row[0]], 5)
        scores = sorted((round(rng.uniform(0.5, 1.0), 6) for _ in others), reverse=True)
        similar += [(seed_row[0], o, s, r) for r, (o, s) in enumerate(zip(others, scores), 1)]
    world.tables["precomputed_similar"] = similar
    return world


def inferred_genres(world: World, seed: int = 3) -> list[tuple[Any, ...]]:
    rng = random.Random(seed)
    artists = [row[0] for row in world.tables["spotify_artists"]]
    return [(a, rng.choice(["shoegaze", "city pop", "pop"]), round(rng.random(), 3), "cooccurrence")
            for a in artists[::3]]


INFERRED_DDL = "artist_id string, genre string, confidence double, source string"


def write_world(spark: Any, warehouse: str, world: World, inferred: list[tuple[Any, ...]] | None = None) -> None:
    for table, rows in world.tables.items():
        layer = "bronze" if table in BRONZE else "gold"
        ddl = (BRONZE if layer == "bronze" else GOLD)[table]
        frame = spark.createDataFrame(rows, ddl)
        delta.write(conform(frame, layer, table).coalesce(1), delta.table_path(warehouse, layer, table))
    if inferred is not None:
        frame = spark.createDataFrame(inferred, INFERRED_DDL)
        delta.write(frame.coalesce(1), delta.table_path(warehouse, "gold", "artist_genres_inferred"))
