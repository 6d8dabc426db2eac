"""A Cloudflare REST stand-in for tests and the benchmark: a real HTTP server on 127.0.0.1 (port 0).

Why: Miniflare emulates Worker *bindings*, not the REST API publish talks to, and Vectorize has no local
emulation at all (``shared/reference/cloudflare-api.md``). This server speaks the documented envelopes
(``{success, errors: [{code, message}], messages, result}``) for:

- D1 ``/query`` (single and ``batch``), ``/raw`` and the import flow (init → PUT to an upload URL served here
  → ingest → poll), each database a real SQLite file under ``root``; SQLite's own limits are set to D1's
  (100 bound parameters, 100 KB statements, 2 MB values, 100 columns) and an authorizer refuses what D1
  refuses (BEGIN/COMMIT/SAVEPOINT, ATTACH, ``_cf_*`` tables); a failed import or batch rolls back;
- Vectorize v2 (indexes, metadata indexes, NDJSON upsert/insert, info, get_by_ids, delete_by_ids, exact
  query); writes are asynchronous: each ``/info`` call applies ``mutations_per_info`` queued mutations, and
  a vector is filterable on the metadata indexes that existed when it was applied;
- Workers KV bulk write and bulk delete (both forms), and reading a value back.

It checks the Bearer token, enforces every limit in ``lib.cloudflare.limits`` with the real error shape
(codes 7500, 40023, 971 and ``vectorize.unknown_content_type`` are documented; the other codes are the
stand-in's own and say so), records every rejection in ``violations``, can enforce the account rate limit
(``rate_limit=(requests, window_s)``) and inject 429 + retry-after, 5xx, dropped connections and a corrupted
upload ETag, or go down for good after a number of writes (``outage_after``: a crash midway). ``log`` keeps
every request (method, path, service, status, bytes, the body's sha256, times) so tests and the benchmark
can count requests, prove each stayed within the limits and that no batch arrived twice.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import math
import operator
import re
import secrets
import socket
import sqlite3
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from lib.cloudflare import limits as L

# Stand-in error codes that are not documented (the documented ones come from lib.cloudflare.limits).
ROUTE_ERROR = 7003              # Cloudflare's "Could not route to …" for unknown paths / ids
MALFORMED_ERROR = 7400          # request body is not what the endpoint takes
AUTH_MISSING_ERROR = 9106       # no Authorization header
AUTH_ERROR = 10000              # wrong token
METHOD_ERROR = 10405
VECTORIZE_ERROR = 40000         # stand-in's code for Vectorize limit / validation errors
VECTORIZE_NOT_FOUND = 3000
KV_ERROR = 10001                # stand-in's code for KV limit / validation errors
KV_NOT_FOUND = 10009
INTERNAL_ERROR = 10013
IMPORT_REPLY_WAIT_S = 5.0      # how long an import poll waits for the import before answering "active"
VECTOR_METRICS = ("cosine", "euclidean", "dot-product")


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str, limit: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.limit = status, code, message, limit


@dataclass
class LoggedRequest:
    method: str
    path: str
    service: str          # d1 | vectorize | kv | upload | other
    operation: str        # last path segment (query, raw, import, upsert, bulk, …)
    bytes_in: int
    started: float        # time.monotonic() on the server
    finished: float = 0.0
    status: int = 0       # 0: the connection was dropped
    fault: str | None = None
    authorization: bool = False   # an Authorization header was present (never its value)
    write: bool = False   # the request changed stored data
    detail: str = ""      # error message, if any
    digest: str = ""      # sha256 of the body: publish's batch id for upserts, import files and KV writes


@dataclass
class Violation:
    path: str
    limit: str
    message: str


@dataclass
class _Fault:
    kind: str             # "429" | "500" | "502" | "503" | "drop" | "bad_etag"
    remaining: int
    path_contains: str
    retry_after: float


@dataclass
class _Outage:
    remaining: int        # successful writes still allowed on paths containing path_contains
    path_contains: str


@dataclass
class _Vector:
    values: list[float]
    metadata: dict[str, Any]
    namespace: str | None
    indexed: frozenset[str] = frozenset()


@dataclass
class _Index:
    name: str
    dimensions: int
    metric: str
    description: str
    created_on: str
    metadata_indexes: dict[str, str] = field(default_factory=dict)
    applied_metadata: dict[str, str] = field(default_factory=dict)
    vectors: dict[str, _Vector] = field(default_factory=dict)
    pending: deque[tuple[str, str, Any]] = field(default_factory=deque)
    processed_up_to: str | None = None
    processed_at: str | None = None


@dataclass
class _Import:
    etag: str
    filename: str
    bookmark: str
    status: str = "active"
    messages: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    result: dict[str, Any] | None = None
    polls_left: int = 1
    started: bool = False
    done: threading.Event = field(default_factory=threading.Event)


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def envelope(result: Any = None, errors: Iterable[tuple[int, str]] = ()) -> dict[str, Any]:
    errs = [{"code": c, "message": m} for c, m in errors]
    return {"success": not errs, "errors": errs, "messages": [], "result": None if errs else result}


def split_statements(text: str) -> list[str]:
    """SQL text → statements, splitting at ``;`` only where SQLite says a statement is complete (so a ';'
    inside a literal or a trigger body does not split)."""
    out, start, pos = [], 0, text.find(";")
    while pos != -1:
        chunk = text[start:pos + 1]
        if sqlite3.complete_statement(chunk):
            if chunk.strip(" \t\r\n;"):
                out.append(chunk.strip())
            start = pos + 1
        pos = text.find(";", pos + 1)
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out


def _sqlite_message(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", None) or "SQLITE_ERROR"
    return f"{exc}: {name}"


class _D1Database:
    """One D1 database: a SQLite file with D1's limits, an authorizer like D1's, one writer at a time."""

    def __init__(self, path: Path, on_write: Callable[[], None]) -> None:
        self.path = path
        self.lock = threading.RLock()
        self._internal = False
        self._on_write = on_write
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, L.D1_MAX_BOUND_PARAMETERS)
        self.conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, L.D1_MAX_STATEMENT_BYTES)
        self.conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, L.D1_MAX_VALUE_BYTES)
        self.conn.setlimit(sqlite3.SQLITE_LIMIT_COLUMN, L.D1_MAX_COLUMNS)
        self.conn.set_authorizer(self._authorize)

    _WRITES = frozenset({sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE,
                         sqlite3.SQLITE_CREATE_TABLE, sqlite3.SQLITE_CREATE_INDEX, sqlite3.SQLITE_DROP_TABLE,
                         sqlite3.SQLITE_DROP_INDEX, sqlite3.SQLITE_ALTER_TABLE, sqlite3.SQLITE_CREATE_VIEW,
                         sqlite3.SQLITE_DROP_VIEW, sqlite3.SQLITE_CREATE_TRIGGER, sqlite3.SQLITE_DROP_TRIGGER})
    _CREATES = frozenset({sqlite3.SQLITE_CREATE_TABLE, sqlite3.SQLITE_CREATE_INDEX, sqlite3.SQLITE_CREATE_VIEW,
                          sqlite3.SQLITE_CREATE_TRIGGER})

    def _authorize(self, action: int, arg1: str | None, arg2: str | None, _db: str | None, _src: str | None) -> int:
        if action in (sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT) and not self._internal:
            return sqlite3.SQLITE_DENY
        if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
            return sqlite3.SQLITE_DENY
        if action in self._CREATES and (arg1 or "").lower().startswith("_cf_"):
            return sqlite3.SQLITE_DENY
        if action in self._WRITES and not (arg1 or "").startswith("sqlite_"):
            self._on_write()
        return sqlite3.SQLITE_OK

    def _control(self, sql: str) -> None:
        self._internal = True
        try:
            self.conn.execute(sql)
        finally:
            self._internal = False

    def run(self, statements: list[tuple[str, list[Any]]], raw: bool) -> list[dict[str, Any]]:
        """Run statements in one transaction (rolled back on error); one D1 result entry each."""
        with self.lock:
            self._control("BEGIN")
            try:
                results = [self._one(sql, params, raw) for sql, params in statements]
            except BaseException:
                self._control("ROLLBACK")
                raise
            self._control("COMMIT")
            return results

    def _one(self, sql: str, params: list[Any], raw: bool) -> dict[str, Any]:
        began = time.perf_counter()
        changes_before = self.conn.total_changes
        try:
            cursor = self.conn.execute(sql, params)
            rows = cursor.fetchall()
        except sqlite3.Error as exc:
            text = str(exc)
            if "not authorized" in text and re.match(r"\s*(BEGIN|COMMIT|END|ROLLBACK|SAVEPOINT|RELEASE)\b", sql,
                                                     re.I):
                text = ("To execute a transaction, please use the state.storage.transaction() or "
                        "state.storage.transactionSync() APIs instead of the SQL BEGIN TRANSACTION or SAVEPOINT "
                        "statements")
                raise ApiError(400, L.D1_ERROR_CODE, f"{text}: SQLITE_AUTH") from None
            limit = "D1_MAX_BOUND_PARAMETERS" if "too many SQL variables" in text else (
                "D1_MAX_VALUE_BYTES" if "too big" in text else None)
            raise ApiError(400, L.D1_ERROR_CODE, _sqlite_message(exc), limit) from None
        except (ValueError, OverflowError) as exc:  # a parameter sqlite3 cannot bind
            raise ApiError(400, L.D1_ERROR_CODE, f"{exc}: SQLITE_MISMATCH") from None
        columns = [d[0] for d in cursor.description or ()]
        results: Any = ({"columns": columns, "rows": [list(r) for r in rows]} if raw
                        else [dict(zip(columns, r)) for r in rows])
        changes = self.conn.total_changes - changes_before
        return {"results": results, "success": True, "meta": {
            "served_by": "cloudflare-standin", "duration": round((time.perf_counter() - began) * 1000, 3),
            "changes": changes, "last_row_id": cursor.lastrowid or 0, "changed_db": changes > 0,
            "size_after": self.path.stat().st_size, "rows_read": len(rows), "rows_written": changes}}

    def close(self) -> None:
        with self.lock:
            self.conn.close()


class CloudflareStandin:
    """Start with ``start()`` (or ``with``); ``url`` is the ``cloudflare.api_base`` to configure."""

    def __init__(self, root: Path | str, token: str, *, account_id: str = "test-account",
                 mutations_per_info: int = 1, import_polls: int = 1,
                 rate_limit: tuple[int, float] | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.token = token
        self.account_id = account_id
        self.mutations_per_info = mutations_per_info
        self.import_polls = import_polls
        self.rate_limit = rate_limit
        self.log: list[LoggedRequest] = []
        self.violations: list[Violation] = []
        self._lock = threading.RLock()
        self._faults: list[_Fault] = []
        self._outage: _Outage | None = None
        self._admitted: deque[float] = deque()
        self._databases: dict[str, _D1Database] = {}
        self._uploads: dict[tuple[str, str], bytes] = {}
        self._upload_sigs: dict[tuple[str, str], str] = {}
        self._imports: dict[tuple[str, str], _Import] = {}
        self._indexes: dict[str, _Index] = {}
        self._kv: dict[str, dict[str, dict[str, Any]]] = {}
        self._kv_failures: deque[int] = deque()
        self._local = threading.local()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> CloudflareStandin:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "cloudflare-standin"
            disable_nagle_algorithm = True  # else headers and body leave as two segments: +40 ms per reply

            def log_message(self, *_: Any) -> None:
                pass

            def do_GET(self) -> None:
                standin._handle(self)

            do_POST = do_PUT = do_DELETE = do_GET

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="cloudflare-standin",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for database in self._databases.values():
            database.close()
        self._databases.clear()

    def __enter__(self) -> CloudflareStandin:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the stand-in first"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/client/v4"

    # -- controls for tests -------------------------------------------------------------------------------
    def inject(self, kind: str, count: int = 1, path_contains: str = "", retry_after: float = 1) -> None:
        """The next ``count`` requests whose path contains ``path_contains`` get ``kind``: "429" (with
        ``retry-after``), "500"/"502"/"503", "drop" (connection closed without a reply) or "bad_etag" (an
        upload is stored but answered with a wrong ETag)."""
        if kind not in ("429", "500", "502", "503", "drop", "bad_etag"):
            raise ValueError(f"unknown fault {kind!r}")
        with self._lock:
            self._faults.append(_Fault(kind, count, path_contains, retry_after))

    def outage_after(self, writes: int, path_contains: str = "") -> None:
        """After ``writes`` more successful writes to paths containing ``path_contains``, answer every request
        (API and uploads) with 503 until ``end_outage()``: a service that goes down midway, for good."""
        with self._lock:
            self._outage = _Outage(writes, path_contains)

    def end_outage(self) -> None:
        with self._lock:
            self._outage = None

    def fail_kv_keys(self, count: int, requests: int = 1) -> None:
        """The next ``requests`` bulk writes store all but their first ``count`` keys and report those in
        ``unsuccessful_keys``."""
        with self._lock:
            self._kv_failures.extend([count] * requests)

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()
            self.violations.clear()

    def requests(self, service: str | None = None, *, write: bool | None = None) -> list[LoggedRequest]:
        with self._lock:
            return [r for r in self.log if (service is None or r.service == service)
                    and (write is None or r.write == write)]

    def d1_rows(self, database_id: str, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Read a database directly (not through the API, not logged)."""
        database = self._database(database_id)
        with database.lock:
            return database.conn.execute(sql, list(params)).fetchall()

    def d1_file(self, database_id: str) -> Path:
        return self._database(database_id).path

    def kv_items(self, namespace: str) -> dict[str, dict[str, Any]]:
        """``{key: {"value", "base64", "expiration", "expiration_ttl", "metadata"}}`` as stored (expired keys
        dropped)."""
        with self._lock:
            now = time.time()
            return {k: dict(v) for k, v in self._kv.get(namespace, {}).items()
                    if v["expiration"] is None or v["expiration"] > now}

    def vectors(self, index: str) -> dict[str, dict[str, Any]]:
        """The applied vectors of ``index``: ``{id: {"values", "metadata", "namespace"}}``."""
        with self._lock:
            ix = self._indexes.get(index)
            return {} if ix is None else {
                k: {"values": v.values, "metadata": v.metadata, "namespace": v.namespace}
                for k, v in ix.vectors.items()}

    def index_names(self) -> list[str]:
        with self._lock:
            return sorted(self._indexes)

    def pending_mutations(self, index: str) -> int:
        with self._lock:
            ix = self._indexes.get(index)
            return 0 if ix is None else len(ix.pending)

    def apply_mutations(self, index: str, count: int | None = None) -> None:
        with self._lock:
            self._apply(self._indexes[index], count)

    # -- the HTTP layer -----------------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        started = time.monotonic()
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        path, _, query = handler.path.partition("?")
        service, operation = self._classify(path)
        entry = LoggedRequest(handler.command, path, service, operation, len(body), started,
                              authorization="Authorization" in handler.headers, digest=hashlib.sha256(body).hexdigest())
        self._local.wrote = False
        status, headers, payload = 500, {}, b""
        try:
            fault = self._take_fault(path)
            if fault is not None and fault.kind == "drop":
                entry.fault = "drop"
                entry.finished = time.monotonic()
                with self._lock:  # logged before the client can notice, so a test never races the log
                    self.log.append(entry)
                handler.close_connection = True
                with contextlib.suppress(OSError):
                    handler.connection.shutdown(socket.SHUT_RDWR)
                return
            if self._down():
                entry.fault = "outage"
                status, headers, payload = self._fault_reply(_Fault("503", 0, "", 0))
            elif fault is not None and fault.kind != "bad_etag":
                entry.fault = fault.kind
                status, headers, payload = self._fault_reply(fault)
            elif path.startswith("/__upload/"):
                status, headers, payload = self._upload(handler, path, query, body, bad_etag=fault is not None)
                entry.fault = "bad_etag" if fault is not None else None
            else:
                status, headers, payload = self._api(handler, path, body)
        except ApiError as exc:
            if exc.limit:
                with self._lock:
                    self.violations.append(Violation(path, exc.limit, exc.message))
            entry.detail = exc.message
            headers = {"retry-after": str(exc.retry_after)} if isinstance(exc, _RateLimited) else {}
            status, payload = exc.status, self._json(envelope(errors=[(exc.code, exc.message)]))
        except Exception as exc:  # a stand-in bug: answer like Cloudflare's 500 and keep the detail in the log
            entry.detail = f"{type(exc).__name__}: {exc}"
            status, headers, payload = 500, {}, self._json(envelope(errors=[(INTERNAL_ERROR, entry.detail)]))
        finally:
            entry.write = bool(getattr(self._local, "wrote", False)) and 200 <= status < 300
        entry.status, entry.finished = status, time.monotonic()
        with self._lock:  # logged before the reply leaves, so a test never races the log
            self.log.append(entry)
            if entry.write and self._outage is not None and self._outage.path_contains in path:
                self._outage.remaining -= 1
        handler.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    @staticmethod
    def _json(document: Any) -> bytes:
        return json.dumps(document).encode()

    @staticmethod
    def _classify(path: str) -> tuple[str, str]:
        operation = path.rstrip("/").rsplit("/", 1)[-1]
        if path.startswith("/__upload/"):
            return "upload", "upload"
        for marker, service in (("/d1/", "d1"), ("/vectorize/", "vectorize"), ("/storage/kv/", "kv")):
            if marker in path:
                return service, operation
        return "other", operation

    def _down(self) -> bool:
        with self._lock:
            return self._outage is not None and self._outage.remaining <= 0

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.path_contains in path:
                    if fault.kind == "bad_etag" and not path.startswith("/__upload/"):
                        continue
                    fault.remaining -= 1
                    return fault
        return None

    def _fault_reply(self, fault: _Fault) -> tuple[int, dict[str, str], bytes]:
        if fault.kind == "429":
            text = "Please wait and consider throttling your request speed"
            return 429, {"retry-after": f"{fault.retry_after:g}"}, self._json(
                envelope(errors=[(L.API_RATE_LIMIT_ERROR_CODE, text)]))
        return int(fault.kind), {}, self._json(envelope(errors=[(INTERNAL_ERROR, "Internal server error")]))

    def _mark_write(self) -> None:
        self._local.wrote = True

    def _api(self, handler: BaseHTTPRequestHandler, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        auth = handler.headers.get("Authorization")
        if not auth:
            raise ApiError(400, AUTH_MISSING_ERROR, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")
        if not hmac.compare_digest(auth.encode(), f"Bearer {self.token}".encode()):
            raise ApiError(403, AUTH_ERROR, "Authentication error")
        self._admit(path)
        prefix = f"/client/v4/accounts/{self.account_id}"
        if not path.startswith(prefix + "/"):
            raise ApiError(404, ROUTE_ERROR, f"Could not route to {path}, perhaps your object identifier is "
                                             "invalid?")
        rest = path[len(prefix):]
        for method, pattern, name in _ROUTES:
            match = re.fullmatch(pattern, rest)
            if match:
                if method != handler.command:
                    continue
                result = getattr(self, name)(body=body, headers=handler.headers, **match.groupdict())
                if isinstance(result, bytes):  # KV values come back raw, not in an envelope
                    return 200, {"Content-Type": "application/octet-stream"}, result
                return 200, {}, self._json(envelope(result))
        if any(re.fullmatch(p, rest) for _, p, _ in _ROUTES):
            raise ApiError(405, METHOD_ERROR, f"Method {handler.command} not allowed for {rest}")
        raise ApiError(404, ROUTE_ERROR, f"Could not route to {path}, perhaps your object identifier is invalid?")

    def _admit(self, path: str) -> None:
        if self.rate_limit is None:
            return
        most, window = self.rate_limit
        with self._lock:
            now = time.monotonic()
            while self._admitted and self._admitted[0] <= now - window:
                self._admitted.popleft()
            if len(self._admitted) >= most:
                wait = max(1, math.ceil(self._admitted[0] + window - now))
                self.violations.append(Violation(path, "API_REQUESTS_PER_WINDOW",
                                                 f"more than {most} requests in {window:g} s"))
                raise _RateLimited(wait)
            self._admitted.append(now)

    @staticmethod
    def _load_json(body: bytes, what: str) -> Any:
        try:
            return json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, MALFORMED_ERROR, f"{what}: the request body is not JSON ({exc})") from None

    # -- D1 -----------------------------------------------------------------------------------------------
    def _database(self, database_id: str) -> _D1Database:
        with self._lock:
            database = self._databases.get(database_id)
            if database is None:
                if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", database_id):
                    raise ApiError(404, ROUTE_ERROR, f"database {database_id!r} not found")
                database = _D1Database(self.root / f"d1-{database_id}.sqlite", self._mark_write)
                self._databases[database_id] = database
            return database

    def _statements(self, payload: Any) -> list[tuple[str, list[Any]]]:
        if not isinstance(payload, dict):
            raise ApiError(400, MALFORMED_ERROR, "body must be {sql, params} or {batch: [...]}")
        items = payload["batch"] if isinstance(payload.get("batch"), list) else [payload]
        out: list[tuple[str, list[Any]]] = []
        for item in items:
            sql = item.get("sql") if isinstance(item, dict) else None
            params = (item.get("params") if isinstance(item, dict) else None) or []
            if not isinstance(sql, str) or not isinstance(params, list):
                raise ApiError(400, MALFORMED_ERROR, "each statement needs sql (string) and params (array)")
            parts = split_statements(sql)
            if params and len(parts) > 1:
                raise ApiError(400, L.D1_ERROR_CODE, "params given for several statements: SQLITE_ERROR")
            for part in parts:
                out.append((part, params))
        for sql, params in out:
            self._check_statement(sql, params)
        return out

    @staticmethod
    def _check_statement(sql: str, params: list[Any]) -> None:
        if len(sql.encode()) > L.D1_MAX_STATEMENT_BYTES:
            raise ApiError(400, L.D1_ERROR_CODE, "statement too long: SQLITE_TOOBIG", "D1_MAX_STATEMENT_BYTES")
        if len(params) > L.D1_MAX_BOUND_PARAMETERS:
            raise ApiError(400, L.D1_ERROR_CODE, f"too many SQL variables at offset {len(sql)}: SQLITE_ERROR",
                           "D1_MAX_BOUND_PARAMETERS")

    def _d1_query(self, db: str, body: bytes, **_: Any) -> list[dict[str, Any]]:
        return self._database(db).run(self._statements(self._load_json(body, "D1 query")), raw=False)

    def _d1_raw(self, db: str, body: bytes, **_: Any) -> list[dict[str, Any]]:
        return self._database(db).run(self._statements(self._load_json(body, "D1 raw")), raw=True)

    def _d1_import(self, db: str, body: bytes, **_: Any) -> dict[str, Any]:
        payload = self._load_json(body, "D1 import")
        action = payload.get("action") if isinstance(payload, dict) else None
        database = self._database(db)
        if action == "init":
            etag = payload.get("etag")
            if not isinstance(etag, str) or not re.fullmatch(r"[0-9a-f]{32}", etag):
                raise ApiError(400, MALFORMED_ERROR, "init needs etag: the md5 of the file as 32 hex digits")
            filename = f"{etag}.sql"
            with self._lock:
                if (db, filename) in self._uploads:  # already uploaded: D1 starts the import right away
                    return self._start_import(db, database, etag, filename)
                signature = secrets.token_hex(16)
                self._upload_sigs[(db, filename)] = signature
            return {"success": True, "filename": filename,
                    "upload_url": f"http://127.0.0.1:{self.port}/__upload/{db}/{filename}"
                                  f"?X-Amz-Signature={signature}"}
        if action == "ingest":
            etag, filename = payload.get("etag"), payload.get("filename")
            with self._lock:
                data = self._uploads.get((db, filename))
            if data is None or hashlib.md5(data).hexdigest() != etag:
                return {"success": False, "error": f"file {filename!r} with etag {etag!r} was not uploaded"}
            return self._start_import(db, database, etag, filename)
        if action == "poll":
            bookmark = payload.get("current_bookmark")
            with self._lock:
                job = self._imports.get((db, bookmark))
                if job is None:
                    return {"success": False, "error": f"no import at bookmark {bookmark!r}"}
                if job.status == "active" and job.polls_left > 0:
                    job.polls_left -= 1
                    return self._import_reply(job)
            return self._advance_import(db, database, job)
        raise ApiError(400, MALFORMED_ERROR, f"unknown import action {action!r} (init, ingest, poll)")

    def _start_import(self, db: str, database: _D1Database, etag: str, filename: str) -> dict[str, Any]:
        with self._lock:
            job = _Import(etag, filename, f"bookmark-{uuid.uuid4().hex[:12]}", polls_left=self.import_polls)
            self._imports[(db, job.bookmark)] = job
        self._mark_write()
        if job.polls_left <= 0:
            return self._advance_import(db, database, job)
        return self._import_reply(job)

    def _advance_import(self, db: str, database: _D1Database, job: _Import) -> dict[str, Any]:
        """D1 runs an import server-side and a poll only reports on it: the file executes in a thread of its own
        (started once), and the reply waits up to ``IMPORT_REPLY_WAIT_S`` for it — a test-sized file is
        complete in that reply, a file that takes minutes answers ``active`` until it is (a poll that executed
        it inline would outlast the client's read timeout)."""
        with self._lock:
            start, job.started = not job.started, True
        if start:
            threading.Thread(target=self._run_import, args=(db, database, job), daemon=True,
                             name=f"d1-import-{job.bookmark}").start()
        job.done.wait(IMPORT_REPLY_WAIT_S)
        return self._import_reply(job)

    def _run_import(self, db: str, database: _D1Database, job: _Import) -> None:
        """Execute the uploaded file once, in one transaction: all of it or, on any error, none."""
        try:
            self._execute_import(db, database, job)
        finally:
            job.done.set()

    def _execute_import(self, db: str, database: _D1Database, job: _Import) -> None:
        with database.lock:
            if job.status != "active":
                return
            with self._lock:
                data = self._uploads[(db, job.filename)]
            began = time.perf_counter()
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                job.status, job.errors = "error", [f"the file is not UTF-8 text: {exc}"]
                return
            statements = split_statements(text)
            before = database.conn.total_changes
            database._control("BEGIN")
            try:
                for number, sql in enumerate(statements, 1):
                    try:
                        self._check_statement(sql, [])
                        database._one(sql, [], raw=False)
                    except ApiError as exc:
                        if exc.limit:
                            with self._lock:
                                self.violations.append(Violation(f"import {job.filename}", exc.limit, exc.message))
                        raise ApiError(400, exc.code, f"statement {number}: {exc.message}") from None
            except ApiError as exc:
                database._control("ROLLBACK")
                job.status, job.errors = "error", [exc.message]
                return
            database._control("COMMIT")
            changes = database.conn.total_changes - before
            job.result = {"success": True, "final_bookmark": job.bookmark, "num_queries": len(statements),
                          "meta": {"served_by": "cloudflare-standin", "duration":
                                   round((time.perf_counter() - began) * 1000, 3), "changes": changes,
                                   "last_row_id": 0, "changed_db": changes > 0,
                                   "size_after": database.path.stat().st_size, "rows_read": 0,
                                   "rows_written": changes}}
            job.status = "complete"  # after the result: a concurrent poll never sees complete without it

    @staticmethod
    def _import_reply(job: _Import) -> dict[str, Any]:
        reply: dict[str, Any] = {"success": True, "type": "import", "at_bookmark": job.bookmark,
                                 "status": job.status, "messages": list(job.messages), "errors": list(job.errors)}
        if job.result is not None:
            reply["result"] = job.result
        return reply

    def _upload(self, handler: BaseHTTPRequestHandler, path: str, query: str, body: bytes,
                bad_etag: bool) -> tuple[int, dict[str, str], bytes]:
        """A presigned PUT, like R2's: the signature is in the query; an Authorization header is refused."""
        def s3_error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
            xml = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}"
                   "</Message></Error>")
            return status, {"Content-Type": "application/xml"}, xml.encode()

        parts = path.split("/")
        if handler.command != "PUT" or len(parts) != 4:
            return s3_error(405, "MethodNotAllowed", "PUT the file to the upload URL")
        db, filename = parts[2], parts[3]
        signature = dict(p.partition("=")[::2] for p in query.split("&") if p).get("X-Amz-Signature")
        with self._lock:
            expected = self._upload_sigs.get((db, filename))
        if "Authorization" in handler.headers:
            return s3_error(400, "InvalidArgument", "Only one auth mechanism allowed")
        if expected is None or signature != expected:
            return s3_error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match")
        if len(body) > L.D1_MAX_IMPORT_FILE_BYTES:
            with self._lock:
                self.violations.append(Violation(path, "D1_MAX_IMPORT_FILE_BYTES", f"{len(body)} bytes"))
            return s3_error(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
        with self._lock:
            self._uploads[(db, filename)] = body
        self._mark_write()
        etag = hashlib.md5(body).hexdigest()
        if bad_etag:
            etag = hashlib.md5(body + b"corrupted").hexdigest()
        return 200, {"ETag": f'"{etag}"', "Content-Type": "text/plain"}, b""

    # -- Vectorize ----------------------------------------------------------------------------------------
    def _index(self, name: str) -> _Index:
        ix = self._indexes.get(name)
        if ix is None:
            raise ApiError(404, VECTORIZE_NOT_FOUND, f"vectorize.index.not_found: no index named {name!r}")
        return ix

    @staticmethod
    def _index_view(ix: _Index) -> dict[str, Any]:
        return {"name": ix.name, "description": ix.description,
                "config": {"dimensions": ix.dimensions, "metric": ix.metric},
                "created_on": ix.created_on, "modified_on": ix.created_on}

    def _vz_create(self, body: bytes, **_: Any) -> dict[str, Any]:
        payload = self._load_json(body, "Vectorize create")
        config = (payload or {}).get("config") or {}
        name, dims, metric = (payload or {}).get("name"), config.get("dimensions"), config.get("metric")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", name):
            raise ApiError(400, VECTORIZE_ERROR, f"vectorize.invalid_index_name: {name!r}")
        if not isinstance(dims, int) or not 1 <= dims <= L.VECTORIZE_MAX_DIMENSIONS:
            raise ApiError(400, VECTORIZE_ERROR, f"vectorize.invalid_dimensions: {dims!r} "
                                                 f"(1..{L.VECTORIZE_MAX_DIMENSIONS})", "VECTORIZE_MAX_DIMENSIONS")
        if metric not in VECTOR_METRICS:
            raise ApiError(400, VECTORIZE_ERROR, f"vectorize.invalid_metric: {metric!r}")
        with self._lock:
            if name in self._indexes:
                raise ApiError(409, VECTORIZE_ERROR, f"vectorize.index.duplicate_name: {name!r} exists")
            ix = self._indexes[name] = _Index(name, dims, metric, payload.get("description") or "", _now_iso())
        self._mark_write()
        return self._index_view(ix)

    def _vz_list(self, **_: Any) -> list[dict[str, Any]]:
        with self._lock:
            return [self._index_view(ix) for ix in self._indexes.values()]

    def _vz_get(self, name: str, **_: Any) -> dict[str, Any]:
        with self._lock:
            return self._index_view(self._index(name))

    def _vz_delete(self, name: str, **_: Any) -> None:
        with self._lock:
            self._index(name)
            del self._indexes[name]
        self._mark_write()

    def _queue(self, ix: _Index, kind: str, payload: Any) -> dict[str, str]:
        mutation = str(uuid.uuid4())
        ix.pending.append((mutation, kind, payload))
        self._mark_write()
        return {"mutationId": mutation}

    def _apply(self, ix: _Index, count: int | None) -> None:
        done = 0
        while ix.pending and (count is None or done < count):
            mutation, kind, payload = ix.pending.popleft()
            if kind == "upsert" or kind == "insert":
                for vid, vector in payload:
                    if kind == "insert" and vid in ix.vectors:
                        continue
                    vector.indexed = frozenset(ix.applied_metadata)
                    ix.vectors[vid] = vector
            elif kind == "delete":
                for vid in payload:
                    ix.vectors.pop(vid, None)
            elif kind == "metadata_index":
                prop, index_type = payload
                ix.applied_metadata[prop] = index_type
            elif kind == "metadata_index_delete":
                ix.applied_metadata.pop(payload, None)
            ix.processed_up_to, ix.processed_at = mutation, _now_iso()
            done += 1

    def _vz_info(self, name: str, **_: Any) -> dict[str, Any]:
        with self._lock:
            ix = self._index(name)
            self._apply(ix, self.mutations_per_info)
            return {"dimensions": ix.dimensions, "vectorCount": len(ix.vectors),
                    "processedUpToDatetime": ix.processed_at, "processedUpToMutation": ix.processed_up_to}

    def _vz_metadata_create(self, name: str, body: bytes, **_: Any) -> dict[str, str]:
        payload = self._load_json(body, "Vectorize metadata index") or {}
        prop, index_type = payload.get("propertyName"), payload.get("indexType")
        with self._lock:
            ix = self._index(name)
            if not isinstance(prop, str) or not prop or index_type not in ("string", "number", "boolean"):
                raise ApiError(400, VECTORIZE_ERROR, "vectorize.invalid_metadata_index: needs propertyName and "
                                                     "indexType string|number|boolean")
            if prop in ix.metadata_indexes:
                raise ApiError(409, VECTORIZE_ERROR, f"vectorize.metadata_index.duplicate: {prop!r}")
            if len(ix.metadata_indexes) >= L.VECTORIZE_MAX_METADATA_INDEXES:
                raise ApiError(400, VECTORIZE_ERROR, f"vectorize.metadata_index.limit: at most "
                                                     f"{L.VECTORIZE_MAX_METADATA_INDEXES} metadata indexes",
                               "VECTORIZE_MAX_METADATA_INDEXES")
            ix.metadata_indexes[prop] = index_type
            return self._queue(ix, "metadata_index", (prop, index_type))

    def _vz_metadata_list(self, name: str, **_: Any) -> dict[str, Any]:
        with self._lock:
            ix = self._index(name)
            return {"metadataIndexes": [{"propertyName": k, "indexType": v} for k, v in ix.metadata_indexes.items()]}

    def _vz_metadata_delete(self, name: str, body: bytes, **_: Any) -> dict[str, str]:
        prop = (self._load_json(body, "Vectorize metadata index") or {}).get("propertyName")
        with self._lock:
            ix = self._index(name)
            if ix.metadata_indexes.pop(prop, None) is None:
                raise ApiError(404, VECTORIZE_ERROR, f"vectorize.metadata_index.not_found: {prop!r}")
            return self._queue(ix, "metadata_index_delete", prop)

    def _vz_write(self, name: str, op: str, body: bytes, headers: Any, **_: Any) -> dict[str, str]:
        content_type = (headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type != "application/x-ndjson":
            raise ApiError(400, VECTORIZE_ERROR, "vectorize.unknown_content_type")
        if len(body) > L.VECTORIZE_MAX_UPSERT_BYTES:
            raise ApiError(413, VECTORIZE_ERROR, f"vectorize.request_too_large: {len(body)} bytes > "
                                                 f"{L.VECTORIZE_MAX_UPSERT_BYTES}", "VECTORIZE_MAX_UPSERT_BYTES")
        with self._lock:
            ix = self._index(name)
        records = []
        for line in body.split(b"\n"):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise ApiError(400, L.VECTORIZE_PARSE_ERROR_CODE,
                               "failed to parse upsert vectors request in ndjson format") from None
            if not isinstance(record, dict):
                raise ApiError(400, L.VECTORIZE_PARSE_ERROR_CODE,
                               "failed to parse upsert vectors request in ndjson format")
            records.append(record)
        if len(records) > L.VECTORIZE_MAX_VECTORS_PER_UPSERT:
            raise ApiError(400, VECTORIZE_ERROR, f"vectorize.too_many_vectors: {len(records)} > "
                                                 f"{L.VECTORIZE_MAX_VECTORS_PER_UPSERT} per request",
                           "VECTORIZE_MAX_VECTORS_PER_UPSERT")
        batch = [self._vector(ix, record) for record in records]
        with self._lock:
            return self._queue(ix, op, batch)

    @staticmethod
    def _vector(ix: _Index, record: dict[str, Any]) -> tuple[str, _Vector]:
        vid, values, metadata = record.get("id"), record.get("values"), record.get("metadata") or {}
        if not isinstance(vid, str) or not vid:
            raise ApiError(400, VECTORIZE_ERROR, "vectorize.invalid_vector_id: id must be a non-empty string")
        if len(vid.encode()) > L.VECTORIZE_MAX_ID_BYTES:
            raise ApiError(400, VECTORIZE_ERROR, f"vectorize.invalid_vector_id: id {vid[:20]!r}… is "
                                                 f"{len(vid.encode())} bytes > {L.VECTORIZE_MAX_ID_BYTES}",
                           "VECTORIZE_MAX_ID_BYTES")
        if (not isinstance(values, list) or len(values) != ix.dimensions
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)):
            raise ApiError(400, VECTORIZE_ERROR, f"vectorize.dimension_mismatch: vector {vid!r} needs "
                                                 f"{ix.dimensions} numbers")
        if not isinstance(metadata, dict):
            raise ApiError(400, VECTORIZE_ERROR, f"vectorize.invalid_metadata: vector {vid!r}")
        size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())
        if size > L.VECTORIZE_MAX_METADATA_BYTES:
            raise ApiError(400, VECTORIZE_ERROR, f"vectorize.metadata_too_large: vector {vid!r} has {size} bytes "
                                                 f"of metadata > {L.VECTORIZE_MAX_METADATA_BYTES}",
                           "VECTORIZE_MAX_METADATA_BYTES")
        return vid, _Vector([float(v) for v in values], metadata, record.get("namespace"))

    def _ids(self, body: bytes, what: str) -> list[str]:
        ids = (self._load_json(body, what) or {}).get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ApiError(400, VECTORIZE_ERROR, f"{what}: body must be {{\"ids\": [strings]}}")
        return ids

    def _vz_get_by_ids(self, name: str, body: bytes, **_: Any) -> list[dict[str, Any]]:
        ids = self._ids(body, "get_by_ids")
        with self._lock:
            ix = self._index(name)
            return [{"id": i, "values": v.values, "metadata": v.metadata, "namespace": v.namespace}
                    for i in ids if (v := ix.vectors.get(i)) is not None]

    def _vz_delete_by_ids(self, name: str, body: bytes, **_: Any) -> dict[str, str]:
        ids = self._ids(body, "delete_by_ids")
        with self._lock:
            return self._queue(self._index(name), "delete", ids)

    def _vz_query(self, name: str, body: bytes, **_: Any) -> dict[str, Any]:
        payload = self._load_json(body, "Vectorize query") or {}
        vector, top_k = payload.get("vector"), payload.get("topK", 5)
        return_values = bool(payload.get("returnValues", False))
        return_metadata = payload.get("returnMetadata", "none")
        if return_metadata is True or return_metadata is False:  # v1 booleans
            return_metadata = "all" if return_metadata else "none"
        if return_metadata not in ("none", "indexed", "all"):
            raise ApiError(400, VECTORIZE_ERROR, f"vectorize.invalid_return_metadata: {return_metadata!r}")
        most = (L.VECTORIZE_MAX_TOP_K_WITH_VALUES_OR_METADATA if return_values or return_metadata == "all"
                else L.VECTORIZE_MAX_TOP_K)
        if not isinstance(top_k, int) or not 1 <= top_k <= most:
            raise ApiError(400, VECTORIZE_ERROR, f"vectorize.invalid_topk: topK {top_k!r} must be 1..{most} "
                                                 f"(returnValues={return_values}, returnMetadata={return_metadata})",
                           "VECTORIZE_MAX_TOP_K")
        with self._lock:
            ix = self._index(name)
            if not isinstance(vector, list) or len(vector) != ix.dimensions:
                raise ApiError(400, VECTORIZE_ERROR, f"vectorize.dimension_mismatch: query needs {ix.dimensions}")
            flt = payload.get("filter") or {}
            candidates = [(i, v) for i, v in ix.vectors.items()
                          if (payload.get("namespace") is None or v.namespace == payload.get("namespace"))
                          and _matches(v, flt)]
            scored = sorted(((_score(ix.metric, vector, v.values), i, v) for i, v in candidates),
                            key=lambda t: (t[0] if ix.metric == "euclidean" else -t[0], t[1]))[:top_k]
        matches = []
        for score, vid, v in scored:
            match: dict[str, Any] = {"id": vid, "score": score}
            if return_values:
                match["values"] = v.values
            if return_metadata == "all":
                match["metadata"] = v.metadata
            elif return_metadata == "indexed":
                match["metadata"] = {k: val for k, val in v.metadata.items() if k in v.indexed}
            matches.append(match)
        return {"count": len(matches), "matches": matches}

    # -- KV -----------------------------------------------------------------------------------------------
    def _kv_array(self, body: bytes, most: int, what: str) -> list[Any]:
        if len(body) > L.KV_MAX_BULK_BYTES:
            raise ApiError(413, KV_ERROR, f"{what}: request body of {len(body)} bytes exceeds "
                                          f"{L.KV_MAX_BULK_BYTES}", "KV_MAX_BULK_BYTES")
        items = self._load_json(body, what)
        if not isinstance(items, list):
            raise ApiError(400, KV_ERROR, f"{what}: body must be a JSON array")
        if len(items) > most:
            raise ApiError(400, KV_ERROR, f"{what}: {len(items)} items exceed {most} per request",
                           "KV_MAX_PAIRS_PER_BULK")
        return items

    @staticmethod
    def _kv_key(key: Any) -> str:
        if not isinstance(key, str) or not key or key in (".", ".."):
            raise ApiError(400, KV_ERROR, f"invalid key {key!r}: keys are non-empty strings other than . and ..")
        if len(key.encode()) > L.KV_MAX_KEY_BYTES:
            raise ApiError(414, KV_ERROR, f"key of {len(key.encode())} bytes exceeds {L.KV_MAX_KEY_BYTES}",
                           "KV_MAX_KEY_BYTES")
        return key

    def _kv_put(self, ns: str, body: bytes, **_: Any) -> dict[str, Any]:
        items = self._kv_array(body, L.KV_MAX_PAIRS_PER_BULK, "bulk write")
        now = time.time()
        rows = []
        for item in items:
            if not isinstance(item, dict):
                raise ApiError(400, KV_ERROR, "bulk write: each item is an object {key, value, ...}")
            key, value = self._kv_key(item.get("key")), item.get("value")
            if not isinstance(value, str):
                raise ApiError(400, KV_ERROR, f"key {key!r}: value must be a string")
            if item.get("base64"):
                try:
                    value_bytes = base64.b64decode(value, validate=True)
                except ValueError:
                    raise ApiError(400, KV_ERROR, f"key {key!r}: value is not valid base64") from None
            else:
                value_bytes = value.encode()
            if len(value_bytes) > L.KV_MAX_VALUE_BYTES:
                raise ApiError(413, KV_ERROR, f"key {key!r}: value exceeds {L.KV_MAX_VALUE_BYTES} bytes",
                               "KV_MAX_VALUE_BYTES")
            ttl, expiration = item.get("expiration_ttl"), item.get("expiration")
            if ttl is not None:
                if not isinstance(ttl, int) or ttl < L.KV_MIN_EXPIRATION_TTL:
                    raise ApiError(400, KV_ERROR, f"Invalid expiration_ttl of {ttl!r}. Expiration TTL must be at "
                                                  f"least {L.KV_MIN_EXPIRATION_TTL}.", "KV_MIN_EXPIRATION_TTL")
                expiration = now + ttl
            elif expiration is not None and (not isinstance(expiration, (int, float))
                                             or expiration < now + L.KV_MIN_EXPIRATION_TTL):
                raise ApiError(400, KV_ERROR, f"Invalid expiration of {expiration!r}: at least "
                                              f"{L.KV_MIN_EXPIRATION_TTL} s in the future", "KV_MIN_EXPIRATION_TTL")
            metadata = item.get("metadata")
            if metadata is not None and len(json.dumps(metadata).encode()) > L.KV_MAX_METADATA_BYTES:
                raise ApiError(413, KV_ERROR, f"key {key!r}: metadata exceeds {L.KV_MAX_METADATA_BYTES} bytes",
                               "KV_MAX_METADATA_BYTES")
            rows.append((key, {"value": value, "base64": bool(item.get("base64")), "expiration": expiration,
                               "expiration_ttl": ttl, "metadata": metadata}))
        with self._lock:
            fail = self._kv_failures.popleft() if self._kv_failures else 0
            failed = [key for key, _ in rows[:fail]]
            store = self._kv.setdefault(ns, {})
            for key, row in rows[fail:]:
                store[key] = row
        if rows[fail:]:
            self._mark_write()
        return {"successful_key_count": len(rows) - len(failed), "unsuccessful_keys": failed}

    def _kv_delete(self, ns: str, body: bytes, **_: Any) -> dict[str, Any]:
        keys = [self._kv_key(k) for k in self._kv_array(body, L.KV_MAX_KEYS_PER_BULK_DELETE, "bulk delete")]
        with self._lock:
            store = self._kv.setdefault(ns, {})
            for key in keys:
                store.pop(key, None)
        self._mark_write()
        return {"successful_key_count": len(keys), "unsuccessful_keys": []}

    def _kv_get(self, ns: str, key: str, **_: Any) -> bytes:
        row = self.kv_items(ns).get(key)
        if row is None:
            raise ApiError(404, KV_NOT_FOUND, "get: 'key not found'")
        return base64.b64decode(row["value"]) if row["base64"] else row["value"].encode()


