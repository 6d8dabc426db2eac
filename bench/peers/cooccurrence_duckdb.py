"""The DuckDB peer of the cooccurrence job, as a DuckDB user would write it: one process, one SQL script.

    python bench/peers/cooccurrence_duckdb.py OUT FILE.parquet... [--ids int|string] [--threads N]

Same definitions as the job (jobs/cooccurrence/job.py): distinct non-NULL tracks per playlist, sizes
5..500, c(t) over qualifying playlists, pairs with c(a,b) ≥ 3, PMI / Jaccard / score / LLR, per track
the top 100 partners from both sides by score desc, count desc, neighbour id asc. Writes
OUT/pairs.parquet and OUT/top.parquet (zstd).

Settings an expert sets: ``threads`` = cores, ``preserve_insertion_order = false`` (lets sinks and
aggregates run without order-keeping buffers), a ``memory_limit`` below the machine's free memory with a
``temp_directory`` to spill to. ``--ids int`` (default) encodes playlists and tracks as dense integers
first (tracks in string order, so ``<`` on codes is ``<`` on ids) and counts pairs on one packed BIGINT
key; ``--ids string`` runs the same plan on the string ids. ``--legacy`` is the bench's earlier peer
(only ``threads`` set, string ids, no packed key), kept to show what the settings are worth.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

MIN_PLAYLIST, MAX_PLAYLIST, MIN_COOCCURRENCE, TOP_K = 5, 500, 3, 100

MACROS = """
CREATE OR REPLACE MACRO xlogx(x) AS CASE WHEN x > 0 THEN x * ln(x) ELSE 0 END;
CREATE OR REPLACE MACRO llr(k11, k12, k21, k22) AS greatest(2 * (
    (xlogx(k11 + k12 + k21 + k22) - xlogx(k11 + k12) - xlogx(k21 + k22))
  + (xlogx(k11 + k12 + k21 + k22) - xlogx(k11 + k21) - xlogx(k12 + k22))
  - (xlogx(k11 + k12 + k21 + k22) - xlogx(k11) - (xlogx(k12) + xlogx(k21)) - xlogx(k22))), 0);
"""

# (playlist, track) → qualifying distinct sets, marginals, kept tracks. {source} yields (playlist_id, track_id).
SETS = """
CREATE TEMP TABLE sets AS
    SELECT DISTINCT playlist_id, track_id FROM ({source}) WHERE playlist_id IS NOT NULL AND track_id IS NOT NULL;
CREATE TEMP TABLE qualifying AS
    SELECT playlist_id FROM sets GROUP BY playlist_id HAVING count(*) BETWEEN {min_playlist} AND {max_playlist};
CREATE TEMP TABLE marginals AS
    SELECT track_id, count(*) AS c FROM sets SEMI JOIN qualifying USING (playlist_id) GROUP BY track_id;
"""

INT_PLAN = """
CREATE TEMP TABLE dict AS
    SELECT track_id, (row_number() OVER (ORDER BY track_id) - 1)::INTEGER AS tid, c
    FROM marginals WHERE c >= {min_cooccurrence};
CREATE TEMP TABLE pids AS SELECT playlist_id, (row_number() OVER ())::INTEGER AS pid FROM qualifying;
CREATE TEMP TABLE kept AS
    SELECT p.pid, d.tid FROM sets s JOIN pids p USING (playlist_id) JOIN dict d USING (track_id);
CREATE TEMP TABLE counts AS
    SELECT (key >> 32)::INTEGER AS a, (key & 4294967295)::INTEGER AS b, n FROM (
        SELECT (x.tid::BIGINT << 32) | y.tid AS key, count(*) AS n
        FROM kept x JOIN kept y ON x.pid = y.pid AND x.tid < y.tid
        GROUP BY key HAVING count(*) >= {min_cooccurrence});
CREATE TEMP TABLE scored AS
    SELECT a, b, n AS cooccurrence_count, da.c AS ca, db.c AS cb FROM counts
    JOIN dict da ON da.tid = a JOIN dict db ON db.tid = b;
"""

STRING_PLAN = """
CREATE TEMP TABLE dict AS SELECT track_id, track_id AS tid, c FROM marginals WHERE c >= {min_cooccurrence};
CREATE TEMP TABLE kept AS
    SELECT playlist_id AS pid, track_id AS tid FROM sets SEMI JOIN qualifying USING (playlist_id)
    SEMI JOIN dict USING (track_id);
