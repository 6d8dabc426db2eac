"""Workers KV bulk writes and deletes over the stand-in: unsuccessful keys re-sent, limits and TTLs."""

from __future__ import annotations

import json
import time

import pytest
import requests

from lib.cloudflare.http import CloudflareError, LimitError
from lib.cloudflare.limits import KV_MAX_PAIRS_PER_BULK, KV_MIN_EXPIRATION_TTL
from lib.cloudflare.services import CloudflareTarget
from tests.support.cloudflare_fixtures import KV_NAMESPACE


def _items(count: int, ttl: int = 604_800) -> list[dict]:
    return [{"key": f"spotify:af:{i:022d}", "value": json.dumps({"n": i}), "expiration_ttl": ttl}
            for i in range(count)]


def _bulk(standin, method: str, suffix: str, payload) -> requests.Response:
    url = f"{standin.url}/accounts/{standin.account_id}/storage/kv/namespaces/{KV_NAMESPACE}/bulk{suffix}"
    return requests.request(method, url, json=payload, headers={"Authorization": f"Bearer {standin.token}"},
                            timeout=10)


def test_bulk_write_stores_values_and_ttls(cloudflare_config, cloudflare_standin):
    target = CloudflareTarget(cloudflare_config)
    items = _items(25)
    started = time.time()
    target.kv_put(items, "af-000")
    stored = cloudflare_standin.kv_items(KV_NAMESPACE)
    assert {k: v["value"] for k, v in stored.items()} == {i["key"]: i["value"] for i in items}
    expiry = stored[items[0]["key"]]["expiration"]
    assert started + 604_800 <= expiry <= time.time() + 604_800
    (write,) = cloudflare_standin.requests("kv")
    assert write.method == "PUT" and write.path.endswith(f"/namespaces/{KV_NAMESPACE}/bulk")


def test_unsuccessful_keys_are_sent_again(cloudflare_config, cloudflare_standin):
    target = CloudflareTarget(cloudflare_config)
    items = _items(10)
    cloudflare_standin.fail_kv_keys(4, requests=2)  # 4 keys fail, then the same 4 fail again
    target.kv_put(items, "af-001")
    assert [r.bytes_in for r in cloudflare_standin.requests("kv")] == [
        len(json.dumps(items, separators=(",", ":"))), len(json.dumps(items[:4], separators=(",", ":"))),
        len(json.dumps(items[:4], separators=(",", ":")))]
    assert sorted(cloudflare_standin.kv_items(KV_NAMESPACE)) == sorted(i["key"] for i in items)


def test_keys_that_never_succeed_fail_the_batch(cloudflare_config, cloudflare_standin):
    target = CloudflareTarget(cloudflare_config.with_overrides({"cloudflare.kv_retry_rounds": 2}))
    cloudflare_standin.fail_kv_keys(2, requests=10)
    with pytest.raises(CloudflareError, match=r"kv:test-ns bulk write \(batch af-002\): 2 keys still unsuccessful "
                                              r"after 2 retry rounds \(cloudflare.kv_retry_rounds\): "
                                              r"'spotify:af:0+', 'spotify:af:0+1'"):
        target.kv_put(_items(5), "af-002")
    assert len(cloudflare_standin.requests("kv")) == 3


def test_bulk_delete_uses_post_bulk_delete(cloudflare_config, cloudflare_standin):
    target = CloudflareTarget(cloudflare_config)
    items = _items(6)
    target.kv_put(items, "af")
    target.kv_delete([i["key"] for i in items[:4]] + ["spotify:af:missing"], "stale")
    assert sorted(cloudflare_standin.kv_items(KV_NAMESPACE)) == [i["key"] for i in items[4:]]
    delete = cloudflare_standin.requests("kv")[-1]
    assert (delete.method, delete.path.rsplit("/", 2)[-2:]) == ("POST", ["bulk", "delete"])


def test_client_side_limits(cloudflare_config, cloudflare_standin):
    target = CloudflareTarget(cloudflare_config)
    with pytest.raises(LimitError, match=r"has expiration_ttl 59; KV needs at least 60 s"):
        target.kv_put(_items(1, ttl=KV_MIN_EXPIRATION_TTL - 1), "ttl")
    with pytest.raises(LimitError, match="10001 keys exceed KV's 10000 per request"):
        target.kv_put(_items(KV_MAX_PAIRS_PER_BULK + 1), "many")
    with pytest.raises(LimitError, match="is empty, '.'/'..' or over 512 bytes"):
        target.kv_delete(["k" * 513], "long")
    assert cloudflare_standin.log == []


def test_the_standin_answers_kv_limit_breaches(cloudflare_standin):
    reply = _bulk(cloudflare_standin, "PUT", "", [{"key": "k", "value": "v", "expiration_ttl": 30}])
    assert reply.status_code == 400
    assert reply.json()["errors"] == [{"code": 10001, "message": "Invalid expiration_ttl of 30. Expiration TTL "
                                                                  "must be at least 60."}]
    reply = _bulk(cloudflare_standin, "PUT", "", [{"key": f"k{i}", "value": "v"}
                                                  for i in range(KV_MAX_PAIRS_PER_BULK + 1)])
    assert reply.status_code == 400 and "10001 items exceed 10000" in reply.json()["errors"][0]["message"]
    reply = _bulk(cloudflare_standin, "DELETE", "", ["k"])  # the older delete form still works
    assert reply.json()["result"] == {"successful_key_count": 1, "unsuccessful_keys": []}
    assert [v.limit for v in cloudflare_standin.violations] == ["KV_MIN_EXPIRATION_TTL", "KV_MAX_PAIRS_PER_BULK"]
    reply = requests.get(f"{cloudflare_standin.url}/accounts/{cloudflare_standin.account_id}/storage/kv/"
                         f"namespaces/{KV_NAMESPACE}/values/k", timeout=10)
    assert (reply.status_code, reply.json()["errors"][0]["code"]) == (400, 9106)  # no token: refused
