"""Helpers the four report builders share: ordering, limits, group labels, shares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llm_proxy.reports.model import Column, Section
from llm_proxy.reports.query import GROUP_LABELS, Scope

__all__ = ["bucket_column", "group_column", "ordered", "section", "share", "top"]


def group_column(scope: Scope) -> Column:
    return Column("group", GROUP_LABELS[scope.by], scope.by if scope.time_grouped else "text")


def bucket_column(scope: Scope) -> Column:
    return Column("bucket", "day (UTC)" if scope.bucket == "day" else "hour (UTC)", scope.bucket)


def ordered(rows: list[dict[str, Any]], scope: Scope, metric: str) -> list[dict[str, Any]]:
    """Time groups in time order; others by ``metric``, largest first, cut to ``scope.limit``."""
    if scope.time_grouped:
        return sorted(rows, key=lambda r: r["group"])
    rows = sorted(rows, key=lambda r: (-(r.get(metric) or 0), str(r["group"])))
    return rows[: scope.limit] if scope.limit else rows


def top(rows: list[dict[str, Any]], metric: str, n: int = 10) -> list[dict[str, Any]]:
    """The ``n`` rows with the largest ``metric`` (rows where it is 0 or missing are dropped)."""
    rows = [r for r in rows if r.get(metric)]
    return sorted(rows, key=lambda r: (-(r[metric] or 0), _tie(r)))[:n]


def _tie(row: dict[str, Any]) -> list[tuple[str, str]]:
    """Equal metrics are ordered by the row's labels and counts, so ties are cut the same way
    on every run (floats excluded: their last bits depend on summation order)."""
    return sorted((k, str(v)) for k, v in row.items() if not isinstance(v, float))


def share(part: float | None, whole: float | None) -> float | None:
    """``part / whole`` as a fraction, None when there is no whole."""
    if not whole or part is None:
        return None
    return part / whole


def section(key: str, title: str, columns: Sequence[Column],
            rows: list[dict[str, Any]]) -> Section:
    """A section whose rows are taken from dicts by column key."""
    return Section(key, title, tuple(columns),
                   [tuple(r.get(c.key) for c in columns) for r in rows])
