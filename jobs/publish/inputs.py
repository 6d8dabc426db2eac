"""The tables publish reads (each pinned at one version by the job frame), with the columns used and the step
that makes a missing one named in the error."""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql import DataFrame

from lib import delta
from lib.job import Input, Run

INPUTS = (
    Input("gold/spotify_mbid_xref", ("spotify_id", "isrc", "mbid", "match_confidence", "match_method"),
          hint="run xref first"),
    Input("gold/precomputed_similar", ("seed_spotify_id", "similar_spotify_id", "similarity_score", "rank"),
          hint="run vectors first"),
    Input("gold/audio_vectors", ("spotify_id", "vector", "tier", "popularity", "isrc", "title", "artist", "genres",
                                 "year", "mbid"), hint="run vectors first"),
    Input("gold/playlist_cooccurrence", ("track_a", "track_b", "cooccurrence_count", "pmi_score", "jaccard_score",
                                         "score"), hint="run cooccurrence first"),
    Input("gold/cooccurrence_top", ("track_id", "neighbor_id", "rank"), hint="run cooccurrence first"),
    Input("bronze/spotify_artists", ("artist_id", "popularity", "genres")),
    Input("bronze/spotify_audio_features", ("track_id", "danceability", "energy", "key", "loudness", "mode",
                                            "speechiness", "acousticness", "instrumentalness", "liveness", "valence",
                                            "tempo", "duration_ms", "time_signature")),
    Input("bronze/spotify_tracks", ("track_id", "album_id", "popularity")),
    # Built by the graph job; used when present (schema: artist_id, genre, confidence, source).
    Input("gold/artist_genres_inferred", ("artist_id", "genre"), optional=True, hint="run graph first"),
)
# Kept when a table has it: the newest row of a track wins (ingest appends re-fetched rows).
FRESHNESS_COLUMN = "fetched_at"


@dataclass
class Inputs:
    frames: dict[str, DataFrame] = field(default_factory=dict)

    def __getitem__(self, name: str) -> DataFrame:
        return self.frames[name]

    def get(self, name: str) -> DataFrame | None:
        return self.frames.get(name)


def read_inputs(run: Run) -> Inputs:
    """Every present input at its pinned version, by table name (without the layer)."""
    inputs = Inputs()
    for declared in INPUTS:
        if not run.has_input(declared.table):
            continue
        version = run.input_versions[declared.table]
        present = delta.column_names(run.uri(declared.table), version)
        extra = (FRESHNESS_COLUMN,) if FRESHNESS_COLUMN in present else ()
        inputs.frames[declared.table.split("/", 1)[1]] = run.input(declared.table, (*declared.columns, *extra))
    return inputs
