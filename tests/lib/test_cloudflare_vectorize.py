"""Vectorize v2 over the stand-in: index and metadata indexes before any upsert, NDJSON upserts applied
asynchronously (wait on /info), reads, deletes, and the documented limits with their error shapes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests

from lib.cloudflare.http import CloudflareError, LimitError
from lib.cloudflare.limits import (
    VECTORIZE_MAX_ID_BYTES,
    VECTORIZE_MAX_METADATA_BYTES,
    VECTORIZE_MAX_METADATA_INDEXES,
    VECTORIZE_MAX_TOP_K_WITH_VALUES_OR_METADATA,
    VECTORIZE_MAX_VECTORS_PER_UPSERT,
)
from lib.cloudflare.services import CloudflareTarget
from lib.cloudflare.vectorize import ndjson_lines, ndjson_record

INDEX = "tracks"
GENRES = ["rock", "pop", "jazz"]


@pytest.fixture
def target(cloudflare_config):
    target = CloudflareTarget(cloudflare_config)
    target.vectorize_ensure_index(INDEX, 4, "cosine", {"genre": "string", "popularity": "number"})
    return target


def _vectors(count: int, seed: int = 3) -> tuple[list[str], np.ndarray, list[dict]]:
    rng = np.random.default_rng(seed)
    ids = [f"track{i:04d}" for i in range(count)]
    values = rng.normal(size=(count, 4))
    metadata = [{"genre": GENRES[i % 3], "popularity": int(rng.integers(0, 100)), "title": f"t{i}"}
                for i in range(count)]
    return ids, values, metadata


def _ndjson(ids, values, metadata) -> bytes:
    return b"".join(ndjson_record(i, v, m) for i, v, m in zip(ids, values, metadata))


def _raw(standin, suffix: str, data: bytes, content_type: str) -> requests.Response:
    return requests.post(f"{standin.url}/accounts/{standin.account_id}/vectorize/v2/indexes/{INDEX}/{suffix}",
                         data=data, headers={"Authorization": f"Bearer {standin.token}",
                                             "Content-Type": content_type}, timeout=10)


def test_index_and_metadata_indexes_come_before_any_upsert(target, cloudflare_standin):
    ids, values, metadata = _vectors(3)
    target.vectorize_wait(INDEX, target.vectorize_upsert(INDEX, _ndjson(ids, values, metadata), "v-000"))
    writes = [r.path.rsplit("/", 2)[-2:] for r in cloudflare_standin.requests("vectorize", write=True)]
    assert writes == [["v2", "indexes"], ["metadata_index", "create"], ["metadata_index", "create"],
                      [INDEX, "delete_by_ids"], [INDEX, "upsert"]]  # the barrier proves the indexes applied
    upsert = cloudflare_standin.requests("vectorize", write=True)[-1]
    assert upsert.bytes_in == len(_ndjson(ids, values, metadata))
    # ensuring again sends no write, and a different shape is refused
    before = len(cloudflare_standin.requests(write=True))
    target.vectorize_ensure_index(INDEX, 4, "cosine", {"genre": "string", "popularity": "number"})
    assert len(cloudflare_standin.requests(write=True)) == before
    with pytest.raises(CloudflareError, match="index exists with dimensions 4 and metric 'cosine'; publish needs 8"):
        target.vectorize_ensure_index(INDEX, 8, "cosine", {})
    # vectors applied after the metadata indexes are filterable on them
    hits = target.vectorize.query(INDEX, values[0], 3, filter={"genre": "rock"})
    assert [h["id"] for h in hits] == [ids[0]]


def test_upserts_apply_asynchronously_and_wait_sees_them_through(target, cloudflare_standin):
    ids, values, metadata = _vectors(30)
    first = target.vectorize_upsert(INDEX, _ndjson(ids[:20], values[:20], metadata[:20]), "v-000")
    last = target.vectorize_upsert(INDEX, _ndjson(ids[20:], values[20:], metadata[20:]), "v-001")
    assert first != last
    assert target.vectorize.get_by_ids(INDEX, ids[:2]) == []  # accepted, not yet applied
    target.vectorize_wait(INDEX, last)
    assert cloudflare_standin.pending_mutations(INDEX) == 0
    stored = {v["id"]: v for v in target.vectorize.get_by_ids(INDEX, ids)}
    assert sorted(stored) == ids
    assert np.allclose([stored[i]["values"] for i in ids], values)
    assert stored[ids[5]]["metadata"] == metadata[5]
    assert target.vectorize.info(INDEX)["vectorCount"] == 30


def test_wait_survives_writers_it_does_not_know(target, cloudflare_config, cloudflare_standin):
    """Another task's mutation processed after ours hides ours from processedUpToMutation: a barrier helps."""
    other = CloudflareTarget(cloudflare_config)
    ids, values, metadata = _vectors(4)
    mine = target.vectorize_upsert(INDEX, _ndjson(ids[:2], values[:2], metadata[:2]), "mine")
    other.vectorize_upsert(INDEX, _ndjson(ids[2:], values[2:], metadata[2:]), "theirs")
    cloudflare_standin.apply_mutations(INDEX)  # both applied: the index now reports the other task's id
    target.vectorize_wait(INDEX, mine)
    other.vectorize_wait(INDEX, None)  # None: the last mutation this client issued
    assert cloudflare_standin.pending_mutations(INDEX) == 0
    barriers = [r for r in cloudflare_standin.requests("vectorize") if r.operation == "delete_by_ids"]
    # each waiter met a mutation it did not know (the other's upsert, then the first barrier): one barrier each,
    # after the one ensure_index sent for the metadata indexes
    assert len(barriers) == 3
    assert sorted(cloudflare_standin.vectors(INDEX)) == ids


