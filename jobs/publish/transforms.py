"""Pure DataFrame steps of publish: what each target should hold, built from the gold (and a few bronze)
tables with Spark built-ins only, and the byte estimates the D1 budget is filled with.

- ``track_facts``: one row per track with audio features — the vector, tier and metadata of
  ``gold/audio_vectors`` and the raw features (the same row the vectors job used: ``latest_features``).
- ``d1_candidates``: per D1 table the rows publish may load, each with its priority (``_group``: lower
  first — tier, then popularity descending), a hash bucket (``_bucket``, 64 per group, so a group can be
  cut part way) and its estimated bytes in SQLite (``_bytes``: record + b-tree cell + every index entry).
- ``fill``: the D1 budget filled table by table in the issue's priority, cell by cell
  (``(_group, _bucket)``) — a plain function of the collected histograms.
- ``kv_items``, ``vector_rows``, ``shard_rows``: the contents of KV, Vectorize and the R2 cold tier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F

from jobs.publish import layout
from jobs.vectors.transforms import AUDIO_FEATURE_COLUMNS, latest_features, one_row_per_key
from jobs.xref.text import isrc_normalized

BUCKETS = 64
# SQLite b-tree pages are not full: measured on generated tracks, a shard file is 1.14× its raw records at
# 30,000 rows (1.30× at 300, where page rounding shows), and the test D1 file 1.10× the estimate below.
PAGE_FILL = 0.85
UNIXEPOCH_BYTES = 4  # DEFAULT (unixepoch()): a 4-byte integer until 2038


def frame_digest(frame: DataFrame, columns: Sequence[str], **extra: Column) -> tuple[str, dict[str, Any]]:
    """An order-independent digest of ``columns`` over all rows (count + sum of 64-bit row hashes): equal
    contents give equal digests on every run, a changed, added or removed row changes it. ``extra``
    aggregates are computed in the same job; returns (digest, {"rows": n, **extra})."""
    row = frame.agg(F.count(F.lit(1)).alias("n"), F.sum(F.xxhash64(*columns).cast("decimal(38,0)")).alias("h"),
                    *(value.alias(name) for name, value in extra.items())).first()
    assert row is not None
    return f"{row['n']}:{row['h'] or 0}", {"rows": int(row["n"]), **{k: row[k] for k in extra}}


def bucket(key: Column) -> Column:
    return F.pmod(F.xxhash64(key), F.lit(BUCKETS)).cast("int")


# ----------------------------------------------------------------------------------------------
# Track facts


def track_facts(vectors: DataFrame, features: DataFrame, tracks: DataFrame) -> DataFrame:
    feature_cols = ["track_id", *AUDIO_FEATURE_COLUMNS, "duration_ms"]
    if "fetched_at" in features.columns:
        feature_cols.append("fetched_at")
    feats, _ = latest_features(features.select(*feature_cols))
    track_pref = [F.col("fetched_at").desc_nulls_last()] if "fetched_at" in tracks.columns else []
    track_rows, _ = one_row_per_key(
        tracks.select("track_id", "album_id", "popularity", *(["fetched_at"] if track_pref else [])),
        "track_id", [*track_pref, F.col("popularity").desc_nulls_last()], "publish_track_duplicates")
    return (
        vectors.select("spotify_id", "vector", "tier", "popularity", "isrc", "title", "artist", "genres", "year",
                       "mbid")
        .join(feats.drop("fetched_at").withColumnRenamed("track_id", "spotify_id"), on="spotify_id", how="left")
        .join(track_rows.select(F.col("track_id").alias("spotify_id"), "album_id"), on="spotify_id", how="left")
    )


# ----------------------------------------------------------------------------------------------
# SQLite byte estimates


# Built as SQL text and parsed once (``F.expr``): the same estimate from Column calls took ~40,000 py4j round
# trips per publish (every ``F.when`` is several) and a large share of publish's time on small inputs.


def _int_bytes(value: str) -> str:
    """Body bytes of an SQLite INTEGER (0 and 1 are stored in the serial type itself)."""
    a = f"abs(CAST({value} AS BIGINT))"
    return (f"CASE WHEN {value} IS NULL OR CAST({value} AS BIGINT) IN (0, 1) THEN 0 WHEN {a} < 128 THEN 1 "
            f"WHEN {a} < 32768 THEN 2 WHEN {a} < 8388608 THEN 3 WHEN {a} < 2147483648 THEN 4 "
            f"WHEN {a} < 140737488355328 THEN 6 ELSE 8 END")


def _value_bytes(value: str, sql_type: str) -> tuple[str, str]:
    """(serial-type header bytes, body bytes) of one value in an SQLite record, as SQL."""
    if sql_type == "TEXT":
        n = f"coalesce(octet_length({value}), 0)"
        return f"CASE WHEN {n} > 57 THEN 2 ELSE 1 END", n
    if sql_type == "REAL":
        return "1", f"CASE WHEN {value} IS NULL OR isnan(CAST({value} AS DOUBLE)) THEN 0 ELSE 8 END"
    return "1", _int_bytes(value)


def record_bytes(values: Sequence[tuple[str, str]]) -> str:
    """Bytes of one SQLite record of ``values`` ((SQL expression, SQLite type) pairs), as SQL."""
    parts = [_value_bytes(value, sql_type) for value, sql_type in values]
    return " + ".join(["1", *(h for h, _ in parts), "0", *(b for _, b in parts)])


def _over_page_fill(total: str) -> Column:
    return F.expr(f"CAST(ceil(({total}) / {PAGE_FILL!r}D) AS BIGINT)")


def d1_row_bytes(table: layout.D1Table) -> Column:
    """Estimated bytes of one row in D1: the table cell (record + payload size + rowid + cell pointer), the
    primary key's automatic index, and one entry per secondary index, over the page fill."""
    types = table.column_types
    rowid = ("4", "INTEGER")

    def col(name: str) -> tuple[str, str]:
        if name in table.loaded:
            return f"`{name}`", types[name]
        return ("1000000000" if "unixepoch" in _decl(table, name) else "NULL"), types[name]

    cell_overhead = 2 + 4 + 2  # payload-size varint, rowid varint, cell pointer
    records = [record_bytes([col(c) for c in types]) + f" + {cell_overhead}",
               record_bytes([*(col(c) for c in table.primary_key), rowid]) + " + 4"]
    for _, cols in table.indexes:
        records.append(record_bytes([*(col(c.strip()) for c in cols.split(",")), rowid]) + " + 4")
    return _over_page_fill(" + ".join(f"({r})" for r in records))


