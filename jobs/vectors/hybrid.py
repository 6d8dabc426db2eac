"""Hybrid vectors (spec: "Alternative: Hybrid Vectors"): the audio vector followed by a text embedding of
``"{artist} - {title} [{genres}]"``. Off by default (``vectors.hybrid``).

The text model is WordLlama's ``l2_supercat`` (256 dims, static token embeddings averaged over the
text; MIT). Its weights and tokenizer ship inside the ``wordllama`` wheel (19 MB, numpy + tokenizers,
no torch), so nothing is downloaded: loading passes ``disable_download=True``. Throughput is that of a
tokenizer plus a table look-up — thousands of texts per second per core — where a transformer such as
all-MiniLM-L6-v2 (which needs torch, a multi-GB install) manages a few hundred on a CPU.

Layout, 13 + 256 = 269 components (within Vectorize's 1536): the audio vector scaled to unit length,
then the text embedding scaled to length ``vectors.hybrid_text_weight`` (w). The cosine of two hybrid
vectors is then (cos_audio + w²·cos_text) / (1 + w²) — with w = 1 the mean of the two similarities —
whenever neither part is zero (a zero part contributes 0).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, FloatType, StructField, StructType

from jobs.vectors.knn import unit_rows
from lib.errors import JobError

TEXT_MODEL = "wordllama l2_supercat"
TEXT_DIM = 256
EMBED_BATCH = 4096


@functools.lru_cache(maxsize=1)
def text_model() -> Any:
    """The packaged WordLlama model, loaded once per Python worker.

    ``WordLlama.load`` looks for the weights in the package's ``weights/`` folder but for the tokenizer
    in ``tokenizer/`` while the wheel ships ``tokenizers/``; its cache look-up uses ``tokenizers/``, so
    the package folder is passed as the cache. ``disable_download`` turns any miss into an error.
    """
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        import wordllama
        from wordllama import WordLlama
    except ImportError as exc:  # pragma: no cover - wordllama is in requirements.lock
        raise JobError(f"vectors.hybrid needs the wordllama package ({exc})") from None
    finally:  # wordllama calls logging.basicConfig(level=INFO) on import; undo that
        root.setLevel(level)
        root.handlers[:] = handlers
    package = Path(wordllama.__file__).resolve().parent
    return WordLlama.load(config="l2_supercat", dim=TEXT_DIM, cache_dir=package, disable_download=True)


def embed_texts(texts: list[str]) -> np.ndarray:
    """(n, 256) float32 text embeddings (not normalised)."""
    if not texts:
        return np.zeros((0, TEXT_DIM), np.float32)
    return np.asarray(text_model().embed(texts, norm=False, batch_size=EMBED_BATCH), dtype=np.float32)


def text_column() -> Column:
    """``{artist} - {title} [{genres}]`` with genres joined by ", " (missing parts are empty)."""
    return F.format_string(
        "%s - %s [%s]",
        F.coalesce(F.col("artist"), F.lit("")),
        F.coalesce(F.col("title"), F.lit("")),
        F.array_join(F.coalesce(F.col("genres"), F.array().cast("array<string>")), ", "),
    )


def combine(audio: np.ndarray, text: np.ndarray, text_weight: float) -> np.ndarray:
    """[audio / ‖audio‖, w · text / ‖text‖] as float32 (zero parts stay zero)."""
    return np.hstack([unit_rows(audio), text_weight * unit_rows(text)]).astype(np.float32)


def with_hybrid_vectors(vectors: DataFrame, text_weight: float) -> DataFrame:
    """``vectors`` (gold/audio_vectors rows) plus ``hybrid_vector`` array<float> of 13 + 256 components,
    computed batch by batch in ``mapInArrow`` (the model loads once per worker)."""
    with_text = vectors.withColumn("_text", text_column())
    fields = [f for f in with_text.schema.fields if f.name != "_text"]
    out_schema = StructType([*fields, StructField("hybrid_vector", ArrayType(FloatType()), True)])
    names = [f.name for f in fields]

    def embed(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            audio_list = batch.column("vector")
            dim = len(audio_list[0]) if batch.num_rows else 0
            audio = audio_list.flatten().to_numpy(zero_copy_only=False).reshape(batch.num_rows, dim)
            text = embed_texts(batch.column("_text").to_pylist())
            hybrid = combine(audio, text, text_weight)
            offsets = pa.array(np.arange(0, hybrid.size + 1, hybrid.shape[1], dtype=np.int32))
            column = pa.ListArray.from_arrays(offsets, pa.array(hybrid.ravel(), pa.float32()))
            yield pa.RecordBatch.from_arrays([*(batch.column(n) for n in names), column], [*names, "hybrid_vector"])

    return with_text.mapInArrow(embed, out_schema)
