"""pytest fixtures for the Cloudflare stand-in and moto's S3 server (imported by tests/conftest.py).

``cloudflare_config`` is the test ``config`` pointed at a fresh stand-in, with the token in the environment,
short polls and back-offs, and one task holding the whole budget (tests send a few hundred requests at most).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lib.config import Config
from tests.support.cloudflare_standin import CloudflareStandin

D1_DATABASE = "test-db"
KV_NAMESPACE = "test-ns"
R2_REGION = "us-east-1"  # moto refuses "auto" on CreateBucket


@pytest.fixture
def cloudflare_token(monkeypatch: pytest.MonkeyPatch) -> str:
    token = "cf-test-" + secrets.token_hex(12)
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", token)
    return token


@pytest.fixture
def cloudflare_standin(tmp_path: Path, cloudflare_token: str) -> Iterator[CloudflareStandin]:
    with CloudflareStandin(tmp_path / "cloudflare-standin", cloudflare_token) as standin:
        yield standin


def standin_overrides(standin: CloudflareStandin) -> dict[str, object]:
    return {
        "cloudflare.api_base": standin.url, "cloudflare.account_id": standin.account_id,
        "cloudflare.d1_database_id": D1_DATABASE, "cloudflare.kv_namespace_id": KV_NAMESPACE,
        "cloudflare.request_budget": 1200, "cloudflare.concurrent_tasks": 1, "cloudflare.burst": 600,
        "cloudflare.max_tries": 4, "cloudflare.backoff_initial_s": 0.01, "cloudflare.backoff_max_s": 0.05,
        "cloudflare.poll_interval_s": 0.01, "cloudflare.poll_timeout_s": 10.0, "cloudflare.timeout_s": 10.0,
    }


@pytest.fixture
def cloudflare_config(config: Config, cloudflare_standin: CloudflareStandin) -> Config:
    return config.with_overrides(standin_overrides(cloudflare_standin))


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (a real HTTP endpoint), one per test session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def r2_bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the moto server, with R2_* keys in the environment."""
    import boto3

    monkeypatch.setenv("R2_ACCESS_KEY_ID", "test-key-id")
    monkeypatch.setenv("R2_SECRET_ACCESS_KEY", "test-secret-" + secrets.token_hex(8))
    bucket = f"aria-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name=R2_REGION, aws_access_key_id="x",
                 aws_secret_access_key="x").create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture
def r2_config(config: Config, moto_endpoint: str, r2_bucket: str) -> Config:
    return config.with_overrides({"r2.endpoint_url": moto_endpoint, "r2.bucket": r2_bucket, "r2.region": R2_REGION,
                                  "cloudflare.max_tries": 2})