def _decl(table: layout.D1Table, name: str) -> str:
    return next(d for d in table.columns if d.split()[0] == name)


def shard_row_bytes() -> Column:
    """Estimated bytes of one track in an R2 shard (a WITHOUT ROWID table: one cell per row)."""
    values = [(f"`{name}`", sql_type.split()[0]) for name, sql_type in layout.SHARD_COLUMNS]
    return _over_page_fill(f"{record_bytes(values)} + 2 + 2")


# ----------------------------------------------------------------------------------------------
# D1 candidates and the fill


def _with_fill_columns(frame: DataFrame, table: str, group: Column, key: Column) -> DataFrame:
    spec = layout.D1_TABLES[table]
    return frame.select(*spec.loaded, group.cast("int").alias("_group"), bucket(key).alias("_bucket")).withColumn(
        "_bytes", d1_row_bytes(spec))


def _popularity_group(popularity: Column) -> Column:
    return F.lit(100) - F.coalesce(popularity, F.lit(0))


def published_isrc(isrc: Column) -> Column:
    """The ISRC as D1 and KV hold it: the code as the xref job normalises it (so the Worker's lookup by ISRC,
    which normalises the request the same way, finds "us-rc1-76-07839" under USRC17607839), else as written."""
    return F.coalesce(isrc_normalized(isrc), isrc)


def xref_candidates(xref: DataFrame, facts: DataFrame) -> tuple[DataFrame, Observation]:
    """The matched rows that can be loaded, and an Observation counting the matches left out for having no
    ISRC (``without_isrc``; the spec's column is NOT NULL)."""
    matched, _ = one_row_per_key(xref.where(F.col("mbid").isNotNull()).select(*layout.D1_TABLES[
        "spotify_mbid_xref"].loaded), "spotify_id", [F.col("match_confidence").desc_nulls_last()],
        "publish_xref_duplicates")
    matched = matched.withColumn("isrc", published_isrc(F.col("isrc")))
    observation = Observation("publish_xref_without_isrc")
    matched = matched.observe(observation, F.count_if(F.col("isrc").isNull()).alias("without_isrc"))
    popular = facts.select("spotify_id", "popularity")
    rows = matched.where(F.col("isrc").isNotNull()).join(popular, on="spotify_id", how="left")
    return _with_fill_columns(rows, "spotify_mbid_xref", _popularity_group(F.col("popularity")),
                              F.col("spotify_id")), observation


