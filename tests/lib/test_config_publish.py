"""The publish and promote sections: the spec's defaults, and every size refused above the documented limit it
is a budget within — before Spark starts, with the key named."""

from __future__ import annotations

import pytest

from lib.cloudflare import limits
from lib.config import ConfigError, load_config


def test_defaults_follow_the_spec_and_the_issue(tmp_path):
    config = load_config(use_default_file=False, base_dir=tmp_path)
    pub, promote = config.publish, config.promote
    assert (pub.target, pub.local_dir, pub.dry_run) == ("local", str(tmp_path / "data" / "publish"), False)
    assert (pub.d1_max_bytes, pub.vectorize_max_per_index, pub.kv_prewarm) == (5_000_000_000, 10_000_000, 10_000)
    assert (pub.r2_shard_bytes, pub.r2_backup) == (32 * 1024 * 1024, False)
    assert (promote.access_threshold, promote.batch_size, promote.max_vectors) == (3, 1000, 20_000_000)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("publish.d1_max_bytes", limits.D1_MAX_DATABASE_BYTES + 1, "10 GB per database"),
    ("publish.d1_import_file_bytes", limits.D1_MAX_IMPORT_FILE_BYTES + 1, "5 GB per import file"),
    ("publish.vectorize_max_per_index", limits.VECTORIZE_MAX_VECTORS_PER_INDEX + 1, "10M vectors per index"),
    ("publish.r2_shard_bytes", limits.WORKER_MEMORY_BYTES, "128 MB"),
])
def test_sizes_above_the_documented_limits_are_refused(tmp_path, key, value, message):
    with pytest.raises(ConfigError, match=f"'{key}'.*{message}"):
        load_config(use_default_file=False, base_dir=tmp_path, sets=[f"{key}={value}"])


@pytest.mark.parametrize("assignment", ["promote.access_threshold=0", "publish.kv_prewarm=-1",
                                        "publish.target=s3", "publish.dry_run=maybe"])
def test_bad_values_are_refused_by_name(tmp_path, assignment):
    with pytest.raises(ConfigError, match=assignment.split("=")[0]):
        load_config(use_default_file=False, base_dir=tmp_path, sets=[assignment])
