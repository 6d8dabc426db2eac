"""The driver JVM options ./spark-submit.sh passes: C1-only compilation for the jobs that ask for it, the
class-data-sharing archive (written by a first run, published only when that run succeeded, then used), and
the user's own options kept."""

from __future__ import annotations

from lib import cli
from lib.config import load_config


def _options(command: list[str]) -> list[str]:
    return command[command.index("--driver-java-options") + 1].split()


def _command(config, job: str, tmp_path) -> list[str]:
    return cli.spark_submit_command(cli.Invocation(job), config, tmp_path / "app.zip")


def test_quick_jit_only_for_the_jobs_named(tmp_path):
    config = load_config(use_default_file=False).with_overrides({"spark.class_archive": False})
    assert set(cli.QUICK_JIT_OPTIONS) <= set(_options(_command(config, "ingest", tmp_path)))
    assert "-XX:TieredStopAtLevel=1" not in _options(_command(config, "cooccurrence", tmp_path))
    custom = config.with_overrides({"spark.quick_jit_jobs": ["cooccurrence"],
                                    "spark_conf.spark.driver.extraJavaOptions": "-Dmine=1"})
    command = _command(custom, "cooccurrence", tmp_path)
    assert "-XX:TieredStopAtLevel=1" in _options(command) and "-Dmine=1" in _options(command)
    assert not any(arg.startswith("spark.driver.extraJavaOptions=") for arg in command)  # merged, not repeated


def test_class_archive_is_written_once_published_on_success_then_used(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "ROOT", tmp_path)
    config = load_config(use_default_file=False)
    archive = cli.class_archive()
    assert archive is not None and archive.parent == tmp_path / "build" / "jvm"
    first = _command(config, "ingest", tmp_path)
    (written,) = [o.split("=", 1)[1] for o in _options(first) if o.startswith("-XX:ArchiveClassesAtExit=")]
    (tmp_path / "build" / "jvm" / written.rsplit("/", 1)[1]).write_bytes(b"archive")
    cli.publish_archive(first, 1)  # a failed run: its archive is dropped
    assert not archive.exists() and not list(archive.parent.iterdir())
    (tmp_path / "build" / "jvm" / written.rsplit("/", 1)[1]).write_bytes(b"archive")
    cli.publish_archive(first, 0)
    assert archive.read_bytes() == b"archive"
    assert f"-XX:SharedArchiveFile={archive}" in _options(_command(config, "ingest", tmp_path))
    cluster = config.with_overrides({"spark.deploy_mode": "cluster"})
    assert not any("Archive" in o for o in _options(_command(cluster, "ingest", tmp_path)))
