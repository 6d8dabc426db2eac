"""The publish target protocol: what the publish job asks of a destination, one call per batch.

Two implementations: the embedded local target (``jobs/publish/local_target.py``: files under
``publish.local_dir``, a ``d1.sqlite`` loaded from the very import files the real target would send) and
the real services (``lib/cloudflare/services.py``: D1 import + ``/query``, Vectorize v2, KV bulk, R2 via
boto3). A target is built from the resolved config on whichever process sends — the driver or an executor
task — with secrets read from the environment there (``build_target``), so it must not hold live
connections when pickled. Every call is one batch that already fits the limits in ``limits``; the caller
(publish) builds the batches and records them in the ledger after the call returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class PublishTarget(Protocol):
    name: str  # "local" or "cloudflare"

    # D1 --------------------------------------------------------------------------------------
    def d1_import(self, sql: bytes | str, label: str) -> None:
        """Run one SQL import file — its bytes, or the path of a local file (publish writes them to disk and
        they are streamed: D1 takes 5 GB per file) — statements ending in ';\\n', no BEGIN/COMMIT, each ≤ 100 KB."""

    def d1_execute(self, statements: Sequence[tuple[str, Sequence[Any]]], label: str) -> None:
        """Small writes with bound parameters only (one ``/query`` batch; ≤ 100 parameters each)."""

    def d1_query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """A read with bound parameters; rows as dicts."""

    # Vectorize -------------------------------------------------------------------------------
    def vectorize_ensure_index(self, index: str, dimensions: int, metric: str,
                               metadata_indexes: dict[str, str]) -> None:
        """Create the index and its metadata indexes (before any upsert) when missing."""

    def vectorize_upsert(self, index: str, ndjson: bytes, label: str) -> str | None:
        """One NDJSON upsert (≤ 5000 vectors, ≤ 100 MB); returns the mutation id."""

    def vectorize_delete(self, index: str, ids: Sequence[str], label: str) -> str | None:
        """Delete by ids; returns the mutation id."""

    def vectorize_wait(self, index: str, mutation_id: str | None, earlier: Sequence[str] = ()) -> None:
        """Block until the index has processed ``mutation_id`` (writes are asynchronous); ``earlier``: mutations
        of other clients that the index accepted before it."""

    def vectorize_drop_index(self, index: str) -> None:
        """Delete an index that is no longer in the shard map."""

    # KV --------------------------------------------------------------------------------------
    def kv_put(self, items: Sequence[dict[str, Any]], label: str) -> None:
        """One bulk write of ``{key, value, expiration_ttl}`` items (≤ 10,000, ≤ 100 MB)."""

    def kv_delete(self, keys: Sequence[str], label: str) -> None:
        """One bulk delete (≤ 10,000 keys)."""

    # R2 --------------------------------------------------------------------------------------
    def r2_put(self, key: str, body: bytes | str, label: str) -> None:
        """Store an object; ``body`` is the bytes or a local file path (multipart above r2.multipart_bytes)."""

    def r2_get(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""

    def r2_delete(self, keys: Sequence[str], label: str) -> None:
        """Delete objects (missing keys are not an error)."""
