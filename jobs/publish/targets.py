"""Which target a process sends to: built from the resolved config wherever the sending runs (the driver or an
executor task), so nothing live is pickled; and the target's identity, which keys the ledger and the state.

``build_target`` imports the real services lazily: the local target needs neither ``requests`` nor ``boto3``
nor the Cloudflare section of the config.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lib.cloudflare.target import PublishTarget
from lib.config import SECRETS, Config

# Non-secret keys that say where the real target's data lives (the cloudflare engineer's sections).
_CLOUDFLARE_IDENTITY_KEYS = (
    ("cloudflare", "api_base"), ("cloudflare", "account_id"), ("cloudflare", "d1_database_id"),
    ("cloudflare", "vectorize_index"), ("cloudflare", "kv_namespace_id"), ("r2", "endpoint_url"), ("r2", "bucket"),
)


def build_target(config: Config) -> PublishTarget:
    """``publish.target``: "local" → files under ``publish.local_dir``; "cloudflare" → the REST/S3 clients."""
    if config.publish.target == "local":
        from jobs.publish.local_target import LocalTarget

        return LocalTarget(config.publish.local_dir)
    from lib.cloudflare.services import CloudflareTarget  # type: ignore[import-not-found]

    return CloudflareTarget(config)


def check_target(target: Any, services: tuple[str, ...] = ("d1", "vectorize", "kv", "r2")) -> None:
    """A target that can say so (the real one) fails here, before any request, on a missing key or secret."""
    check = getattr(target, "check", None)
    if callable(check):
        check(services)


@contextlib.contextmanager
def executor_secrets(spark: Any, config: Config) -> Iterator[None]:
    """The driver's Cloudflare/R2 secrets in the environment of the Python workers that send, while publish runs.

    Executor tasks build the real target themselves and read the secrets from their own environment, but a
    Python worker gets the environment its daemon was started with: without this, a session started before the
    secrets were set (a notebook, the test session) fails in the first task that sends. PySpark passes
    ``SparkContext.environment`` with every Python function it ships (never in the Spark conf, so it is in no
    event log or UI page); the entries are removed again afterwards."""
    if config.publish.target != "cloudflare" or spark is None:
        yield
        return
    environment = spark.sparkContext.environment
    added = {name: value for name in SECRETS.values() if (value := os.environ.get(name))
             and environment.get(name) != value}
    before = {name: environment[name] for name in added if name in environment}
    environment.update(added)
    try:
        yield
    finally:
        for name in added:
            environment.pop(name, None)
        environment.update(before)


def close_target(target: Any) -> None:
    close = getattr(target, "close", None)
    if callable(close):
        close()


def _value(config: Config, section: str, key: str) -> Any:
    try:
        return config.get(f"{section}.{key}")
    except KeyError:
        return None


INSTANCE_FILE = ".instance"


def local_instance(local_dir: str, create: bool = True) -> str:
    """The id of the local target's folder (a random id kept in ``<dir>/.instance``, created on first use;
    "new" when absent and not created). Part of the target's identity: a deleted or replaced folder is a new
    target, published in full, instead of one the state wrongly says holds everything."""
    path = Path(local_dir) / INSTANCE_FILE
    if path.is_file():
        return path.read_text().strip()
    if not create:
        return "new"
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f"{INSTANCE_FILE}.{uuid.uuid4().hex[:8]}.tmp")
    temp.write_text(uuid.uuid4().hex + "\n")
    temp.replace(path)
    return path.read_text().strip()


def target_identity(config: Config) -> str:
    """A stable description of where data goes (never a secret): the local folder and its instance id, or the
    account, database, index, namespace and bucket. Publishing the same warehouse to two places keeps two
    ledgers apart."""
    if config.publish.target == "local":
        instance = local_instance(config.publish.local_dir, create=not config.publish.dry_run)
        return f"local:{config.publish.local_dir}:{instance}"
    parts = [f"{s}.{k}={_value(config, s, k)}" for s, k in _CLOUDFLARE_IDENTITY_KEYS]
    return "cloudflare:" + ";".join(parts)


def target_id(identity: str) -> str:
    return hashlib.sha256(identity.encode()).hexdigest()[:16]
