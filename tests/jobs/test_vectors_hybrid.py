"""Hybrid vectors (vectors.hybrid): the packaged text model loads without network, the layout and its
cosine identity hold, and the Spark path builds the documented text."""

from __future__ import annotations

import numpy as np
import pytest

from jobs.vectors import hybrid


@pytest.fixture
def no_network(monkeypatch):
    """Any HTTP request fails: the model must come from the installed wheel."""
    import requests

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:2]}")

    monkeypatch.setattr(requests, "get", refuse)
    monkeypatch.setattr(requests.Session, "request", refuse)
    hybrid.text_model.cache_clear()
    yield
    hybrid.text_model.cache_clear()


def cosine(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_text_model_loads_offline_and_separates_texts(no_network):
    emb = hybrid.embed_texts([
        "Daft Punk - One More Time [french house, electro]",
        "Justice - D.A.N.C.E. [french house, electro]",
        "Johnny Cash - Hurt [country, outlaw country]",
    ])
    assert emb.shape == (3, hybrid.TEXT_DIM) and emb.dtype == np.float32
    assert cosine(emb[0], emb[1]) > cosine(emb[0], emb[2])
    assert hybrid.embed_texts([]).shape == (0, hybrid.TEXT_DIM)


@pytest.mark.parametrize("weight", [1.0, 0.5])
def test_combined_cosine_is_the_weighted_mean_of_audio_and_text(weight):
    rng = np.random.default_rng(3)
    audio = rng.random((2, 13)).astype(np.float32)
    text = rng.normal(size=(2, hybrid.TEXT_DIM)).astype(np.float32)
    h = hybrid.combine(audio, text, weight)
    assert h.shape == (2, 13 + hybrid.TEXT_DIM)
    expected = (cosine(audio[0], audio[1]) + weight**2 * cosine(text[0], text[1])) / (1 + weight**2)
    assert cosine(h[0], h[1]) == pytest.approx(expected, abs=1e-6)
    zero_text = hybrid.combine(audio, np.zeros_like(text), weight)
    assert (zero_text[:, 13:] == 0).all()


def test_spark_hybrid_vectors_embed_the_documented_text(spark):
    rows = [
        ("t1", [0.5] * 13, "Artist One", "Song", ["rock", "indie"]),
        ("t2", [0.0] * 12 + [1.0], None, "Lonely", []),
    ]
    frame = spark.createDataFrame(
        rows, "spotify_id string, vector array<float>, artist string, title string, genres array<string>"
    )
    got = {r.spotify_id: r for r in hybrid.with_hybrid_vectors(frame, 1.0).collect()}
    assert got["t1"].artist == "Artist One"  # the input columns pass through
    texts = ["Artist One - Song [rock, indie]", " - Lonely []"]
    text = hybrid.embed_texts(texts)
    for (track_id, audio, *_), t in zip(rows, text):
        vector = np.asarray(got[track_id].hybrid_vector)
        assert len(vector) == 13 + hybrid.TEXT_DIM
        np.testing.assert_allclose(vector[:13], np.asarray(audio) / np.linalg.norm(audio), atol=1e-6)
        np.testing.assert_allclose(vector[13:], t / np.linalg.norm(t), atol=1e-6)
