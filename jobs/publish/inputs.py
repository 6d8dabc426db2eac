"""The tables publish reads, each at one version for the whole run (recorded in the summary), checked for the
columns used, with the step that makes a missing one named in the error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from lib import delta
from lib.errors import InputError

REQUIRED: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {
    ("gold", "spotify_mbid_xref"): (("spotify_id", "isrc", "mbid", "match_confidence", "match_method"),
                                    "run xref first"),
    ("gold", "precomputed_similar"): (("seed_spotify_id", "similar_spotify_id", "similarity_score", "rank"),
                                      "run vectors first"),
    ("gold", "audio_vectors"): (("spotify_id", "vector", "tier", "popularity", "isrc", "title", "artist", "genres",
                                 "year", "mbid"), "run vectors first"),
    ("gold", "playlist_cooccurrence"): (("track_a", "track_b", "cooccurrence_count", "pmi_score", "jaccard_score",
                                         "score"), "run cooccurrence first"),
    ("gold", "cooccurrence_top"): (("track_id", "neighbor_id", "rank"), "run cooccurrence first"),
    ("bronze", "spotify_artists"): (("artist_id", "popularity", "genres"), "run ingest first"),
    ("bronze", "spotify_audio_features"): (("track_id", "danceability", "energy", "key", "loudness", "mode",
                                            "speechiness", "acousticness", "instrumentalness", "liveness", "valence",
                                            "tempo", "duration_ms", "time_signature"), "run ingest first"),
    ("bronze", "spotify_tracks"): (("track_id", "album_id", "popularity"), "run ingest first"),
}
# Built by the graph job; used when present (schema: artist_id, genre, confidence, source).
OPTIONAL: dict[tuple[str, str], tuple[str, ...]] = {
    ("gold", "artist_genres_inferred"): ("artist_id", "genre"),
}


@dataclass
class Inputs:
    frames: dict[str, DataFrame]
    versions: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, name: str) -> DataFrame:
        return self.frames[name]

    def get(self, name: str) -> DataFrame | None:
        return self.frames.get(name)


def read_inputs(spark: SparkSession, warehouse: str) -> Inputs:
    inputs = Inputs({})
    for (layer, name), (columns, hint) in REQUIRED.items():
        uri = delta.table_path(warehouse, layer, name)
        version = delta.version(uri)
        if version is None:
            raise InputError(f"{uri}: {hint}")
        frame = delta.read_input(spark, uri, None, hint, version=version)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise InputError(f"{uri}: no column(s) {', '.join(missing)}; {hint}")
        keep = [*columns, *(["fetched_at"] if "fetched_at" in frame.columns else [])]
        inputs.frames[name] = frame.select(*keep)
        inputs.versions[f"{layer}/{name}"] = version
    for (layer, name), columns in OPTIONAL.items():
        uri = delta.table_path(warehouse, layer, name)
        version = delta.version(uri)
        if version is None:
            continue
        inputs.frames[name] = delta.read_input(spark, uri, columns, "its producer changed the schema", version=version)
        inputs.versions[f"{layer}/{name}"] = version
    return inputs


def summary_versions(inputs: Inputs) -> dict[str, Any]:
    return dict(sorted(inputs.versions.items()))
