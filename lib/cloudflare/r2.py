"""R2 through boto3 (the S3 API).

boto3 ≥ 1.36 sends integrity checksums by default (``x-amz-checksum-*``) that R2 rejects, so the client is
built with ``request_checksum_calculation`` / ``response_checksum_validation`` = ``"when_required"``. Even
then botocore adds a CRC32 header to DeleteObjects (its API model requires a checksum); that one call gets a
``Content-MD5`` instead, which S3 and R2 have always accepted. No request carries an ``x-amz-checksum-*``
header (tests/lib/test_cloudflare_r2.py checks every request with a ``before-send`` hook).

Objects above ``r2.multipart_bytes`` upload in parts, all but the last of one size between 5 MiB and
5 GiB, at most 10,000 parts (``plan_parts``); a failed multipart upload is aborted, never left behind.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from lib.cloudflare.http import CloudflareError, LimitError, require_secret
from lib.cloudflare.limits import (
    R2_MAX_KEY_BYTES,
    R2_MAX_KEYS_PER_DELETE,
    R2_MAX_PART_BYTES,
    R2_MAX_PARTS,
    R2_MIN_PART_BYTES,
)
from lib.config import Config


def plan_parts(size: int, part_bytes: int) -> list[tuple[int, int]]:
    """(offset, length) of each part: one part size for all but the last, within R2's limits."""
    if size <= 0:
        return []
    part = max(R2_MIN_PART_BYTES, part_bytes, -(-size // R2_MAX_PARTS))
    if part > R2_MAX_PART_BYTES:
        raise ValueError(f"an object of {size} bytes needs more than {R2_MAX_PARTS} parts of at most "
                         f"{R2_MAX_PART_BYTES} bytes")
    return [(offset, min(part, size - offset)) for offset in range(0, size, part)]


def _chunks(body: bytes | bytearray | str | Path, plan: list[tuple[int, int]]) -> Iterator[bytes]:
    if isinstance(body, (bytes, bytearray)):
        for offset, length in plan:
            yield bytes(body[offset:offset + length])
        return
    with open(body, "rb") as handle:
        for _, length in plan:
            yield handle.read(length)


def _md5_instead_of_crc32(params: dict[str, Any], **_: Any) -> None:
    """``before-call.s3.DeleteObjects``: replace botocore's required CRC32 by Content-MD5."""
    checksum = params.get("context", {}).get("checksum", {})
    checksum.pop("request_algorithm", None)
    checksum.pop("request_algorithm_header", None)
    body = params.get("body") or b""
    params["headers"]["Content-MD5"] = base64.b64encode(hashlib.md5(body).digest()).decode()


class R2Client:
    """One bucket. ``client`` (boto3) is built on first use, in the process that sends."""

    def __init__(self, endpoint_url: str, bucket: str, *, region: str = "auto",
                 multipart_bytes: int = 100 * 1024 * 1024, part_bytes: int = 64 * 1024 * 1024,
                 max_attempts: int = 6, timeout_s: float = 120.0, env: Mapping[str, str] | None = None) -> None:
        self.endpoint_url, self.bucket, self.region = endpoint_url, bucket, region
        self.multipart_bytes, self.part_bytes = multipart_bytes, part_bytes
        self.max_attempts, self.timeout_s = max_attempts, timeout_s
        self.target = f"r2:{bucket}"
        purpose = "the cloudflare target needs an R2 API token's S3 access key pair"
        self._key_id = require_secret("r2_access_key_id", purpose, env)
        self._secret = require_secret("r2_secret_access_key", purpose, env)
        self._client: Any = None

    @classmethod
    def from_config(cls, config: Config, env: Mapping[str, str] | None = None) -> R2Client:
        r2, cf = config.r2, config.cloudflare
        endpoint = r2.endpoint_url or f"https://{cf.account_id}.r2.cloudflarestorage.com"
        return cls(endpoint, r2.bucket, region=r2.region, multipart_bytes=r2.multipart_bytes,
                   part_bytes=r2.part_bytes, max_attempts=cf.max_tries, timeout_s=cf.timeout_s, env=env)

    def __repr__(self) -> str:
        return f"R2Client({self.endpoint_url}, bucket={self.bucket})"

    def __reduce__(self) -> Any:
        raise TypeError("R2Client holds secrets and a live client: pickle the Config (or the target) instead")

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config as BotoConfig

            config = BotoConfig(
                request_checksum_calculation="when_required", response_checksum_validation="when_required",
                retries={"max_attempts": self.max_attempts, "mode": "standard"},
                connect_timeout=self.timeout_s, read_timeout=self.timeout_s,
            )
            client = boto3.session.Session().client(
                "s3", endpoint_url=self.endpoint_url, region_name=self.region, aws_access_key_id=self._key_id,
                aws_secret_access_key=self._secret, config=config,
            )
            client.meta.events.register("before-call.s3.DeleteObjects", _md5_instead_of_crc32)
            self._client = client
        return self._client

    def _fail(self, operation: str, key: str, label: str, exc: Exception) -> CloudflareError:
        error = getattr(exc, "response", {}).get("Error", {}) if hasattr(exc, "response") else {}
        detail = f"{error.get('Code')}: {error.get('Message')}" if error else f"{type(exc).__name__}: {exc}"
        return CloudflareError(self.target, operation, label, f"key {key!r}: {detail}")

    def _check_key(self, key: str, operation: str, label: str) -> None:
        if not key or len(key.encode()) > R2_MAX_KEY_BYTES:
            raise LimitError(self.target, operation, label, f"key {key[:80]!r} is empty or over {R2_MAX_KEY_BYTES} "
                             "bytes")

    def put(self, key: str, body: bytes | str | Path, label: str) -> None:
        """Store ``body`` (bytes, or the path of a local file) at ``key``; multipart above multipart_bytes."""
        from botocore.exceptions import BotoCoreError, ClientError

        self._check_key(key, "put", label)
        size = len(body) if isinstance(body, (bytes, bytearray)) else os.path.getsize(body)
        try:
            if size <= self.multipart_bytes:
                data = bytes(body) if isinstance(body, (bytes, bytearray)) else Path(body).read_bytes()
                self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
            else:
                self._multipart(key, body, size)
        except (BotoCoreError, ClientError, OSError) as exc:
            raise self._fail("put", key, label, exc) from None

    def _multipart(self, key: str, body: bytes | bytearray | str | Path, size: int) -> None:
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        try:
            parts = []
            plan = plan_parts(size, self.part_bytes)
            for number, ((_, length), chunk) in enumerate(zip(plan, _chunks(body, plan)), 1):
                if len(chunk) != length:
                    raise OSError(f"{body} changed while uploading: part {number} has {len(chunk)} of "
                                  f"{length} bytes")
                reply = self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                PartNumber=number, Body=chunk)
                parts.append({"PartNumber": number, "ETag": reply["ETag"]})
            self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                  MultipartUpload={"Parts": parts})
        except BaseException:
            with contextlib.suppress(Exception):  # the original error is the one to report
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such key."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise self._fail("get", key, "-", exc) from None
        except BotoCoreError as exc:
            raise self._fail("get", key, "-", exc) from None

    def delete(self, keys: Sequence[str], label: str) -> None:
        """Delete ``keys`` (missing keys are not an error), 1000 per request."""
        from botocore.exceptions import BotoCoreError, ClientError

        keys = list(keys)
        for start in range(0, len(keys), R2_MAX_KEYS_PER_DELETE):
            chunk = keys[start:start + R2_MAX_KEYS_PER_DELETE]
            try:
                reply = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True})
            except (BotoCoreError, ClientError) as exc:
                raise self._fail("delete", chunk[0], label, exc) from None
            errors = reply.get("Errors") or []
            if errors:
                shown = "; ".join(f"{e.get('Key')}: {e.get('Code')} {e.get('Message')}" for e in errors[:3])
                raise CloudflareError(self.target, "delete", label, f"{len(errors)} keys not deleted: {shown}")
