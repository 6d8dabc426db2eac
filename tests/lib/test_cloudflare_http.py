"""The shared REST client against the stand-in over real sockets: envelope errors, retries (429 after
retry-after, 5xx and dropped connections with back-off, then a clear failure), the request budget shared by
separate processes, and the token kept out of logs, errors, reprs and pickles."""

from __future__ import annotations

import logging
import multiprocessing
import pickle
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lib.cloudflare.http import (
    ApiSettings,
    CloudflareApi,
    CloudflareError,
    MissingSecretError,
    RequestBudget,
    parse_retry_after,
)
from lib.cloudflare.services import CloudflareTarget
from lib.config import ConfigError
from tests.support.cloudflare_standin import CloudflareStandin


def _query_requests(standin: CloudflareStandin):
    return [r for r in standin.log if r.path.endswith("/query")]


def test_429_waits_the_retry_after_seconds(cloudflare_config, cloudflare_standin):
    target = CloudflareTarget(cloudflare_config)
    cloudflare_standin.inject("429", count=1, path_contains="/query", retry_after=1)
    assert target.d1_query("SELECT 1 AS one") == [{"one": 1}]
    first, second = _query_requests(cloudflare_standin)
    assert (first.status, second.status) == (429, 200)
    gap = second.started - first.finished
    # back-off is configured at 0.01-0.05 s, so only honouring retry-after explains a ≥ 1 s gap
    assert 1.0 - 0.05 <= gap < 1.0 + 2.0
    assert target.stats()["rate_limited"] == 1 and target.stats()["retries"] == 1


def test_5xx_and_dropped_connections_are_retried(cloudflare_config, cloudflare_standin):
    target = CloudflareTarget(cloudflare_config)
    cloudflare_standin.inject("503", count=1, path_contains="/query")
    cloudflare_standin.inject("drop", count=1, path_contains="/query")
    cloudflare_standin.inject("502", count=1, path_contains="/query")
    assert target.d1_query("SELECT 2 AS two") == [{"two": 2}]
    assert [(r.status, r.fault) for r in _query_requests(cloudflare_standin)] == [
        (503, "503"), (0, "drop"), (502, "502"), (200, None)]
    assert target.stats()["requests"] == 4


@pytest.mark.parametrize(("fault", "shown"), [("500", "HTTP 500"), ("drop", "ConnectionError")])
def test_persistent_faults_fail_naming_target_and_batch(cloudflare_config, cloudflare_standin, fault, shown):
    target = CloudflareTarget(cloudflare_config)  # max_tries = 4
    cloudflare_standin.inject(fault, count=10, path_contains="/query")
    with pytest.raises(CloudflareError) as caught:
        target.d1_execute([("INSERT INTO t VALUES (?)", [1])], "xref-0007")
    message = str(caught.value)
    assert message.startswith("Cloudflare d1:test-db query (batch xref-0007): gave up after 4 tries")
    assert shown in message
    assert len(_query_requests(cloudflare_standin)) == 4


def test_envelope_errors_are_not_retried(cloudflare_config, cloudflare_standin):
    target = CloudflareTarget(cloudflare_config)
    with pytest.raises(CloudflareError, match=r"d1:test-db query \(batch query\): HTTP 400, error 7500: "
                                              r"no such table: missing: SQLITE_ERROR"):
        target.d1_query("SELECT * FROM missing")
    assert len(cloudflare_standin.log) == 1


def test_missing_token_fails_before_any_request(cloudflare_config, cloudflare_standin, monkeypatch):
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN")
    target = CloudflareTarget(cloudflare_config)
    with pytest.raises(MissingSecretError, match="environment variable CLOUDFLARE_API_TOKEN is not set"):
        target.check(("d1",))
    with pytest.raises(MissingSecretError, match="CLOUDFLARE_API_TOKEN"):
        target.d1_query("SELECT 1")
    assert cloudflare_standin.log == []


def test_missing_config_key_is_named(config, cloudflare_token):
    target = CloudflareTarget(config)
    with pytest.raises(ConfigError, match=r"'cloudflare.account_id', 'cloudflare.d1_database_id' must be set"):
        target.d1_query("SELECT 1")


def test_the_token_appears_in_no_log_line_error_repr_or_pickle(cloudflare_config, cloudflare_standin,
                                                                cloudflare_token, caplog, monkeypatch):
    aria = logging.getLogger("aria")
    aria.addHandler(caplog.handler)  # the project logger does not propagate to the root
    caplog.set_level(logging.DEBUG)  # urllib3 logs every request at DEBUG
    texts: list[str] = []
    try:
        target = CloudflareTarget(cloudflare_config)
        cloudflare_standin.inject("429", count=1, retry_after=0)
        cloudflare_standin.inject("500", count=10, path_contains="/raw")
        target.d1_query("SELECT 1")
        with pytest.raises(CloudflareError) as failed:
            target.d1.raw("SELECT 1")
        texts += [str(failed.value), repr(failed.value), repr(target), repr(target.api), repr(target.d1)]
        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", cloudflare_token + "-wrong")
        with pytest.raises(CloudflareError, match="HTTP 403, error 10000: Authentication error") as refused:
            CloudflareTarget(cloudflare_config).d1_query("SELECT 1")
        texts += [str(refused.value), repr(refused.value)]
        pickled = pickle.dumps(target)
    finally:
        aria.removeHandler(caplog.handler)
    texts += [record.getMessage() for record in caplog.records]
    assert any("retry in" in record.getMessage() for record in caplog.records)  # the retries were logged
    assert any(record.name.startswith("urllib3") for record in caplog.records)
    assert all(cloudflare_token not in text for text in texts)
    assert cloudflare_token.encode() not in pickled
    with pytest.raises(TypeError, match="pickle the Config"):
        pickle.dumps(target.api)


