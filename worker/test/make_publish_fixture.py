#!/usr/bin/env python3
"""Write a tiny publish directory that follows docs/publish-layout.md, for the Worker tests.

The tests also run on the publish job's local target (PUBLISH_DIR); this fixture covers the shapes a small
pipeline sample lacks (two Vectorize indexes, a gap between shard ranges, SQL literals with quotes and
newlines) and needs no Spark. Python stdlib only (sqlite3, json, hashlib), deterministic for a given --seed.
It writes (file names as publish names them):

  d1/0001-*-d1-*.sql  import files (applied in file-name order): the spec's six tables loaded into
                    ``<table>__next`` and swapped in by the last file; ``track_access_log`` created once
  d1.sqlite         what the local target keeps: the import files applied to an empty SQLite file
  kv/*.json         bulk payloads [{"key", "value", "expiration_ttl"}]
  vectorize/<index>/index.json + *.ndjson   two shards (``spotify-audio-0``, ``-1``) by sha256 prefix
  r2/features/v1/shard-*.sqlite + r2/manifest.json   three range shards of every track with features

The data is small on purpose but covers every case the Worker distinguishes: tracks only in R2, tracks in
D1 but not in KV, ISRCs shared by two tracks, tracks without features, literals with quotes, ``;`` and
newlines (to prove the import files split correctly), an id range gap between shards.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sqlite3
import struct
import sys
import uuid
from pathlib import Path

# docs/publish-layout.md and shared/reference/cloudflare-api.md
D1_MAX_STATEMENT_BYTES = 100_000
KV_TTL_AUDIO_FEATURES = 7 * 24 * 3600
KV_TTL_TOPSIM = 7 * 24 * 3600
KV_TTL_XREF = 30 * 24 * 3600
SHARD_HASH = "sha256-prefix8-mod"
D1_FILE = "0001-{generation}-d1-{n:05d}.sql"  # the first generation's files, in apply order
INDEX_BASE = "spotify-audio"  # cloudflare.vectorize_index
SHARD_COUNT = 2
TIER_A_MIN_POPULARITY = 30  # the Vectorize population (vectors.tier_a_min_popularity)
D1_FEATURES_MIN_POPULARITY = 30  # hot tracks cached in D1
KV_FEATURES_MIN_POPULARITY = 60  # hottest also in KV: leaves D1-only and R2-only tracks
TOP_K = 10
SEEDS = 5
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

FEATURES = ("tempo", "energy", "danceability", "valence", "acousticness", "instrumentalness", "speechiness",
            "liveness", "loudness", "key", "mode", "time_signature", "duration_ms", "popularity")
# (name, low, high) in Appendix B order, as jobs/vectors/layout.py
COMPONENTS = (("tempo", 60.0, 200.0), ("energy", 0.0, 1.0), ("danceability", 0.0, 1.0), ("valence", 0.0, 1.0),
              ("acousticness", 0.0, 1.0), ("instrumentalness", 0.0, 1.0), ("speechiness", 0.0, 1.0),
              ("liveness", 0.0, 1.0), ("loudness", -60.0, 0.0), ("key", 0.0, 11.0), ("mode", 0.0, 1.0),
              ("time_signature", 3.0, 7.0), ("popularity", 0.0, 100.0))

# The spec's "D1 Schema" section, plus playlist_cooccurrence.score (docs/publish-layout.md).
TABLES = {
    "spotify_mbid_xref": """(
  spotify_id TEXT PRIMARY KEY,
  isrc TEXT NOT NULL,
  mbid TEXT,
  match_confidence REAL,
  match_method TEXT,
  created_at INTEGER DEFAULT (unixepoch()),
  updated_at INTEGER DEFAULT (unixepoch())
)""",
    "spotify_audio_features_cache": """(
  spotify_id TEXT PRIMARY KEY,
  tempo REAL,
  time_signature INTEGER,
  key INTEGER,
  mode INTEGER,
  loudness REAL,
  energy REAL,
  danceability REAL,
  speechiness REAL,
  acousticness REAL,
  instrumentalness REAL,
  liveness REAL,
  valence REAL,
  duration_ms INTEGER,
  popularity INTEGER,
  cached_at INTEGER DEFAULT (unixepoch())
)""",
    "playlist_cooccurrence": """(
  track_a TEXT NOT NULL,
  track_b TEXT NOT NULL,
  cooccurrence_count INTEGER,
  pmi_score REAL,
  jaccard_score REAL,
  score REAL,
  PRIMARY KEY (track_a, track_b)
)""",
    "spotify_artist_genres": """(
  spotify_artist_id TEXT NOT NULL,
  genre TEXT NOT NULL,
  PRIMARY KEY (spotify_artist_id, genre)
)""",
    "precomputed_similar": """(
  seed_spotify_id TEXT NOT NULL,
  similar_spotify_id TEXT NOT NULL,
  similarity_score REAL,
  rank INTEGER,
  PRIMARY KEY (seed_spotify_id, similar_spotify_id)
)""",
}
INDEXES = {
    "spotify_mbid_xref": ["CREATE INDEX idx_xref_isrc ON spotify_mbid_xref(isrc)",
                          "CREATE INDEX idx_xref_mbid ON spotify_mbid_xref(mbid)"],
    "spotify_audio_features_cache": [],
    "playlist_cooccurrence": ["CREATE INDEX idx_cooccur_a ON playlist_cooccurrence(track_a)",
                              "CREATE INDEX idx_cooccur_b ON playlist_cooccurrence(track_b)"],
    "spotify_artist_genres": ["CREATE INDEX idx_genre ON spotify_artist_genres(genre)"],
    "precomputed_similar": ["CREATE INDEX idx_precomputed_seed ON precomputed_similar(seed_spotify_id, rank)"],
}
ACCESS_LOG = """CREATE TABLE IF NOT EXISTS track_access_log (
  spotify_id TEXT PRIMARY KEY,
  access_count INTEGER DEFAULT 1,
  last_accessed INTEGER,
  vectorized INTEGER DEFAULT 0,
  promoted_at INTEGER
)"""
ACCESS_LOG_INDEX = "CREATE INDEX IF NOT EXISTS idx_access_promotion ON track_access_log(access_count, vectorized)"


def literal(value: object) -> str:
    """The one renderer of SQL literals in the import files."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "NULL" if math.isnan(value) or math.isinf(value) else repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def insert_statements(table: str, columns: list[str], rows: list[tuple], max_rows: int) -> list[str]:
    """Multi-row INSERTs, each ≤ max_rows rows and ≤ D1_MAX_STATEMENT_BYTES bytes."""
    head = f"INSERT INTO {table}__next ({', '.join(columns)}) VALUES "
    out: list[str] = []
    chunk: list[str] = []
    size = len(head.encode())
    for row in rows:
        values = "(" + ", ".join(literal(v) for v in row) + ")"
        extra = len(values.encode()) + 2
        if chunk and (len(chunk) >= max_rows or size + extra > D1_MAX_STATEMENT_BYTES):
            out.append(head + ", ".join(chunk))
            chunk, size = [], len(head.encode())
        chunk.append(values)
        size += extra
    if chunk:
        out.append(head + ", ".join(chunk))
    for statement in out:
        if len(statement.encode()) > D1_MAX_STATEMENT_BYTES:
            raise SystemExit(f"{table}: one row renders to more than {D1_MAX_STATEMENT_BYTES} bytes")
    return out


