"""One SparkSession for the whole test session (UI off, two shuffle partitions, the test JVM options of
tests/support/cli.py), and a Config whose paths point into each test's own temporary folder."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from lib.config import Config, load_config
from lib.spark import TEST_CONF, build_session
from tests.support.cli import TEST_JAVA_OPTIONS
from tests.support.configs import make_config

if TYPE_CHECKING:
    from tests.support.warehouse import PipelineRun


# Which xdist worker runs a test (pyproject.toml: ``-n 2 --dist loadscope``): a module per worker, so a module
# fixture (many modules build a small warehouse once for all their tests) is built once; and every module
# that uses one expensive session fixture on the same worker, which would otherwise build it again. (The
# ``xdist_group`` mark does not group under pytest 9.2 with xdist 3.8: the node ids it rewrites never
# reach the scheduler, so the grouping is decided here from the modules' sources.)
SHARED_SESSION_FIXTURES = {"pipeline_run": "pipeline", "sample_warehouse": "pipeline", "real_ingest": "real-ingest"}
TESTS = Path(__file__).resolve().parent


def shared_fixture_groups() -> dict[str, str]:
    """test module (as in node ids) → the group of the shared session fixture its source names."""
    groups: dict[str, str] = {}
    for path in sorted(TESTS.rglob("test_*.py")):
        source = path.read_text()
        named = sorted({group for name, group in SHARED_SESSION_FIXTURES.items() if re.search(rf"\b{name}\b", source)})
        if named:
            groups[path.relative_to(TESTS.parent).as_posix()] = named[0]
    return groups


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    from xdist.scheduler import LoadScopeScheduling

    groups = shared_fixture_groups()

    class ModuleOrSharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return groups.get(module, module)

    return ModuleOrSharedFixtureScheduling(config, log)


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    os.environ["PYSPARK_PYTHON"] = sys.executable
    base = load_config(use_default_file=False).with_overrides(
        {"spark.master": "local[2]", "spark.driver_memory": "2g", "spark.log_level": "ERROR"}
    )
    session = build_session(base, "aria-tests",
                            extra_conf={**TEST_CONF, "spark.driver.extraJavaOptions": TEST_JAVA_OPTIONS})
    yield session
    session.stop()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """Defaults with every path inside tmp_path (tests/support/configs.make_config)."""
    return make_config(tmp_path)


@pytest.fixture(scope="session")
def pipeline_run(spark: object, tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    """The pipeline once per session on a tiny sample, with the config ``./spark-submit.sh pipeline`` builds,
    and a snapshot of its folder (tests/support/warehouse.py)."""
    from tests.support import warehouse

    return warehouse.run_pipeline(spark, tmp_path_factory.mktemp("pipeline"))


@pytest.fixture(scope="session")
def sample_warehouse(spark: object, pipeline_run: PipelineRun, tmp_path_factory: pytest.TempPathFactory) -> Config:
    """A copy of the pipeline's warehouse with a second audio_vectors version (tests/support/warehouse.py)."""
    from tests.support import warehouse

    return warehouse.build(spark, pipeline_run, tmp_path_factory.mktemp("sample-warehouse"))


@pytest.fixture(scope="session")
def real_ingest(spark: object, tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, object, dict, Path]:
    """ingest once per session on the real-layout dump of tests/support/real_dump.py and the real MusicBrainz
    fixture: (config, what the dump expects, the ingest metrics, its folder). Read it; a test that needs to
    change the dump or the warehouse copies them (shutil.copytree) first."""
    from jobs.ingest import job as ingest
    from tests.support.real_dump import MB_FIXTURE, build_real_dump

    base = tmp_path_factory.mktemp("ingest")
    expected = build_real_dump(base / "spotify")
    cfg = make_config(base, paths__musicbrainz=str(MB_FIXTURE), ingest__rows_per_task=100)
    return cfg, expected, ingest.run(spark, cfg)["metrics"], base


# Cloudflare stand-in and moto S3 fixtures (cloudflare_standin, cloudflare_config, moto_endpoint, r2_bucket, …).
from tests.support.cloudflare_fixtures import (  # noqa: E402, F401
    cloudflare_config,
    cloudflare_standin,
    cloudflare_token,
    moto_endpoint,
    r2_bucket,
    r2_config,
)
