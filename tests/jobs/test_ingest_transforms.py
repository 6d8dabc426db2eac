"""ingest's pure transformations on tiny inline frames."""

from __future__ import annotations

from jobs.ingest import transforms as T


def test_artist_lists_follow_link_order_not_rowid_order(spark):
    links = spark.createDataFrame(
        [(1, 30, 10), (1, 10, 11), (1, 20, 12), (2, 99, 13), (2, 10, 14)],
        "track_rowid long, artist_rowid long, link_order long",
    )
    artist_ids = spark.createDataFrame([(10, "A10"), (20, "A20"), (30, "A30")], "artist_rowid long, artist_id string")
    result = {r.track_rowid: (r.artist_ids, r.unresolved_artists) for r in T.artist_lists(links, artist_ids).collect()}
    assert result == {1: (["A30", "A10", "A20"], 0), 2: (["A10"], 1)}


def test_resolve_tracks_keeps_tracks_without_links(spark):
    tracks = spark.createDataFrame([(1, "T1", 7), (2, "T2", None)],
                                   "track_rowid long, track_id string, album_rowid long")
    albums = spark.createDataFrame([(7, "ALBUM7")], "album_rowid long, album_id string")
    artists = spark.createDataFrame([(1, ["A"], 0), (9, ["B", "C"], 0)],
                                    "track_rowid long, artist_ids array<string>, unresolved_artists int")
    rows = {r.track_rowid: r for r in T.resolve_tracks(tracks, albums, artists).collect()}
    assert rows[1].album_id == "ALBUM7" and rows[1].artist_ids == ["A"] and rows[1].orphan_links == 0
    assert rows[2].album_id is None and rows[2].artist_ids == [] and rows[2].unresolved_artists == 0
    # Links of a track that was not ingested surface with track_id NULL, counted as orphans.
    assert rows[9].track_id is None and rows[9].orphan_links == 2


def test_attach_genres_gives_empty_list_not_null(spark):
    artists = spark.createDataFrame([(1, "X"), (2, "Y")], "artist_rowid long, artist_id string")
    genres = spark.createDataFrame([(1, "rock", 5), (1, "indie", 3)],
                                   "artist_rowid long, genre string, link_order long")
    result = {r.artist_id: r.genres for r in T.attach_genres(artists, genres).collect()}
    assert result == {"X": ["indie", "rock"], "Y": []}


def test_resolve_playlist_tracks(spark):
    rows = spark.createDataFrame(
        [("P", 0, 1, None), ("P", 1, None, "GHOST"), ("P", 2, 404, None), ("P", 3, 404, "FALLBACK")],
        "playlist_id string, position int, track_rowid long, track_ref string",
    )
    tracks = spark.createDataFrame([(1, "T1")], "track_rowid long, track_id string")
    out = {r.position: (r.track_id, r.in_catalog, r._reject) for r in T.resolve_playlist_tracks(rows, tracks).collect()}
    assert out[0] == ("T1", True, None)
    assert out[1] == ("GHOST", False, None)
    assert out[2] == (None, False, "track_rowid refers to no ingested track")
    # A dangling rowid is not papered over by the fallback id: the row is quarantined.
    assert out[3][2] == "track_rowid refers to no ingested track"


def test_in_task_track_lookup_agrees_with_the_spark_join(spark, tmp_path):
    """TrackIdLookup (playlist rows resolved while read) against resolve_playlist_tracks (Spark join),
    over gaps in the rowids, rowids below and above the catalog, NULL rowids and fallback ids."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    from jobs.ingest.track_lookup import ParquetFiles, TrackIdLookup

    catalog = pa.table({"track_rowid": pa.array([5, 7, 8, 12], pa.int64()), "track_id": ["T5", "T7", "T8", "T12"]})
    pq.write_table(catalog, tmp_path / "part-0.parquet")
    when = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    batch = pa.RecordBatch.from_pydict({
        "playlist_id": ["P"] * 7, "position": pa.array(range(7), pa.int32()),
        "track_rowid": pa.array([7, None, 6, 12, 1, 99, 5], pa.int64()),
        "track_ref": [None, "GHOST", "FALLBACK", None, None, None, None],
        "added_at": pa.array([when] * 7, pa.timestamp("us", tz="UTC")),
        "playlist_rowid": pa.array([1] * 7, pa.int64()),
    })
    kept, rejected, noted = TrackIdLookup(ParquetFiles(str(tmp_path), ("part-0.parquet",)))(batch)

    joined = T.resolve_playlist_tracks(spark.createDataFrame(batch.to_pandas()), spark.createDataFrame(
        catalog.to_pandas())).collect()
    expected_kept = {r.position: (r.track_id, r.in_catalog) for r in joined if r._reject is None}
    assert {p: (t, c) for p, t, c in zip(*(kept.column(n).to_pylist() for n in ("position", "track_id", "in_catalog")))
            } == expected_kept == {0: ("T7", True), 1: ("GHOST", False), 3: ("T12", True), 6: ("T5", True)}
    assert {r["position"]: r["_reject"] for r in rejected} == {r.position: r._reject for r in joined if r._reject}
    assert sorted(r["position"] for r in rejected) == [2, 4, 5]
    assert noted == {T.ONLY_AS_TRACK_REF: 1}
    assert kept.schema.names[:4] == ["playlist_id", "position", "track_id", "added_at"]


def test_spec_json_arrays(spark):
    tracks = spark.createDataFrame(
        [("a", '["X","Y"]'), ("b", None), ("c", "not json"), ("d", "")], "track_id string, artist_ids_json string"
    )
    out = {r.track_id: (r.artist_ids, r._reject) for r in T.spec_tracks(tracks).collect()}
    assert out["a"] == (["X", "Y"], None)
    assert out["b"] == ([], None) and out["d"] == ([], None)
    assert out["c"] == (None, "artist_ids is not a JSON array of strings")