def test_a_mutation_awaited_in_another_process(target, cloudflare_config, cloudflare_standin):
    ids, values, metadata = _vectors(2)
    mutation = target.vectorize_upsert(INDEX, _ndjson(ids, values, metadata), "executor")
    driver = CloudflareTarget(cloudflare_config)  # knows nothing of the executor's mutations
    driver.vectorize_wait(INDEX, mutation)
    assert sorted(cloudflare_standin.vectors(INDEX)) == ids
    before = len(cloudflare_standin.log)
    CloudflareTarget(cloudflare_config).vectorize_wait(INDEX, None)  # nothing issued: no request at all
    assert len(cloudflare_standin.log) == before


def test_a_driver_told_the_earlier_mutations_waits_without_barriers(target, cloudflare_config, cloudflare_standin):
    """An executor's upserts awaited on the driver: told which of them came before the last, the driver only
    polls; told nothing, each one it sees applied is foreign and costs it a barrier."""
    ids, values, metadata = _vectors(12)

    def upserts(offset: int) -> list[str]:
        return [target.vectorize_upsert(INDEX, _ndjson(ids[i:i + 2], values[i:i + 2], metadata[i:i + 2]), f"e{i}")
                for i in range(offset, offset + 6, 2)]

    def barriers() -> int:
        return sum(r.operation == "delete_by_ids" for r in cloudflare_standin.requests("vectorize"))

    told = upserts(0)
    before = barriers()
    CloudflareTarget(cloudflare_config).vectorize_wait(INDEX, told[-1], told[:-1])
    assert cloudflare_standin.pending_mutations(INDEX) == 0
    assert sorted(cloudflare_standin.vectors(INDEX)) == ids[:6]
    assert barriers() == before

    untold = upserts(6)
    CloudflareTarget(cloudflare_config).vectorize_wait(INDEX, untold[-1])
    assert sorted(cloudflare_standin.vectors(INDEX)) == ids
    assert barriers() > before


def test_query_is_exact_cosine(target):
    ids, values, metadata = _vectors(40, seed=11)
    target.vectorize_wait(INDEX, target.vectorize_upsert(INDEX, _ndjson(ids, values, metadata), "v"))
    probe = np.array([0.3, -1.0, 0.5, 2.0])
    cosine = values @ probe / (np.linalg.norm(values, axis=1) * np.linalg.norm(probe))
    expected = [ids[i] for i in np.argsort(-cosine)[:10]]
    hits = target.vectorize.query(INDEX, probe, 10)
    assert [h["id"] for h in hits] == expected
    assert [h["score"] for h in hits] == pytest.approx(sorted(cosine, reverse=True)[:10])
    popular = [i for i, m in zip(ids, metadata) if m["popularity"] >= 50]
    filtered = target.vectorize.query(INDEX, probe, 40, filter={"popularity": {"$gte": 50}})
    assert sorted(h["id"] for h in filtered) == sorted(popular)
    with_metadata = target.vectorize.query(INDEX, probe, 2, return_metadata="indexed")
    assert set(with_metadata[0]["metadata"]) == {"genre", "popularity"}  # title is not indexed


def test_delete_by_ids_and_drop_index(target, cloudflare_standin):
    ids, values, metadata = _vectors(5)
    target.vectorize_upsert(INDEX, _ndjson(ids, values, metadata), "v")
    mutation = target.vectorize_delete(INDEX, ids[:3], "stale")
    target.vectorize_wait(INDEX, mutation)
    assert sorted(cloudflare_standin.vectors(INDEX)) == ids[3:]
    assert target.vectorize_delete(INDEX, [], "nothing") is None
    target.vectorize_drop_index(INDEX)
    target.vectorize_drop_index(INDEX)  # a missing index is not an error
    assert cloudflare_standin.index_names() == []


