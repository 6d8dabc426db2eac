"""A real target wrapper that records every request it forwards (to a shared log file, since executor tasks
are separate processes) and can crash after a given number of writes — the tests' way to count what
publish sends and to kill a run midway. It wraps the target ``build_target`` makes; it checks nothing of
publish's own logic, it only measures the requests against the documented limits as they pass.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.publish.targets import build_target
from lib.config import Config

WRITES = ("d1_import", "d1_execute", "vectorize_upsert", "vectorize_delete", "vectorize_drop_index", "kv_put",
          "kv_delete", "r2_put", "r2_delete")
# Create-if-missing, not a batch: publish calls it before upserting, again on a resumed run.
IDEMPOTENT = ("vectorize_ensure_index",)


class InjectedCrash(RuntimeError):
    pass


def _measure(method: str, args: Sequence[Any]) -> dict[str, Any]:
    """Sizes of one request, as it is sent."""
    if method == "d1_import":
        body = _file_bytes(args[0])
        statements = [s for s in body.decode().split(";\n") if s.strip()]
        return {"bytes": len(body), "statements": len(statements),
                "max_statement_bytes": max((len(s.encode()) + 1 for s in statements), default=0),
                "transaction_words": sum(s.strip().split(None, 1)[0].upper() in ("BEGIN", "COMMIT")
                                         for s in statements)}
    if method == "d1_execute":
        return {"statements": len(args[0]), "max_params": max((len(p) for _, p in args[0]), default=0)}
    if method == "vectorize_upsert":
        lines = args[1].decode().splitlines()
        records = [json.loads(line) for line in lines]
        return {"vectors": len(lines), "bytes": len(args[1]),
                "max_id_bytes": max(len(r["id"].encode()) for r in records),
                "max_metadata_bytes": max(len(json.dumps(r["metadata"], ensure_ascii=False,
                                                         separators=(",", ":")).encode()) for r in records),
                "ids": [r["id"] for r in records]}
    if method == "vectorize_delete":
        return {"ids": list(args[1])}
    if method == "kv_put":
        items = list(args[0])
        body = json.dumps(items, ensure_ascii=False, separators=(",", ":")).encode()
        ttls = [i["expiration_ttl"] for i in items if "expiration_ttl" in i]
        return {"pairs": len(items), "bytes": len(body), "min_ttl": min(ttls) if ttls else None,
                "keys": [i["key"] for i in items]}
    if method == "kv_delete":
        return {"keys": list(args[0])}
    if method == "r2_put":
        body = args[1]
        size = os.path.getsize(body) if isinstance(body, str) else len(body)
        return {"key": args[0], "bytes": size}
    if method == "r2_delete":
        return {"keys": list(args[0])}
    return {}


def _file_bytes(body: bytes | str) -> bytes:
    """A request body given as bytes or as the path of a local file (publish streams D1 import files)."""
    return body if isinstance(body, bytes) else Path(body).read_bytes()


def _digest(method: str, args: Sequence[Any]) -> str:
    h = hashlib.sha256(method.encode())
    if method == "d1_import":
        args = (_file_bytes(args[0]), *args[1:])
    for arg in args:
        h.update(arg if isinstance(arg, bytes) else json.dumps(arg, sort_keys=True, default=str).encode())
    return h.hexdigest()


class RecordingTarget:
    def __init__(self, inner: Any, log_path: str, fail_after: int | None) -> None:
        self.inner = inner
        self.name = inner.name
        self.log_path = log_path
        self.fail_after = fail_after

    def _call(self, method: str, *args: Any) -> Any:
        if method not in WRITES and method not in IDEMPOTENT:
            return getattr(self.inner, method)(*args)
        with open(self.log_path + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if self.fail_after is not None and method in WRITES and len(calls(self.log_path)) >= self.fail_after:
                    raise InjectedCrash(f"injected crash before {method} #{self.fail_after + 1}")
                result = getattr(self.inner, method)(*args)
                label = args[-1] if method in WRITES and isinstance(args[-1], str) else ""
                entry = {"method": method, "label": label, "digest": _digest(method, args), "pid": os.getpid(),
                         **_measure(method, args)}
                with open(self.log_path, "a") as log:
                    log.write(json.dumps(entry) + "\n")
                return result
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def d1_import(self, sql: bytes | str, label: str) -> None:
        return self._call("d1_import", sql, label)

    def d1_execute(self, statements: Sequence[tuple[str, Sequence[Any]]], label: str) -> None:
        return self._call("d1_execute", statements, label)

    def d1_query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self._call("d1_query", sql, params)

    def vectorize_ensure_index(self, index: str, dimensions: int, metric: str, metadata_indexes: dict[str, str]):
        return self._call("vectorize_ensure_index", index, dimensions, metric, metadata_indexes)

    def vectorize_upsert(self, index: str, ndjson: bytes, label: str) -> str | None:
        return self._call("vectorize_upsert", index, ndjson, label)

    def vectorize_delete(self, index: str, ids: Sequence[str], label: str) -> str | None:
        return self._call("vectorize_delete", index, list(ids), label)

    def vectorize_wait(self, index: str, mutation_id: str | None, earlier: Sequence[str] = ()) -> None:
        return self._call("vectorize_wait", index, mutation_id, list(earlier))

    def vectorize_drop_index(self, index: str) -> None:
        return self._call("vectorize_drop_index", index)

    def kv_put(self, items: Sequence[dict[str, Any]], label: str) -> None:
        return self._call("kv_put", list(items), label)

    def kv_delete(self, keys: Sequence[str], label: str) -> None:
        return self._call("kv_delete", list(keys), label)

    def r2_put(self, key: str, body: bytes | str, label: str) -> None:
        return self._call("r2_put", key, body, label)

    def r2_get(self, key: str) -> bytes | None:
        return self._call("r2_get", key)

    def r2_delete(self, keys: Sequence[str], label: str) -> None:
        return self._call("r2_delete", list(keys), label)


@dataclass(frozen=True)
class RecordingFactory:
    """Picklable: executors build their own RecordingTarget around the configured target."""

    log_path: str
    fail_after: int | None = None

    def __call__(self, config: Config) -> RecordingTarget:
        return RecordingTarget(build_target(config), self.log_path, self.fail_after)


def calls(log_path: str, include_idempotent: bool = False) -> list[dict[str, Any]]:
    if not os.path.exists(log_path):
        return []
    with open(log_path) as handle:
        entries = [json.loads(line) for line in handle if line.strip()]
    return [e for e in entries if include_idempotent or e["method"] in WRITES]
