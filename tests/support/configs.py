"""One way to build a test configuration: defaults (no conf file, so local edits cannot leak in) with every
path inside ``base`` and a small local Spark, plus the overrides a test needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lib.config import Config, load_config


def make_config(base: Path, overrides: dict[str, Any] | None = None, **keys: Any) -> Config:
    """``overrides`` as ``{"section.key": value}``; keyword arguments as ``section__key=value``."""
    values: dict[str, Any] = {
        **{f"paths.{name}": str(base / name) for name in ("spotify", "musicbrainz", "warehouse", "work")},
        "spark.master": "local[2]",
        "spark.shuffle_partitions": 2,
        # Tests rerun jobs on purpose; the skip has tests of its own that turn it on.
        "runs.skip_unchanged": False,
        **(overrides or {}),
        **{name.replace("__", ".", 1): value for name, value in keys.items()},
    }
    return load_config(use_default_file=False, base_dir=base).with_overrides(values, base_dir=base)