class _RateLimited(ApiError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(429, L.API_RATE_LIMIT_ERROR_CODE, "Please wait and consider throttling your request speed")
        self.retry_after = retry_after


def _score(metric: str, a: list[float], b: list[float]) -> float:
    if metric == "euclidean":
        return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))
    dot = sum(x * y for x, y in zip(a, b))
    if metric == "dot-product":
        return dot
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def _matches(vector: _Vector, flt: dict[str, Any]) -> bool:
    """Vectorize filter semantics on indexed properties: implicit $eq, $ne, $in, $nin, $lt, $lte, $gt, $gte.
    Indexed strings compare on their first 64 bytes."""
    for prop, condition in flt.items():
        if prop not in vector.indexed or prop not in vector.metadata:
            return False
        value = _prefix(vector.metadata[prop])
        ops = condition if isinstance(condition, dict) else {"$eq": condition}
        for op, operand in ops.items():
            compare = _FILTER_OPS.get(op)
            if compare is None:
                raise ApiError(400, VECTORIZE_ERROR, f"vectorize.invalid_filter: unknown operator {op!r}")
            operand = [_prefix(o) for o in operand] if isinstance(operand, list) else _prefix(operand)
            try:
                if not compare(value, operand):
                    return False
            except TypeError:
                return False
    return True