def similar_candidates(similar: DataFrame, facts: DataFrame) -> DataFrame:
    popular = facts.select(F.col("spotify_id").alias("seed_spotify_id"), "popularity")
    rows = similar.join(popular, on="seed_spotify_id", how="left")
    return _with_fill_columns(rows, "precomputed_similar", _popularity_group(F.col("popularity")),
                              F.col("seed_spotify_id"))


def feature_candidates(facts: DataFrame) -> DataFrame:
    """Tier A, then tier B, each by popularity (tier C is served from the R2 shards only)."""
    rows = facts.where(F.col("tier").isin("A", "B"))
    group = F.when(F.col("tier") == "A", 0).otherwise(101) + _popularity_group(F.col("popularity"))
    return _with_fill_columns(rows, "spotify_audio_features_cache", group, F.col("spotify_id"))


def cooccurrence_candidates(cooccurrence: DataFrame, top: DataFrame, hot: DataFrame) -> DataFrame:
    """The pairs in the top-K of the hot tracks (those whose features are in D1), by the hot track's popularity."""
    hot_top = top.join(hot.select(F.col("spotify_id").alias("track_id"), "popularity"), on="track_id",
                       how="inner")
    pairs = hot_top.select(F.least("track_id", "neighbor_id").alias("track_a"),
                           F.greatest("track_id", "neighbor_id").alias("track_b"), "popularity").groupBy(
        "track_a", "track_b").agg(F.max("popularity").alias("popularity"))
    rows = cooccurrence.join(pairs, on=["track_a", "track_b"], how="inner")
    return _with_fill_columns(rows, "playlist_cooccurrence", _popularity_group(F.col("popularity")),
                              F.concat_ws(" ", "track_a", "track_b"))


def genre_candidates(artists: DataFrame, inferred: DataFrame | None) -> DataFrame:
    """Spotify's artist genres, plus the inferred ones when that table exists, by artist popularity."""
    spotify = artists.select(F.col("artist_id").alias("spotify_artist_id"), F.explode("genres").alias("genre"))
    rows = spotify
    if inferred is not None:
        rows = rows.unionByName(inferred.select(F.col("artist_id").alias("spotify_artist_id"), "genre"))
    rows = rows.where(F.col("genre").isNotNull() & (F.length("genre") > 0)).distinct()
    popular, _ = one_row_per_key(artists.select("artist_id", "popularity"), "artist_id",
                                 [F.col("popularity").desc_nulls_last()], "publish_artist_duplicates")
    rows = rows.join(popular.select(F.col("artist_id").alias("spotify_artist_id"), "popularity"),
                     on="spotify_artist_id", how="left")
    return _with_fill_columns(rows, "spotify_artist_genres", _popularity_group(F.col("popularity")),
                              F.col("spotify_artist_id"))


@dataclass
class TableFill:
    table: str
    candidate_rows: int = 0
    candidate_bytes: int = 0
    rows: int = 0
    bytes: int = 0
    cut: tuple[int, int] | None = None  # last (group, bucket) kept; None: nothing kept
    complete: bool = True

    @property
    def overflow_rows(self) -> int:
        return self.candidate_rows - self.rows


@dataclass
class Fill:
    budget: int
    tables: dict[str, TableFill] = field(default_factory=dict)

    @property
    def used(self) -> int:
        return sum(t.bytes for t in self.tables.values())


Cell = tuple[int, int, int, int, int]


def histograms(frames: dict[str, tuple[DataFrame, Sequence[str]]]) -> dict[str, list[Cell]]:
    """Per table the (group, bucket, rows, bytes, sum of row hashes over its columns) cells in fill order, all
    tables in one Spark job: the cells give both the fill and the digest of whatever part of a table it
    keeps (``kept_digest``)."""
    parts = [frame.groupBy("_group", "_bucket").agg(
        F.count(F.lit(1)).alias("n"), F.sum("_bytes").alias("b"),
        F.sum(F.xxhash64(*columns).cast("decimal(38,0)")).alias("h")).withColumn("_table", F.lit(table))
        for table, (frame, columns) in frames.items()]
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    cells: dict[str, list[Cell]] = {table: [] for table in frames}
    for r in union.collect():
        cells[r["_table"]].append((int(r["_group"]), int(r["_bucket"]), int(r["n"]), int(r["b"]), int(r["h"])))
    return {table: sorted(found) for table, found in cells.items()}


