"""D1 over the REST API: ``/query`` (bound parameters only), its batch form, ``/raw``, and the import flow
``wrangler d1 execute --remote --file`` uses for bulk loads (init with the file's md5 → PUT to the upload URL,
ETag checked → ingest → poll until ``complete`` or ``error``; a failed import rolls the database back).

Parameters travel as JSON values: text as strings, integers and reals as numbers, NULL as null (the API
schema types them as strings, but D1 binds JSON numbers as numbers and null as NULL, which keeps integer
columns integers; the stand-in does the same). NaN and ±∞ have no JSON form and bind as NULL, as the import
literals render them; booleans bind as 0/1. BLOBs cannot travel in JSON: they go through import files.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Sequence
from typing import Any

from lib.cloudflare.http import CloudflareApi, CloudflareError, LimitError
from lib.cloudflare.limits import D1_MAX_BOUND_PARAMETERS, D1_MAX_IMPORT_FILE_BYTES, D1_MAX_STATEMENT_BYTES

Statement = tuple[str, Sequence[Any]]


def bind_value(value: Any) -> Any:
    """One bound parameter as its JSON value (see the module docstring), or TypeError."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item") and not isinstance(value, (bytes, bytearray, memoryview)):  # numpy scalars
        return bind_value(value.item())
    raise TypeError(f"cannot bind a {type(value).__name__} in D1 /query JSON (BLOBs go through an import file)")


def _md5(data: bytes | str) -> str:
    """The md5 D1 checks an upload against, of bytes or of a local file (read in 1 MiB pieces)."""
    if isinstance(data, (bytes, bytearray)):
        return hashlib.md5(data).hexdigest()
    digest = hashlib.md5()
    with open(data, "rb") as source:
        for piece in iter(lambda: source.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


class D1Client:
    """One D1 database. ``label`` names the batch in every error."""

    def __init__(self, api: CloudflareApi, database_id: str) -> None:
        self.api = api
        self.database_id = database_id
        self.target = f"d1:{database_id}"
        self._path = api.account_path("d1", "database", database_id)

    def __repr__(self) -> str:
        return f"D1Client({self.database_id})"

    # -- /query and /raw ----------------------------------------------------------------------------------
    def _statement(self, sql: str, params: Sequence[Any], operation: str, label: str) -> dict[str, Any]:
        size = len(sql.encode())
        if size > D1_MAX_STATEMENT_BYTES:
            raise LimitError(self.target, operation, label, f"statement of {size} bytes exceeds D1's "
                             f"{D1_MAX_STATEMENT_BYTES} bytes per statement")
        if len(params) > D1_MAX_BOUND_PARAMETERS:
            raise LimitError(self.target, operation, label, f"statement binds {len(params)} parameters; D1 "
                             f"allows {D1_MAX_BOUND_PARAMETERS} per statement")
        try:
            bound = [bind_value(v) for v in params]
        except TypeError as exc:
            raise LimitError(self.target, operation, label, str(exc)) from None
        return {"sql": sql, "params": bound}

    def _post(self, endpoint: str, body: dict[str, Any], label: str) -> list[dict[str, Any]]:
        result = self.api.call(self.target, endpoint, "POST", f"{self._path}/{endpoint}", label=label,
                               json_body=body)
        if not isinstance(result, list):
            raise CloudflareError(self.target, endpoint, label, f"expected a list of statement results, got "
                                  f"{type(result).__name__}")
        for number, entry in enumerate(result, 1):
            if not isinstance(entry, dict) or entry.get("success") is False:
                error = entry.get("error") if isinstance(entry, dict) else entry
                raise CloudflareError(self.target, endpoint, label, f"statement {number} failed: {error}")
        return result

    def query(self, sql: str, params: Sequence[Any] = (), label: str = "query") -> list[dict[str, Any]]:
        """One statement; its rows as dicts."""
        result = self._post("query", self._statement(sql, params, "query", label), label)
        return list(result[-1].get("results") or []) if result else []

    def batch(self, statements: Sequence[Statement], label: str) -> list[dict[str, Any]]:
        """Several statements in one request (D1 runs them in order; one shared 30 s). One result each."""
        if not statements:
            return []
        body = {"batch": [self._statement(sql, params, "query", label) for sql, params in statements]}
        return self._post("query", body, label)

    def raw(self, sql: str, params: Sequence[Any] = (), label: str = "raw") -> tuple[list[str], list[list[Any]]]:
        """One statement; (column names, rows as lists) — smaller replies than ``query`` for wide reads."""
        result = self._post("raw", self._statement(sql, params, "raw", label), label)
        results = (result[-1].get("results") or {}) if result else {}
        return list(results.get("columns") or []), [list(r) for r in results.get("rows") or []]

    # -- import -------------------------------------------------------------------------------------------
    def import_sql(self, sql: bytes | str, label: str) -> dict[str, Any]:
        """Run one SQL file (its bytes, or a local file path, uploaded streaming) through the import API;
        returns the final ``result`` (``num_queries``, ``final_bookmark``, ``meta``). The database serves no
        queries while it runs."""
        size = len(sql) if isinstance(sql, (bytes, bytearray)) else os.path.getsize(sql)
        if size > D1_MAX_IMPORT_FILE_BYTES:
            raise LimitError(self.target, "import", label, f"import file of {size} bytes exceeds D1's "
                             f"{D1_MAX_IMPORT_FILE_BYTES} bytes")
        etag = _md5(sql)
        path = f"{self._path}/import"
        state = self.api.call(self.target, "import init", "POST", path, label=label,
                              json_body={"action": "init", "etag": etag})
        if isinstance(state, dict) and "upload_url" in state:
            self.api.upload(state["upload_url"], sql, target=self.target, operation="import upload", label=label,
                            expect_etag=etag)
            state = self.api.call(self.target, "import ingest", "POST", path, label=label,
                                  json_body={"action": "ingest", "etag": etag, "filename": state["filename"]})
        # else: D1 already has this file (same md5) and the init reply is the first poll reply.
        deadline = time.monotonic() + self.api.settings.poll_timeout_s
        while True:
            if not isinstance(state, dict):
                raise CloudflareError(self.target, "import", label, f"unexpected import reply {state!r}")
            if state.get("success") is False:
                raise CloudflareError(self.target, "import", label, f"import failed: {state.get('error')}")
            status = state.get("status")
            if status == "complete":
                return dict(state.get("result") or {})
            if status == "error":
                errors = state.get("errors") or [state.get("error")]
                raise CloudflareError(self.target, "import", label, "import failed and the database was rolled "
                                      f"back: {'; '.join(str(e) for e in errors)}")
            if time.monotonic() > deadline:
                raise CloudflareError(self.target, "import", label, f"import still {status!r} after "
                                      f"{self.api.settings.poll_timeout_s:g} s (cloudflare.poll_timeout_s)")
            time.sleep(self.api.settings.poll_interval_s)
            state = self.api.call(self.target, "import poll", "POST", path, label=label,
                                  json_body={"action": "poll", "current_bookmark": state.get("at_bookmark")})
