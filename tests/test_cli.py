"""The command line, run as users run it: ./spark-submit.sh in a subprocess."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from jobs import JOBS
from lib import delta
from tests.support.cli import spark_submit


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return spark_submit(*args, cwd=cwd, timeout=300)


def test_help_lists_every_job():
    result = run("--help")
    assert result.returncode == 0
    for name, (_, doc) in JOBS.items():
        assert f"{name}" in result.stdout and doc in result.stdout


def test_a_lib_folder_where_it_is_run_does_not_shadow_the_tool(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "__init__.py").write_text("")
    (tmp_path / "lib" / "cli.py").write_text("raise SystemExit('the wrong lib')\n")
    result = run("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "usage: ./spark-submit.sh" in result.stdout


def test_help_config_shows_only_sections_of_registered_jobs():
    from lib.config import SCHEMA, SECTION_OWNERS

    shown = {line.split(".", 1)[0] for line in run("--help-config").stdout.splitlines() if "." in line.split(" ")[0]}
    for section in SCHEMA:
        owner = SECTION_OWNERS.get(section)
        assert (section in shown) == (owner is None or owner in JOBS), section


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "error: unknown job 'nope' (jobs: sample, ingest"),
        ([], "error: no job given"),
        (["ingest", "--set", "cooccurrence.topk=5"], "error: unknown config key 'cooccurrence.topk'"),
        (["ingest", "--set", "sample.tracks=many"], "error: config key 'sample.tracks' expects an integer, got 'many'"),
        (["ingest", "--frobnicate"], "error: unknown option '--frobnicate' for job 'ingest'"),
        (["ingest", "--conf", "/nonexistent.toml"], "error: config file /nonexistent.toml does not exist"),
        (["xref", "--set", "xref.duration_tolerance_s=20"],
         "error: config key 'xref.duration_tolerance_s' (20) exceeds 'xref.max_duration_gap_s' (10)"),
        (["xref", "--set", "xref.min_confidence=1.5"], "error: config key 'xref.min_confidence' must lie in 0..1"),
        (["vectors", "--set", "similar.vector=hybrid"], "error: config key 'similar.vector' is 'hybrid' but"),
        (["ingest", "--dry-run"], "error: --dry-run applies to the publish job only"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(message)
    assert len(result.stderr.strip().splitlines()) == 1


def test_print_command_ships_lib_and_jobs_as_a_zip():
    result = run(
        "ingest", "--print-command", "--master", "spark://example:7077", "--set", "spark_conf.spark.executor.cores=3"
    )
    assert result.returncode == 0
    command = result.stdout.split()
    assert command[command.index("--master") + 1] == "spark://example:7077"
    assert "spark.executor.cores=3" in command
    app_zip = command[command.index("--py-files") + 1]
    names = zipfile.ZipFile(app_zip).namelist()
    assert "lib/delta.py" in names and "jobs/ingest/job.py" in names and "jobs/sample/vocab.json" in names
    assert command[-3].endswith("driver.py") and command[-2] == "ingest"


def test_sample_through_spark_submit(tmp_path):
    """The issue's acceptance command: writes the three real-layout files and the mbdump."""
    result = run("sample", "--set", f"paths.spotify={tmp_path}/A", "--set", f"paths.musicbrainz={tmp_path}/B",
                 "--set", "sample.tracks=3000", "--set", f"paths.warehouse={tmp_path}/wh", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("spotify_clean.sqlite3", "spotify_clean_audio_features.sqlite3", "spotify_clean_playlists.sqlite3"):
        assert (tmp_path / "A" / name).stat().st_size > 0
    for table in ("isrc", "recording", "artist_credit", "artist_credit_name", "artist"):
        assert (tmp_path / "B" / "mbdump" / table).stat().st_size > 0
    summary = json.loads(result.stdout)  # --json: stdout is exactly one JSON document
    assert summary["job"] == "sample" and summary["status"] == "succeeded"
    assert summary["metrics"]["tracks"] >= 3000 and set(summary) >= {"inputs", "outputs", "left_out", "steps"}
    assert delta.exists(str(tmp_path / "wh" / "gold" / "_runs"))
    # The launcher ends without the interpreter's teardown (lib.cli.exit_process): the threads of a pyarrow
    # scan used to abort it (exit 134) after the table was printed, in most runs.
    for _ in range(4):
        history = run("runs", "--set", f"paths.warehouse={tmp_path}/wh", cwd=tmp_path)
        assert history.returncode == 0, history.stderr[-500:]
        assert history.stdout.splitlines()[1].split()[:2] == ["sample", "succeeded"]


def test_input_error_exits_nonzero_with_the_file_named(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run("ingest", "--set", f"paths.spotify={tmp_path}/empty", "--set", f"paths.warehouse={tmp_path}/wh",
                 cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""  # errors and log lines go to stderr; stdout is for the summary only
    assert f"error: {tmp_path}/empty/spotify_clean.sqlite3: file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_warehouse_that_is_a_file_is_one_line_and_exit_1(tmp_path):
    warehouse = tmp_path / "warehouse"
    warehouse.write_text("not a folder")
    result = run("cooccurrence", "--set", f"paths.warehouse={warehouse}")
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: {warehouse}: the warehouse (paths.warehouse) is a file, not a folder"
    assert warehouse.read_text() == "not a folder"


def test_check_tables_finds_a_missing_file(tmp_path):
    import pyarrow as pa
    from deltalake import write_deltalake

    warehouse = tmp_path / "warehouse"
    uri = delta.table_path(str(warehouse), "gold", "t")
    write_deltalake(uri, pa.table({"id": [1, 2]}))
    write_deltalake(uri, pa.table({"id": [3]}), mode="append")
    healthy = run("check-tables", "--set", f"paths.warehouse={warehouse}")
    assert healthy.returncode == 0, healthy.stderr
    assert "gold/t" in healthy.stdout and "0 damaged" in healthy.stdout
    first_file = sorted(Path(uri).glob("*.parquet"), key=lambda p: p.stat().st_mtime)[0]
    first_file.unlink()
    damaged = run("check-tables", "--set", f"paths.warehouse={warehouse}")
    assert damaged.returncode == 1
    assert f"version 0: missing file {first_file.name}" in damaged.stdout
    assert "2 damaged version(s)" in damaged.stdout
