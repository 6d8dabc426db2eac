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


def test_spec_json_arrays(spark):
    tracks = spark.createDataFrame(
        [("a", '["X","Y"]'), ("b", None), ("c", "not json"), ("d", "")], "track_id string, artist_ids_json string"
    )
    out = {r.track_id: (r.artist_ids, r._reject) for r in T.spec_tracks(tracks).collect()}
    assert out["a"] == (["X", "Y"], None)
    assert out["b"] == ([], None) and out["d"] == ([], None)
    assert out["c"] == (None, "artist_ids is not a JSON array of strings")
