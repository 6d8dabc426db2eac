"""Vectorize v2 over the REST API.

Writes are asynchronous: an upsert or delete returns a ``mutationId`` and the index applies it later;
``/info`` reports ``processedUpToMutation``. Mutation ids are opaque (not ordered), so ``wait`` accepts the
awaited id, any id this client issued after it, or a barrier it issued when other writers interleave (the
index applies mutations in order); mutations the caller names as earlier are not "other writers".
Metadata indexes are created before any upsert: vectors written earlier are not indexed for filtering.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from lib.cloudflare.http import CloudflareApi, CloudflareError, LimitError
from lib.cloudflare.limits import (
    VECTORIZE_MAX_DIMENSIONS,
    VECTORIZE_MAX_METADATA_INDEXES,
    VECTORIZE_MAX_UPSERT_BYTES,
    VECTORIZE_MAX_VECTORS_PER_UPSERT,
)

BARRIER_ID = "__aria_barrier__"  # never a Spotify id (22 base62 characters)
METRICS = ("cosine", "euclidean", "dot-product")
METADATA_TYPES = ("string", "number", "boolean")


def ndjson_lines(ndjson: bytes) -> int:
    """Records in an NDJSON body (a missing final newline still ends a record)."""
    return ndjson.count(b"\n") + (1 if ndjson and not ndjson.endswith(b"\n") else 0)


class VectorizeClient:
    """The account's Vectorize v2 indexes (one client serves every shard index)."""

    def __init__(self, api: CloudflareApi) -> None:
        self.api = api
        self._base = api.account_path("vectorize", "v2", "indexes")
        self._issued: dict[str, list[str]] = {}

    def __repr__(self) -> str:
        return "VectorizeClient()"

    def _call(self, index: str, operation: str, method: str, suffix: str = "", label: str = "-",
              **kwargs: Any) -> Any:
        path = f"{self._base}/{index}{suffix}" if index else self._base
        return self.api.call(f"vectorize:{index}", operation, method, path, label=label, **kwargs)

    def _issue(self, index: str, result: Any) -> str | None:
        mutation = result.get("mutationId") if isinstance(result, dict) else None
        if mutation:
            self._issued.setdefault(index, []).append(mutation)
        return mutation

    # -- indexes ------------------------------------------------------------------------------------------
    def get_index(self, index: str) -> dict[str, Any] | None:
        return self._call(index, "get index", "GET", missing_ok=True)

    def create_index(self, index: str, dimensions: int, metric: str, description: str = "") -> dict[str, Any]:
        if metric not in METRICS or not 1 <= dimensions <= VECTORIZE_MAX_DIMENSIONS:
            raise LimitError(f"vectorize:{index}", "create index", "-", f"needs 1..{VECTORIZE_MAX_DIMENSIONS} "
                             f"dimensions and a metric in {METRICS}; got {dimensions}, {metric!r}")
        body = {"name": index, "description": description,
                "config": {"dimensions": dimensions, "metric": metric}}
        return self.api.call(f"vectorize:{index}", "create index", "POST", self._base, json_body=body)

    def delete_index(self, index: str) -> None:
        """Delete ``index``; a missing index is not an error."""
        self._call(index, "delete index", "DELETE", missing_ok=True)
        self._issued.pop(index, None)

    def list_metadata_indexes(self, index: str) -> dict[str, str]:
        result = self._call(index, "list metadata indexes", "GET", "/metadata_index/list") or {}
        return {m["propertyName"]: m["indexType"] for m in result.get("metadataIndexes") or []}

    def create_metadata_index(self, index: str, property_name: str, index_type: str) -> str | None:
        result = self._call(index, "create metadata index", "POST", "/metadata_index/create",
                            json_body={"propertyName": property_name, "indexType": index_type})
        return self._issue(index, result)

    def ensure_index(self, index: str, dimensions: int, metric: str, metadata_indexes: Mapping[str, str]) -> None:
        """Create ``index`` and its metadata indexes when missing, and wait until they apply, so that every
        vector upserted afterwards is filterable. An existing index with another shape is an error."""
        target = f"vectorize:{index}"
        bad = {k: v for k, v in metadata_indexes.items() if v not in METADATA_TYPES}
        if bad:
            raise LimitError(target, "ensure index", "-", f"metadata index types must be in {METADATA_TYPES}; "
                             f"got {bad}")
        current = self.get_index(index)
        if current is None:
            self.create_index(index, dimensions, metric)
            existing: dict[str, str] = {}
        else:
            config = current.get("config") or {}
            if (config.get("dimensions"), config.get("metric")) != (dimensions, metric):
                raise CloudflareError(target, "ensure index", "-", f"index exists with dimensions "
                                      f"{config.get('dimensions')} and metric {config.get('metric')!r}; publish "
                                      f"needs {dimensions} and {metric!r} (delete it or pick another index name)")
            existing = self.list_metadata_indexes(index)
        clash = {k: (existing[k], v) for k, v in metadata_indexes.items() if k in existing and existing[k] != v}
        if clash:
            raise CloudflareError(target, "ensure index", "-", f"metadata indexes exist with other types "
                                  f"(have, want): {clash}")
        missing = [k for k in metadata_indexes if k not in existing]
        if len(existing) + len(missing) > VECTORIZE_MAX_METADATA_INDEXES:
            raise LimitError(target, "ensure index", "-", f"{len(existing) + len(missing)} metadata indexes "
                             f"exceed Vectorize's {VECTORIZE_MAX_METADATA_INDEXES} per index")
        for name in missing:
            self.create_metadata_index(index, name, metadata_indexes[name])
        if missing:
            # Wait on a barrier rather than the metadata mutations: a vector mutation surely shows up in
            # processedUpToMutation, and it is applied after the metadata indexes queued before it.
            self.wait(index, self.barrier(index, "metadata indexes"))

    # -- writes -------------------------------------------------------------------------------------------
    def upsert(self, index: str, ndjson: bytes, label: str) -> str | None:
        """One NDJSON upsert (≤ 5000 vectors, ≤ 100 MB); returns the mutation id."""
        count = ndjson_lines(ndjson)
        if count > VECTORIZE_MAX_VECTORS_PER_UPSERT or len(ndjson) > VECTORIZE_MAX_UPSERT_BYTES:
            raise LimitError(f"vectorize:{index}", "upsert", label, f"{count} vectors / {len(ndjson)} bytes "
                             f"exceed Vectorize's {VECTORIZE_MAX_VECTORS_PER_UPSERT} vectors and "
                             f"{VECTORIZE_MAX_UPSERT_BYTES} bytes per upsert")
        result = self._call(index, "upsert", "POST", "/upsert", label=label, data=ndjson,
                            content_type="application/x-ndjson")
        return self._issue(index, result)

    def delete_by_ids(self, index: str, ids: Sequence[str], label: str) -> str | None:
        if not ids:
            return None
        result = self._call(index, "delete_by_ids", "POST", "/delete_by_ids", label=label,
                            json_body={"ids": list(ids)})
        return self._issue(index, result)

    def info(self, index: str) -> dict[str, Any]:
        return self._call(index, "info", "GET", "/info") or {}

    def barrier(self, index: str, label: str = "barrier") -> str | None:
        """A mutation that changes nothing (delete an id no vector has), issued after everything so far."""
        return self.delete_by_ids(index, [BARRIER_ID], label)

    def wait(self, index: str, mutation_id: str | None = None, earlier: Sequence[str] = ()) -> None:
        """Poll ``/info`` until ``mutation_id`` is applied (None: the last mutation this client issued, and
        nothing at all — not a single request — when it issued none). ``mutation_id`` may come from another
        process (an executor's upsert awaited on the driver); ``earlier`` are mutations of other processes
        that the index accepted before ``mutation_id`` (the caller knows: their responses came back before
        its request went out), so seeing one of them is progress, not a foreign writer.

        Done when ``processedUpToMutation`` is ``mutation_id`` or a mutation this client issued after it. When
        the index reports a mutation this client does not know (another task wrote meanwhile, maybe after
        ``mutation_id``), the client issues a barrier and waits for that instead: the index applies mutations
        in order, so the barrier's turn comes after ``mutation_id``'s.
        """
        issued = self._issued.setdefault(index, [])
        if mutation_id is None:
            if not issued:
                return
            mutation_id = issued[-1]
        if mutation_id not in issued:
            issued.append(mutation_id)
        for mutation in earlier:
            if mutation not in issued:
                issued.insert(issued.index(mutation_id), mutation)
        settings = self.api.settings
        deadline = time.monotonic() + settings.poll_timeout_s
        unknown = None
        while True:
            accepted = set(issued[issued.index(mutation_id):])
            seen = self.info(index).get("processedUpToMutation")
            if seen in accepted:
                return
            if seen is not None and seen not in issued and seen != unknown:
                unknown = seen  # one barrier per foreign mutation seen, not one per poll
                self.barrier(index)  # appended to issued, hence accepted from the next poll on
            if time.monotonic() > deadline:
                raise CloudflareError(f"vectorize:{index}", "wait", "-", f"mutation {mutation_id} not processed "
                                      f"after {settings.poll_timeout_s:g} s (processedUpToMutation {seen}; "
                                      "cloudflare.poll_timeout_s)")
            time.sleep(settings.poll_interval_s)

    # -- reads --------------------------------------------------------------------------------------------
    def get_by_ids(self, index: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        if not ids:
            return []
        return list(self._call(index, "get_by_ids", "POST", "/get_by_ids", json_body={"ids": list(ids)}) or [])

    def query(self, index: str, vector: Sequence[float], top_k: int = 5, *, return_values: bool = False,
              return_metadata: str = "none", filter: Mapping[str, Any] | None = None,
              namespace: str | None = None) -> list[dict[str, Any]]:
        """The ``top_k`` nearest vectors as ``[{id, score, values?, metadata?}]``."""
        body: dict[str, Any] = {"vector": [float(v) for v in vector], "topK": top_k,
                                "returnValues": return_values, "returnMetadata": return_metadata}
        if filter:
            body["filter"] = dict(filter)
        if namespace is not None:
            body["namespace"] = namespace
        result = self._call(index, "query", "POST", "/query", json_body=body) or {}
        return list(result.get("matches") or [])


def ndjson_record(vector_id: str, values: Sequence[float], metadata: Mapping[str, Any] | None = None) -> bytes:
    """One upsert line (``{"id","values","metadata"}``), compact, UTF-8, newline-terminated."""
    record: dict[str, Any] = {"id": vector_id, "values": [float(v) for v in values]}
    if metadata:
        record["metadata"] = dict(metadata)
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode() + b"\n"
