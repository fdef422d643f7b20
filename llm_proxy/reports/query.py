"""SQL building blocks shared by the reports: scope, grouping keys, time filter, timeline.

Values are always bound as parameters; only the fixed expressions below are spliced into SQL.
The time filter restricts ``ts`` and also the ``date`` partition column, which lets DuckDB skip
whole Parquet partitions outside the range (hive partition pruning).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from llm_proxy.errors import QueryError, UsageError
from llm_proxy.reports.model import GROUPINGS, TIME_GROUPINGS
from llm_proxy.store.views import arrow_table, is_stale_listing

__all__ = [
    "GROUP_LABELS",
    "GROUP_SQL",
    "Scope",
    "bucket_sql",
    "choose_bucket",
    "group_sql",
    "run",
    "run_arrow",
    "time_value",
    "utc",
    "where_sql",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# --by NAME -> SQL expression. "model" is what the caller asked for (request_model), falling back
# to what answered: dated snapshots (gpt-4o-2024-08-06) would otherwise split one model in many.
GROUP_SQL = {
    "user": "coalesce(user_id, '(none)')",
    "model": "coalesce(request_model, response_model, '(none)')",
    "provider": "coalesce(provider, '(none)')",
    "endpoint": "coalesce(endpoint, '(none)')",
    "key": "coalesce(key_id, '(none)')",
    # Time keys use the partition columns (constant per file: no per-row time-zone arithmetic),
    # as the date itself and as hours since the epoch; ``time_value`` turns them into datetimes.
    "day": "date",
    "hour": "((date - DATE '1970-01-01') * 24 + hour)",
}
GROUP_LABELS = {"user": "user", "model": "model", "provider": "provider", "endpoint": "endpoint",
                "key": "API key", "day": "day (UTC)", "hour": "hour (UTC)"}
# Successful exchanges: what latency percentiles describe.
OK_SQL = "error_type IS NULL"
ESTIMATED_SQL = "usage_source = 'estimated'"
# Successful calls that should have reported tokens but did not (listings and counts never do).
MISSING_USAGE_SQL = ("usage_source = 'missing' AND error_type IS NULL "
                     "AND coalesce(operation, '') NOT IN ('models', 'count_tokens')")
UNPRICED_SQL = "cost_usd IS NULL AND (coalesce(input_tokens, 0) + coalesce(output_tokens, 0)) > 0"
PRICED_MODEL_SQL = "coalesce(response_model, request_model)"


@dataclass(frozen=True, slots=True)
class Scope:
    """What a report covers: grouping, time range, how many groups to show, timeline bucket."""

    by: str = "model"
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None  # None: every group
    bucket: str = "day"  # hour | day
    now: datetime | None = None

    def __post_init__(self) -> None:
        if self.by not in GROUPINGS:
            raise UsageError(f"--by {self.by!r} is not a grouping: use one of "
                             f"{', '.join(GROUPINGS)}")
        if self.since and self.until and self.since >= self.until:
            raise UsageError("--since must be before --until")
        if self.limit is not None and self.limit < 0:
            raise UsageError("--limit must be 0 (all groups) or more")

    @property
    def time_grouped(self) -> bool:
        return self.by in TIME_GROUPINGS


def count_where(condition: str) -> str:
    """``count(*) FILTER (WHERE …)``: unlike ``count_if`` it is 0, never NULL, on no match."""
    return f"count(*) FILTER (WHERE {condition})"


def group_sql(by: str) -> str:
    return GROUP_SQL[by]


def bucket_sql(bucket: str) -> str:
    return GROUP_SQL["hour" if bucket == "hour" else "day"]


def time_value(kind: str, value: Any) -> datetime | None:
    """The UTC datetime of a ``day`` (a date) or ``hour`` (hours since the epoch) key."""
    if value is None:
        return None
    if kind == "hour":
        return _EPOCH + timedelta(hours=int(value))
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def where_sql(scope: Scope, extra: str | None = None) -> tuple[str, list[Any]]:
    """``WHERE …`` over ts (and the date partition column), with its parameters."""
    clauses: list[str] = []
    params: list[Any] = []
    if scope.since is not None:
        clauses += ["ts >= ?", "date >= ?"]
        params += [scope.since, scope.since.astimezone(UTC).date()]
    if scope.until is not None:
        clauses += ["ts < ?", "date <= ?"]
        params += [scope.until, scope.until.astimezone(UTC).date()]
    if extra:
        clauses.append(extra)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def run(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[tuple]:
    """Execute and fetch; a DuckDB error becomes a one-line ``QueryError``.

    A listed file that vanished (compaction swapped it) stays a DuckDB error, so that
    ``views.retrying`` re-lists and runs the report again.
    """
    try:
        return con.execute(sql, params or []).fetchall()
    except duckdb.Error as exc:
        raise _query_error(exc) from None


def run_arrow(con: duckdb.DuckDBPyConnection, sql: str,
              params: list[Any] | None = None) -> pa.Table:
    """``run``, fetched as an Arrow table."""
    try:
        return arrow_table(con, sql, params or [])
    except duckdb.Error as exc:
        raise _query_error(exc) from None


def _query_error(exc: duckdb.Error) -> Exception:
    if is_stale_listing(exc):
        return exc
    first = str(exc).strip().splitlines()[0]
    return QueryError(f"report query failed: {first}")


def choose_bucket(first: datetime | None, last: datetime | None) -> str:
    """Hourly points for up to three days, daily beyond: charts stay readable either way.

    ``first``/``last`` come from the scope or, without ``--since``, from the partition listing
    (names only), so choosing costs no query.
    """
    if first is None or last is None:
        return "day"
    return "hour" if (last - first) <= timedelta(days=3) else "day"


def utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
