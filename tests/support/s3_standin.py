"""moto's S3 server with a request log: R2's stand-in when a test must see, server-side, what reached it.

Executor tasks run their own boto3 clients in other processes, where a ``before-send`` hook of the test
cannot reach; this server records every request as it arrives (method, path, query, header names, body
digest, status) and can answer the next matching requests with 503 SlowDown (which boto3 retries). The
objects are moto's, read back with any boto3 client on ``url``.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

WRITE_METHODS = ("PUT", "POST", "DELETE")


@dataclass
class S3Request:
    method: str
    path: str
    query: str
    headers: tuple[str, ...]  # lower-case header names (never their values: one is the signature)
    digest: str               # sha256 of the body
    status: int = 0
    fault: bool = False

    @property
    def write(self) -> bool:
        return self.method in WRITE_METHODS

    @property
    def bucket(self) -> str:
        return self.path.lstrip("/").split("/", 1)[0]

    @property
    def key(self) -> str:
        """The object key ("" for a request on the bucket itself)."""
        parts = self.path.lstrip("/").split("/", 1)
        return parts[1] if len(parts) == 2 else ""

    @property
    def object_write(self) -> bool:
        """PutObject, a multipart step, DeleteObject(s) — not a request on the bucket itself."""
        return self.write and (bool(self.key) or "delete" in self.query)


class RecordingS3:
    """``start()`` → ``url``; ``log``; ``fail_next(count, method)``; ``stop()``."""

    def __init__(self) -> None:
        self.log: list[S3Request] = []
        self._faults: list[list[Any]] = []  # [remaining, method]
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> RecordingS3:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        self._server = make_server("127.0.0.1", 0, self._app(DomainDispatcherApplication(create_backend_app)),
                                   threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="s3-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def fail_next(self, count: int = 1, method: str = "PUT") -> None:
        """The next ``count`` requests with ``method`` get 503 SlowDown (not passed on to moto)."""
        with self._lock:
            self._faults.append([count, method])

    def requests(self, bucket: str, *, write: bool | None = None) -> list[S3Request]:
        with self._lock:
            return [r for r in self.log if r.bucket == bucket and (write is None or r.write == write)]

    def _take_fault(self, method: str) -> bool:
        with self._lock:
            for fault in self._faults:
                if fault[0] > 0 and fault[1] == method:
                    fault[0] -= 1
                    return True
        return False

    def _app(self, inner: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
            names = tuple(sorted(k[5:].replace("_", "-").lower() for k in environ if k.startswith("HTTP_")))
            entry = S3Request(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""),
                              environ.get("QUERY_STRING", ""), names, hashlib.sha256(body).hexdigest())
            with self._lock:
                self.log.append(entry)
            if self._take_fault(entry.method):
                entry.status, entry.fault = 503, True
                start_response("503 Slow Down", [("Content-Type", "application/xml")])
                return [b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
                        b"<Message>Please reduce your request rate.</Message></Error>"]

            def recording_start(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
                entry.status = int(status.split(" ", 1)[0])
                return start_response(status, headers, *args)

            return inner(environ, recording_start)

        return app
