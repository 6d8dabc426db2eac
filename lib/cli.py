"""``./spark-submit.sh <job> [--conf FILE] [--set section.key=value ...]``

The launcher validates the job name and the whole configuration before any JVM starts (one line and
exit code 2 on a mistake), packs ``lib`` and ``jobs`` into a zip for ``--py-files`` so the same
command runs on a cluster, and replaces itself with pyspark's ``spark-submit``. The driver side
(``driver.py`` → ``driver_main``) receives the resolved configuration, builds the SparkSession and
runs the job through ``lib.runs.run_job`` so every run is recorded.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from lib.config import Config, ConfigError, describe, load_config
from lib.spark import session_conf

ROOT = Path(__file__).resolve().parent.parent
EXIT_USAGE = 2
EXIT_FAILED = 1


def _jobs() -> dict[str, tuple[str, str]]:
    from jobs import JOBS

    return JOBS


def _commands() -> dict[str, str]:
    from jobs import COMMANDS

    return COMMANDS


def usage() -> str:
    jobs = "\n".join(f"  {name:<14}{doc}" for name, (_, doc) in _jobs().items())
    commands = "\n".join(f"  {name:<14}{doc}" for name, doc in _commands().items())
    return f"""usage: ./spark-submit.sh <job> [options]

jobs:
{jobs}

commands (no Spark):
{commands}

options:
  --conf FILE               TOML configuration (default: conf/local.toml)
  --set section.key=value   override one key (repeatable); e.g. --set sample.tracks=3000
  --master URL              Spark master (same as --set spark.master=URL)
  --deploy-mode MODE        client or cluster (same as --set spark.deploy_mode=MODE)
  --json                    print the job's whole summary as one JSON document (stdout) instead of the table
  --force                   rerun even when inputs, config and code are unchanged since the last success
  --verbose                 log lines of the jobs and Spark at INFO (default: warnings only)
  --from JOB                pipeline: start at JOB
  --only JOB[,JOB]          pipeline: run only these jobs
  --job J / --last N        runs: only job J / the last N runs
  --print-command           print the spark-submit command instead of running it
  --dry-run                 publish only: print the plan and costs, change nothing
  --help-config             list every configuration key with its default
  -h, --help                this help