def sql_file(statements: list[str]) -> str:
    return "".join(s + ";\n" for s in statements)


def spotify_id(rng: random.Random, prefix: str) -> str:
    return prefix + "".join(rng.choice(BASE62) for _ in range(22 - len(prefix)))


def f32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]


def vector(track: dict) -> list[float]:
    out = []
    for name, low, high in COMPONENTS:
        raw = track[name]
        scaled = 0.0 if raw is None else (raw - low) / (high - low)
        out.append(f32(min(1.0, max(0.0, scaled))))
    return out


def cosine(a: list[float], b: list[float]) -> float:
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(x * x for x in b))
    if na == 0 or nb == 0:
        return 0.0
    return sum(x * y for x, y in zip(a, b)) / (na * nb)


def shard_of(track_id: str, count: int) -> int:
    return int(hashlib.sha256(track_id.encode()).hexdigest()[:8], 16) % count


def make_tracks(rng: random.Random, count: int) -> list[dict]:
    titles = ["Intro", "O'Brien's Song", "Semi; Colon", "Two\nLines", "Café Noir", "Untitled", "Rock 'n' Roll"]
    tracks = []
    for i in range(count):
        # Prefixes place ids in three ranges with gaps between them ("1…", "5…"/"6…", "a…"/"b…") so that
        # an id between shards exists and is unknown.
        tid = spotify_id(rng, ["0", "1", "5", "6", "a", "b"][i % 6])
        tracks.append({
            "spotify_id": tid,
            "tempo": round(rng.uniform(50, 210), 3),
            "energy": round(rng.random(), 4),
            "danceability": round(rng.random(), 4),
            "valence": round(rng.random(), 4),
            "acousticness": round(rng.random(), 5),
            "instrumentalness": round(rng.random() ** 3, 6),
            "speechiness": round(rng.random() * 0.3, 4),
            "liveness": round(rng.random() * 0.5, 4),
            "loudness": round(rng.uniform(-30, 1), 3),
            "key": rng.randrange(-1, 12),
            "mode": rng.randrange(0, 2),
            "time_signature": rng.choice([1, 3, 4, 4, 4, 5, 7]),
            "duration_ms": rng.randrange(60_000, 420_000),
            "popularity": rng.randrange(0, 101),
            "title": f"{titles[i % len(titles)]} {i}",
            "artist": f"Artist {i % 9}",
            "artist_id": spotify_id(random.Random(i % 9), "r"),
            "isrc": f"US{'ABC' if i % 2 else 'XY1'}{24:02d}{i:05d}",
            "album_id": spotify_id(rng, "L"),
            "release_year": rng.choice([None, 1987, 1999, 2011, 2024]),
        })
    # Two tracks share an ISRC (a re-release), one track has a null feature.
    tracks[3]["isrc"] = tracks[2]["isrc"]
    tracks[5]["instrumentalness"] = None
    return tracks


