"""What publish writes, as constants and small pure functions: the contract with the Worker
(``docs/publish-layout.md``), kept in one module so a key pattern, TTL or column changes in one place.

Sources: the spec's "D1 Schema" (six tables, verbatim, plus ``playlist_cooccurrence.score``), "Cache Key
Patterns" (keys and ``CACHE_TTLS``), "Vectorize Schema" (13 dimensions, metadata) and the layout doc.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jobs.vectors.layout import VECTOR_LENGTH

# -- KV (spec: Cache Key Patterns, CACHE_TTLS) --------------------------------------------------
DAY = 24 * 60 * 60
KV_AUDIO_FEATURES = "spotify:af:{id}"
KV_TOP_SIMILAR = "spotify:topsim:{id}"
KV_XREF = "spotify:xref:{id}"
KV_SHARD_MAP = "spotify:vectorize:shards"
TTL_AUDIO_FEATURES = 7 * DAY  # audioFeatures
TTL_TOP_SIMILAR = 7 * DAY  # topSimilar
TTL_XREF = 30 * DAY  # crossRef ("rarely changes")
AUDIO_FEATURE_FIELDS = ("tempo", "energy", "danceability", "valence", "acousticness", "instrumentalness",
                        "speechiness", "liveness", "loudness", "key", "mode", "time_signature", "duration_ms",
                        "popularity")

# -- Vectorize (spec: Vectorize Schema) ---------------------------------------------------------
DEFAULT_VECTORIZE_INDEX = "spotify-audio"
DIMENSIONS = VECTOR_LENGTH
METRIC = "cosine"
# Created before the first upsert (earlier vectors would not be indexed); at most 10 per index.
METADATA_INDEXES = {"genres": "string", "popularity": "number", "year": "number", "promoted": "boolean"}
SHARD_HASH = "sha256-prefix8-mod"


def shard_of(vector_id: str, shard_count: int) -> int:
    """``int(sha256(id)[:8], 16) % shard_count``: the Worker computes the same to pick an index."""
    return int(hashlib.sha256(vector_id.encode()).hexdigest()[:8], 16) % shard_count


def index_names(base: str, shard_count: int) -> list[str]:
    """One index keeps the configured name; above ``publish.vectorize_max_per_index`` ``{base}-{n}``."""
    return [base] if shard_count == 1 else [f"{base}-{n}" for n in range(shard_count)]


def shard_map(base: str, shard_count: int) -> dict[str, Any]:
    return {"indexes": index_names(base, shard_count), "shard_count": shard_count, "hash": SHARD_HASH}


def vectorize_index_base(config: Any) -> str:
    """``cloudflare.vectorize_index`` when that section exists (the real target's key), else the default.
    The local target uses the same name for its folder, so both targets hold the same layout."""
    try:
        name = config.cloudflare.vectorize_index
    except AttributeError:
        return DEFAULT_VECTORIZE_INDEX
    return name or DEFAULT_VECTORIZE_INDEX


def compact_json(value: Any) -> str:
    """The one JSON rendering of payloads: compact, UTF-8 (not \\u-escaped), keys in the given order."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


# -- R2 ----------------------------------------------------------------------------------------
MANIFEST_KEY = "manifest.json"
SHARD_KEY = "features/v{version}/shard-{n:05d}.sqlite"
BACKUP_KEY = "backup/{name}"
SHARD_COLUMNS: tuple[tuple[str, str], ...] = (
    ("spotify_id", "TEXT PRIMARY KEY"), ("tempo", "REAL"), ("energy", "REAL"), ("danceability", "REAL"),
    ("valence", "REAL"), ("acousticness", "REAL"), ("instrumentalness", "REAL"), ("speechiness", "REAL"),
    ("liveness", "REAL"), ("loudness", "REAL"), ("key", "INTEGER"), ("mode", "INTEGER"),
    ("time_signature", "INTEGER"), ("duration_ms", "INTEGER"), ("popularity", "INTEGER"), ("title", "TEXT"),
    ("artist", "TEXT"), ("isrc", "TEXT"), ("album_id", "TEXT"), ("release_year", "INTEGER"),
)
# WITHOUT ROWID: one b-tree keyed by spotify_id (no second index for the TEXT primary key), so a shard is
# smaller and a lookup reads fewer pages.
SHARD_DDL = ("CREATE TABLE tracks (" + ", ".join(f"{n} {t}" for n, t in SHARD_COLUMNS) + ") WITHOUT ROWID")


# -- D1 (spec: D1 Schema) ------------------------------------------------------------------------


@dataclass(frozen=True)
class D1Table:
    name: str
    columns: tuple[str, ...]  # column declarations, verbatim from the spec
    constraints: tuple[str, ...]  # table constraints, verbatim
    indexes: tuple[tuple[str, str], ...]  # (index name, column list)
    loaded: tuple[str, ...]  # the columns publish fills (the others keep their DEFAULT)

    @property
    def column_types(self) -> dict[str, str]:
        return {decl.split()[0]: decl.split()[1] for decl in self.columns}

    @property
    def primary_key(self) -> tuple[str, ...]:
        for decl in self.columns:
            if "PRIMARY KEY" in decl:
                return (decl.split()[0],)
        for constraint in self.constraints:
            if constraint.startswith("PRIMARY KEY"):
                inner = constraint[constraint.index("(") + 1 : constraint.index(")")]
                return tuple(part.strip() for part in inner.split(","))
        raise AssertionError(f"{self.name} has no primary key")

    def create(self, name: str | None = None, if_not_exists: bool = False) -> str:
        body = ",\n  ".join((*self.columns, *self.constraints))
        exists = "IF NOT EXISTS " if if_not_exists else ""
        return f"CREATE TABLE {exists}{name or self.name} (\n  {body}\n)"

    def create_indexes(self, if_not_exists: bool = False) -> list[str]:
        exists = "IF NOT EXISTS " if if_not_exists else ""
        return [f"CREATE INDEX {exists}{index} ON {self.name}({cols})" for index, cols in self.indexes]


D1_TABLES: dict[str, D1Table] = {
    t.name: t
    for t in (
        D1Table(
            "spotify_mbid_xref",
            ("spotify_id TEXT PRIMARY KEY", "isrc TEXT NOT NULL", "mbid TEXT", "match_confidence REAL",
             "match_method TEXT", "created_at INTEGER DEFAULT (unixepoch())",
             "updated_at INTEGER DEFAULT (unixepoch())"),
            (),
            (("idx_xref_isrc", "isrc"), ("idx_xref_mbid", "mbid")),
            ("spotify_id", "isrc", "mbid", "match_confidence", "match_method"),
        ),
        D1Table(
            "spotify_audio_features_cache",
            ("spotify_id TEXT PRIMARY KEY", "tempo REAL", "time_signature INTEGER", "key INTEGER", "mode INTEGER",
             "loudness REAL", "energy REAL", "danceability REAL", "speechiness REAL", "acousticness REAL",
             "instrumentalness REAL", "liveness REAL", "valence REAL", "duration_ms INTEGER", "popularity INTEGER",
             "cached_at INTEGER DEFAULT (unixepoch())"),
            (),
            (),
            ("spotify_id", "tempo", "time_signature", "key", "mode", "loudness", "energy", "danceability",
             "speechiness", "acousticness", "instrumentalness", "liveness", "valence", "duration_ms", "popularity"),
        ),
        D1Table(
            "playlist_cooccurrence",
            ("track_a TEXT NOT NULL", "track_b TEXT NOT NULL", "cooccurrence_count INTEGER", "pmi_score REAL",
             "jaccard_score REAL", "score REAL"),
            ("PRIMARY KEY (track_a, track_b)",),
            (("idx_cooccur_a", "track_a"), ("idx_cooccur_b", "track_b")),
            ("track_a", "track_b", "cooccurrence_count", "pmi_score", "jaccard_score", "score"),
        ),
        D1Table(
            "spotify_artist_genres",
            ("spotify_artist_id TEXT NOT NULL", "genre TEXT NOT NULL"),
            ("PRIMARY KEY (spotify_artist_id, genre)",),
            (("idx_genre", "genre"),),
            ("spotify_artist_id", "genre"),
        ),
        D1Table(
            "track_access_log",
            ("spotify_id TEXT PRIMARY KEY", "access_count INTEGER DEFAULT 1", "last_accessed INTEGER",
             "vectorized INTEGER DEFAULT 0", "promoted_at INTEGER"),
            (),
            (("idx_access_promotion", "access_count, vectorized"),),
            (),
        ),
        D1Table(
            "precomputed_similar",
            ("seed_spotify_id TEXT NOT NULL", "similar_spotify_id TEXT NOT NULL", "similarity_score REAL",
             "rank INTEGER"),
            ("PRIMARY KEY (seed_spotify_id, similar_spotify_id)",),
            (("idx_precomputed_seed", "seed_spotify_id, rank"),),
            ("seed_spotify_id", "similar_spotify_id", "similarity_score", "rank"),
        ),
    )
}
ACCESS_LOG = "track_access_log"  # created empty once; the Worker writes it; never overwritten
# Fill order of the D1 budget (the priorities).
D1_FILL_ORDER = ("spotify_mbid_xref", "precomputed_similar", "spotify_audio_features_cache",
                 "playlist_cooccurrence", "spotify_artist_genres")
NEXT_SUFFIX = "__next"


def next_name(table: str) -> str:
    return table + NEXT_SUFFIX


def create_next_sql(tables: Sequence[str]) -> list[str]:
    """Statements of a generation's first import file: fresh ``<table>__next`` tables (no secondary indexes:
    building them once after the load is cheaper), and the access log when it does not exist yet."""
    statements = []
    for table in tables:
        statements.append(f"DROP TABLE IF EXISTS {next_name(table)}")
        statements.append(D1_TABLES[table].create(next_name(table)))
    access = D1_TABLES[ACCESS_LOG]
    statements.append(access.create(if_not_exists=True))
    statements.extend(access.create_indexes(if_not_exists=True))
    return statements


def swap_sql(tables: Sequence[str]) -> list[str]:
    """Statements of a generation's last import file: every loaded ``__next`` replaces its table and gets the
    spec's indexes. One import file is applied atomically (D1 rolls a failed import back), so readers see the
    old tables or the new ones, never a mix."""
    statements = []
    for table in tables:
        statements.append(f"DROP TABLE IF EXISTS {table}")
        statements.append(f"ALTER TABLE {next_name(table)} RENAME TO {table}")
        statements.extend(D1_TABLES[table].create_indexes())
    return statements
