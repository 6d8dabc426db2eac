"""Code shipped as the launcher's --py-files zip works without the source tree, as on a cluster node
(or a cluster-mode driver) that has only the zip: every job imports and package data files load."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.cli import spark_submit

PROBE = """
import importlib, sys
from jobs import JOBS
from jobs.sample import vocab
for name, (module, _) in JOBS.items():
    loaded = importlib.import_module(module)
    assert ".zip" in loaded.__file__, (name, loaded.__file__)
words = vocab.load_vocab()
print(len(words.titles), vocab.__file__)
"""


def app_zip() -> str:
    result = spark_submit("sample", "--print-command", timeout=120)
    assert result.returncode == 0, result.stderr
    command = result.stdout.split()
    return command[command.index("--py-files") + 1]


def test_every_job_imports_and_reads_its_data_from_the_zip_alone(tmp_path):
    env = {**os.environ, "PYTHONPATH": app_zip()}
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=tmp_path, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    titles, origin = result.stdout.split()
    assert int(titles) > 0 and ".zip" in origin
