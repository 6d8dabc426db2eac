"""Properties of the Appendix-B audio vector (jobs/vectors/transforms.py ``vector_column``) on any value the
bronze types can hold: doubles (negative, huge, subnormal, ±0, ±inf, NaN), ints over their whole range, NULL.

Decided and checked here: a component is (x − low) / (high − low) clamped to [0, 1] (Appendix B); +inf
clamps to 1.0 and −inf to 0.0 like any other out-of-range value; NULL and NaN (which SQLite cannot hold but
a Parquet input could) give 0.0, as "no signal". The vector always has exactly 13 float components.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from jobs.vectors import transforms
from tests.support.properties import SPARK

# (column, spark type, low, high) in Appendix B order, spelled out from the spec rather than read from
# jobs/vectors/layout.py.
APPENDIX_B = [
    ("tempo", "double", 60.0, 200.0), ("energy", "double", 0.0, 1.0), ("danceability", "double", 0.0, 1.0),
    ("valence", "double", 0.0, 1.0), ("acousticness", "double", 0.0, 1.0), ("instrumentalness", "double", 0.0, 1.0),
    ("speechiness", "double", 0.0, 1.0), ("liveness", "double", 0.0, 1.0), ("loudness", "double", -60.0, 0.0),
    ("key", "int", 0.0, 11.0), ("mode", "int", 0.0, 1.0), ("time_signature", "int", 3.0, 7.0),
    ("popularity", "int", 0.0, 100.0),
]
SCHEMA = ", ".join(f"{name} {kind}" for name, kind, _, _ in APPENDIX_B)
DOUBLE = st.one_of(st.none(), st.floats(), st.floats(-300, 300), st.sampled_from([-1.0, 0.0, 1.0, 60.0, -60.0]))
INT = st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1), st.integers(-5, 110))
ROW = st.tuples(*(DOUBLE if kind == "double" else INT for _, kind, _, _ in APPENDIX_B))


def expected(raw: float | int | None, low: float, high: float) -> float:
    """The component as float32, from the rule above."""
    if raw is None or math.isnan(raw):
        return 0.0
    return float(np.float32(min(1.0, max(0.0, (float(raw) - low) / (high - low)))))


@SPARK
@given(st.lists(ROW, min_size=20, max_size=60))
def test_every_component_lies_in_0_1_for_any_input(spark, rows):
    got = spark.createDataFrame(rows, SCHEMA).select(transforms.vector_column().alias("vector")).collect()
    assert len(got) == len(rows)
    for row, raw in zip(got, rows):
        vector = row.vector
        assert len(vector) == 13
        assert all(0.0 <= v <= 1.0 for v in vector), (raw, vector)
        assert vector == [expected(x, low, high) for x, (_, _, low, high) in zip(raw, APPENDIX_B)], raw
