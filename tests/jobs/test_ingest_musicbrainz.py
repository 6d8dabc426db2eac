"""ingest's MusicBrainz landing (Arrow tasks) against the Spark reader and ``transforms.mb_rows``: the same
bronze rows, quarantined rows (reason, key, record) and counts, on the real fixture with malformed lines
planted in every table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from chispa import assert_df_equality
from pyspark.sql import functions as F

from jobs.ingest import job as ingest
from jobs.ingest import transforms
from lib import delta
from lib.sources import mbdump
from tests.support.configs import make_config
from tests.support.real_dump import build_real_dump

MB_FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "musicbrainz"


def planted(dump: mbdump.MbDump, dump_table: str, key: str) -> list[str]:
    """Lines to append to a table: too few fields, an empty line, a NULL key, a key that is not a number
    (where it is numeric), a bad escape in every text column."""
    layout = mbdump.LAYOUTS["isrc_legacy" if dump_table == "isrc" and dump.isrc_layout == "legacy" else dump_table]

    def line(**fields: str) -> str:
        return "\t".join(fields.get(name, "1") for name in layout)

    return ["just\tthree\tfields", "", line(**{key: "\\N"}), line(**{key: "x1"}),
            line(**{name: "bad\\qescape" for name in layout if name in ("name", "gid", "isrc", "sort_name")})]


def test_musicbrainz_landing_gives_what_the_spark_reader_gives(spark, tmp_path):
    folder = tmp_path / "mb" / "mbdump"
    shutil.copytree(MB_FIXTURE / "mbdump", folder)
    dump = mbdump.locate(folder.parent, tmp_path / "work")
    for dump_table, columns in transforms.MB_TABLES.values():
        with (folder / dump_table).open("a") as handle:
            handle.write("\n".join(planted(dump, dump_table, columns[0][0])) + "\n")
    build_real_dump(tmp_path / "spotify")
    config = make_config(tmp_path, paths__musicbrainz=str(folder.parent))
    summary = ingest.run(spark, config)["metrics"]
    rejects = delta.read(spark, delta.table_path(config.paths.warehouse, "bronze", "_rejects"))
    for table, (dump_table, columns) in transforms.MB_TABLES.items():
        parsed = mbdump.read_table(spark, dump, dump_table, [(src, kind) for src, _, kind in columns])
        rows = transforms.mb_rows(parsed, table)
        bronze = delta.read(spark, delta.table_path(config.paths.warehouse, "bronze", table))
        assert_df_equality(bronze, rows.where("_reject IS NULL").drop("_reject", "raw_line"), ignore_row_order=True,
                           ignore_nullable=True)
        key = columns[0][1]
        wanted = sorted((r._reject, f"{key}={r[key]}", r.raw_line) for r in rows.where("_reject IS NOT NULL").collect())
        got = sorted((r.reason, r.source_key, json.loads(r.record)["raw_line"])
                     for r in rejects.where(F.col("table") == table).collect())
        assert got == wanted and len(got) >= 4, table
        reasons = {}
        for reason, _, _ in wanted:
            reasons[reason] = reasons.get(reason, 0) + 1
        assert summary["tables"][table]["rejected"] == reasons, table
