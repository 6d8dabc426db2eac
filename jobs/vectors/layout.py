"""The 13 components of an audio vector, in the spec's order (Vectorize Schema, Appendix B), and how
each raw value is scaled to [0, 1]. One table, used by the vector itself and by the genre profiles."""

from __future__ import annotations

from typing import NamedTuple


class Component(NamedTuple):
    name: str  # column of bronze/spotify_audio_features, or popularity (bronze/spotify_tracks)
    low: float  # raw value mapped to 0.0
    high: float  # raw value mapped to 1.0


# (x − low) / (high − low), clamped to [0, 1] (Appendix B; the spec clamps tempo, loudness and
# time_signature explicitly, the issue clamps every component).
VECTOR_COMPONENTS: tuple[Component, ...] = (
    Component("tempo", 60.0, 200.0),  # (tempo − 60) / 140
    Component("energy", 0.0, 1.0),
    Component("danceability", 0.0, 1.0),
    Component("valence", 0.0, 1.0),
    Component("acousticness", 0.0, 1.0),
    Component("instrumentalness", 0.0, 1.0),
    Component("speechiness", 0.0, 1.0),
    Component("liveness", 0.0, 1.0),
    Component("loudness", -60.0, 0.0),  # (loudness + 60) / 60
    Component("key", 0.0, 11.0),  # key / 11; key −1 (no key detected) clamps to 0.0
    Component("mode", 0.0, 1.0),
    Component("time_signature", 3.0, 7.0),  # (time_signature − 3) / 4
    Component("popularity", 0.0, 100.0),  # popularity / 100
)
VECTOR_LENGTH = len(VECTOR_COMPONENTS)
COMPONENT_INDEX = {c.name: i for i, c in enumerate(VECTOR_COMPONENTS)}


def scale(name: str, raw: float) -> float:
    """A raw feature value on the vector's [0, 1] scale (plain Python: for constants such as profiles)."""
    c = VECTOR_COMPONENTS[COMPONENT_INDEX[name]]
    return min(1.0, max(0.0, (raw - c.low) / (c.high - c.low)))
