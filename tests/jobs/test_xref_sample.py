"""xref end to end: generated dump → ingest → xref (the session's pipeline run, tests/support/warehouse.py), scored
against the generator's ground truth (``_sample_truth_xref.parquet``: the MBID and tier every track must get,
decoys included). Counts are recomputed from the written table with DuckDB, independently of the job's summary."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from jobs.sample.generator import TRUTH
from jobs.xref import job as xref
from lib import delta
from lib.errors import InputError
from lib.runs import history
from tests.support.warehouse import SAMPLE_SETTINGS

TRACKS = SAMPLE_SETTINGS["sample.tracks"]


@pytest.fixture(scope="module")
def sample(pipeline_run):
    cfg = pipeline_run.snapshot_config()
    summary = next(r for r in reversed(history(cfg)) if r["job"] == "xref" and r["status"] == "succeeded")
    table = DeltaTable(delta.table_path(cfg.paths.warehouse, "gold", "spotify_mbid_xref")).to_pyarrow_table()
    truth = pq.read_table(Path(cfg.paths.spotify) / TRUTH)
    return cfg, summary["metrics"], table, truth


def _joined(table: pa.Table, truth: pa.Table) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.register("xref", table)
    con.register("truth", truth)
    return con


def test_one_row_per_track(sample):
    _, summary, table, truth = sample
    con = _joined(table, truth)
    assert con.execute("SELECT count(*), count(DISTINCT spotify_id) FROM xref").fetchone() == (TRACKS, TRACKS)
    assert con.execute("SELECT count(*) FROM truth t ANTI JOIN xref x USING (spotify_id)").fetchone() == (0,)
    assert summary["rows"] == TRACKS


def test_no_wrong_mbid_and_decoys_stay_unmatched(sample):
    _, _, table, truth = sample
    con = _joined(table, truth)
    wrong = con.execute("""
        SELECT t.plant, x.match_method, x.mbid, t.expected_mbid FROM xref x JOIN truth t USING (spotify_id)
        WHERE x.mbid IS NOT NULL AND x.mbid IS DISTINCT FROM t.expected_mbid""").fetchall()
    assert wrong == []
    decoys = con.execute("""
        SELECT count(*), count(x.mbid) FROM xref x JOIN truth t USING (spotify_id)
        WHERE t.plant IN ('decoy_other_artist', 'decoy_duration')""").fetchone()
    assert decoys[0] > 0 and decoys[1] == 0


def test_recall_per_tier(sample):
    _, _, table, truth = sample
    con = _joined(table, truth)
    per_tier = dict(con.execute("""
        SELECT t.expected_method, avg(CASE WHEN x.match_method = t.expected_method AND x.mbid = t.expected_mbid
                                           THEN 1.0 ELSE 0.0 END)
        FROM xref x JOIN truth t USING (spotify_id) WHERE t.expected_method <> 'no_match'
        GROUP BY 1""").fetchall())
    assert set(per_tier) == {"isrc_exact", "isrc_fuzzy", "metadata_match"}
    # The ISRC tiers are exact by construction; the metadata tier must find nearly every planted match.
    assert per_tier["isrc_exact"] == 1.0 and per_tier["isrc_fuzzy"] == 1.0
    assert per_tier["metadata_match"] >= 0.97


def test_summary_agrees_with_the_table(sample):
    _, summary, table, truth = sample
    con = _joined(table, truth)
    counts = dict(con.execute("SELECT match_method, count(*) FROM xref GROUP BY 1").fetchall())
    assert summary["matches"] == {m: counts.get(m, 0) for m in ("isrc_exact", "isrc_fuzzy", "metadata_match",
                                                                  "no_match")}
    shared = con.execute("SELECT count(*) FROM truth WHERE plant = 'isrc_shared'").fetchone()[0]
    several = con.execute(
        "SELECT count(*) FROM xref WHERE match_method LIKE 'isrc%' AND candidate_count > 1").fetchone()
    assert summary["isrc"]["tracks_matched_to_one_of_several_recordings"] == several[0] == shared
    assert summary["blocks"]["exact_blocks"]["skipped_blocks"] == 0


def test_missing_bronze_is_named(spark, config):
    with pytest.raises(InputError, match=r"spotify_tracks: run ingest first"):
        xref.run(spark, config)
    # Nothing was written but the run record of the failed run.
    assert [p.name for p in Path(config.paths.warehouse, "gold").iterdir()] == ["_runs"]
