"""Workers KV bulk writes and deletes over the REST API (bulk exists only there, not in a Worker binding).

A bulk reply lists ``unsuccessful_keys``; those are re-sent (only those) for ``cloudflare.kv_retry_rounds``
rounds with a growing pause — at least a second by default, since KV takes one write per second per key —
before the batch fails naming the keys left.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from lib.cloudflare.http import CloudflareApi, CloudflareError, LimitError
from lib.cloudflare.limits import (
    KV_MAX_BULK_BYTES,
    KV_MAX_KEY_BYTES,
    KV_MAX_KEYS_PER_BULK_DELETE,
    KV_MAX_PAIRS_PER_BULK,
    KV_MIN_EXPIRATION_TTL,
)


def _body(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


class KvClient:
    """One KV namespace."""

    def __init__(self, api: CloudflareApi, namespace_id: str, retry_rounds: int = 5) -> None:
        self.api = api
        self.namespace_id = namespace_id
        self.retry_rounds = retry_rounds
        self.target = f"kv:{namespace_id}"
        self._path = api.account_path("storage", "kv", "namespaces", namespace_id, "bulk")

    def __repr__(self) -> str:
        return f"KvClient({self.namespace_id})"

    def _check_keys(self, keys: Sequence[str], operation: str, label: str, most: int) -> None:
        if len(keys) > most:
            raise LimitError(self.target, operation, label, f"{len(keys)} keys exceed KV's {most} per request")
        for key in keys:
            if not key or key in (".", "..") or len(key.encode()) > KV_MAX_KEY_BYTES:
                raise LimitError(self.target, operation, label, f"key {key[:80]!r} is empty, '.'/'..' or over "
                                 f"{KV_MAX_KEY_BYTES} bytes")

    def put(self, items: Sequence[dict[str, Any]], label: str) -> int:
        """One bulk write of ``{key, value, expiration_ttl?, ...}`` items; returns the keys written."""
        keys = [item["key"] for item in items]
        self._check_keys(keys, "bulk write", label, KV_MAX_PAIRS_PER_BULK)
        for item in items:
            ttl = item.get("expiration_ttl")
            if ttl is not None and ttl < KV_MIN_EXPIRATION_TTL:
                raise LimitError(self.target, "bulk write", label, f"key {item['key']!r} has expiration_ttl {ttl}; "
                                 f"KV needs at least {KV_MIN_EXPIRATION_TTL} s")
            if not isinstance(item.get("value"), str):
                raise LimitError(self.target, "bulk write", label, f"key {item['key']!r}: value must be a string")
        return self._rounds("bulk write", "PUT", self._path, list(items), label, key_of=lambda item: item["key"])

    def delete(self, keys: Sequence[str], label: str) -> int:
        """One bulk delete (missing keys are not an error); returns the keys deleted."""
        self._check_keys(keys, "bulk delete", label, KV_MAX_KEYS_PER_BULK_DELETE)
        return self._rounds("bulk delete", "POST", f"{self._path}/delete", list(keys), label, key_of=str)

    def _rounds(self, operation: str, method: str, path: str, pending: list[Any], label: str, key_of: Any) -> int:
        done = 0
        settings = self.api.settings
        for round_number in range(self.retry_rounds + 1):
            if not pending:
                break
            if round_number:
                time.sleep(min(settings.backoff_max_s, max(settings.backoff_initial_s, 1e-3) * 2 ** (round_number - 1)))
            body = _body(pending)
            if len(body) > KV_MAX_BULK_BYTES:
                raise LimitError(self.target, operation, label, f"body of {len(body)} bytes exceeds KV's "
                                 f"{KV_MAX_BULK_BYTES} bytes per bulk request")
            result = self.api.call(self.target, operation, method, path, label=label, data=body,
                                   content_type="application/json") or {}
            failed = set(result.get("unsuccessful_keys") or [])
            done += int(result.get("successful_key_count", len(pending) - len(failed)))
            pending = [p for p in pending if key_of(p) in failed]
        if pending:
            shown = ", ".join(repr(key_of(p)) for p in pending[:5])
            raise CloudflareError(self.target, operation, label, f"{len(pending)} keys still unsuccessful after "
                                  f"{self.retry_rounds} retry rounds (cloudflare.kv_retry_rounds): {shown}"
                                  f"{' …' if len(pending) > 5 else ''}")
        return done
