"""The latency report: p50/p95/p99 latency and time-to-first-token per group and over time.

Percentiles describe successful exchanges (no ``error_type``): a fast 429 or a 30-second
timeout says something about errors, not about how fast the model answers, and both are in the
errors report. Time to first token is measured on streamed responses only (``ttfb_ms`` is the
first token there; for a non-streamed call it is the whole answer).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import duckdb

from llm_proxy.reports.common import bucket_column, group_column, ordered, section
from llm_proxy.reports.model import Column, Report
from llm_proxy.reports.query import OK_SQL, Scope
from llm_proxy.reports.scan import Aggregate, mean, quantiles, scan

__all__ = ["build_latency"]

_Q = (0.5, 0.95, 0.99)
# Percentiles and the average merge from per-day partials (histograms; sum and count): see
# llm_proxy.reports.rollup for when percentiles are exact and their tolerance otherwise.
_AGGREGATES: list[Aggregate] = [
    ("requests", "count(*)", "sum"),
    ("measured", f"count(latency_ms) FILTER (WHERE {OK_SQL})", "sum"),
    ("latency", *quantiles("latency_ms", _Q, OK_SQL)),
    ("latency_avg_ms", *mean("latency_ms", OK_SQL)),
    ("latency_max_ms", f"max(latency_ms) FILTER (WHERE {OK_SQL})", "max"),
    ("streams", f"count(ttfb_ms) FILTER (WHERE {OK_SQL} AND stream)", "sum"),
    ("ttft", *quantiles("ttfb_ms", _Q, f"{OK_SQL} AND stream")),
]

_METRICS = [
    Column("requests", "requests", "int", human=False),
    Column("measured", "ok reqs", "int"),
    Column("latency_p50_ms", "p50", "ms"),
    Column("latency_p95_ms", "p95", "ms"),
    Column("latency_p99_ms", "p99", "ms"),
    Column("latency_avg_ms", "avg", "ms", human=False),
    Column("latency_max_ms", "max", "ms", human=False),
    Column("streams", "streams", "int", human=False),
    Column("ttft_p50_ms", "TTFT p50", "ms"),
    Column("ttft_p95_ms", "TTFT p95", "ms"),
    Column("ttft_p99_ms", "TTFT p99", "ms", human=False),
]


def _unpack(row: dict[str, Any]) -> dict[str, Any]:
    lat = row.pop("latency", None) or [None, None, None]
    ttft = row.pop("ttft", None) or [None, None, None]
    row["latency_p50_ms"], row["latency_p95_ms"], row["latency_p99_ms"] = lat
    row["ttft_p50_ms"], row["ttft_p95_ms"], row["ttft_p99_ms"] = ttft
    return row


def build_latency(con: duckdb.DuckDBPyConnection, scope: Scope) -> Report:
    """Latency and TTFT percentiles of successful requests per group and over time."""
    data = scan(con, scope, _AGGREGATES)
    totals = _unpack(data["totals"][0])
    groups = ordered([_unpack(r) for r in data["groups"]], scope, "requests")
    timeline = [_unpack(r) for r in data["timeline"]]
    timeline_cols = [bucket_column(scope), Column("measured", "ok reqs"),
                     Column("latency_p50_ms", "p50", "ms"), Column("latency_p95_ms", "p95", "ms"),
                     Column("latency_p99_ms", "p99", "ms"),
                     Column("ttft_p50_ms", "TTFT p50", "ms"),
                     Column("ttft_p95_ms", "TTFT p95", "ms")]
    return Report(
        kind="latency", title="Latency", by=scope.by, since=scope.since, until=scope.until,
        generated_at=scope.now or datetime.now(UTC), bucket=scope.bucket,
        totals=section("totals", "Totals", _METRICS, [totals]),
        groups=section("groups", f"Latency by {scope.by}", [group_column(scope), *_METRICS],
                       groups),
        sections=[section("timeline", "Latency percentiles over time", timeline_cols, timeline)],
        notes=[("Percentiles over successful requests; time to first token (TTFT) over "
                "streamed ones.")],
    )
