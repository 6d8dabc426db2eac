"""One REST client for the Cloudflare API, shared by the D1, Vectorize and KV clients.

Why one client: every request of every Spark task draws on the same account budget (1200 requests / 5
minutes, ``limits.API_REQUESTS_PER_WINDOW``), so the envelope parsing, the retry policy and the rate limiter
live in one place. A task's share of the budget is ``request_budget / concurrent_tasks`` and is enforced by
a token bucket whose burst plus refill over any 5-minute window never exceeds that share, so N tasks
together stay under the budget without talking to each other.

Retries (tenacity): HTTP 429 waits exactly the ``retry-after`` seconds the server sent; 5xx, D1's
"overloaded" and dropped or reset connections back off exponentially with jitter; after
``cloudflare.max_tries`` the batch fails with an error naming the target, the operation and the batch.
Retrying a write is only safe because every write publish sends is idempotent (INSERT OR REPLACE, Vectorize
upsert, KV put, delete by key).

The API token comes from ``CLOUDFLARE_API_TOKEN`` in the environment of the process that sends; it is sent
per request (never set on the session, so the D1 upload URL, a different host, never sees it) and appears in
no repr, log line or error message.
"""

from __future__ import annotations

import email.utils
import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import requests
import tenacity

from lib.cloudflare.limits import API_RATE_LIMIT_ERROR_CODE, API_REQUESTS_PER_WINDOW, API_WINDOW_SECONDS
from lib.config import SECRETS, Config
from lib.errors import JobError
from lib.log import get_logger

log = get_logger("cloudflare")

_RETRYABLE_MESSAGES = ("overloaded", "too many requests queued")
_QUERY_STRING = re.compile(r"\?[^\s'\")]*")


class CloudflareError(JobError):
    """A Cloudflare request failed. The message names the target (``d1:<db>``, ``vectorize:<index>``,
    ``kv:<namespace>``, ``r2:<bucket>``), the operation and the batch; attributes keep the details."""

    def __init__(self, target: str, operation: str, label: str, detail: str, *, status: int | None = None,
                 codes: tuple[int, ...] = (), retryable: bool = False, retry_after: float | None = None) -> None:
        self.target, self.operation, self.label, self.detail = target, operation, label, detail
        self.status, self.codes, self.retryable, self.retry_after = status, codes, retryable, retry_after
        super().__init__(f"Cloudflare {target} {operation} (batch {label}): {detail}")


class LimitError(CloudflareError):
    """The request would break a documented limit (``limits``); it was not sent."""


class MissingSecretError(JobError):
    """A secret the Cloudflare target needs is not in the environment; nothing was sent."""


def require_secret(name: str, purpose: str, env: Mapping[str, str] | None = None) -> str:
    """The secret ``name`` (a ``lib.config.SECRETS`` key) or a one-line error naming its variable."""
    value = Config.secret(name, env)
    if not value:
        raise MissingSecretError(f"environment variable {SECRETS[name]} is not set: {purpose} (set it in the "
                                 "environment of every process that sends, driver and executors)")
    return value


def redact(text: str) -> str:
    """Drop query strings from URLs in ``text``: a presigned upload URL carries a credential there."""
    return _QUERY_STRING.sub("?…", text)


# -- the request budget ------------------------------------------------------------------------------------

