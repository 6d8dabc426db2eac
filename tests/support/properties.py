"""Hypothesis settings shared by the property tests (tests/*/test_properties_*.py).

A Spark query costs ~0.1 s on an idle machine and seconds on a busy one, so the Spark properties draw a
whole batch of values per example (a list with a minimum size, so batches hold tens of values rather than
hypothesis' usual handful) and run few examples; the pure-Python ones run more. ``ARIA_PROPERTY_SCALE=10``
multiplies every budget for a deeper search (e.g. before a release, or after changing a normaliser).
No example database is kept (a failure prints its example; hypothesis' own cache in ``.hypothesis/`` is
git-ignored).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SCALE = max(1, int(os.environ.get("ARIA_PROPERTY_SCALE", "1")))


def budget(examples: int) -> settings:
    """``examples`` examples (times ARIA_PROPERTY_SCALE), no deadline (a cold JIT makes the first slow)."""
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# Spark properties: one DataFrame per example, each example a list of values.
SPARK = budget(5)
# Plain-Python properties.
PURE = budget(100)
