"""R2 through boto3 against moto's S3 server: put, multipart, get, delete — and no request ever carries an
``x-amz-checksum-*`` header (moto accepts them, R2 does not, so only a hook on every request catches it)."""

from __future__ import annotations

import itertools
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.cloudflare.http import CloudflareError, LimitError, MissingSecretError
from lib.cloudflare.limits import R2_MAX_PART_BYTES, R2_MAX_PARTS, R2_MIN_PART_BYTES
from lib.cloudflare.r2 import R2Client, plan_parts
from lib.cloudflare.services import CloudflareTarget

MIB = 1024 * 1024


class RequestSpy:
    """A ``before-send.s3.*`` hook: records (operation, headers, body length) of every request sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, str], int]] = []

    def __call__(self, request, **kwargs) -> None:
        operation = kwargs["event_name"].rsplit(".", 1)[-1]
        body = request.body
        size = len(body) if isinstance(body, (bytes, bytearray)) else int(request.headers.get("Content-Length", 0))
        self.sent.append((operation, {k.lower(): str(v) for k, v in request.headers.items()}, size))

    def operations(self) -> list[str]:
        return [op for op, _, _ in self.sent]

    def checksum_headers(self) -> list[tuple[str, str]]:
        return [(op, name) for op, headers, _ in self.sent for name in headers if name.startswith("x-amz-checksum")
                or name in ("x-amz-sdk-checksum-algorithm", "x-amz-trailer")]


@pytest.fixture
def r2(r2_config):
    client = R2Client.from_config(r2_config.with_overrides({"r2.multipart_bytes": 6 * MIB,
                                                            "r2.part_bytes": 5 * MIB}))
    spy = RequestSpy()
    client.client.meta.events.register("before-send.s3.*", spy)
    return client, spy


def test_put_get_delete_without_checksum_headers(r2):
    client, spy = r2
    client.put("manifest.json", b'{"version": 3}', "manifest")
    client.put("features/v3/shard-00000.sqlite", b"SQLite format 3\x00" + bytes(range(256)) * 40, "shard-0")
    assert client.get("manifest.json") == b'{"version": 3}'
    assert client.get("missing.json") is None
    client.delete(["manifest.json", "features/v3/shard-00000.sqlite", "never-written"], "old-version")
    assert client.get("manifest.json") is None
    assert spy.operations() == ["PutObject", "PutObject", "GetObject", "GetObject", "DeleteObjects", "GetObject"]
    assert spy.checksum_headers() == []
    delete_headers = spy.sent[4][1]
    assert "content-md5" in delete_headers  # DeleteObjects needs an integrity header: MD5, not CRC32


def test_multipart_parts_are_equal_but_the_last(r2, tmp_path):
    client, spy = r2
    data = os.urandom(13 * MIB + 12345)
    path = tmp_path / "spotify_clean.sqlite3"
    path.write_bytes(data)
    client.put("backup/spotify_clean.sqlite3", str(path), "backup")
    client.put("backup/copy-from-bytes", data, "backup-bytes")
    assert client.get("backup/spotify_clean.sqlite3") == data
    assert client.get("backup/copy-from-bytes") == data
    parts = [size for op, _, size in spy.sent if op == "UploadPart"]
    assert parts == [5 * MIB, 5 * MIB, 3 * MIB + 12345] * 2
    assert spy.operations().count("CompleteMultipartUpload") == 2
    assert spy.checksum_headers() == []


def test_a_failed_multipart_upload_is_aborted(r2, tmp_path):
    client, spy = r2
    path = tmp_path / "vanishing"
    path.write_bytes(b"x" * (12 * MIB))

    def shrink_the_file(request, **kwargs) -> None:
        with open(path, "r+b") as handle:
            handle.truncate(7 * MIB)  # after part 1 (5 MiB) only 2 MiB are left for part 2

    client.client.meta.events.register("before-send.s3.UploadPart", shrink_the_file)
    with pytest.raises(CloudflareError, match=r"r2:aria-\w+ put \(batch backup\): key 'backup/vanishing': OSError: "
                                              r".*changed while uploading: part 2 has 2097152 of 5242880 bytes"):
        client.put("backup/vanishing", str(path), "backup")
    assert spy.operations()[-1] == "AbortMultipartUpload"
    listing = client.client.list_multipart_uploads(Bucket=client.bucket)
    assert listing.get("Uploads", []) == []


def test_keys_and_secrets_are_checked(r2_config, monkeypatch):
    client = R2Client.from_config(r2_config)
    with pytest.raises(LimitError, match="is empty or over 1024 bytes"):
        client.put("k" * 1025, b"x", "long")
    monkeypatch.delenv("R2_SECRET_ACCESS_KEY")
    with pytest.raises(MissingSecretError, match="R2_SECRET_ACCESS_KEY is not set"):
        R2Client.from_config(r2_config)
    secret = "secret-" + "s" * 20
    monkeypatch.setenv("R2_SECRET_ACCESS_KEY", secret)
    client = R2Client.from_config(r2_config)
    assert secret not in repr(client)
    with pytest.raises(TypeError, match="holds secrets"):
        __import__("pickle").dumps(client)


def test_the_target_defaults_the_endpoint_to_the_account(config):
    from lib.cloudflare.r2 import R2Client as Client

    env = {"R2_ACCESS_KEY_ID": "a", "R2_SECRET_ACCESS_KEY": "b"}
    client = Client.from_config(config.with_overrides({"cloudflare.account_id": "abc123", "r2.bucket": "b"}), env)
    assert client.endpoint_url == "https://abc123.r2.cloudflarestorage.com" and client.region == "auto"


def test_target_r2_calls(r2_config):
    target = CloudflareTarget(r2_config)
    target.r2_put("a/b.json", b"{}", "b")
    assert target.r2_get("a/b.json") == b"{}"
    target.r2_delete(["a/b.json"], "b")
    assert target.r2_get("a/b.json") is None


@settings(deadline=None)
@given(size=st.integers(1, 10**15), part=st.integers(R2_MIN_PART_BYTES, R2_MAX_PART_BYTES))
def test_plan_parts_obeys_r2(size, part):
    if -(-size // R2_MAX_PARTS) > R2_MAX_PART_BYTES:
        with pytest.raises(ValueError, match="needs more than 10000 parts"):
            plan_parts(size, part)
        return
    plan = plan_parts(size, part)
    lengths = [length for _, length in plan]
    assert sum(lengths) == size and len(plan) <= R2_MAX_PARTS
    assert plan[0][0] == 0 and all(a + n == b for (a, n), (b, _) in itertools.pairwise(plan))
    assert len(set(lengths[:-1])) <= 1
    assert all(R2_MIN_PART_BYTES <= n <= R2_MAX_PART_BYTES for n in lengths[:-1])
    assert lengths[-1] <= R2_MAX_PART_BYTES
