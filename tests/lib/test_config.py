from __future__ import annotations

from pathlib import Path

import pytest

from lib.config import SCHEMA, Config, ConfigError, load_config


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_follow_the_spec(tmp_path):
    config = load_config(use_default_file=False, base_dir=tmp_path)
    assert (config.cooccurrence.min_playlist_size, config.cooccurrence.max_playlist_size) == (5, 500)
    assert (config.cooccurrence.min_cooccurrence, config.cooccurrence.top_k) == (3, 100)
    assert (config.vectors.tier_a_min_popularity, config.vectors.tier_b_min_popularity) == (30, 10)
    assert (config.similar.seed_count, config.similar.top_k) == (100_000, 100)
    assert config.sample.tracks == 20_000
    assert config.publish.target == "local"
    assert (config.graph.artist_top_k, config.graph.artist_count, config.graph.max_iterations) == (100, 100_000, 20)
    assert config.graph.convergence_fraction == 0.001 and config.vectors.genre_rule == "spec"
    assert config.paths.warehouse == str(tmp_path / "data" / "warehouse")


def test_the_shipped_conf_files_are_valid(tmp_path):
    root = Path(__file__).resolve().parents[2]
    for name in ("local.toml", "cluster.toml"):
        config = load_config(root / "conf" / name, base_dir=tmp_path)
        assert config.spark.master


def test_layers_file_then_set(tmp_path):
    conf = _write(tmp_path / "c.toml", '[sample]\ntracks = 500\nseed = 7\n[paths]\nwarehouse = "wh"\n')
    config = load_config(conf, ["sample.tracks=3000"], base_dir=tmp_path)
    assert config.sample.tracks == 3000  # --set beats the file
    assert config.sample.seed == 7  # the file beats the default
    assert config.paths.warehouse == str(tmp_path / "wh")  # relative to where the command runs
    assert config.paths.spotify == str(tmp_path / "data" / "spotify")


def test_set_values_are_typed(tmp_path):
    config = load_config(
        use_default_file=False,
        sets=["sample.compress=true", "spark.ui=no", "sample.tracks=20_000", "paths.warehouse=s3a://bucket/wh"],
        base_dir=tmp_path,
    )
    assert config.sample.compress is True and config.spark.ui is False
    assert config.sample.tracks == 20_000
    assert config.paths.warehouse == "s3a://bucket/wh"  # URIs are not resolved as local paths


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["sample.trackz=3"],
         r"unknown config key 'sample.trackz' in --set sample.trackz \(did you mean 'sample.tracks'\?\)"),
        (["samples.tracks=3"], r"unknown config section 'samples'"),
        (["sample.tracks=abc"],
         r"config key 'sample.tracks' expects an integer, got 'abc' \(from --set sample.tracks\)"),
        (["sample.compress=maybe"], r"config key 'sample.compress' expects true or false"),
        (["publish.target=s3"], r"config key 'publish.target' must be one of local, cloudflare; got 's3'"),
        (["cooccurrence.top_k=0"], r"config key 'cooccurrence.top_k' must be >= 1; got '0'"),
        (["cooccurrence.min_playlist_size=600"], r"'cooccurrence.min_playlist_size' \(600\) exceeds"),
        (["vectors.tier_b_min_popularity=40"], r"'vectors.tier_b_min_popularity' \(40\) exceeds"),
        (["graph.convergence_fraction=1"], r"config key 'graph.convergence_fraction' must lie in \[0, 1\); got 1.0"),
        (["graph.min_genre_confidence=-0.1"], r"config key 'graph.min_genre_confidence' must be >= 0"),
        (["graph.artist_count=0"], r"config key 'graph.artist_count' must be >= 1"),
        (["vectors.genre_rule=calibrated"], r"config key 'vectors.genre_rule' must be one of spec, nearest"),
        (["sample.tracks"], r"--set expects section.key=value"),
        (["tracks=5"], r"must look like section.key"),
    ],
)
def test_bad_set_values_are_named(tmp_path, sets, message):
    with pytest.raises(ConfigError, match=message):
        load_config(use_default_file=False, sets=sets, base_dir=tmp_path)


def test_bad_file_values_are_named(tmp_path):
    wrong_type = _write(tmp_path / "t.toml", "[sample]\ntracks = \"many\"\n")
    with pytest.raises(ConfigError, match=rf"'sample.tracks' expects an integer, got 'many' \(from {wrong_type}\)"):
        load_config(wrong_type, base_dir=tmp_path)
    unknown = _write(tmp_path / "u.toml", "[cooccurrence]\ntopk = 5\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'cooccurrence.topk' in .*u.toml"):
        load_config(unknown, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", base_dir=tmp_path)
    broken = _write(tmp_path / "b.toml", "[sample\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(broken, base_dir=tmp_path)
    # A float where an integer is declared is refused, not truncated.
    floaty = _write(tmp_path / "f.toml", "[similar]\ntop_k = 10.5\n")
    with pytest.raises(ConfigError, match="'similar.top_k' expects an integer"):
        load_config(floaty, base_dir=tmp_path)


def test_spark_conf_is_free_form(tmp_path):
    conf = _write(tmp_path / "s.toml", '[spark_conf]\n"spark.executor.cores" = 4\n')
    config = load_config(conf, ["spark_conf.spark.sql.adaptive.enabled=false"], base_dir=tmp_path)
    assert config.spark_conf["spark.executor.cores"] == "4"
    assert config.spark_conf["spark.sql.adaptive.enabled"] == "false"


def test_secrets_only_from_the_environment(tmp_path):
    config = load_config(use_default_file=False, base_dir=tmp_path)
    env = {"CLOUDFLARE_API_TOKEN": "tok-123"}
    assert Config.secret("cloudflare_api_token", env) == "tok-123"
    assert Config.secret("r2_access_key_id", env) is None
    assert "tok-123" not in config.to_json()
    with pytest.raises(ConfigError, match="unknown secret 'password'"):
        Config.secret("password", env)
    # A secret is not a config key: it cannot come from a file or --set.
    with pytest.raises(ConfigError, match="unknown config"):
        load_config(use_default_file=False, sets=["cloudflare.api_token=x"], base_dir=tmp_path)


def test_json_round_trip_and_overrides(tmp_path):
    config = load_config(use_default_file=False, base_dir=tmp_path)
    assert Config.from_json(config.to_json()).to_dict() == config.to_dict()
    changed = config.with_overrides({"sample.tracks": 77})
    assert (changed.sample.tracks, config.sample.tracks) == (77, 20_000)
    with pytest.raises(ConfigError, match="expects an integer"):
        config.with_overrides({"sample.tracks": "77"})


def test_every_setting_has_a_doc():
    for section, keys in SCHEMA.items():
        for key, setting in keys.items():
            assert setting.doc, f"{section}.{key}"
