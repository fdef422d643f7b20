"""The data a report is made of, independent of how it is shown.

A ``Report`` is a few ``Section``s (named tables with typed columns) plus its scope; every
output format (rich table, markdown, json, csv, html, e-mail) renders the same object, so the
numbers can never disagree between formats. Column ``kind`` tells renderers how to show a
value (tokens compact, dollars with cents, milliseconds as ms or s); machines get raw values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["GROUPINGS", "REPORT_KINDS", "TIME_GROUPINGS", "Column", "Report", "Section"]

REPORT_KINDS = ("usage", "cost", "latency", "errors")
GROUPINGS = ("user", "model", "provider", "endpoint", "key", "day", "hour")
TIME_GROUPINGS = ("day", "hour")


@dataclass(frozen=True, slots=True)
class Column:
    """``key`` is the json/csv name, ``label`` the header people read, ``kind`` the unit."""

    key: str
    label: str
    kind: str = "int"  # text | int | tokens | usd | pct | ms | time | day | hour
    human: bool = True  # False: only in json/csv (keeps the table within 100 columns)


@dataclass(slots=True)
class Section:
    """A named table of a report (``groups``, ``timeline``, ``top_errors``, …)."""

    key: str
    title: str
    columns: tuple[Column, ...]
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def dicts(self) -> list[dict[str, Any]]:
        keys = [c.key for c in self.columns]
        return [dict(zip(keys, row, strict=True)) for row in self.rows]

    def column(self, key: str) -> list[Any]:
        i = [c.key for c in self.columns].index(key)
        return [row[i] for row in self.rows]


@dataclass(slots=True)
class Report:
    """One report: ``totals`` (one row), ``groups`` (one row per group) and extra sections."""

    kind: str
    title: str
    by: str
    since: datetime | None
    until: datetime | None
    generated_at: datetime
    bucket: str  # hour | day: the timeline's resolution
    totals: Section
    groups: Section
    sections: list[Section] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def redundant(self, key: str) -> bool:
        """A side table that repeats the main one (top spenders when grouped by user)."""
        return (key, self.by) in (("top_spenders", "user"), ("by_model", "model"))

    def section(self, key: str) -> Section | None:
        return next((s for s in self.sections if s.key == key), None)

    def total(self, key: str) -> Any:
        return self.totals.dicts()[0][key] if self.totals.rows else None