Secrets come only from the environment: CLOUDFLARE_API_TOKEN, R2_ACCESS_KEY_ID, R2_SECRET_ACCESS_KEY."""


class UsageError(ValueError):
    pass


@dataclass
class Invocation:
    job: str
    conf_file: str | None = None
    sets: list[str] = field(default_factory=list)
    print_command: bool = False
    json: bool = False
    runs_job: str | None = None
    runs_last: int | None = None


def parse_args(argv: list[str]) -> Invocation:
    if not argv:
        raise UsageError("no job given; run ./spark-submit.sh --help for the list")
    job, rest = argv[0], argv[1:]
    if job.startswith("-"):
        raise UsageError(f"unknown option '{job}' before the job name; run ./spark-submit.sh --help")
    jobs = _jobs()
    if job not in jobs and job not in _commands():
        raise UsageError(f"unknown job '{job}' (jobs: {', '.join([*jobs, *_commands()])})")
    invocation = Invocation(job)
    index = 0

    def value(flag: str) -> str:
        nonlocal index
        if index + 1 >= len(rest) or rest[index + 1].startswith("--"):
            raise UsageError(f"option {flag} needs a value")
        index += 1
        return rest[index]

    while index < len(rest):
        arg = rest[index]
        flag, eq, inline = arg.partition("=")
        if flag in ("--conf", "--set", "--master", "--deploy-mode", "--from", "--only", "--job", "--last") and eq:
            rest[index : index + 1] = [flag, inline]
            continue
        if arg == "--conf":
            invocation.conf_file = value(arg)
        elif arg == "--set":
            invocation.sets.append(value(arg))
        elif arg == "--master":
            invocation.sets.append(f"spark.master={value(arg)}")
        elif arg == "--deploy-mode":
            invocation.sets.append(f"spark.deploy_mode={value(arg)}")
        elif arg == "--print-command":
            invocation.print_command = True
        elif arg == "--json":
            invocation.json = True
        elif arg == "--force":
            invocation.sets.append("runs.skip_unchanged=false")
        elif arg == "--verbose":
            invocation.sets.append("spark.log_level=INFO")
        elif arg in ("--from", "--only"):
            if job != "pipeline":
                raise UsageError(f"{arg} applies to the pipeline only")
            names = value(arg)
            for name in names.split(","):
                if name not in jobs:
                    raise UsageError(f"{arg}: unknown job '{name}' (jobs: {', '.join(jobs)})")
            invocation.sets.append(f"pipeline.{arg[2:]}={names}")
        elif arg in ("--job", "--last") and job == "runs":
            text = value(arg)
            if arg == "--job":
                invocation.runs_job = text
            elif text.isdigit() and int(text) > 0:
                invocation.runs_last = int(text)
            else:
                raise UsageError(f"--last expects a positive number, got '{text}'")
        elif arg == "--dry-run":
            if job != "publish":
                raise UsageError("--dry-run applies to the publish job only (use --print-command to see the "
                                 "spark-submit command)")
            invocation.sets.append("publish.dry_run=true")
        else:
            raise UsageError(f"unknown option '{arg}' for job '{job}'; run ./spark-submit.sh --help")
        index += 1
    return invocation


def build_zip(target_dir: Path) -> Path:
    """lib/ and jobs/ as one zip for --py-files (data files such as vocabularies included)."""
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / "aria-app.zip"
    handle, temp_name = tempfile.mkstemp(dir=target_dir, suffix=".zip.tmp")
    os.close(handle)
    with zipfile.ZipFile(temp_name, "w", zipfile.ZIP_DEFLATED) as archive:
        for package in ("lib", "jobs"):
            for path in sorted((ROOT / package).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                    archive.write(path, path.relative_to(ROOT).as_posix())
    os.replace(temp_name, target)
    return target


def encode_config(config: Config) -> str:
    return base64.urlsafe_b64encode(config.to_json().encode()).decode()


def decode_config(text: str) -> Config:
    return Config.from_json(base64.urlsafe_b64decode(text.encode()).decode())


DRIVER_JAVA_OPTIONS = "spark.driver.extraJavaOptions"
CDS_QUIET = ("-Xshare:auto", "-Xlog:cds=off", "-Xlog:cds+dynamic=off")


def class_archive(java_home: str | None = None) -> Path | None:
    """Where the driver JVM's class-data-sharing archive lives: one per JDK and set of Spark jars (a JVM
    ignores an archive made by another build, silently with ``CDS_QUIET``); None without java or pyspark."""
    import hashlib
    import importlib.util
    import shutil

    java_home = java_home if java_home is not None else os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    spec = importlib.util.find_spec("pyspark")
    if not java or not Path(java).exists() or spec is None or spec.origin is None:
        return None
    binary = Path(java).resolve()
    digest = hashlib.sha256(f"{binary}:{binary.stat().st_size}:{binary.stat().st_mtime_ns}".encode())
    for jar in sorted((Path(spec.origin).parent / "jars").glob("*.jar")):
        digest.update(f"{jar.name}:{jar.stat().st_size}".encode())
    return ROOT / "build" / "jvm" / f"spark-{digest.hexdigest()[:16]}.jsa"


def pending_archive(archive: Path) -> Path:
    """The file a run that makes the archive writes at exit (renamed to ``archive`` once it succeeded)."""
    return archive.with_name(f"{archive.name}.{os.getpid()}.tmp")


# C1 only: a short-lived JVM that mostly schedules tasks never pays back C2's compile time. C1 alone also
# shrinks HotSpot's default code cache to 48 MB, which Spark's generated classes and lambdas overflow: the
# sweeper then evicts code the compiler compiles again (measured on the publish tests: 9.6 + ~10 of 122 JVM
# CPU seconds), so the cache is 512 MB with no flushing.
QUICK_JIT_OPTIONS = ("-XX:TieredStopAtLevel=1", "-XX:ReservedCodeCacheSize=512m", "-XX:-UseCodeCacheFlushing")


def driver_java_options(config: Config, job: str) -> list[str]:
    """The driver JVM's options: log4j config, C1-only compilation for ``spark.quick_jit_jobs``, and the class
    archive (used when present, else written at exit: ``launch`` publishes it), then the user's own."""
    options = [f"-Dlog4j2.configurationFile=file:{ROOT / 'conf' / 'log4j2.properties'}"]
    if job in config.spark.quick_jit_jobs:
        options += QUICK_JIT_OPTIONS
    archive = class_archive() if config.spark.class_archive and config.spark.deploy_mode == "client" else None
    if archive is not None:
        if archive.is_file():
            options += [f"-XX:SharedArchiveFile={archive}", *CDS_QUIET]
        else:
            archive.parent.mkdir(parents=True, exist_ok=True)
            options += [f"-XX:ArchiveClassesAtExit={pending_archive(archive)}", *CDS_QUIET]
    if config.spark_conf.get(DRIVER_JAVA_OPTIONS):
        options.append(str(config.spark_conf[DRIVER_JAVA_OPTIONS]))
    return options


