"""The pricing module against the spec's own worked figures (Cost Analysis & Optimization)."""

from __future__ import annotations

import pytest

from lib.cloudflare.pricing import GB, MILLION, Usage, deployment_costs, monthly_cost


def test_the_spec_arithmetic_reproduces_its_line_items():
    # "Storage: (200GB - 10GB free) × $0.015 = $2.85", "~5M reads/month × $0.36/M = $1.80"
    r2 = monthly_cost(Usage(r2={"storage_bytes": 200 * GB, "class_b_ops": 5 * MILLION}), free_tiers="storage")
    assert r2["r2"] == pytest.approx(2.85 + 1.80)
    # "Popularity-tiered approach": 10M $0.50, 15M $0.75, 30M $1.50, 256M $12.80
    costs = deployment_costs(free_tiers="storage")
    assert {name: round(c["vectorize"], 2) for name, c in costs.items()} == {
        "Lean": 0.50, "Balanced": 0.75, "Standard": 1.50, "Full": 12.80}
    assert all(c["d1"] == 0 and c["kv"] == 0 for c in costs.values())


def test_every_free_tier_applies_by_default():
    costs = monthly_cost(Usage(
        r2={"storage_bytes": 200 * GB, "class_b_ops": 5 * MILLION},  # reads within the 10M free
        d1={"storage_bytes": 6 * GB, "rows_written": 49 * MILLION},  # 1 GB over 5 GB at $0.75
        vectorize={"stored_vectors": 15 * MILLION},  # (15M - 200K) × $0.05/M
        kv={"writes": 40 * MILLION}))  # 1M/day free: 30M a month, 10M over at $5/M
    assert costs["r2"] == pytest.approx(2.85)
    assert costs["d1"] == pytest.approx(0.75)
    assert costs["vectorize"] == pytest.approx(14.8 * 0.05)
    assert costs["kv"] == pytest.approx(50.0)
    assert costs["total"] == pytest.approx(2.85 + 0.75 + 0.74 + 50.0)
    with pytest.raises(ValueError, match="no r2 figure"):
        monthly_cost(Usage(r2={"egress": 1}))
