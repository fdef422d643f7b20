"""Pure: values as people read them (``12.3M``, ``$1,234.56``, ``4.2%``, ``850 ms``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

__all__ = ["SPARK", "human", "iso", "scope_line"]

SPARK = "▁▂▃▄▅▆▇█"


def iso(value: dt.datetime | None) -> str | None:
    """ISO 8601 UTC with a ``Z``, as every machine output of the project writes time."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _compact(n: float) -> str:
    a = abs(n)
    if a < 10_000:
        return f"{n:,.0f}"
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{n / div:.1f}{suffix}"
    return f"{n:,.0f}"


def human(value: Any, kind: str) -> str:
    """``value`` formatted for a column of ``kind``; missing values are an en dash."""
    if value is None:
        return "–"
    if kind == "int":
        return f"{value:,}" if isinstance(value, int) else str(value)
    if kind == "tokens":
        return _compact(value)
    if kind == "usd":  # cents from a dollar up; enough digits to tell small costs apart
        a = abs(value)
        if a == 0:
            return "$0"
        if a >= 1:
            return f"${value:,.2f}"
        if a >= 0.0001:
            return f"${value:.4f}"
        return f"${value:.6f}"
    if kind == "pct":
        return f"{value * 100:.1f}%"
    if kind == "ms":
        return f"{value:,.0f} ms" if value < 1000 else f"{value / 1000:,.2f} s"
    if isinstance(value, dt.datetime):
        value = value.astimezone(dt.UTC)
        if kind == "day":
            return value.strftime("%Y-%m-%d")
        if kind == "hour":
            return value.strftime("%Y-%m-%d %H:00")
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def scope_line(by: str, since: dt.datetime | None, until: dt.datetime | None) -> str:
    """``by model · 2026-11-01 00:00 → 2026-11-26 07:45 UTC``"""
    start = since.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M") if since else "the beginning"
    end = until.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M") if until else "now"
    return f"by {by} · {start} → {end} UTC"
