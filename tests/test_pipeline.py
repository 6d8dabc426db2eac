"""The pipeline as users run it: after a first run on a tiny sample, ./spark-submit.sh pipeline again skips every job
(same inputs, source files, config and code), `runs` shows the history, `--force --only` reruns one job, and a
changed source file makes ingest run again. The first run is the session's shared one (tests/support/warehouse.py:
in-process, with the config the command line builds — which the skip proves); this test goes on in its folder."""

from __future__ import annotations

import json
import sqlite3

from deltalake import DeltaTable

from jobs.pipeline.job import ORDER
from lib import delta
from lib.console import NO_COUNT
from tests.support.warehouse import pipeline_cli


def test_second_pipeline_skips_everything_and_force_reruns(pipeline_run):
    base = pipeline_run.base
    jobs = pipeline_run.summary["metrics"]["jobs"]
    assert list(jobs) == ["sample", *[j for j in ORDER if j in jobs]]
    assert {j["status"] for j in jobs.values()} == {"succeeded"}
    versions = {uri: delta.version(uri) for uri in delta.find_tables(str(base / "warehouse"))}

    second = pipeline_cli(base, "pipeline")
    assert second.returncode == 0, second.stderr[-3000:]
    table = second.stdout.splitlines()
    assert table[0].startswith("pipeline succeeded")
    skipped = [line.split()[0] for line in table if " skipped " in f" {line} "]
    assert skipped == [j for j in ORDER if j in jobs]  # every job, and no sample: the dump is there now
    rows_out = {line.split()[0]: line.split()[3] for line in table[2:2 + len(skipped)]}
    assert rows_out["publish"] == NO_COUNT  # publish counts no rows in its own bookkeeping tables: not a 0
    assert int(rows_out["ingest"].replace(",", "")) > 0
    after = {uri: delta.version(uri) for uri in delta.find_tables(str(base / "warehouse"))}
    assert {u: v for u, v in after.items() if not u.endswith("_runs")} == \
        {u: v for u, v in versions.items() if not u.endswith("_runs")}

    # vectors: the quickest job to force (it reruns alone; its inputs are unchanged)
    forced = pipeline_cli(base, "pipeline", "--force", "--only", "vectors", "--json")
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert list(json.loads(forced.stdout)["metrics"]["jobs"]) == ["vectors"]
    vectors_uri = delta.table_path(str(base / "warehouse"), "gold", "audio_vectors")
    assert delta.version(vectors_uri) == versions[vectors_uri] + 1

    history = pipeline_cli(base, "runs", "--job", "vectors")
    assert history.returncode == 0
    statuses = [line.split()[1] for line in history.stdout.splitlines()[1:]]
    assert statuses == ["succeeded", "skipped", "succeeded"]
    assert history.stdout.splitlines()[-1].rstrip().endswith("forced")

    # A changed source file (a write transaction bumps SQLite's change counter) makes ingest run again.
    with sqlite3.connect(base / "spotify" / "spotify_clean_playlists.sqlite3") as db:
        db.execute("UPDATE playlists SET name = name || ' (edited)' WHERE rowid = 1")
    again = pipeline_cli(base, "pipeline", "--only", "ingest", "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["metrics"]["jobs"]["ingest"]["status"] == "succeeded"
    playlists = delta.table_path(str(base / "warehouse"), "bronze", "spotify_playlists")
    names = DeltaTable(playlists).to_pyarrow_table().column("name").to_pylist()
    assert sum(1 for n in names if n and n.endswith(" (edited)")) == 1
