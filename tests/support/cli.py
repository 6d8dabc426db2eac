"""Running ``./spark-submit.sh`` from tests as a user does, in a subprocess, and the JVM options every test JVM
gets (the session's in tests/conftest.py and each spark-submit's).

Why these JVM options: a test JVM lives for seconds to a few minutes and spends its time planning and
code-generating thousands of tiny queries. HotSpot's C2 compiler never pays back there; C1 alone
(``lib.cli.QUICK_JIT_OPTIONS``) with the serial collector cut the driver JVM's CPU time by ~40% on this 2-core
machine (sample → ingest → xref → cooccurrence → vectors on 400 tracks: 88 s → 49 s of JVM CPU). With the
code cache large enough not to be swept (see there) the publish tests took 183 → 151 busy core-s. They change
how fast Java runs, not what Spark computes. ``SPARK_SUBMIT_OPTS`` reaches the driver JVM that spark-submit
starts, without touching the launcher's own ``--driver-java-options``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lib.cli import QUICK_JIT_OPTIONS

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "spark-submit.sh"
TEST_JAVA_OPTIONS = " ".join([*QUICK_JIT_OPTIONS, "-XX:+UseSerialGC"])


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without Spark's variables (the test session's own gateway settings must not
    leak into a child), running the virtualenv of the tests, with the test JVM options."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK", "SPARK_"))}
    env.setdefault("ARIA_VENV", sys.prefix)  # the environment running the tests, not a fresh .venv
    env["SPARK_SUBMIT_OPTS"] = TEST_JAVA_OPTIONS
    return {**env, **extra}


def spark_submit(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """``./spark-submit.sh ARGS`` with stdout and stderr captured as text."""
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd or ROOT, env=clean_env(),
                          timeout=timeout)