def kept_digest(cells: Sequence[tuple[int, int, int, int, int]], fill: TableFill) -> str:
    """``frame_digest`` of the rows ``keep`` returns, from the histogram (the digest is a sum over rows)."""
    kept = [c for c in cells if fill.cut is not None and (c[0], c[1]) <= fill.cut]
    return f"{sum(c[2] for c in kept)}:{sum(c[4] for c in kept)}"


def fill_table(table: str, cells: Sequence[tuple[int, ...]], remaining: int) -> TableFill:
    """Whole cells in order while they fit in ``remaining``; the first that does not ends the fill (the
    budget is then spent: lower priorities get nothing, so priority order is strict)."""
    result = TableFill(table, sum(c[2] for c in cells), sum(c[3] for c in cells))
    for group, cell, rows, size, *_ in cells:
        if result.bytes + size > remaining:
            result.complete = False
            break
        result.rows += rows
        result.bytes += size
        result.cut = (group, cell)
    return result


def keep(frame: DataFrame, fill: TableFill) -> DataFrame:
    """The rows a table's fill kept."""
    if fill.cut is None:
        return frame.where(F.lit(False))
    if fill.complete:
        return frame
    group, cell = fill.cut
    return frame.where((F.col("_group") < group) | ((F.col("_group") == group) & (F.col("_bucket") <= cell)))


# ----------------------------------------------------------------------------------------------
# KV, Vectorize, R2


# to_json drops null fields by default: a feature value must say null (docs/publish-layout.md lists every field).
KEEP_NULLS = {"ignoreNullFields": "false"}


def kv_items(facts: DataFrame, similar: DataFrame, xref: DataFrame, count: int, shard_map_json: str) -> DataFrame:
    """(key, value, ttl) of every pre-warmed key: features, top similar and xref of the ``count`` most
    popular tracks (popularity desc, id asc), and the Vectorize shard map."""
    top = facts.orderBy(F.col("popularity").desc_nulls_last(), F.col("spotify_id").asc()).limit(count)
    af = top.select(
        F.concat(F.lit("spotify:af:"), "spotify_id").alias("key"),
        F.to_json(F.struct("spotify_id", F.struct(*layout.AUDIO_FEATURE_FIELDS).alias("features")),
                  KEEP_NULLS).alias("value"),
        F.lit(layout.TTL_AUDIO_FEATURES).alias("ttl"))
    ranked = similar.join(top.select(F.col("spotify_id").alias("seed_spotify_id")), on="seed_spotify_id",
                          how="inner").groupBy("seed_spotify_id").agg(
        F.sort_array(F.collect_list(F.struct("rank", "similar_spotify_id", "similarity_score"))).alias("s"))
    topsim = ranked.select(
        F.concat(F.lit("spotify:topsim:"), "seed_spotify_id").alias("key"),
        F.to_json(F.transform("s", lambda x: F.struct(x["similar_spotify_id"].alias("spotify_id"),
                                                      x["similarity_score"].alias("score"),
                                                      x["rank"].alias("rank")))).alias("value"),
        F.lit(layout.TTL_TOP_SIMILAR).alias("ttl"))
    matched, _ = one_row_per_key(xref.where(F.col("mbid").isNotNull()).select(
        "spotify_id", "isrc", "mbid", "match_confidence", "match_method"), "spotify_id",
        [F.col("match_confidence").desc_nulls_last()], "publish_kv_xref_duplicates")
    # The rows D1 holds (its isrc is NOT NULL), so KV and D1 answer alike.
    matched = matched.where(F.col("isrc").isNotNull()).withColumn("isrc", published_isrc(F.col("isrc")))
    xrefs = matched.join(top.select("spotify_id"), on="spotify_id", how="inner").select(
        F.concat(F.lit("spotify:xref:"), "spotify_id").alias("key"),
        F.to_json(F.struct("spotify_id", "isrc", "mbid", "match_confidence", "match_method"),
                  KEEP_NULLS).alias("value"),
        F.lit(layout.TTL_XREF).alias("ttl"))
    spark = facts.sparkSession
    shard = spark.createDataFrame([(layout.KV_SHARD_MAP, shard_map_json, None)], "key string, value string, ttl int")
    return af.unionByName(topsim).unionByName(xrefs).unionByName(shard).select(
        "key", "value", F.col("ttl").cast("int").alias("ttl"),
        F.sha2(F.concat_ws("\x1f", "value", F.coalesce(F.col("ttl").cast("string"), F.lit(""))), 256).alias("hash"))