CREATE TEMP TABLE scored AS
    SELECT a, b, n AS cooccurrence_count, da.c AS ca, db.c AS cb FROM (
        SELECT x.tid AS a, y.tid AS b, count(*) AS n
        FROM kept x JOIN kept y ON x.pid = y.pid AND x.tid < y.tid
        GROUP BY ALL HAVING count(*) >= {min_cooccurrence}) p
    JOIN dict da ON da.tid = a JOIN dict db ON db.tid = b;
"""

OUTPUT = """
CREATE TEMP TABLE metrics AS
    WITH base AS (
        SELECT a, b, cooccurrence_count, ca, cb, (SELECT count(*) FROM qualifying)::DOUBLE AS n FROM scored
    ), m AS (
        SELECT a, b, cooccurrence_count,
               log2(cooccurrence_count::DOUBLE * n / (ca::DOUBLE * cb)) AS pmi_score,
               cooccurrence_count::DOUBLE / (ca + cb - cooccurrence_count) AS jaccard_score,
               llr(cooccurrence_count::DOUBLE, (ca - cooccurrence_count)::DOUBLE, (cb - cooccurrence_count)::DOUBLE,
                   n - ca - cb + cooccurrence_count) AS llr_score
        FROM base
    )
    SELECT *, 0.6 * least(greatest((pmi_score + 5) / 15, 0), 1) + 0.4 * jaccard_score AS score FROM m;
COPY (
    SELECT da.track_id AS track_a, db.track_id AS track_b, cooccurrence_count, pmi_score, jaccard_score, score,
           llr_score
    FROM metrics JOIN dict da ON da.tid = a JOIN dict db ON db.tid = b
) TO '{out}/pairs.parquet' (FORMAT parquet, COMPRESSION zstd);
COPY (
    WITH directed AS (
        SELECT a AS t, b AS nb, cooccurrence_count, pmi_score, jaccard_score, score, llr_score FROM metrics
        UNION ALL
        SELECT b AS t, a AS nb, cooccurrence_count, pmi_score, jaccard_score, score, llr_score FROM metrics
    ), ranked AS (
        SELECT *, row_number() OVER (PARTITION BY t ORDER BY score DESC, cooccurrence_count DESC, nb) AS rank
        FROM directed QUALIFY rank <= {top_k}
    )
    SELECT dt.track_id AS track_id, dn.track_id AS neighbor_id, rank, cooccurrence_count, pmi_score,
           jaccard_score, score, llr_score
    FROM ranked JOIN dict dt ON dt.tid = t JOIN dict dn ON dn.tid = nb
) TO '{out}/top.parquet' (FORMAT parquet, COMPRESSION zstd);
"""


def script(files: list[str], out: str, ids: str) -> str:
    listed = ", ".join(f"'{path}'" for path in files)
    params = {"min_playlist": MIN_PLAYLIST, "max_playlist": MAX_PLAYLIST, "min_cooccurrence": MIN_COOCCURRENCE,
              "top_k": TOP_K, "out": out, "source": f"SELECT playlist_id, track_id FROM read_parquet([{listed}])"}
    plan = INT_PLAN if ids == "int" else STRING_PLAN
    return "\n".join(part.format(**params) for part in (MACROS, SETS, plan, OUTPUT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("files", nargs="+")
    parser.add_argument("--ids", choices=("int", "string"), default="int")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--memory-limit", default="12GB")
    parser.add_argument("--temp-directory", default=os.path.join(tempfile.gettempdir(), "duckdb-peer-spill"))
    parser.add_argument("--legacy", action="store_true", help="the bench's earlier settings (threads only)")
    args = parser.parse_args(argv)

    import duckdb

    os.makedirs(args.out, exist_ok=True)
    with duckdb.connect() as con:
        con.execute(f"SET threads = {args.threads}")
        if not args.legacy:
            con.execute("SET preserve_insertion_order = false")
            con.execute(f"SET memory_limit = '{args.memory_limit}'")
            con.execute(f"SET temp_directory = '{args.temp_directory}'")
        con.execute(script(args.files, args.out, "string" if args.legacy else args.ids))
    return 0


if __name__ == "__main__":
    sys.exit(main())
