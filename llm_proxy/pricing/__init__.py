"""Cost with provenance: the price table, per-record cost, token estimates and repricing.

Used by the capture worker (``RecordBuilder``) once per record, by ``llm-audit reprice`` and by
the cost report. The shipped table lives in ``data/prices.toml``; a user file named by the
config key ``prices`` overrides or extends it, and every cost carries the table's version.
"""

from llm_proxy.pricing.estimate import (
    NO_OUTPUT_OPERATIONS,
    estimate_tokens,
    estimate_usage,
    heuristic_tokens,
)
from llm_proxy.pricing.table import FREE_OPERATIONS, Cost, ModelPrice, PriceTable, compute_cost

__all__ = [
    "FREE_OPERATIONS",
    "NO_OUTPUT_OPERATIONS",
    "Cost",
    "ModelPrice",
    "PriceTable",
    "compute_cost",
    "estimate_tokens",
    "estimate_usage",
    "heuristic_tokens",
]