_FILTER_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": operator.eq, "$ne": operator.ne, "$lt": operator.lt, "$lte": operator.le, "$gt": operator.gt,
    "$gte": operator.ge, "$in": lambda v, o: v in o, "$nin": lambda v, o: v not in o,
}


def _prefix(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode()[:L.VECTORIZE_INDEXED_STRING_PREFIX_BYTES].decode("utf-8", "ignore")
    return value


_IX = r"/vectorize/v2/indexes/(?P<name>[^/]+)"
_KV = r"/storage/kv/namespaces/(?P<ns>[^/]+)"
_ROUTES: list[tuple[str, str, str]] = [
    ("POST", r"/d1/database/(?P<db>[^/]+)/query", "_d1_query"),
    ("POST", r"/d1/database/(?P<db>[^/]+)/raw", "_d1_raw"),
    ("POST", r"/d1/database/(?P<db>[^/]+)/import", "_d1_import"),
    ("POST", r"/vectorize/v2/indexes", "_vz_create"),
    ("GET", r"/vectorize/v2/indexes", "_vz_list"),
    ("GET", _IX, "_vz_get"),
    ("DELETE", _IX, "_vz_delete"),
    ("GET", _IX + "/info", "_vz_info"),
    ("POST", _IX + "/metadata_index/create", "_vz_metadata_create"),
    ("GET", _IX + "/metadata_index/list", "_vz_metadata_list"),
    ("POST", _IX + "/metadata_index/delete", "_vz_metadata_delete"),
    ("POST", _IX + "/(?P<op>upsert|insert)", "_vz_write"),
    ("POST", _IX + "/get_by_ids", "_vz_get_by_ids"),
    ("POST", _IX + "/delete_by_ids", "_vz_delete_by_ids"),
    ("POST", _IX + "/query", "_vz_query"),
    ("PUT", _KV + "/bulk", "_kv_put"),
    ("DELETE", _KV + "/bulk", "_kv_delete"),
    ("POST", _KV + "/bulk/delete", "_kv_delete"),
    ("GET", _KV + "/values/(?P<key>.+)", "_kv_get"),
]
