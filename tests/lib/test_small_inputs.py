"""The job frame's small-input rule: a job whose Delta inputs hold at most ``runs.small_input_rows`` rows runs its
body with ``lib.spark.SMALL_DATA_CONF`` and the session's settings come back afterwards; above the limit, with
the rule off, or for a job without table inputs, the body sees the session as it was."""

from __future__ import annotations

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from lib import delta
from lib.job import Input, JobSpec, execute
from lib.spark import SMALL_DATA_CONF
from tests.support.configs import make_config

KEYS = tuple(SMALL_DATA_CONF)


def seen_by_body(spark, config, inputs, extra_rows=None) -> tuple[dict[str, str | None], dict]:
    seen: dict[str, str | None] = {}

    def body(run):
        seen.update({key: spark.conf.get(key, None) for key in KEYS})

    summary = execute(JobSpec(name="probe", body=body, inputs=inputs, uses_warehouse=False,
                              extra_input_rows=extra_rows), spark, config, record=False)
    return seen, summary


@pytest.fixture
def three_rows(tmp_path):
    config = make_config(tmp_path)
    write_deltalake(delta.table_path(config.paths.warehouse, "bronze", "probe"), pa.table({"id": [1, 2, 3]}))
    return config


@pytest.mark.parametrize(("limit", "extra", "small"), [(3, 0, True), (2, 0, False), (5, 3, False), (0, 0, False)])
def test_small_inputs_run_with_small_data_conf_and_the_session_comes_back(spark, three_rows, limit, extra, small):
    before = {key: spark.conf.get(key, None) for key in KEYS}
    config = three_rows.with_overrides({"runs.small_input_rows": limit})
    seen, summary = seen_by_body(spark, config, (Input("bronze/probe"),), extra_rows=lambda _config: extra)
    assert summary["metrics"]["small_inputs"] is small
    assert seen == (SMALL_DATA_CONF if small else before)
    assert {key: spark.conf.get(key, None) for key in KEYS} == before


def test_a_job_without_table_inputs_is_never_small(spark, tmp_path):
    before = {key: spark.conf.get(key, None) for key in KEYS}
    seen, summary = seen_by_body(spark, make_config(tmp_path), ())
    assert "small_inputs" not in summary["metrics"]
    assert seen == before