def test_a_pickled_target_rebuilds_its_session(cloudflare_config, cloudflare_standin):
    from pyspark import cloudpickle  # what Spark ships to executors

    target = CloudflareTarget(cloudflare_config)
    target.d1_execute([("CREATE TABLE t (a INTEGER)", [])], "create")
    copy = pickle.loads(cloudpickle.dumps(target))
    copy.d1_execute([("INSERT INTO t VALUES (?)", [7])], "insert")
    assert target.d1_query("SELECT a FROM t") == [{"a": 7}]
    assert copy.stats()["requests"] == 1  # a fresh client: only its own request


# -- the budget ---------------------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(requests=st.integers(4, 1200), tasks=st.integers(1, 8), burst=st.integers(1, 50),
       sent=st.integers(1, 300), idle=st.floats(0, 400))
def test_a_task_never_exceeds_its_share_in_any_window(requests, tasks, burst, sent, idle):
    assume(requests // tasks >= 2)
    budget = RequestBudget(requests, 300.0, tasks, burst)
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    bucket = budget.bucket(clock=lambda: now[0], sleep=sleep)
    stamps = []
    for number in range(sent):
        if number == sent // 2:
            sleep(idle)  # an idle gap refills the burst
        bucket.acquire()
        stamps.append(now[0])
    start = 0
    for end, stamp in enumerate(stamps):
        while stamps[start] <= stamp - budget.window_s:
            start += 1
        assert end - start + 1 <= budget.share


def _hammer(settings_: ApiSettings, token: str, count: int, queue: multiprocessing.Queue) -> None:
    """One 'Spark task': its own process, its own bucket, the shared budget split by tasks."""
    api = CloudflareApi(settings_, env={"CLOUDFLARE_API_TOKEN": token})
    path = api.account_path("d1", "database", "budget", "query")
    try:
        for _ in range(count):
            api.call("d1:budget", "query", "POST", path, label="budget", json_body={"sql": "SELECT 1"})
        queue.put(("ok", api.stats.as_dict()))
    except Exception as exc:  # report to the parent instead of dying silently
        queue.put(("error", str(exc)))


def test_separate_processes_together_stay_under_the_budget(tmp_path, cloudflare_token):
    # The stand-in allows 12 requests per second; the client budget is 10 (a margin for network jitter),
    # split between 2 processes. Unthrottled, their 24 requests would arrive within well under a second.
    window, budget, tasks, each = 1.0, 10, 2, 12
    with CloudflareStandin(tmp_path, cloudflare_token, rate_limit=(12, window)) as standin:
        settings_ = ApiSettings(api_base=standin.url, account_id=standin.account_id,
                                budget=RequestBudget(budget, window, tasks, burst=1), max_tries=1)
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        workers = [context.Process(target=_hammer, args=(settings_, cloudflare_token, each, queue))
                   for _ in range(tasks)]
        for worker in workers:
            worker.start()
        outcomes = [queue.get(timeout=60) for _ in workers]
        for worker in workers:
            worker.join(timeout=10)
        assert [kind for kind, _ in outcomes] == ["ok"] * tasks, outcomes
        assert standin.violations == [] and all(r.status == 200 for r in standin.log)
        stamps = sorted(r.started for r in standin.log)
        assert len(stamps) == each * tasks
        busiest = max(sum(1 for s in stamps if start <= s < start + window) for start in stamps)
        assert busiest <= 12
        assert sum(stats["budget_wait_s"] for _, stats in outcomes) > 0  # the buckets did hold requests back


# -- small pieces -------------------------------------------------------------------------------------------

def test_the_standin_routes_like_cloudflare(cloudflare_standin):
    import requests

    auth = {"Authorization": f"Bearer {cloudflare_standin.token}"}
    wrong_account = requests.post(f"{cloudflare_standin.url}/accounts/other/d1/database/db/query", json={},
                                  headers=auth, timeout=10)
    assert wrong_account.status_code == 404 and wrong_account.json()["errors"][0]["code"] == 7003
    wrong_method = requests.get(f"{cloudflare_standin.url}/accounts/{cloudflare_standin.account_id}/d1/database/"
                                "db/query", headers=auth, timeout=10)
    assert wrong_method.status_code == 405 and wrong_method.json()["success"] is False


def test_parse_retry_after():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    when = datetime(2030, 1, 1, tzinfo=timezone.utc)
    later = format_datetime(when + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=when.timestamp) == pytest.approx(30.0)


@pytest.mark.parametrize(("sets", "message"), [
    ({"cloudflare.api_base": "http://api.example.com/client/v4"}, "must be an https:// URL"),
    ({"cloudflare.request_budget": 1300}, "must be <= 1200"),
    ({"cloudflare.request_budget": 10, "cloudflare.concurrent_tasks": 6}, "must be at most half"),
    ({"r2.part_bytes": 6 * 1024**3}, "must be <= 5368709120"),
    ({"r2.multipart_bytes": 1024}, "r2.multipart_bytes. must be >="),
])
def test_config_rejects_unsafe_settings(config, sets, message):
    with pytest.raises(ConfigError, match=message):
        config.with_overrides(sets)


def test_config_defaults(config):
    assert config.cloudflare.api_base == "https://api.cloudflare.com/client/v4"
    assert config.r2.region == "auto" and config.r2.multipart_bytes >= 5 * 1024 * 1024
    assert config.with_overrides({"cloudflare.api_base": "http://127.0.0.1:9/client/v4"}).cloudflare.api_base