def write(out: Path, seed: int, track_count: int) -> dict:
    rng = random.Random(seed)
    tracks = make_tracks(rng, track_count)
    no_features = [{"spotify_id": spotify_id(rng, "6"), "isrc": f"GBAAA24{900 + i:05d}", "title": f"NF {i}",
                    "artist": "Artist 0"} for i in range(2)]
    by_id = {t["spotify_id"]: t for t in tracks}
    if len(by_id) != len(tracks):
        raise SystemExit("duplicate generated ids; pick another --seed")

    # -- vectors, shards, exact neighbours ----------------------------------------------------------
    tier_a = sorted((t for t in tracks if t["popularity"] >= TIER_A_MIN_POPULARITY), key=lambda t: t["spotify_id"])
    vectors = {t["spotify_id"]: vector(t) for t in tier_a}
    seeds = sorted(tier_a, key=lambda t: (-t["popularity"], t["spotify_id"]))[:SEEDS]
    neighbours: dict[str, list[tuple[str, float, int]]] = {}
    for s in seeds:
        sid = s["spotify_id"]
        scored = sorted(((-cosine(vectors[sid], v), cid) for cid, v in vectors.items() if cid != sid))
        neighbours[sid] = [(cid, -neg, rank) for rank, (neg, cid) in enumerate(scored[:TOP_K], start=1)]

    # -- xref, co-occurrence, genres ----------------------------------------------------------------------
    xref_rows = []
    for i, t in enumerate(tracks + no_features):
        method, confidence, mbid = [("isrc_exact", 1.0), ("isrc_fuzzy", 0.9), ("metadata_match", 0.93),
                                    ("no_match", 0.0)][i % 4] + (None,)
        if method != "no_match":
            mbid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if mbid is not None:  # publish loads the matched tracks only
            xref_rows.append((t["spotify_id"], t["isrc"], mbid, confidence, method))
    all_ids = sorted([t["spotify_id"] for t in tracks] + [t["spotify_id"] for t in no_features])
    pairs = {}
    for _ in range(track_count * 3):
        a, b = sorted(rng.sample(all_ids[:-3], 2))  # the last ids have no co-occurrence
        count = rng.randrange(3, 40)
        pmi = round(rng.uniform(-2, 9), 6)
        jaccard = round(rng.uniform(0, 0.6), 6)
        score = 0.6 * min(1.0, max(0.0, (pmi + 5) / 15)) + 0.4 * jaccard
        pairs[(a, b)] = (a, b, count, pmi, jaccard, score)
    genres = sorted({(t["artist_id"], g) for i, t in enumerate(tracks)
                     for g in (["pop", "rock 'n' roll; live", "drum;\nbass"][i % 3], "indie")})

    xref_columns = ["spotify_id", "isrc", "mbid", "match_confidence", "match_method"]
    hot = [t for t in tracks if t["popularity"] >= D1_FEATURES_MIN_POPULARITY]
    rows = {
        "spotify_mbid_xref": (xref_columns, xref_rows),
        "spotify_audio_features_cache": (["spotify_id", *FEATURES], [(t["spotify_id"], *(t[f] for f in FEATURES))
                                                                    for t in hot]),
        "playlist_cooccurrence": (["track_a", "track_b", "cooccurrence_count", "pmi_score", "jaccard_score",
                                   "score"], sorted(pairs.values())),
        "spotify_artist_genres": (["spotify_artist_id", "genre"], genres),
        "precomputed_similar": (["seed_spotify_id", "similar_spotify_id", "similarity_score", "rank"],
                                [(sid, cid, score, rank) for sid, ns in neighbours.items() for cid, score, rank in ns]),
    }

    # -- D1 import files ------------------------------------------------------------------------------
    d1 = out / "d1"
    d1.mkdir(parents=True)
    generation = hashlib.sha256(f"fixture-{seed}".encode()).hexdigest()[:8]
    files = [(D1_FILE.format(generation=generation, n=0), [ACCESS_LOG, ACCESS_LOG_INDEX]
              + [s for name, body in TABLES.items()
                 for s in (f"DROP TABLE IF EXISTS {name}__next", f"CREATE TABLE {name}__next {body}")])]
    n = 1
    for name, (columns, data) in rows.items():
        statements = insert_statements(name, columns, data, max_rows=12)
        # Two statements per file: a table spans several files, applied in name order.
        for start in range(0, len(statements), 2):
            files.append((D1_FILE.format(generation=generation, n=n), statements[start:start + 2]))
            n += 1
    swap = []
    for name in TABLES:
        swap += [f"DROP TABLE IF EXISTS {name}", f"ALTER TABLE {name}__next RENAME TO {name}", *INDEXES[name]]
    files.append((D1_FILE.format(generation=generation, n=n), swap))
    for file_name, statements in files:
        (d1 / file_name).write_text(sql_file(statements), encoding="utf-8")
    d1_db = sqlite3.connect(out / "d1.sqlite")
    for file_name, _ in files:
        d1_db.executescript((d1 / file_name).read_text(encoding="utf-8"))
    d1_db.close()

    # -- Vectorize ----------------------------------------------------------------------------------------
    names = [f"{INDEX_BASE}-{k}" for k in range(SHARD_COUNT)]
    shard_map = {"indexes": names, "shard_count": SHARD_COUNT, "hash": SHARD_HASH}
    xref_by_id = {r[0]: r for r in xref_rows}
    genres_by_artist: dict[str, list[str]] = {}
    for artist_id, genre in genres:
        genres_by_artist.setdefault(artist_id, []).append(genre)
    for k, name in enumerate(names):
        folder = out / "vectorize" / name
        folder.mkdir(parents=True)
        (folder / "index.json").write_text(json.dumps({
            "name": name, "dimensions": len(COMPONENTS), "metric": "cosine",
            "metadata_indexes": {"genres": "string", "popularity": "number", "year": "number",
                                 "promoted": "boolean"}}))
        lines = []
        for t in tier_a:
            if shard_of(t["spotify_id"], SHARD_COUNT) != k:
                continue
            metadata = {"isrc": t["isrc"], "title": t["title"], "artist": t["artist"],
                        "popularity": t["popularity"], "genres": genres_by_artist.get(t["artist_id"], [])}
            if t["spotify_id"] in xref_by_id:
                metadata["mbid"] = xref_by_id[t["spotify_id"]][2]
            if t["release_year"] is not None:
                metadata["year"] = t["release_year"]
            lines.append(json.dumps({"id": t["spotify_id"], "values": vectors[t["spotify_id"]], "metadata": metadata}))
        half = (len(lines) + 1) // 2  # two upsert files per index
        (folder / "00000.ndjson").write_text("".join(line + "\n" for line in lines[:half]))
        (folder / "00001.ndjson").write_text("".join(line + "\n" for line in lines[half:]))

    # -- KV -------------------------------------------------------------------------------------------------
    kv = out / "kv"
    kv.mkdir()
    af_items = [{"key": f"spotify:af:{t['spotify_id']}",
                 "value": json.dumps({"spotify_id": t["spotify_id"], "features": {f: t[f] for f in FEATURES}}),
                 "expiration_ttl": KV_TTL_AUDIO_FEATURES}
                for t in tracks if t["popularity"] >= KV_FEATURES_MIN_POPULARITY]
    topsim_items = [{"key": f"spotify:topsim:{sid}",
                     "value": json.dumps([{"spotify_id": c, "score": s, "rank": r} for c, s, r in ns]),
                     "expiration_ttl": KV_TTL_TOPSIM} for sid, ns in neighbours.items()]
    xref_items = [{"key": f"spotify:xref:{r[0]}", "value": json.dumps(dict(zip(xref_columns, r))),
                   "expiration_ttl": KV_TTL_XREF} for r in xref_rows[: len(xref_rows) // 2]]
    shard_item = [{"key": "spotify:vectorize:shards", "value": json.dumps(shard_map)}]
    for i, items in enumerate([af_items, topsim_items, xref_items, shard_item]):
        (kv / f"{i:05d}.json").write_text(json.dumps(items, indent=0))

    # -- R2 ---------------------------------------------------------------------------------------------------
    r2 = out / "r2"
    version = 1
    shard_dir = r2 / "features" / f"v{version}"
    shard_dir.mkdir(parents=True)
    ordered = sorted(tracks, key=lambda t: t["spotify_id"])
    bounds = [0, len(ordered) // 3, 2 * len(ordered) // 3, len(ordered)]
    columns = ["spotify_id", *FEATURES, "title", "artist", "isrc", "album_id", "release_year"]
    shards = []
    for n in range(3):
        part = ordered[bounds[n]:bounds[n + 1]]
        path = shard_dir / f"shard-{n:05d}.sqlite"
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE tracks (spotify_id TEXT PRIMARY KEY, tempo REAL, energy REAL, danceability REAL, "
                   "valence REAL, acousticness REAL, instrumentalness REAL, speechiness REAL, liveness REAL, "
                   "loudness REAL, key INTEGER, mode INTEGER, time_signature INTEGER, duration_ms INTEGER, "
                   "popularity INTEGER, title TEXT, artist TEXT, isrc TEXT, album_id TEXT, release_year INTEGER)")
        db.executemany(f"INSERT INTO tracks VALUES ({', '.join('?' * len(columns))})",
                       [tuple(t[c] for c in columns) for t in part])
        db.commit()
        db.close()
        body = path.read_bytes()
        shards.append({"key": f"features/v{version}/shard-{n:05d}.sqlite", "first_id": part[0]["spotify_id"],
                       "last_id": part[-1]["spotify_id"], "rows": len(part), "bytes": len(body),
                       "sha256": hashlib.sha256(body).hexdigest()})
    manifest = {"version": version, "created_at": "2026-12-01T00:00:00Z", "shards": shards, "vectorize": shard_map}
    (r2 / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return {"tracks": len(tracks), "tier_a": len(tier_a), "seeds": len(seeds), "pairs": len(pairs),
            "d1_files": len(files), "kv_items": len(af_items) + len(topsim_items) + len(xref_items) + 1}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="publish directory to create (must not exist or be empty)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--tracks", type=int, default=42)
    args = parser.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        print(f"{args.out}: exists and is not empty", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    print(json.dumps(write(args.out, args.seed, args.tracks)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