class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` per second; one request takes one token.

    Over any interval of length T a bucket hands out at most ``capacity + rate * T`` tokens.
    """

    def __init__(self, rate: float, capacity: int, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError(f"token bucket needs rate > 0 and capacity >= 1; got {rate}, {capacity}")
        self.rate, self.capacity = rate, capacity
        self._clock, self._sleep = clock, sleep
        self._tokens = float(capacity)
        self._stamp = clock()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, sleeping until one is there; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if now < self._paused_until:
                    delay = self._paused_until - now
                elif self._tokens >= 1.0 - 1e-9:  # float slack: a refill to 0.999… is a whole token
                    self._tokens = max(0.0, self._tokens - 1.0)
                    return waited
                else:
                    delay = (1.0 - self._tokens) / self.rate
            self._sleep(delay)
            waited += delay

    def pause_for(self, seconds: float) -> None:
        """Hand out nothing for ``seconds`` (a 429's retry-after holds for every thread of the process)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)


@dataclass(frozen=True)
class RequestBudget:
    """The account budget split evenly between the tasks that send at the same time."""

    requests: int = API_REQUESTS_PER_WINDOW
    window_s: float = API_WINDOW_SECONDS
    tasks: int = 1
    burst: int = 5

    @property
    def share(self) -> int:
        return self.requests // self.tasks

    @property
    def capacity(self) -> int:
        return max(1, min(self.burst, self.share // 2))

    @property
    def rate(self) -> float:
        """Refill per second such that ``capacity + rate * window_s == share``."""
        return (self.share - self.capacity) / self.window_s

    def bucket(self, clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep) -> TokenBucket:
        if self.share < 2:
            raise ValueError(f"a budget of {self.requests} requests cannot be shared by {self.tasks} tasks")
        return TokenBucket(self.rate, self.capacity, clock, sleep)


# One bucket and one in-flight gate per process and account: Spark reuses Python workers for the tasks of
# an executor slot, so consecutive tasks (and threads of the driver) share them instead of each starting
# with a full burst.
_SHARED_LOCK = threading.Lock()
_SHARED_BUCKETS: dict[tuple[Any, ...], TokenBucket] = {}
_SHARED_GATES: dict[tuple[Any, ...], threading.BoundedSemaphore] = {}


def shared_bucket(key: tuple[Any, ...], budget: RequestBudget) -> TokenBucket:
    with _SHARED_LOCK:
        bucket = _SHARED_BUCKETS.get((key, budget))
        if bucket is None:
            bucket = _SHARED_BUCKETS[(key, budget)] = budget.bucket()
        return bucket


def shared_gate(key: tuple[Any, ...], limit: int) -> threading.BoundedSemaphore:
    with _SHARED_LOCK:
        gate = _SHARED_GATES.get((key, limit))
        if gate is None:
            gate = _SHARED_GATES[(key, limit)] = threading.BoundedSemaphore(limit)
        return gate


# -- settings and statistics -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ApiSettings:
    """The resolved ``cloudflare.*`` keys a client needs (plain data: safe to pickle, holds no secret)."""

    api_base: str
    account_id: str
    budget: RequestBudget
    max_in_flight: int = 2
    max_tries: int = 6
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    timeout_s: float = 120.0
    poll_interval_s: float = 2.0
    poll_timeout_s: float = 1800.0

    @classmethod
    def from_config(cls, config: Config) -> ApiSettings:
        cf = config.cloudflare
        return cls(
            api_base=cf.api_base.rstrip("/"), account_id=cf.account_id,
            budget=RequestBudget(cf.request_budget, API_WINDOW_SECONDS, cf.concurrent_tasks, cf.burst),
            max_in_flight=cf.max_in_flight, max_tries=cf.max_tries, backoff_initial_s=cf.backoff_initial_s,
            backoff_max_s=cf.backoff_max_s, timeout_s=cf.timeout_s, poll_interval_s=cf.poll_interval_s,
            poll_timeout_s=cf.poll_timeout_s,
        )


@dataclass
class ApiStats:
    """What one client sent: every try counts as a request (the budget counts them too); uploads to a
    presigned URL are not API requests and are counted apart."""

    requests: int = 0
    uploads: int = 0
    retries: int = 0
    rate_limited: int = 0
    budget_wait_s: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **amounts: float) -> None:
        with self._lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)

    def as_dict(self) -> dict[str, float]:
        return {"requests": self.requests, "uploads": self.uploads, "retries": self.retries,
                "rate_limited": self.rate_limited, "budget_wait_s": round(self.budget_wait_s, 3)}


# -- the client --------------------------------------------------------------------------------------------

def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds from a ``retry-after`` header (delta-seconds or an HTTP date); None when absent or invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, CloudflareError):
        return exc.retryable
    return isinstance(exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError))


class _RetryWait(tenacity.wait.wait_base):
    """``retry-after`` when the server sent one, else exponential back-off with jitter."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._backoff = tenacity.wait_exponential_jitter(initial=initial, max=maximum, jitter=initial)

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, CloudflareError) and exc.retry_after is not None:
            return exc.retry_after
        return self._backoff(retry_state)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, CloudflareError):
        return exc.detail
    return redact(f"{type(exc).__name__}: {exc}")


def _envelope_errors(body: Any) -> tuple[tuple[int, ...], str]:
    errors = body.get("errors") if isinstance(body, dict) else None
    if not errors:
        return (), ""
    codes = tuple(int(e["code"]) for e in errors if isinstance(e, dict) and isinstance(e.get("code"), int))
    text = "; ".join(f"error {e.get('code')}: {e.get('message')}" if isinstance(e, dict) else str(e)
                     for e in errors)
    return codes, text


class CloudflareApi:
    """REST calls with the envelope, the budget and the retries. Build it in the process that sends."""

    def __init__(self, settings: ApiSettings, env: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self._token = require_secret("cloudflare_api_token", "the cloudflare target needs an API token with "
                                     "D1, Vectorize and Workers KV edit rights", env)
        self._session: requests.Session | None = None
        key = (settings.api_base, settings.account_id)
        self._bucket = shared_bucket(key, settings.budget)
        self._gate = shared_gate(key, settings.max_in_flight)
        self.stats = ApiStats()

    def __repr__(self) -> str:
        return f"CloudflareApi({self.settings.api_base}, account={self.settings.account_id})"

    def __reduce__(self) -> Any:
        raise TypeError("CloudflareApi holds a secret and a live session: pickle the Config (or the target) "
                        "and build the client in the process that sends")

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            session = requests.Session()
            # tenacity is the one retry layer; urllib3 must not retry on its own.
            adapter = requests.adapters.HTTPAdapter(max_retries=0, pool_maxsize=self.settings.max_in_flight)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            self._session = session
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def account_path(self, *parts: str) -> str:
        return "/".join(("", "accounts", self.settings.account_id, *parts))

    # ---------------------------------------------------------------------------------------------------
    def call(self, target: str, operation: str, method: str, path: str, *, label: str = "-",
             json_body: Any = None, data: bytes | None = None, content_type: str | None = None,
             params: Mapping[str, Any] | None = None, missing_ok: bool = False) -> Any:
        """One API call → the envelope's ``result`` (None for a 404 when ``missing_ok``)."""
        url = self.settings.api_base + path
        headers = {"Authorization": f"Bearer {self._token}"}
        if data is not None:
            headers["Content-Type"] = content_type or "application/octet-stream"
        elif json_body is not None:
            data = json.dumps(json_body, separators=(",", ":"), allow_nan=False).encode()
            headers["Content-Type"] = "application/json"

        def attempt() -> Any:
            response = self._send(method, url, headers, data, params, budgeted=True)
            return self._result(response, target, operation, label, missing_ok)

        return self.with_retries(target, operation, label, attempt)

    def upload(self, url: str, data: bytes | str, *, target: str, operation: str, label: str,
               expect_etag: str | None = None) -> requests.Response:
        """PUT ``data`` (bytes, or a local file path: streamed, each try from its start) to a presigned URL (no
        token, not an API request), checking the returned ETag."""

        def attempt() -> requests.Response:
            if isinstance(data, (bytes, bytearray)):
                return check(self._send("PUT", url, {"Content-Length": str(len(data))}, data, None, budgeted=False))
            with open(data, "rb") as body:
                size = str(os.fstat(body.fileno()).st_size)
                return check(self._send("PUT", url, {"Content-Length": size}, body, None, budgeted=False))

        def check(response: requests.Response) -> requests.Response:
            if response.status_code != 200:
                raise CloudflareError(target, operation, label, f"upload got HTTP {response.status_code}: "
                                      f"{redact(response.text[:200])!r}", status=response.status_code,
                                      retryable=response.status_code >= 500 or response.status_code == 429,
                                      retry_after=parse_retry_after(response.headers.get("retry-after")))
            etag = (response.headers.get("ETag") or "").strip('"')
            if expect_etag is not None and etag != expect_etag:
                raise CloudflareError(target, operation, label, f"upload returned ETag {etag or 'none'!r}, "
                                      f"expected the file's md5 {expect_etag}", retryable=True)
            return response

        return self.with_retries(target, operation, label, attempt)

    def with_retries(self, target: str, operation: str, label: str, attempt: Callable[[], Any]) -> Any:
        """Run ``attempt`` under the retry policy; give up with one error naming target and batch."""
        tries = self.settings.max_tries

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            self.stats.add(retries=1)
            log.warning("Cloudflare %s %s (batch %s): %s; retry in %.2f s (try %d of %d)", target, operation,
                        label, _describe(exc) if exc else "?", wait, state.attempt_number + 1, tries)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(tries), wait=_RetryWait(self.settings.backoff_initial_s,
                                                                     self.settings.backoff_max_s),
            retry=tenacity.retry_if_exception(_is_retryable), before_sleep=before_sleep, reraise=True,
        )
        try:
            return retrying(attempt)
        except CloudflareError as exc:
            if not exc.retryable:
                raise
            raise CloudflareError(target, operation, label, f"gave up after {tries} tries; last: {exc.detail}",
                                  status=exc.status, codes=exc.codes) from None
        except (requests.RequestException, OSError) as exc:
            # from None: a chained requests error would carry the URL, query string and all.
            raise CloudflareError(target, operation, label,
                                  f"gave up after {tries if _is_retryable(exc) else 1} tries; last: "
                                  f"{_describe(exc)}") from None

    # ---------------------------------------------------------------------------------------------------
    def _send(self, method: str, url: str, headers: dict[str, str], data: bytes | BinaryIO | None,
              params: Mapping[str, Any] | None, budgeted: bool) -> requests.Response:
        if budgeted:
            waited = self._bucket.acquire()
            if waited:
                self.stats.add(budget_wait_s=waited)
        with self._gate:
            self.stats.add(**{"requests" if budgeted else "uploads": 1})
            return self.session.request(method, url, headers=headers, data=data, params=params,
                                        timeout=self.settings.timeout_s)

    def _result(self, response: requests.Response, target: str, operation: str, label: str,
                missing_ok: bool) -> Any:
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        codes, errors = _envelope_errors(body)
        if status == 429 or API_RATE_LIMIT_ERROR_CODE in codes:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            if retry_after is not None:
                self._bucket.pause_for(retry_after)
            self.stats.add(rate_limited=1)
            raise CloudflareError(target, operation, label, f"HTTP {status} rate limited ({errors or 'no body'}), "
                                  f"retry-after {response.headers.get('retry-after')}", status=status,
                                  codes=codes, retryable=True, retry_after=retry_after)
        if status == 404 and missing_ok:
            return None
        if not isinstance(body, dict):
            raise CloudflareError(target, operation, label, f"HTTP {status}, not a JSON envelope: "
                                  f"{redact(response.text[:200])!r}", status=status, retryable=status >= 500)
        if status >= 400 or body.get("success") is not True:
            retryable = status >= 500 or any(m in errors.lower() for m in _RETRYABLE_MESSAGES)
            raise CloudflareError(target, operation, label, f"HTTP {status}, {errors or 'success is false'}",
                                  status=status, codes=codes, retryable=retryable)
        return body.get("result")