def spark_submit_command(invocation: Invocation, config: Config, app_zip: Path) -> list[str]:
    spark_submit = Path(sys.executable).parent / "spark-submit"
    command = [
        str(spark_submit),
        "--master", config.spark.master,
        "--deploy-mode", config.spark.deploy_mode,
        "--name", f"{config.spark.app_name}-{invocation.job}",
        "--driver-memory", config.spark.driver_memory,
        "--py-files", str(app_zip),
    ]
    command += ["--driver-java-options", " ".join(driver_java_options(config, invocation.job))]
    if config.spark.executor_memory:
        command += ["--executor-memory", config.spark.executor_memory]
    for key, val in sorted(session_conf(config).items()):
        if key != DRIVER_JAVA_OPTIONS:  # merged into --driver-java-options
            command += ["--conf", f"{key}={val}"]
    command += [str(ROOT / "driver.py"), invocation.job, encode_config(config)]
    if invocation.json:
        command.append("--json")
    return command


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(usage())
        return 0
    if args and args[0] == "--help-config":
        print(describe())
        return 0
    try:
        invocation = parse_args(args)
        config = load_config(invocation.conf_file, invocation.sets)
    except (UsageError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from lib.delta import DeltaLayerError, check_warehouse

    try:
        check_warehouse(config.paths.warehouse)
    except DeltaLayerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if invocation.job == "check-tables":
        return check_tables(config)
    if invocation.job == "runs":
        return show_runs(config, invocation)
    app_zip = build_zip(ROOT / "build")
    command = spark_submit_command(invocation, config, app_zip)
    if invocation.print_command:
        print(" ".join(command))
        return 0
    os.environ["PYSPARK_PYTHON"] = config.spark.python or sys.executable
    return launch(command, invocation)


def launch(command: list[str], invocation: Invocation) -> int:
    """Run spark-submit and keep stdout for the summary. spark-submit's PythonRunner merges the driver's stderr
    into its stdout, so the child's whole output (log lines, errors) is sent to our stderr, and the driver
    leaves its summary in a file that is printed on stdout afterwards (a table, or JSON with --json)."""
    import signal
    import subprocess

    if config_deploy_mode(command) == "cluster":  # the driver runs elsewhere: no summary file to read
        os.execv(command[0], command)
    summaries = ROOT / "build" / "summaries"
    summaries.mkdir(parents=True, exist_ok=True)
    summary_file = summaries / f"{os.getpid()}-{invocation.job}.json"
    summary_file.unlink(missing_ok=True)
    child = subprocess.Popen([*command, "--summary-file", str(summary_file)], stdout=sys.stderr.fileno())
    try:
        code = child.wait()
    except KeyboardInterrupt:
        child.send_signal(signal.SIGINT)
        code = child.wait()
    publish_archive(command, code)
    if summary_file.is_file():
        from lib.console import render

        text = summary_file.read_text()
        summary_file.unlink()
        print(text if invocation.json else render(json.loads(text)))
    return code if code >= 0 else EXIT_FAILED


def publish_archive(command: list[str], code: int) -> None:
    """After a run that wrote the class archive: keep it when the run succeeded (the JVM wrote it whole at
    exit), else drop it; a concurrent run that published one first is simply replaced."""
    options = command[command.index("--driver-java-options") + 1] if "--driver-java-options" in command else ""
    for option in options.split():
        if option.startswith("-XX:ArchiveClassesAtExit="):
            written = Path(option.split("=", 1)[1])
            if code == 0 and written.is_file() and written.stat().st_size > 0:
                os.replace(written, written.with_name(written.name.rsplit(".", 2)[0]))
            else:
                written.unlink(missing_ok=True)


def config_deploy_mode(command: list[str]) -> str:
    return command[command.index("--deploy-mode") + 1] if "--deploy-mode" in command else "client"


def quiet_unless_verbose(config: Config) -> None:
    """Quiet by default: the jobs' own log lines only at spark.log_level INFO or DEBUG (--verbose)."""
    import logging

    from lib.log import get_logger

    get_logger("cli")
    level = config.spark.log_level
    logging.getLogger("aria").setLevel(logging.DEBUG if level == "DEBUG" else logging.INFO if level == "INFO"
                                       else logging.WARNING)


def check_tables(config: Config) -> int:
    """``check-tables``: every table of the warehouse at every version; exit 1 when any is damaged."""
    from lib import delta

    warehouse = config.paths.warehouse
    try:
        tables = delta.find_tables(warehouse)
    except OSError as exc:
        print(f"error: {warehouse}: cannot list the warehouse ({exc})", file=sys.stderr)
        return EXIT_FAILED
    damaged = 0
    for uri in tables:
        name = os.path.relpath(uri, warehouse) if "://" not in uri else uri
        checks = delta.check_table(uri)
        bad = [c for c in checks if not c.intact and not c.vacuumed]
        expired = [c for c in checks if not c.intact and c.vacuumed]
        versions = f"{checks[0].version}..{checks[-1].version}" if checks else "-"
        status = "ok" if not bad else "DAMAGED"
        extra = f" ({len(expired)} version(s) before a vacuum no longer readable)" if expired else ""
        print(f"{name:<40} versions {versions:<9} {status}{extra}")
        for check in bad:
            damaged += 1
            for path in check.missing[:5]:
                print(f"  version {check.version}: missing file {path}")
            for problem in check.wrong_counts[:5]:
                print(f"  version {check.version}: row count differs: {problem}")
    print(f"{len(tables)} table(s) checked, {damaged} damaged version(s)")
    return EXIT_FAILED if damaged else 0


def show_runs(config: Config, invocation: Invocation) -> int:
    """``runs``: the run history from gold/_runs as a table (no Spark)."""
    from lib.console import render_runs
    from lib.runs import history

    runs = [r for r in history(config) if invocation.runs_job in (None, r["job"])]
    if invocation.runs_last:
        runs = runs[-invocation.runs_last:]
    print(render_runs(runs) if runs else f"no runs recorded in {config.paths.warehouse}")
    return 0


def driver_main(argv: list[str]) -> int:
    """Driver side of spark-submit: ``driver.py <job> <encoded config> [--json] [--summary-file PATH]``. The
    summary goes to the summary file when one is named (the launcher prints it on stdout), else to stdout;
    errors go to stderr (which spark-submit merges into its stdout; the launcher sends that to stderr)."""
    import traceback

    from lib.console import render, to_json
    from lib.delta import DeltaLayerError
    from lib.errors import JobError
    from lib.runs import run_job
    from lib.spark import build_session

    job, encoded, rest = argv[0], argv[1], argv[2:]
    summary_file = rest[rest.index("--summary-file") + 1] if "--summary-file" in rest else None
    config = decode_config(encoded)
    quiet_unless_verbose(config)
    spark = build_session(config, f"{config.spark.app_name}-{job}")
    try:
        summary = run_job(spark, config, job)
    except (JobError, DeltaLayerError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        print(f"error: job {job} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        spark.stop()
    if summary_file:
        temp = f"{summary_file}.tmp"
        with open(temp, "w") as handle:
            handle.write(to_json(summary))
        os.replace(temp, summary_file)
    else:
        print(to_json(summary) if "--json" in rest else render(summary))
    return 0


def exit_process(code: int) -> None:
    """End the process with ``code`` once stdout, stderr and the log handlers are flushed, without running the
    interpreter's teardown: pyarrow's background threads (dataset scans, as delta-rs reads a table) can
    outlive it and abort the process (SIGABRT, "terminate called without an active exception", exit 134;
    apache/arrow#34314) after the work succeeded — which a scheduler would take for a failed run. Seen here
    in 5 of 6 ``runs`` commands in a row with pyarrow 26 and deltalake 1.6."""
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_process(main())
