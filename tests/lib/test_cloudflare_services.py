"""CloudflareTarget: the PublishTarget protocol on the real-service clients, against the REST stand-in and
moto's S3 server together."""

from __future__ import annotations

import inspect
import json

import pytest

from lib.cloudflare.http import MissingSecretError
from lib.cloudflare.services import CloudflareTarget
from lib.cloudflare.target import PublishTarget
from lib.cloudflare.vectorize import ndjson_record
from tests.support.cloudflare_fixtures import D1_DATABASE, KV_NAMESPACE, standin_overrides


def _protocol_methods() -> list[str]:
    return [name for name, member in vars(PublishTarget).items()
            if inspect.isfunction(member) and not name.startswith("_")]


def test_every_protocol_method_is_there_with_its_signature():
    for name in _protocol_methods():
        ours = inspect.signature(getattr(CloudflareTarget, name))
        theirs = inspect.signature(getattr(PublishTarget, name))
        assert list(ours.parameters) == list(theirs.parameters), name
        assert [p.default for p in ours.parameters.values()] == [p.default for p in theirs.parameters.values()]
    assert CloudflareTarget.name == "cloudflare"


@pytest.fixture
def target(r2_config, cloudflare_standin):
    return CloudflareTarget(r2_config.with_overrides(standin_overrides(cloudflare_standin)))


def test_one_publish_round_through_every_service(target, cloudflare_standin):
    target.check()
    target.d1_execute([("CREATE TABLE IF NOT EXISTS precomputed_similar__next (seed TEXT, neighbor TEXT, rank "
                        "INTEGER, PRIMARY KEY (seed, rank))", [])], "schema")
    target.d1_import(b"INSERT INTO precomputed_similar__next VALUES ('s1', 'n1', 1);\n"
                     b"INSERT INTO precomputed_similar__next VALUES ('s1', 'n2', 2);\n", "precomputed_similar-000")
    target.d1_execute([("DROP TABLE IF EXISTS precomputed_similar", []),
                       ("ALTER TABLE precomputed_similar__next RENAME TO precomputed_similar", [])], "swap")
    assert target.d1_query("SELECT neighbor FROM precomputed_similar WHERE seed = ? ORDER BY rank", ["s1"]) == [
        {"neighbor": "n1"}, {"neighbor": "n2"}]

    target.vectorize_ensure_index("aria-tracks", 2, "cosine", {"genres": "string"})
    mutation = target.vectorize_upsert("aria-tracks", ndjson_record("t1", [1, 0], {"genres": "rock"}) +
                                       ndjson_record("t2", [0, 1], {"genres": "pop"}), "vec-000")
    target.vectorize_wait("aria-tracks", mutation)
    target.vectorize_wait("aria-tracks", target.vectorize_delete("aria-tracks", ["t2"], "vec-stale"))
    assert sorted(cloudflare_standin.vectors("aria-tracks")) == ["t1"]

    shard_map = json.dumps({"indexes": ["aria-tracks"], "shard_count": 1, "hash": "sha256-prefix8-mod"})
    target.kv_put([{"key": "spotify:vectorize:shards", "value": shard_map},
                   {"key": "spotify:af:t1", "value": "{}", "expiration_ttl": 604800}], "kv-000")
    target.kv_delete(["spotify:af:t1"], "kv-stale")
    assert list(cloudflare_standin.kv_items(KV_NAMESPACE)) == ["spotify:vectorize:shards"]

    target.r2_put("features/v1/shard-00000.sqlite", b"SQLite format 3\x00", "shard-0")
    target.r2_put("manifest.json", b'{"version": 1}', "manifest")
    assert target.r2_get("manifest.json") == b'{"version": 1}'
    target.r2_delete(["features/v1/shard-00000.sqlite"], "old")
    assert target.r2_get("features/v1/shard-00000.sqlite") is None

    target.vectorize_drop_index("aria-tracks")
    assert cloudflare_standin.violations == []
    assert cloudflare_standin.d1_rows(D1_DATABASE, "SELECT count(*) FROM precomputed_similar") == [(2,)]
    assert target.stats()["requests"] == len([r for r in cloudflare_standin.log if r.service != "upload"])


def test_check_names_every_missing_secret(target, monkeypatch):
    monkeypatch.delenv("R2_ACCESS_KEY_ID")
    target.check(("d1", "vectorize", "kv"))  # R2 not needed: fine
    with pytest.raises(MissingSecretError, match="R2_ACCESS_KEY_ID is not set"):
        target.check()