VECTOR_COLUMNS = ("spotify_id", "vector", "isrc", "mbid", "title", "artist", "popularity", "genres", "year",
                  "promoted")


def vector_rows(facts: DataFrame, promoted: DataFrame | None = None) -> DataFrame:
    """Tier A — the tracks the spec keeps in Vectorize (the vectors job's tiering) — and the tracks the promote
    job added (``promoted``: spotify_id) while they are still in gold; those keep ``promoted = true``."""
    frame = facts
    if promoted is not None:
        marks = promoted.select("spotify_id").distinct().withColumn("_promoted", F.lit(True))
        frame = frame.join(marks, on="spotify_id", how="left")
    else:
        frame = frame.withColumn("_promoted", F.lit(None).cast("boolean"))
    return frame.where((F.col("tier") == "A") | F.col("_promoted").isNotNull()).withColumn(
        "promoted", (F.col("tier") != "A") & F.col("_promoted").isNotNull()).select(*VECTOR_COLUMNS)


def shard_rows(facts: DataFrame) -> DataFrame:
    """Every track with features, in the shard table's columns, with its estimated bytes."""
    cols = {name: F.col(name) for name, _ in layout.SHARD_COLUMNS}
    cols["release_year"] = F.col("year")
    frame = facts.select(*(cols[name].cast(_spark_type(t)).alias(name) for name, t in layout.SHARD_COLUMNS))
    return frame.withColumn("_bytes", shard_row_bytes())


def _spark_type(sql_type: str) -> str:
    return {"TEXT": "string", "REAL": "double", "INTEGER": "long"}[sql_type.split()[0]]


def id_prefix_length(total_bytes: int, shard_bytes: int) -> int:
    """Characters of ``spotify_id`` whose values split the ids into contiguous ranges small enough that the
    running byte sum per range is cheap (≈ 4 ranges per shard; base62 ids, 62 values per character)."""
    wanted = max(1, total_bytes // max(1, shard_bytes) * 4)
    length = 1
    while 62**length < wanted and length < 4:
        length += 1
    return length


def assign_shards(rows: DataFrame, prefix_length: int, offsets: dict[str, int], budget: int) -> DataFrame:
    """``_shard`` of every row: floor of the running byte total (in spotify_id order, across all prefix
    ranges) at the end of the row over ``budget``. Range ``p`` starts at ``offsets[p]`` — the bytes of all
    ranges before it — so the numbering is the same however Spark partitions the data."""
    from pyspark.sql import Window

    prefix = F.substring("spotify_id", 1, prefix_length)
    offset_map = F.create_map(*[item for p, o in offsets.items() for item in (F.lit(p), F.lit(o))]) \
        if offsets else F.create_map().cast("map<string,long>")
    running = F.sum("_bytes").over(Window.partitionBy("_prefix").orderBy("spotify_id").rowsBetween(
        Window.unboundedPreceding, Window.currentRow))
    return (rows.withColumn("_prefix", prefix)
            .withColumn("_end", F.element_at(offset_map, F.col("_prefix")) + running)
            .withColumn("_shard", F.floor((F.col("_end") - F.lit(1)) / F.lit(budget)).cast("int"))
            .drop("_prefix", "_end"))


def prefix_offsets(rows: DataFrame, prefix_length: int) -> dict[str, int]:
    sums = rows.groupBy(F.substring("spotify_id", 1, prefix_length).alias("p")).agg(F.sum("_bytes").alias("b"))
    offsets: dict[str, int] = {}
    total = 0
    for row in sorted(sums.collect(), key=lambda r: r["p"]):
        offsets[row["p"]] = total
        total += int(row["b"])
    return offsets


