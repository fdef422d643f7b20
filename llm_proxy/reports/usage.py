"""The usage report: requests and tokens per group, for capacity planning and chargeback."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

from llm_proxy.reports.common import bucket_column, group_column, ordered, section
from llm_proxy.reports.model import Column, Report
from llm_proxy.reports.query import ESTIMATED_SQL, MISSING_USAGE_SQL, Scope, count_where
from llm_proxy.reports.scan import Aggregate, scan

__all__ = ["build_usage"]

_AGGREGATES: list[Aggregate] = [
    ("requests", "count(*)", "sum"),
    ("errors", "count(error_type)", "sum"),
    ("input_tokens", "coalesce(sum(input_tokens), 0)", "sum"),
    ("cached_input_tokens", "coalesce(sum(cached_input_tokens), 0)", "sum"),
    ("cache_write_tokens", "coalesce(sum(cache_write_tokens), 0)", "sum"),
    ("output_tokens", "coalesce(sum(output_tokens), 0)", "sum"),
    ("reasoning_tokens", "coalesce(sum(reasoning_tokens), 0)", "sum"),
    ("estimated_requests", count_where(ESTIMATED_SQL), "sum"),
    ("missing_usage_requests", count_where(MISSING_USAGE_SQL), "sum"),
]

_METRICS = [
    Column("requests", "requests", "int"),
    Column("input_tokens", "input tok", "tokens"),
    Column("cached_input_tokens", "cached", "tokens"),
    Column("cache_write_tokens", "cache write", "tokens", human=False),
    Column("output_tokens", "output tok", "tokens"),
    Column("reasoning_tokens", "reasoning", "tokens", human=False),
    Column("total_tokens", "total tok", "tokens"),
    Column("estimated_requests", "estimated", "int"),
    Column("missing_usage_requests", "no usage", "int", human=False),
]


def _with_total(row: dict) -> dict:
    row["total_tokens"] = (row.get("input_tokens") or 0) + (row.get("output_tokens") or 0)
    return row


def build_usage(con: duckdb.DuckDBPyConnection, scope: Scope) -> Report:
    """Requests, input/output/cached tokens per group, over time and in total."""
    data = scan(con, scope, _AGGREGATES)
    totals = _with_total(data["totals"][0])
    groups = ordered([_with_total(r) for r in data["groups"]], scope, "requests")
    timeline_cols = [bucket_column(scope), Column("requests", "requests"),
                     Column("errors", "errors"), Column("input_tokens", "input tok", "tokens"),
                     Column("output_tokens", "output tok", "tokens"),
                     Column("cached_input_tokens", "cached", "tokens")]
    notes = []
    if totals.get("estimated_requests"):
        notes.append(f"{totals['estimated_requests']:,} requests have estimated token counts "
                     "(the provider reported no usage).")
    if totals.get("missing_usage_requests"):
        notes.append(f"{totals['missing_usage_requests']:,} successful requests carry no token "
                     "usage at all.")
    return Report(
        kind="usage", title="Usage", by=scope.by, since=scope.since, until=scope.until,
        generated_at=scope.now or datetime.now(UTC), bucket=scope.bucket,
        totals=section("totals", "Totals", _METRICS, [totals]),
        groups=section("groups", f"Usage by {scope.by}", [group_column(scope), *_METRICS], groups),
        sections=[section("timeline", "Requests and tokens over time", timeline_cols,
                          data["timeline"])],
        notes=notes,
    )
