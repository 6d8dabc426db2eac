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
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    },
    # Free-form: any Spark property, passed through as --conf key=value.
    "spark_conf": {},
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
            20_000_000, "tracks and playlist rows resolve their rowid links inside the reading tasks up to this "
            "many catalog tracks (each Python worker holds ~35 bytes per track); above it, Spark joins", minimum=0),
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
        "d1_import_file_bytes": _i(100_000_000, "largest D1 import file; one task builds them in memory and imports "
                                   "them one at a time (a database under import serves nothing else); at most 5 GB "
                                   "(D1's limit)", minimum=100_000),
        "vectorize_max_per_index": _i(10_000_000, "vectors per Vectorize index; above it the ids are sharded into "
                                      "{index}-{n} (at most 10M, Vectorize's limit)", minimum=1),
        "kv_prewarm": _i(10_000, "most popular tracks whose features, top similar and xref are pre-warmed in KV",
                         minimum=0),
        "r2_shard_bytes": _i(32 * 1024 * 1024, "largest R2 cold-tier SQLite shard (a Worker loads one whole shard "
                             "into its 128 MB)", minimum=64 * 1024),
        "r2_backup": _b(False, "also upload the original dump files in paths.spotify to R2 backup/ (multipart)"),
        "max_parallel_tasks": _i(8, "tasks sending to one service at once (all share the account's 1200 requests "
                                 "per 5 minutes)", minimum=1),
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
    "graph": {
        "artist_top_k": _i(100, "similar artists kept per artist", minimum=1),
    },
    "report": {
        "dir": _p("data/report", "folder of the HTML report"),
    },
}

FREEFORM_SECTIONS = frozenset({"spark_conf"})

# Secrets come from the environment only; they never enter the config files, the JSON handed to the
# driver, logs or error messages.
SECRETS: dict[str, str] = {
    "cloudflare_api_token": "CLOUDFLARE_API_TOKEN",
    "r2_access_key_id": "R2_ACCESS_KEY_ID",
    "r2_secret_access_key": "R2_SECRET_ACCESS_KEY",
}

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
        if isinstance(raw, (int, float)):
            value = float(raw)
        elif from_text and isinstance(raw, str):
            try:
                value = float(raw)
            except ValueError:
                raise bad("a number") from None
        else:
            raise bad("a number")
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
    _check_publish(values["publish"])
    for section in ("vectors",):
        for key in ("tier_a_min_popularity", "tier_b_min_popularity"):
            if not 0 <= values[section][key] <= 100:
                raise ConfigError(f"config key '{section}.{key}' must lie in 0..100; got {values[section][key]}")


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
    lines = []
    for section, keys in SCHEMA.items():
        if section in FREEFORM_SECTIONS:
            lines.append(f"{section}.<any spark property> = <string>   passed to spark-submit --conf")
            continue
        for key, s in keys.items():
            choice = f" [{'|'.join(s.choices)}]" if s.choices else ""
            lines.append(f"{section}.{key} = {s.default!r}{choice}   {s.doc}")
    lines.append("secrets (environment only): " + ", ".join(SECRETS.values()))
    return "\n".join(lines)