def test_client_side_limits(target, cloudflare_standin):
    sent = len(cloudflare_standin.log)
    ids = [f"v{i}" for i in range(VECTORIZE_MAX_VECTORS_PER_UPSERT + 1)]
    body = b"".join(ndjson_record(i, [0.0, 0.0, 0.0, 1.0]) for i in ids)
    assert ndjson_lines(body) == len(ids) and ndjson_lines(body.rstrip(b"\n")) == len(ids)
    with pytest.raises(LimitError, match=r"batch big\): 5001 vectors / \d+ bytes exceed Vectorize's 5000 vectors"):
        target.vectorize_upsert(INDEX, body, "big")
    names = {f"p{i}": "string" for i in range(VECTORIZE_MAX_METADATA_INDEXES)}
    with pytest.raises(LimitError, match="12 metadata indexes exceed Vectorize's 10 per index"):
        target.vectorize_ensure_index(INDEX, 4, "cosine", names)
    assert len(cloudflare_standin.log) == sent + 2  # the ensure read the index and its metadata indexes
    for number in range(VECTORIZE_MAX_METADATA_INDEXES - 2):  # the fixture made 2: fill up to 10 directly
        target.vectorize.create_metadata_index(INDEX, f"p{number}", "number")
    with pytest.raises(CloudflareError, match="vectorize.metadata_index.limit: at most 10 metadata indexes"):
        target.vectorize.create_metadata_index(INDEX, "one_too_many", "string")
    assert [v.limit for v in cloudflare_standin.violations] == ["VECTORIZE_MAX_METADATA_INDEXES"]


def test_server_side_limits_with_their_error_shapes(target, cloudflare_standin):
    long_id = "x" * (VECTORIZE_MAX_ID_BYTES + 1)
    with pytest.raises(CloudflareError, match=r"vectorize:tracks upsert \(batch ids\): HTTP 400, error 40000: "
                                              r"vectorize.invalid_vector_id: id 'xxxxxxxxxxxxxxxxxxxx'… is 65 bytes"):
        target.vectorize_upsert(INDEX, ndjson_record(long_id, [1, 0, 0, 0]), "ids")
    fat = {"genre": "g" * VECTORIZE_MAX_METADATA_BYTES}
    size = len(json.dumps(fat, separators=(",", ":")).encode())
    with pytest.raises(CloudflareError, match=f"vectorize.metadata_too_large: vector 'a' has {size} bytes of "
                                              f"metadata > {VECTORIZE_MAX_METADATA_BYTES}"):
        target.vectorize_upsert(INDEX, ndjson_record("a", [1, 0, 0, 0], fat), "meta")
    with pytest.raises(CloudflareError, match=r"vectorize.invalid_topk: topK 21 must be 1..20"):
        target.vectorize.query(INDEX, [1, 0, 0, 0], VECTORIZE_MAX_TOP_K_WITH_VALUES_OR_METADATA + 1,
                               return_metadata="all")
    assert target.vectorize.query(INDEX, [1, 0, 0, 0], 100) == []  # 100 is fine without values/metadata
    reply = _raw(cloudflare_standin, "upsert", b"{not json\n", "application/x-ndjson")
    assert (reply.status_code, reply.json()["errors"]) == (
        400, [{"code": 40023, "message": "failed to parse upsert vectors request in ndjson format"}])
    reply = _raw(cloudflare_standin, "upsert", ndjson_record("a", [1, 0, 0, 0]), "application/json")
    assert reply.json()["errors"][0]["message"] == "vectorize.unknown_content_type"
    many = b"".join(ndjson_record(f"v{i}", [1, 0, 0, 0]) for i in range(VECTORIZE_MAX_VECTORS_PER_UPSERT + 1))
    reply = _raw(cloudflare_standin, "upsert", many, "application/x-ndjson")
    assert reply.status_code == 400 and "too_many_vectors: 5001 > 5000" in reply.json()["errors"][0]["message"]
    assert [v.limit for v in cloudflare_standin.violations] == [
        "VECTORIZE_MAX_ID_BYTES", "VECTORIZE_MAX_METADATA_BYTES", "VECTORIZE_MAX_TOP_K",
        "VECTORIZE_MAX_VECTORS_PER_UPSERT"]


def test_metadata_indexes_created_late_do_not_index_earlier_vectors(cloudflare_config, cloudflare_standin):
    target = CloudflareTarget(cloudflare_config)
    target.vectorize_ensure_index("late", 2, "cosine", {})
    target.vectorize_wait("late", target.vectorize_upsert("late", ndjson_record("early", [1, 0], {"g": "a"}), "v"))
    target.vectorize_ensure_index("late", 2, "cosine", {"g": "string"})
    target.vectorize_wait("late", target.vectorize_upsert("late", ndjson_record("later", [1, 0], {"g": "a"}), "v"))
    assert [h["id"] for h in target.vectorize.query("late", [1, 0], 5, filter={"g": "a"})] == ["later"]


def test_ndjson_record_is_compact_utf8():
    line = ndjson_record("ünï", [1, 0.5], {"title": "Café 🎵"})
    assert line.endswith(b"\n") and b"\n" not in line[:-1]
    assert json.loads(line) == {"id": "ünï", "values": [1.0, 0.5], "metadata": {"title": "Café 🎵"}}
    assert "Café 🎵".encode() in line
