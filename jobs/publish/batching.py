"""Packing records into requests that fit the documented limits, and checking a request against them.

Pure functions, no Spark: the executors pack their partition's records with ``pack``; the local target and
the tests' recording target check every request with the ``check_*`` functions, which re-measure the
payload as sent (they do not trust the packer). Every number comes from ``lib.cloudflare.limits``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from jobs.publish.layout import compact_json
from lib.cloudflare import limits
from lib.cloudflare.sql import file_statements

T = TypeVar("T")


class LimitError(ValueError):
    """A record or request that breaks a documented limit; the message names the limit."""


def pack(items: Iterable[T], size: Callable[[T], int], max_count: int, max_bytes: int, *, base: int = 0,
         separator: int = 0, what: str = "record") -> Iterator[list[T]]:
    """Consecutive items in batches of at most ``max_count`` items and ``base + Σ size + separator·(n−1)``
    bytes (streaming: one batch in memory). An item too large for a batch of its own is an error."""
    batch: list[T] = []
    used = base
    for item in items:
        item_bytes = size(item)
        if base + item_bytes > max_bytes:
            raise LimitError(f"a {what} of {item_bytes:,} bytes exceeds the {max_bytes:,}-byte request limit")
        extra = item_bytes + (separator if batch else 0)
        if batch and (len(batch) >= max_count or used + extra > max_bytes):
            yield batch
            batch, used, extra = [], base, item_bytes
        batch.append(item)
        used += extra
    if batch:
        yield batch


def min_batches(count: int, max_count: int, total_bytes: int = 0, max_bytes: int = 0) -> int:
    """The fewest requests the limits allow for ``count`` records of ``total_bytes``."""
    if count <= 0:
        return 0
    by_count = -(-count // max_count)
    by_bytes = -(-total_bytes // max_bytes) if max_bytes else 0
    return max(by_count, by_bytes, 1)


# -- payloads --------------------------------------------------------------------------------------


def ndjson(lines: Sequence[str]) -> bytes:
    """A Vectorize upsert body: one JSON object per line, each line ending in a newline."""
    return "".join(line + "\n" for line in lines).encode()


def line_bytes(line: str) -> int:
    return len(line.encode()) + 1


def kv_item(key: str, value: str, ttl: int | None) -> dict[str, Any]:
    item: dict[str, Any] = {"key": key, "value": value}
    if ttl is not None:
        item["expiration_ttl"] = int(ttl)
    return item


def kv_payload(items: Sequence[dict[str, Any]]) -> bytes:
    """A KV bulk-write body as sent: ``[{key, value, expiration_ttl?}, …]``."""
    return compact_json(list(items)).encode()


def kv_item_bytes(item: dict[str, Any]) -> int:
    return len(compact_json(item).encode())



# -- checks (what a request must satisfy) ---------------------------------------------------------


def _fail(message: str) -> None:
    raise LimitError(message)


def check_import_file(sql: bytes | str) -> None:
    """An import file (its bytes, or a local file path) as D1 would take it: within the file limit, each
    statement within the statement limit, no transaction words (the import is one transaction already)."""
    size = len(sql) if isinstance(sql, (bytes, bytearray)) else os.path.getsize(sql)
    if size > limits.D1_MAX_IMPORT_FILE_BYTES:
        _fail(f"D1 import file of {size:,} bytes exceeds {limits.D1_MAX_IMPORT_FILE_BYTES:,}")
    for statement in file_statements(sql):
        statement_bytes = len(statement.encode())
        if statement_bytes > limits.D1_MAX_STATEMENT_BYTES:
            _fail(f"D1 statement of {statement_bytes:,} bytes exceeds {limits.D1_MAX_STATEMENT_BYTES:,}: "
                  f"{statement[:60]}…")
        head = statement.lstrip().split(None, 1)[0].rstrip(";").upper()
        if head in ("BEGIN", "COMMIT", "END", "ROLLBACK"):
            _fail(f"D1 import files may not hold {head} (the import is one transaction already)")


def check_query(statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
    for sql, params in statements:
        if len(params) > limits.D1_MAX_BOUND_PARAMETERS:
            _fail(f"D1 statement with {len(params)} bound parameters exceeds {limits.D1_MAX_BOUND_PARAMETERS}")
        if len(sql.encode()) > limits.D1_MAX_STATEMENT_BYTES:
            _fail(f"D1 statement of {len(sql.encode()):,} bytes exceeds {limits.D1_MAX_STATEMENT_BYTES:,}")


def _check_vector_id(vector_id: Any) -> None:
    if not isinstance(vector_id, str) or not vector_id:
        _fail(f"Vectorize id {vector_id!r} is not a non-empty string")
    if len(vector_id.encode()) > limits.VECTORIZE_MAX_ID_BYTES:
        _fail(f"Vectorize id {vector_id[:70]!r} exceeds {limits.VECTORIZE_MAX_ID_BYTES} bytes")


def check_upsert(body: bytes, dimensions: int | None = None) -> int:
    """Checks one NDJSON upsert body; returns its vector count."""
    if len(body) > limits.VECTORIZE_MAX_UPSERT_BYTES:
        _fail(f"Vectorize upsert of {len(body):,} bytes exceeds {limits.VECTORIZE_MAX_UPSERT_BYTES:,}")
    lines = body.decode().splitlines()
    if len(lines) > limits.VECTORIZE_MAX_VECTORS_PER_UPSERT:
        _fail(f"Vectorize upsert of {len(lines)} vectors exceeds {limits.VECTORIZE_MAX_VECTORS_PER_UPSERT}")
    for line in lines:
        record = json.loads(line)
        _check_vector_id(record.get("id"))
        if dimensions is not None and len(record.get("values", ())) != dimensions:
            _fail(f"Vectorize vector {record['id']} has {len(record.get('values', ()))} values, not {dimensions}")
        metadata = len(compact_json(record.get("metadata", {})).encode())
        if metadata > limits.VECTORIZE_MAX_METADATA_BYTES:
            _fail(f"Vectorize metadata of {record['id']} is {metadata:,} bytes, over "
                  f"{limits.VECTORIZE_MAX_METADATA_BYTES:,}")
    return len(lines)


def check_vector_ids(ids: Sequence[str]) -> None:
    if len(ids) > limits.VECTORIZE_MAX_IDS_PER_DELETE:
        _fail(f"Vectorize delete of {len(ids)} ids exceeds {limits.VECTORIZE_MAX_IDS_PER_DELETE}")
    for vector_id in ids:
        _check_vector_id(vector_id)


def _check_kv_key(key: Any) -> None:
    if not isinstance(key, str) or key in ("", ".", ".."):
        _fail(f"KV key {key!r} is empty, '.' or '..'")
    if len(key.encode()) > limits.KV_MAX_KEY_BYTES:
        _fail(f"KV key {key[:60]!r}… exceeds {limits.KV_MAX_KEY_BYTES} bytes")


def check_kv_items(items: Sequence[dict[str, Any]]) -> None:
    if len(items) > limits.KV_MAX_PAIRS_PER_BULK:
        _fail(f"KV bulk write of {len(items)} pairs exceeds {limits.KV_MAX_PAIRS_PER_BULK}")
    body = len(kv_payload(items))
    if body > limits.KV_MAX_BULK_BYTES:
        _fail(f"KV bulk write of {body:,} bytes exceeds {limits.KV_MAX_BULK_BYTES:,}")
    for item in items:
        _check_kv_key(item.get("key"))
        value = item.get("value")
        if not isinstance(value, str):
            _fail(f"KV value of {item['key']} is not a string")
        if len(value.encode()) > limits.KV_MAX_VALUE_BYTES:
            _fail(f"KV value of {item['key']} exceeds {limits.KV_MAX_VALUE_BYTES:,} bytes")
        ttl = item.get("expiration_ttl")
        if ttl is not None and ttl < limits.KV_MIN_EXPIRATION_TTL:
            _fail(f"KV expiration_ttl {ttl} of {item['key']} is below {limits.KV_MIN_EXPIRATION_TTL} s")


def check_kv_keys(keys: Sequence[str]) -> None:
    if len(keys) > limits.KV_MAX_KEYS_PER_BULK_DELETE:
        _fail(f"KV bulk delete of {len(keys)} keys exceeds {limits.KV_MAX_KEYS_PER_BULK_DELETE}")
    for key in keys:
        _check_kv_key(key)


def check_r2_keys(keys: Sequence[str]) -> None:
    if len(keys) > limits.R2_MAX_KEYS_PER_DELETE:
        _fail(f"R2 delete of {len(keys)} keys exceeds {limits.R2_MAX_KEYS_PER_DELETE}")
    for key in keys:
        if not key or len(key.encode()) > limits.R2_MAX_KEY_BYTES:
            _fail(f"R2 key {key[:60]!r} is empty or exceeds {limits.R2_MAX_KEY_BYTES} bytes")
