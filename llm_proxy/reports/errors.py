"""The errors report: error rate, rate limits, 5xx, timeouts, retries, fallbacks, top messages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import duckdb

from llm_proxy.reports.common import bucket_column, group_column, ordered, section, share, top
from llm_proxy.reports.model import Column, Report
from llm_proxy.reports.query import Scope, count_where
from llm_proxy.reports.scan import Aggregate, Side, scan

__all__ = ["build_errors"]

_MESSAGE_CHARS = 160
_AGGREGATES: list[Aggregate] = [
    ("requests", "count(*)", "sum"),
    ("errors", "count(error_type)", "sum"),
    ("rate_limited", count_where("status_code = 429 OR error_type = 'rate_limit'"), "sum"),
    ("server_errors", count_where("status_code >= 500"), "sum"),
    ("client_errors", count_where("status_code BETWEEN 400 AND 499 AND status_code <> 429"),
     "sum"),
    ("timeouts", count_where("error_type = 'timeout'"), "sum"),
    ("connection_errors", count_where(
        "error_type IN ('connection', 'connection_reset', 'tls', 'proxy_error')"), "sum"),
    ("retries", "coalesce(sum(retry_count), 0)", "sum"),
    ("retried_requests", count_where("retry_count > 0"), "sum"),
    ("fallbacks", count_where("fallback_used"), "sum"),
]
_KEYS = {
    "error_type": "error_type",
    "status_code": "status_code",
    "message": f"left(error_message, {_MESSAGE_CHARS})",
}
_SETS = {"by_type": ("error_type",)}
# Messages are many and only errors have one: their own branch over error rows only.
_SIDES = {"top_errors": Side(("error_type", "status_code", "message"), ("errors",),
                             where="error_type IS NOT NULL",
                             extra=(("last_seen", "max(ts)", "max"),))}

_METRICS = [
    Column("requests", "requests"),
    Column("errors", "errors"),
    Column("error_rate", "error %", "pct"),
    Column("rate_limited", "429s"),
    Column("server_errors", "5xx"),
    Column("client_errors", "4xx", human=False),
    Column("timeouts", "timeouts"),
    Column("connection_errors", "conn", human=False),
    Column("retries", "retries"),
    Column("retried_requests", "retried", human=False),
    Column("fallbacks", "fallbacks"),
]


def _rate(row: dict[str, Any]) -> dict[str, Any]:
    row["error_rate"] = share(row.get("errors"), row.get("requests"))
    return row


def build_errors(con: duckdb.DuckDBPyConnection, scope: Scope) -> Report:
    """Error rate and kinds per group, over time, and the most frequent error messages."""
    data = scan(con, scope, _AGGREGATES, keys=_KEYS, sets=_SETS, sides=_SIDES)
    totals = _rate(data["totals"][0])
    total_errors = totals.get("errors") or 0
    groups = ordered([_rate(r) for r in data["groups"]], scope, "errors")
    timeline = [_rate(r) for r in data["timeline"]]
    top_errors = top([r for r in data["top_errors"] if r["error_type"] is not None], "errors")
    for r in top_errors:
        r["share"] = share(r["errors"], total_errors)
    by_type = top([r for r in data["by_type"] if r["error_type"] is not None], "errors", 20)
    for r in by_type:
        r["share"] = share(r["errors"], total_errors)
    sections = [
        section("top_errors", "Top errors", [
            Column("error_type", "type", "text"), Column("status_code", "status", "text"),
            Column("message", "message", "text"), Column("errors", "count"),
            Column("share", "share", "pct"), Column("last_seen", "last seen", "time")],
            top_errors),
        section("by_type", "Errors by type", [
            Column("error_type", "type", "text"), Column("errors", "count"),
            Column("share", "share", "pct")], by_type),
        section("timeline", "Error rate over time", [
            bucket_column(scope), Column("requests", "requests"), Column("errors", "errors"),
            Column("error_rate", "error %", "pct"), Column("rate_limited", "429s"),
            Column("server_errors", "5xx"), Column("timeouts", "timeouts")], timeline),
    ]
    return Report(
        kind="errors", title="Errors", by=scope.by, since=scope.since, until=scope.until,
        generated_at=scope.now or datetime.now(UTC), bucket=scope.bucket,
        totals=section("totals", "Totals", _METRICS, [totals]),
        groups=section("groups", f"Errors by {scope.by}", [group_column(scope), *_METRICS], groups),
        sections=sections,
    )
