"""Layered, validated configuration.

Precedence, lowest first: the defaults declared in ``SCHEMA`` < the ``--conf`` TOML file
(``conf/local.toml`` when none is named) < each ``--set section.key=value`` < the environment, which
supplies secrets only (``SECRETS``). Every key is declared once here with its type and default, so an
unknown key or a wrong type is rejected by name before any Spark work starts.

Relative paths are resolved against the directory the command runs in; URIs (``s3a://…``) are kept.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib.cloudflare.limits import (
    API_REQUESTS_PER_WINDOW,
    D1_MAX_IMPORT_FILE_BYTES,
    R2_MAX_PART_BYTES,
    R2_MIN_PART_BYTES,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


class ConfigError(ValueError):
    """A configuration problem, phrased as one line that names the key and the source."""


@dataclass(frozen=True)
class Setting:
    kind: str  # str | path | int | float | bool | str_list
    default: Any
    doc: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None


def _s(default: str, doc: str, choices: tuple[str, ...] = ()) -> Setting:
    return Setting("str", default, doc, choices)


def _p(default: str, doc: str) -> Setting:
    return Setting("path", default, doc)


def _i(default: int, doc: str, minimum: float | None = 0) -> Setting:
    return Setting("int", default, doc, minimum=minimum)


def _f(default: float, doc: str, minimum: float | None = None) -> Setting:
    return Setting("float", default, doc, minimum=minimum)


def _b(default: bool, doc: str) -> Setting:
    return Setting("bool", default, doc)


SCHEMA: dict[str, dict[str, Setting]] = {
    "paths": {
        "spotify": _p("data/spotify", "folder with the Spotify release (.sqlite3 or .sqlite3.zst)"),
        "musicbrainz": _p("data/musicbrainz", "folder holding mbdump/ or mbdump.tar.bz2"),
        "warehouse": _p("data/warehouse", "Delta warehouse root (bronze/, gold/)"),
        "work": _p("data/work", "scratch space: unpacked dumps, build artefacts"),
        "spotify_layout": _s("real", "layout of paths.spotify", ("real", "spec")),
    },
    "spark": {
        "master": _s("local[*]", "Spark master URL"),
        "deploy_mode": _s("client", "spark-submit --deploy-mode", ("client", "cluster")),
        "app_name": _s("aria-signals", "prefix of the Spark application name"),
        "driver_memory": _s("4g", "spark-submit --driver-memory"),
        "executor_memory": _s("", "spark-submit --executor-memory (empty: Spark's default)"),
        "shuffle_partitions": _i(8, "spark.sql.shuffle.partitions", minimum=1),
        "ui": _b(False, "start the Spark web UI"),
        "log_level": _s("WARN", "Spark log level", ("ERROR", "WARN", "INFO", "DEBUG")),
        "python": _s("", "Python on the executors (empty: this virtualenv's interpreter)"),
        "progress_bar": _s("auto", "Spark's console progress bar (auto: when stdout is a terminal)",
                           ("auto", "true", "false")),
        "event_log": _b(False, "write Spark event logs to paths.work/spark-events (open them with the history "
                               "server, see README)"),
        "class_archive": _b(True, "./spark-submit.sh: the driver JVM (client mode) maps Spark's classes from a "
                                  "class-data-sharing archive that its first run writes under build/jvm "
                                  "(measured: a third less JVM CPU per run)"),
        "quick_jit_jobs": Setting("str_list", ["ingest"], "./spark-submit.sh: jobs whose driver JVM compiles with "
                                  "C1 only (-XX:TieredStopAtLevel=1): their JVM mostly schedules Python tasks, and "
                                  "C2's compilations cost more CPU than they save (docs/benchmarks.md)"),
    },
    # Free-form: any Spark property, passed through as --conf key=value.
    "spark_conf": {},
    "runs": {
        "record": _b(True, "record every job run in gold/_runs (a running row at start, the summary at the end)"),
        "skip_unchanged": _b(True, "skip a job whose input versions, source files, config and code equal those of "
                                   "its last successful run (--force sets false)"),
        "small_input_rows": _i(250_000, "a job whose Delta inputs hold at most this many rows in all (counted from "
                                        "the Delta logs) runs with one shuffle partition and no code generation "
                                        "(lib.spark.SMALL_DATA_CONF), where Spark's cost per stage and per query "
                                        "dwarfs the data; 0 turns this off", minimum=0),
    },
    "pipeline": {
        "from": _s("", "start the pipeline at this job (--from JOB)"),
        "only": Setting("str_list", [], "run only these jobs, in pipeline order (--only JOB[,JOB])"),
    },
    "delta": {
        "target_file_mb": _i(128, "target data file size for compaction", minimum=1),
        "vacuum_retention_hours": _i(168, "files removed longer ago than this are vacuumed"),
    },
    "sample": {
        "tracks": _i(20_000, "tracks in the generated sample dump", minimum=10),
        "seed": _i(42, "random seed; equal seeds give equal dumps"),
        "playlists": _i(0, "playlists to generate (0: tracks / 10)"),
        "layout": _s("real", "write the real release layout or the spec's assumed one", ("real", "spec")),
        "compress": _b(False, "write .sqlite3.zst files, as the release ships them"),
        "mb_isrc_layout": _s("31", "MusicBrainz isrc table layout (schema 31, or legacy with source)",
                             ("31", "legacy")),
    },
    "ingest": {
        "rows_per_task": _i(500_000, "rows each SQLite range task reads", minimum=1),
        "quick_check": _b(True, "run SQLite's PRAGMA quick_check on every input before reading"),
        "in_task_lookup_max_tracks": _i(
            -1, "artists, tracks and playlist rows resolve their rowid links inside the reading tasks when every "
            "Python worker can hold the catalog's lookups, else Spark joins: -1 decides by memory "
            "(ingest.worker_memory_mb against ~170 bytes per catalog track, docs/benchmarks.md); N >= 0 uses "
            "the in-task lookups up to N catalog tracks (0: always Spark joins)", minimum=-1),
        "worker_memory_mb": _i(
            0, "memory one Python worker may use, for the memory rule of ingest.in_task_lookup_max_tracks (0: "
            "spark.executor.pyspark.memory per executor core, else the executor memory overhead per core; in "
            "local mode half the memory the driver heap leaves, per core)"),
    },
    "cooccurrence": {
        "min_playlist_size": _i(5, "smallest qualifying playlist (distinct tracks)", minimum=1),
        "max_playlist_size": _i(500, "largest qualifying playlist (distinct tracks)", minimum=1),
        "min_cooccurrence": _i(3, "pairs seen in fewer qualifying playlists are dropped", minimum=1),
        "top_k": _i(100, "neighbours kept per track", minimum=1),
        "rank_by": _s("score", "ordering of cooccurrence_top", ("score", "pmi", "llr", "jaccard")),
        "pair_partitions": _i(0, "pair-counting tasks (0: one per 8M possible pairs, at least "
                                 "spark.shuffle_partitions)"),
        "chunks": _i(1, "count pairs in this many playlist-hash chunks, each saved to paths.work (resumable)",
                     minimum=1),
        "broadcast_dictionary": _b(True, "broadcast the track-id dictionary (false: shuffle joins, for tens of "
                                         "millions of kept tracks)"),
    },
    "xref": {
        "duration_tolerance_s": _f(3.0, "metadata tier: a duration gap up to this many seconds costs no confidence",
                                   minimum=0),
        "max_duration_gap_s": _f(10.0, "metadata tier: confidence falls linearly to x0.90 at this gap (seconds); "
                                 "larger gaps never match", minimum=0),
        "unknown_duration_factor": _f(0.93, "metadata tier: confidence factor when either duration is unknown",
                                      minimum=0),
        "min_confidence": _f(0.85, "metadata matches below this confidence are no_match (issue: 0.85)",
                             minimum=0.85),
        "max_block_size": _i(250, "metadata tier: blocks (same artist + title key) with more MB recordings are "
                             "skipped and counted, so common titles cannot explode the join", minimum=1),
        "fuzzy_titles": _b(True, "metadata tier pass B: same artist, same title digits, duration within "
                           "max_duration_gap_s, title by Levenshtein similarity"),
    },
    "vectors": {
        "tier_a_min_popularity": _i(30, "tier A (pre-vectorised) starts at this popularity"),
        "tier_b_min_popularity": _i(10, "tier B (on-demand) starts at this popularity"),
        "hybrid": _b(False, "also write hybrid_vector: unit audio vector + a 256-dim text embedding of "
                            "'{artist} - {title} [{genres}]' (WordLlama, shipped in its wheel)"),
        "hybrid_text_weight": _f(1.0, "length of the text part of hybrid_vector (the audio part has length 1)",
                                 minimum=0.0),
        "genre_rule": _s("spec", "detected_genres: the spec's top 3 profiles above 0.7, or the nearest profile only "
                         "(more precise, docs/benchmarks.md)", ("spec", "nearest")),
    },
    "similar": {
        "seed_count": _i(100_000, "most popular tracks that get precomputed neighbours", minimum=1),
        "top_k": _i(100, "neighbours per seed", minimum=1),
        "block_rows": _i(1_000_000, "rows of the split side (usually tier A candidates) per kNN task and "
                         "faiss index; the other side is broadcast", minimum=1),
        "seed_batch": _i(8192, "seeds per faiss search call inside a task (bounds task memory)", minimum=1),
        "search_margin": _i(32, "neighbours fetched per block beyond top_k + 1, so most seeds are proven "
                            "exact by the first search", minimum=0),
        "faiss_threads": _i(1, "OpenMP threads of faiss inside one Spark task (0: faiss default); "
                            "1 keeps concurrent tasks from oversubscribing the cores"),
        "broadcast": _s("auto", "side of the kNN join that is broadcast (auto: the smaller)",
                        ("auto", "seeds", "candidates")),
        "vector": _s("audio", "vector the neighbours are computed on (hybrid needs vectors.hybrid)",
                     ("audio", "hybrid")),
    },
    "publish": {
        "target": _s("local", "where results go: files under publish.local_dir, or the Cloudflare services",
                     ("local", "cloudflare")),
        "local_dir": _p("data/publish", "output folder of the local target (docs/publish-layout.md)"),
        "dry_run": _b(False, "print the plan (rows, bytes, batches, requests, D1 fill, monthly cost) and change "
                             "nothing"),
        "d1_max_bytes": _i(5_000_000_000, "D1 budget (rows + indexes, estimated); the spec keeps the hot cache in "
                           "5 GB; at most 10 GB (D1's limit per database)", minimum=1),
        "d1_import_file_bytes": _i(D1_MAX_IMPORT_FILE_BYTES, "largest D1 import file (default D1's own limit, "
                                   "5 GB): one task writes the files to its local disk (SPARK_LOCAL_DIRS, one at a "
                                   "time) and imports them one by one, streamed (a database under import serves "
                                   "nothing else); lower it where executors have less disk", minimum=100_000),
        "vectorize_max_per_index": _i(10_000_000, "vectors per Vectorize index; above it the ids are sharded into "
                                      "{index}-{n} (at most 10M, Vectorize's limit)", minimum=1),
        "kv_prewarm": _i(10_000, "most popular tracks whose features, top similar and xref are pre-warmed in KV",
                         minimum=0),
        "r2_shard_bytes": _i(32 * 1024 * 1024, "largest R2 cold-tier SQLite shard (a Worker loads one whole shard "
                             "into its 128 MB)", minimum=64 * 1024),
        "r2_backup": _b(False, "also upload the original dump files in paths.spotify to R2 backup/ (multipart)"),
        "progress_seconds": _f(30.0, "interval of the progress lines (batches done/total, rate, ETA) of long "
                               "pushes", minimum=0.1),
    },
    "promote": {
        "access_threshold": _i(3, "tracks read at least this often from the cold tier are promoted to Vectorize",
                               minimum=1),
        "batch_size": _i(1000, "tracks promoted per run, most accessed first", minimum=1),
        "max_vectors": _i(20_000_000, "never let Vectorize hold more vectors than this (published + promoted)",
                          minimum=0),
    },
    # The real services (publish.target = "cloudflare"). Secrets come from SECRETS, never from here.
    "cloudflare": {
        "api_base": _s("https://api.cloudflare.com/client/v4", "Cloudflare REST API base URL (https; plain http "
                       "only for a stand-in on localhost)"),
        "account_id": _s("", "Cloudflare account id (required by publish.target = cloudflare)"),
        "d1_database_id": _s("", "D1 database id (uuid)"),
        "vectorize_index": _s("spotify-audio", "Vectorize index name; shards are {index}-{n}"),
        "kv_namespace_id": _s("", "Workers KV namespace id"),
        "request_budget": _i(1000, "requests per 5 minutes this run may send, of the account's 1200 (the rest "
                             "is left to the dashboard, wrangler and the Workers' own API calls)", minimum=1),
        "concurrent_tasks": _i(4, "tasks that send at the same time; each gets request_budget / concurrent_tasks "
                               "requests per 5 minutes, so together they stay under the budget", minimum=1),
        "burst": _i(5, "requests one task may send back to back (taken from its share)", minimum=1),
        "max_in_flight": _i(2, "requests in flight at once from one process", minimum=1),
        "max_tries": _i(6, "tries per request on 429, 5xx and dropped connections before the batch fails",
                        minimum=1),
        "backoff_initial_s": _f(1.0, "first back-off on 5xx / connection errors (doubles per try, plus jitter)",
                                minimum=0.0),
        "backoff_max_s": _f(60.0, "longest back-off between two tries (a 429's retry-after is honoured as sent)",
                            minimum=0.0),
        "timeout_s": _f(120.0, "connect and read timeout of one request (D1 itself stops a request at 30 s)",
                        minimum=0.001),
        "poll_interval_s": _f(2.0, "pause between polls of a D1 import or a Vectorize index (each poll is a "
                              "request of the budget)", minimum=0.0),
        "poll_timeout_s": _f(1800.0, "a D1 import or Vectorize mutation not done after this long fails",
                             minimum=0.001),
        "kv_retry_rounds": _i(5, "rounds re-sending a KV bulk write's unsuccessful_keys before the batch fails"),
    },
    "r2": {
        "endpoint_url": _s("", "R2 S3 endpoint (empty: https://{cloudflare.account_id}.r2.cloudflarestorage.com)"),
        "bucket": _s("", "R2 bucket (required by publish.target = cloudflare)"),
        "region": _s("auto", "S3 region name (R2: auto)"),
        "multipart_bytes": _i(100 * 1024 * 1024, "objects larger than this upload in parts",
                              minimum=R2_MIN_PART_BYTES),
        "part_bytes": _i(64 * 1024 * 1024, "size of every multipart part but the last (raised when an object "
                         "would need more than 10,000 parts)", minimum=R2_MIN_PART_BYTES),
    },
    "graph": {
        "artist_top_k": _i(100, "similar artists kept per artist (also the voters of inferred genres)", minimum=1),
        "artist_count": _i(100_000, "most popular artists (popularity, then followers) in gold/artist_similarity",
                           minimum=1),
        "artist_min_cooccurrence": _i(3, "artist pairs held by fewer qualifying playlists are dropped", minimum=1),
        "artist_pair_partitions": _i(0, "artist pair-counting tasks (0: one per 8M possible pairs, at least "
                                        "spark.shuffle_partitions)"),
        "max_iterations": _i(20, "label propagation rounds at most", minimum=1),
        "convergence_fraction": _f(0.001, "label propagation stops when fewer than this fraction of the tracks "
                                          "change label in a round (0: when none does)", minimum=0.0),
        "min_genre_confidence": _f(0.05, "inferred genres need a confidence above this (0..1; bench/genres.py)",
                                   minimum=0.0),
        "partitions": _i(0, "tasks per label propagation / connected components round (0: spark.shuffle_partitions)"),
        "broadcast_max_vertices": _i(10_000_000, "label propagation broadcasts the labels (16 bytes per track, via "
                                     "the driver) up to this many tracks; above, each round shuffles the votes"),
    },
    "report": {
        "dir": _p("data/report", "folder of the HTML report (report.html, one self-contained file)"),
        "examples": _i(3, "popular tracks whose co-occurrence and audio neighbours are listed", minimum=1),
        "neighbours": _i(5, "neighbours listed per example track and source", minimum=1),
        "history_runs": _i(30, "latest runs listed in the run-history table", minimum=1),
    },
}

FREEFORM_SECTIONS = frozenset({"spark_conf"})
# Sections read by one job only: --help-config lists them once that job is registered (jobs/__init__.py).
SECTION_OWNERS: dict[str, str] = {
    "publish": "publish", "cloudflare": "publish", "r2": "publish", "promote": "promote", "graph": "graph",
    "report": "report",
}

# Secrets come from the environment only; they never enter the config files, the JSON handed to the
# driver, logs or error messages.
SECRETS: dict[str, str] = {
    "cloudflare_api_token": "CLOUDFLARE_API_TOKEN",
    "r2_access_key_id": "R2_ACCESS_KEY_ID",
    "r2_secret_access_key": "R2_SECRET_ACCESS_KEY",
}

REDACTED = "***"
# A key whose name says it holds a credential (e.g. spark_conf.spark.hadoop.fs.s3a.secret.key).
SECRET_KEY_WORDS = ("secret", "password", "token", "credential", "access.key", "access_key")


def is_secret_key(dotted: str) -> bool:
    lowered = dotted.lower()
    return any(word in lowered for word in SECRET_KEY_WORDS)


DEFAULT_CONF_FILE = Path(__file__).resolve().parent.parent / "conf" / "local.toml"


class Section(Mapping[str, Any]):
    """Read-only view of one config section with attribute access (``config.sample.tracks``)."""

    def __init__(self, name: str, values: Mapping[str, Any]) -> None:
        self._name = name
        self._values = dict(values)

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"config has no key '{self._name}.{key}'") from None

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Section({self._name}, {self._values})"


class Config:
    """A validated configuration. Immutable; ``with_overrides`` returns a changed copy."""

    def __init__(self, values: Mapping[str, Mapping[str, Any]]) -> None:
        self._values = {name: dict(section) for name, section in values.items()}

    def __getattr__(self, section: str) -> Section:
        if section.startswith("_"):
            raise AttributeError(section)
        try:
            return Section(section, self._values[section])
        except KeyError:
            raise AttributeError(f"config has no section '{section}'") from None

    def get(self, dotted: str) -> Any:
        section, key = _split_key(dotted)
        return self._values[section][key]

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: dict(section) for name, section in self._values.items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def redacted(self) -> dict[str, dict[str, Any]]:
        """The values with every secret-looking key's value replaced by ``***``: what run records and logs
        may hold (``to_json`` keeps the real values, for the driver only)."""
        return {name: {key: (REDACTED if is_secret_key(f"{name}.{key}") and value not in ("", None) else value)
                       for key, value in section.items()}
                for name, section in self._values.items()}

    @classmethod
    def from_json(cls, text: str) -> Config:
        return cls(json.loads(text))

    def with_overrides(self, overrides: Mapping[str, Any], base_dir: Path | None = None) -> Config:
        """A copy with ``{"section.key": value}`` applied and validated like ``--set``."""
        values = self.to_dict()
        for dotted, raw in overrides.items():
            section, key = _split_key(dotted)
            _apply(values, section, key, raw, "override", base_dir or Path.cwd(), from_text=False)
        _check_relations(values)
        return Config(values)

    @staticmethod
    def secret(name: str, env: Mapping[str, str] | None = None) -> str | None:
        """A secret from the environment (``SECRETS`` names the variable), or None when unset."""
        if name not in SECRETS:
            raise ConfigError(f"unknown secret '{name}' (known: {', '.join(sorted(SECRETS))})")
        value = (env if env is not None else os.environ).get(SECRETS[name])
        return value or None

    def __repr__(self) -> str:
        return f"Config({self.to_json()})"


def _split_key(dotted: str) -> tuple[str, str]:
    section, sep, key = dotted.partition(".")
    if not sep or not section or not key:
        raise ConfigError(f"config key '{dotted}' must look like section.key")
    return section, key


def defaults() -> dict[str, dict[str, Any]]:
    return {name: {key: s.default for key, s in keys.items()} for name, keys in SCHEMA.items()}


def _suggest(word: str, options: Iterable[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean '{prefix}{close[0]}'?)" if close else ""


def _coerce(setting: Setting, raw: Any, name: str, origin: str, base_dir: Path, from_text: bool) -> Any:
    """Turn ``raw`` (TOML value, or text from --set) into the declared kind, or raise ConfigError."""
    kind = setting.kind
    shown = repr(raw)

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"config key '{name}' expects {expected}, got {shown} (from {origin})")

    if kind in ("str", "path"):
        if not isinstance(raw, str):
            raise bad("a string")
        value: Any = raw
        if kind == "path" and value and "://" not in value:
            if "\x00" in value:  # the OS would refuse it later, with an error naming no key
                raise bad("a path without NUL characters")
            value = str((base_dir / value).resolve()) if not os.path.isabs(value) else os.path.normpath(value)
        if setting.choices and value not in setting.choices:
            raise ConfigError(
                f"config key '{name}' must be one of {', '.join(setting.choices)}; got {shown} (from {origin})"
            )
        return value
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        if from_text and isinstance(raw, str) and raw.lower() in ("true", "false", "1", "0", "yes", "no"):
            return raw.lower() in ("true", "1", "yes")
        raise bad("true or false")
    if kind == "int":
        if isinstance(raw, bool):
            raise bad("an integer")
        if isinstance(raw, int):
            value = raw
        elif from_text and isinstance(raw, str):
            try:
                value = int(raw.replace("_", ""))
            except ValueError:
                raise bad("an integer") from None
        else:
            raise bad("an integer")
    elif kind == "float":
        if isinstance(raw, bool):
            raise bad("a number")
        if isinstance(raw, (int, float)) or (from_text and isinstance(raw, str)):
            try:
                value = float(raw)
            except (ValueError, OverflowError):  # OverflowError: a TOML integer beyond the float range
                raise bad("a number") from None
        else:
            raise bad("a number")
        if not math.isfinite(value):  # "nan" compares false with every bound, so it would pass them all
            raise bad("a finite number")
    elif kind == "str_list":
        if from_text and isinstance(raw, str):
            return [part.strip() for part in raw.split(",") if part.strip()]
        if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
            return list(raw)
        raise bad("a list of strings")
    else:  # pragma: no cover - schema error
        raise AssertionError(f"unknown kind {kind}")
    if setting.minimum is not None and value < setting.minimum:
        raise ConfigError(f"config key '{name}' must be >= {setting.minimum:g}; got {shown} (from {origin})")
    return value


def _apply(
    values: dict[str, dict[str, Any]],
    section: str,
    key: str,
    raw: Any,
    origin: str,
    base_dir: Path,
    from_text: bool,
) -> None:
    name = f"{section}.{key}"
    if section not in SCHEMA:
        raise ConfigError(f"unknown config section '{section}' in {origin}{_suggest(section, SCHEMA)}")
    if section in FREEFORM_SECTIONS:
        if isinstance(raw, bool):
            raw = "true" if raw else "false"
        if not isinstance(raw, (str, int, float)):
            raise ConfigError(f"config key '{name}' expects a scalar value (from {origin})")
        values[section][key] = str(raw)
        return
    if key not in SCHEMA[section]:
        raise ConfigError(f"unknown config key '{name}' in {origin}{_suggest(key, SCHEMA[section], section + '.')}")
    values[section][key] = _coerce(SCHEMA[section][key], raw, name, origin, base_dir, from_text)


def _check_relations(values: Mapping[str, Mapping[str, Any]]) -> None:
    co = values["cooccurrence"]
    if co["min_playlist_size"] > co["max_playlist_size"]:
        raise ConfigError(
            "config key 'cooccurrence.min_playlist_size' "
            f"({co['min_playlist_size']}) exceeds 'cooccurrence.max_playlist_size' ({co['max_playlist_size']})"
        )
    vec = values["vectors"]
    if vec["tier_b_min_popularity"] > vec["tier_a_min_popularity"]:
        raise ConfigError(
            "config key 'vectors.tier_b_min_popularity' "
            f"({vec['tier_b_min_popularity']}) exceeds 'vectors.tier_a_min_popularity' "
            f"({vec['tier_a_min_popularity']})"
        )
    _check_cloudflare(values)
    graph = values["graph"]
    for key in ("convergence_fraction", "min_genre_confidence"):
        if not graph[key] < 1.0:
            raise ConfigError(f"config key 'graph.{key}' must lie in [0, 1); got {graph[key]}")
    _check_publish(values["publish"])
    for section in ("vectors",):
        for key in ("tier_a_min_popularity", "tier_b_min_popularity"):
            if not 0 <= values[section][key] <= 100:
                raise ConfigError(f"config key '{section}.{key}' must lie in 0..100; got {values[section][key]}")
    xref = values["xref"]
    if xref["duration_tolerance_s"] > xref["max_duration_gap_s"]:
        raise ConfigError(f"config key 'xref.duration_tolerance_s' ({xref['duration_tolerance_s']:g}) exceeds "
                          f"'xref.max_duration_gap_s' ({xref['max_duration_gap_s']:g})")
    for key in ("unknown_duration_factor", "min_confidence"):
        if xref[key] > 1:
            raise ConfigError(f"config key 'xref.{key}' must lie in 0..1; got {xref[key]:g}")
    if values["similar"]["vector"] == "hybrid" and not values["vectors"]["hybrid"]:
        raise ConfigError("config key 'similar.vector' is 'hybrid' but 'vectors.hybrid' is false "
                          "(no hybrid vectors are computed)")


def _check_cloudflare(values: Mapping[str, Mapping[str, Any]]) -> None:
    cf, r2 = values["cloudflare"], values["r2"]
    if cf["request_budget"] > API_REQUESTS_PER_WINDOW:
        raise ConfigError(f"config key 'cloudflare.request_budget' must be <= {API_REQUESTS_PER_WINDOW} (the "
                          f"account's limit per 5 minutes); got {cf['request_budget']}")
    if 2 * cf["concurrent_tasks"] > cf["request_budget"]:
        raise ConfigError(f"config key 'cloudflare.concurrent_tasks' ({cf['concurrent_tasks']}) must be at most "
                          f"half of 'cloudflare.request_budget' ({cf['request_budget']}): each task's token bucket "
                          "needs a share of at least 2 requests per window")
    base = cf["api_base"]
    host = base.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
    if not (base.startswith("https://") or (base.startswith("http://") and host in ("127.0.0.1", "localhost"))):
        raise ConfigError(f"config key 'cloudflare.api_base' must be an https:// URL (http:// only for "
                          f"127.0.0.1 or localhost, the token travels with every request); got {base!r}")
    if r2["part_bytes"] > R2_MAX_PART_BYTES:
        raise ConfigError(f"config key 'r2.part_bytes' must be <= {R2_MAX_PART_BYTES} (5 GiB); "
                          f"got {r2['part_bytes']}")


def _check_publish(pub: Mapping[str, Any]) -> None:
    """The publish sizes may not exceed the documented limits they are budgets within."""
    from lib.cloudflare import limits

    ceilings = {
        "d1_max_bytes": (limits.D1_MAX_DATABASE_BYTES, "D1's 10 GB per database"),
        "d1_import_file_bytes": (limits.D1_MAX_IMPORT_FILE_BYTES, "D1's 5 GB per import file"),
        "vectorize_max_per_index": (limits.VECTORIZE_MAX_VECTORS_PER_INDEX, "Vectorize's 10M vectors per index"),
        "r2_shard_bytes": (limits.WORKER_MEMORY_BYTES // 2, "half a Worker's 128 MB, which loads the whole shard"),
    }
    for key, (ceiling, why) in ceilings.items():
        if pub[key] > ceiling:
            raise ConfigError(f"config key 'publish.{key}' ({pub[key]:,}) exceeds {ceiling:,} ({why})")


def _load_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def parse_set(assignment: str) -> tuple[str, str, str]:
    """``section.key=value`` → (section, key, value). For spark_conf the key may contain dots."""
    dotted, sep, value = assignment.partition("=")
    if not sep:
        raise ConfigError(f"--set expects section.key=value, got '{assignment}'")
    section, key = _split_key(dotted.strip())
    return section, key, value.strip()


def load_config(
    conf_file: str | Path | None = None,
    sets: Iterable[str] = (),
    base_dir: Path | None = None,
    use_default_file: bool = True,
) -> Config:
    """Build a validated Config from the layers. ``conf_file=None`` means conf/local.toml if present."""
    base = base_dir or Path.cwd()
    values = defaults()
    # Defaults are relative paths too: resolve them like any other layer.
    for section, keys in SCHEMA.items():
        for key, setting in keys.items():
            values[section][key] = _coerce(setting, setting.default, f"{section}.{key}", "defaults", base, False)

    path = Path(conf_file) if conf_file is not None else (DEFAULT_CONF_FILE if use_default_file else None)
    if path is not None and (conf_file is not None or path.exists()):
        document = _load_file(path)
        origin = str(path)
        for section, table in document.items():
            if not isinstance(table, dict):
                raise ConfigError(f"'{section}' in {origin} must be a [section] table{_suggest(section, SCHEMA)}")
            for key, raw in _flatten(table):
                _apply(values, section, key, raw, origin, base, from_text=False)

    for assignment in sets:
        section, key, raw = parse_set(assignment)
        _apply(values, section, key, raw, f"--set {section}.{key}", base, from_text=True)

    _check_relations(values)
    return Config(values)


def _flatten(table: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested TOML tables inside a section become dotted keys (only meaningful for spark_conf)."""
    for key, value in table.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def describe() -> str:
    """Every key with its default and meaning, for ``--help-config``."""
    from jobs import JOBS

    lines = []
    for section, keys in SCHEMA.items():
        owner = SECTION_OWNERS.get(section)
        if owner is not None and owner not in JOBS:
            continue  # the job that reads this section is not part of the suite yet
        if section in FREEFORM_SECTIONS:
            lines.append(f"{section}.<any spark property> = <string>   passed to spark-submit --conf")
            continue
        for key, s in keys.items():
            choice = f" [{'|'.join(s.choices)}]" if s.choices else ""
            lines.append(f"{section}.{key} = {s.default!r}{choice}   {s.doc}")
    lines.append("secrets (environment only): " + ", ".join(SECRETS.values()))
    return "\n".join(lines)
