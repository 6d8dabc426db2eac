"""Cloudflare prices, in one place, with their source, and the monthly cost of a footprint.

Source: the spec's "Cost Analysis & Optimization" → "Cloudflare Pricing Breakdown (December 2025)" tables
(R2, D1, Vectorize, KV) and its "Monthly Cost Summary" (the four deployments). The publish dry run prices
what it would publish; the report prices the spec's deployments with the same functions.

Rules, as the spec's tables state them: usage within the free tier costs nothing, usage above it is billed at
the paid rate (storage per GB-month, operations per million). KV's free tier is per day (reads 10M/day, writes
1M/day); monthly KV operations are compared with 30 × the daily allowance.

The spec's own arithmetic deducts the free tier of storage only: its R2 example bills all 5M reads ($1.80,
although 10M Class B operations a month are free) and its Vectorize rows bill every vector (256M × $0.05/M =
$12.80, ignoring the 200K free). ``monthly_cost(usage, free_tiers="storage")`` reproduces that arithmetic;
the default ``"all"`` applies every free tier of the tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SOURCE = "spec: Cost Analysis & Optimization, Cloudflare Pricing Breakdown (December 2025)"
GB = 1_000_000_000
MILLION = 1_000_000
DAYS_PER_MONTH = 30


@dataclass(frozen=True)
class Rate:
    storage: bool  # a storage rate (the spec's arithmetic deducts only these free tiers)
    free: float  # units free per month (per day for KV operations, see ``per_day``)
    price: float  # dollars per ``unit`` above the free tier
    unit: float  # how many units the price is for (1 GB, 1M operations, 1K queries)
    per_day: bool = False

    def cost(self, used: float, free_tiers: str = "all") -> float:
        free = self.free * (DAYS_PER_MONTH if self.per_day else 1)
        if free_tiers == "storage" and not self.storage:
            free = 0.0
        return max(0.0, used - free) / self.unit * self.price


# R2 Object Storage: storage 10 GB free then $0.015/GB-month; Class A (writes) 1M free then $4.50/M;
# Class B (reads) 10M free then $0.36/M.
R2 = {
    "storage_bytes": Rate(True, 10 * GB, 0.015, GB),
    "class_a_ops": Rate(False, 1 * MILLION, 4.50, MILLION),
    "class_b_ops": Rate(False, 10 * MILLION, 0.36, MILLION),
}
# D1: storage 5 GB free then $0.75/GB-month; rows read 25B free then $0.001/M; rows written 50M free then $1.00/M.
D1 = {
    "storage_bytes": Rate(True, 5 * GB, 0.75, GB),
    "rows_read": Rate(False, 25_000 * MILLION, 0.001, MILLION),
    "rows_written": Rate(False, 50 * MILLION, 1.00, MILLION),
}
# Vectorize: stored vectors 200K free then $0.05/M vectors-month; queries 30M free then $0.01/1K.
VECTORIZE = {
    "stored_vectors": Rate(False, 200_000, 0.05, MILLION),
    "queries": Rate(False, 30 * MILLION, 0.01, 1_000),
}
# KV: storage 1 GB free then $0.50/GB-month; reads 10M/day free then $0.50/M; writes 1M/day free then $5.00/M.
KV = {
    "storage_bytes": Rate(True, 1 * GB, 0.50, GB),
    "reads": Rate(False, 10 * MILLION, 0.50, MILLION, per_day=True),
    "writes": Rate(False, 1 * MILLION, 5.00, MILLION, per_day=True),
}
PRODUCTS = {"r2": R2, "d1": D1, "vectorize": VECTORIZE, "kv": KV}


@dataclass
class Usage:
    """A month of use of the four products; any missing figure is 0."""

    r2: dict[str, float] = field(default_factory=dict)
    d1: dict[str, float] = field(default_factory=dict)
    vectorize: dict[str, float] = field(default_factory=dict)
    kv: dict[str, float] = field(default_factory=dict)


def monthly_cost(usage: Usage, free_tiers: str = "all") -> dict[str, float]:
    """Dollars per product and ``total`` (unrounded; round for display). ``free_tiers``: ``"all"`` or
    ``"storage"`` (the spec's arithmetic, see the module docstring)."""
    if free_tiers not in ("all", "storage"):
        raise ValueError(f"free_tiers must be 'all' or 'storage', got {free_tiers!r}")
    costs: dict[str, float] = {}
    for product, rates in PRODUCTS.items():
        used = getattr(usage, product)
        unknown = set(used) - set(rates)
        if unknown:
            raise ValueError(f"pricing has no {product} figure(s) {sorted(unknown)} (known: {sorted(rates)})")
        costs[product] = sum((rates[name].cost(float(value), free_tiers) for name, value in used.items()), 0.0)
    costs["total"] = sum(costs.values())
    return costs


# The spec's "Monthly Cost Summary": R2 holds 200 GB with ~5M reads a month (its "For 200GB metadata storage"
# example), D1 and KV stay in their free tiers, Vectorize holds the deployment's vectors.
SPEC_R2_STORAGE_BYTES = 200 * GB
SPEC_R2_READS = 5 * MILLION
DEPLOYMENTS: dict[str, int] = {
    "Lean": 10 * MILLION,
    "Balanced": 15 * MILLION,
    "Standard": 30 * MILLION,
    "Full": 256 * MILLION,
}
# The spec's totals, for comparison in the report.
SPEC_TOTALS = {"Lean": 6.0, "Balanced": 6.0, "Standard": 7.0, "Full": 18.0}


def deployment_usage(vectors: int) -> Usage:
    return Usage(
        r2={"storage_bytes": SPEC_R2_STORAGE_BYTES, "class_b_ops": SPEC_R2_READS},
        vectorize={"stored_vectors": vectors},
    )


def deployment_costs(free_tiers: str = "all") -> dict[str, dict[str, float]]:
    """Monthly cost of each of the spec's four deployments, by product."""
    return {name: monthly_cost(deployment_usage(vectors), free_tiers) for name, vectors in DEPLOYMENTS.items()}
