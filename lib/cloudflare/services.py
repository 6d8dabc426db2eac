"""``CloudflareTarget``: the publish target on the real services (D1, Vectorize v2, Workers KV, R2).

Built from the resolved config on whichever process sends. It pickles as its config alone: the REST
session, the boto3 client and the secrets are created on first use in the process that uses them, read from
that process's environment (``CLOUDFLARE_API_TOKEN``, ``R2_ACCESS_KEY_ID``, ``R2_SECRET_ACCESS_KEY``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lib.cloudflare.d1 import D1Client
from lib.cloudflare.http import ApiSettings, ApiStats, CloudflareApi, require_secret
from lib.cloudflare.kv import KvClient
from lib.cloudflare.r2 import R2Client
from lib.cloudflare.vectorize import VectorizeClient
from lib.config import Config, ConfigError

_REQUIRED = {
    "api": ("cloudflare.account_id",),
    "d1": ("cloudflare.account_id", "cloudflare.d1_database_id"),
    "vectorize": ("cloudflare.account_id",),
    "kv": ("cloudflare.account_id", "cloudflare.kv_namespace_id"),
    "r2": ("r2.bucket",),
}


class CloudflareTarget:
    """``lib.cloudflare.target.PublishTarget`` on the real services: one call per batch."""

    name = "cloudflare"

    def __init__(self, config: Config, env: Mapping[str, str] | None = None) -> None:
        self._config_json = config.to_json()
        self._env = dict(env) if env is not None else None  # tests only; None reads os.environ
        self._reset()

    def _reset(self) -> None:
        self._config = Config.from_json(self._config_json)
        self._api: CloudflareApi | None = None
        self._d1: D1Client | None = None
        self._vectorize: VectorizeClient | None = None
        self._kv: KvClient | None = None
        self._r2: R2Client | None = None

    def __getstate__(self) -> dict[str, Any]:
        if self._env is not None:
            raise TypeError("a CloudflareTarget built with an explicit env holds secrets and cannot be pickled")
        return {"config_json": self._config_json}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._config_json, self._env = state["config_json"], None
        self._reset()

    def __repr__(self) -> str:
        cf = self._config.cloudflare
        return f"CloudflareTarget(account={cf.account_id}, api={cf.api_base}, r2={self._config.r2.bucket})"

    # -- construction -------------------------------------------------------------------------------------
    def check(self, services: Sequence[str] = ("d1", "vectorize", "kv", "r2")) -> None:
        """Fail now, before any request, when a key or secret the given services need is missing."""
        for service in services:
            self._require(service)
        if set(services) - {"r2"}:
            require_secret("cloudflare_api_token", "the cloudflare target needs an API token", self._env)
        if "r2" in services:
            require_secret("r2_access_key_id", "R2 needs an S3 access key pair", self._env)
            require_secret("r2_secret_access_key", "R2 needs an S3 access key pair", self._env)

    def _require(self, service: str) -> None:
        missing = [key for key in _REQUIRED[service] if not self._config.get(key)]
        if missing:
            raise ConfigError(f"config key {', '.join(repr(k) for k in missing)} must be set for "
                              f"publish.target = cloudflare ({service})")

    @property
    def api(self) -> CloudflareApi:
        if self._api is None:
            self._require("api")
            self._api = CloudflareApi(ApiSettings.from_config(self._config), self._env)
        return self._api

    @property
    def d1(self) -> D1Client:
        if self._d1 is None:
            self._require("d1")
            self._d1 = D1Client(self.api, self._config.cloudflare.d1_database_id)
        return self._d1

    @property
    def vectorize(self) -> VectorizeClient:
        if self._vectorize is None:
            self._require("vectorize")
            self._vectorize = VectorizeClient(self.api)
        return self._vectorize

    @property
    def kv(self) -> KvClient:
        if self._kv is None:
            self._require("kv")
            cf = self._config.cloudflare
            self._kv = KvClient(self.api, cf.kv_namespace_id, cf.kv_retry_rounds)
        return self._kv

    @property
    def r2(self) -> R2Client:
        if self._r2 is None:
            self._require("r2")
            self._r2 = R2Client.from_config(self._config, self._env)
        return self._r2

    def stats(self) -> dict[str, float]:
        """REST requests sent by this client so far (every try counts), uploads, retries, 429s, budget waits."""
        return self._api.stats.as_dict() if self._api is not None else ApiStats().as_dict()

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
        self._reset()

    # -- D1 -----------------------------------------------------------------------------------------------
    def d1_import(self, sql: bytes | str, label: str) -> None:
        self.d1.import_sql(sql, label)

    def d1_execute(self, statements: Sequence[tuple[str, Sequence[Any]]], label: str) -> None:
        self.d1.batch(statements, label)

    def d1_query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self.d1.query(sql, params)

    # -- Vectorize ----------------------------------------------------------------------------------------
    def vectorize_ensure_index(self, index: str, dimensions: int, metric: str,
                               metadata_indexes: dict[str, str]) -> None:
        self.vectorize.ensure_index(index, dimensions, metric, metadata_indexes)

    def vectorize_upsert(self, index: str, ndjson: bytes, label: str) -> str | None:
        return self.vectorize.upsert(index, ndjson, label)

    def vectorize_delete(self, index: str, ids: Sequence[str], label: str) -> str | None:
        return self.vectorize.delete_by_ids(index, ids, label)

    def vectorize_wait(self, index: str, mutation_id: str | None, earlier: Sequence[str] = ()) -> None:
        self.vectorize.wait(index, mutation_id, earlier)

    def vectorize_drop_index(self, index: str) -> None:
        self.vectorize.delete_index(index)

    # -- KV -----------------------------------------------------------------------------------------------
    def kv_put(self, items: Sequence[dict[str, Any]], label: str) -> None:
        self.kv.put(items, label)

    def kv_delete(self, keys: Sequence[str], label: str) -> None:
        self.kv.delete(keys, label)

    # -- R2 -----------------------------------------------------------------------------------------------
    def r2_put(self, key: str, body: bytes | str, label: str) -> None:
        self.r2.put(key, body if isinstance(body, (bytes, bytearray)) else Path(body), label)

    def r2_get(self, key: str) -> bytes | None:
        return self.r2.get(key)

    def r2_delete(self, keys: Sequence[str], label: str) -> None:
        self.r2.delete(keys, label)
