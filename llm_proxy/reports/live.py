"""``llm-audit top``: a snapshot of the last few minutes, and its rendering as one rich frame.

Rates are measured over a sliding window (default five minutes) and expressed per second
(requests), per minute (tokens) and per hour (cost), so a quiet minute does not read as zero
and one burst does not read as a trend. The connection only covers the partitions in the
window, so a refresh stays cheap on a large store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb
from rich import box
from rich.console import Group, JustifyMethod, RenderableType
from rich.table import Table
from rich.text import Text

from llm_proxy.reports.fmt import human
from llm_proxy.reports.query import run

__all__ = ["LiveSnapshot", "render_frame", "snapshot"]


@dataclass(slots=True)
class LiveSnapshot:
    """What ``top`` shows: window totals, per-model rows, the latest records."""

    now: datetime
    window_s: float
    requests: int = 0
    errors: int = 0
    p95_ms: float | None = None
    tokens: int = 0
    cost_usd: float = 0.0
    models: list[dict[str, Any]] = field(default_factory=list)
    latest: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.window_s

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def tokens_per_min(self) -> float:
        return self.tokens / self.window_s * 60

    @property
    def cost_per_hour(self) -> float:
        return self.cost_usd / self.window_s * 3600


_WINDOW_SQL = """
SELECT grouping(m) AS _g, m, count(*) AS requests, count(error_type) AS errors,
  quantile_cont(latency_ms, 0.95) FILTER (WHERE error_type IS NULL) AS p95,
  coalesce(sum(input_tokens), 0) + coalesce(sum(output_tokens), 0) AS tokens,
  coalesce(sum(cost_usd), 0) AS cost
FROM (SELECT coalesce(request_model, response_model, '(none)') AS m, * FROM flows
      WHERE ts >= ? AND ts <= ? AND date >= ?)
GROUP BY GROUPING SETS ((m), ())
"""
_LATEST_SQL = """
SELECT ts, method, endpoint, status_code, error_type, coalesce(request_model, response_model),
  coalesce(input_tokens, 0) + coalesce(output_tokens, 0), latency_ms, cost_usd, user_id
FROM flows WHERE ts >= ? AND date >= ? ORDER BY ts DESC LIMIT ?
"""


def snapshot(con: duckdb.DuckDBPyConnection, *, now: datetime, window: timedelta,
             latest: int = 15) -> LiveSnapshot:
    """Totals and per-model rates over ``window`` ending at ``now``, plus the latest records."""
    start = now - window
    snap = LiveSnapshot(now=now, window_s=window.total_seconds())
    for row in run(con, _WINDOW_SQL, [start, now, start.date()]):
        g, model, requests, errors, p95, tokens, cost = row
        if g:
            snap.requests, snap.errors, snap.p95_ms = requests, errors, p95
            snap.tokens, snap.cost_usd = int(tokens), float(cost)
        else:
            snap.models.append({"model": model, "requests": requests, "errors": errors,
                                "p95_ms": p95, "tokens": int(tokens), "cost_usd": float(cost)})
    snap.models.sort(key=lambda m: -m["requests"])
    # The latest records reach back further than the window so a quiet proxy still shows some.
    since = now - max(window, timedelta(hours=24))
    keys = ("ts", "method", "endpoint", "status_code", "error_type", "model", "tokens",
            "latency_ms", "cost_usd", "user_id")
    snap.latest = [dict(zip(keys, row, strict=True))
                   for row in run(con, _LATEST_SQL, [since, since.date(), latest])]
    return snap


def _kpi(label: str, value: str, style: str = "bold") -> Text:
    text = Text()
    text.append(value + "\n", style=style)
    text.append(label, style="dim")
    return text


def _duration(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def render_frame(snap: LiveSnapshot, *, store: str = "") -> RenderableType:
    """One frame: headline rates, a per-model table and the latest records."""
    window = _duration(snap.window_s)
    head = Text(f"llm-audit top · {snap.now.strftime('%Y-%m-%d %H:%M:%S')} UTC · "
                f"window {window}" + (f" · {store}" if store else ""), style="bold")
    err_style = "bold red" if (snap.error_rate or 0) >= 0.05 else "bold"
    kpis = Table.grid(padding=(0, 3))
    cells = [
        _kpi("requests/s", f"{snap.rps:,.2f}"),
        _kpi("error rate", human(snap.error_rate, "pct"), err_style),
        _kpi("p95 latency", human(snap.p95_ms, "ms")),
        _kpi("tokens/min", human(snap.tokens_per_min, "tokens")),
        _kpi("cost/hour", human(snap.cost_per_hour, "usd")),
    ]
    for _ in cells:
        kpis.add_column(justify="left")
    kpis.add_row(*cells)

    models = Table(title="Per model", title_justify="left", box=box.SIMPLE_HEAD,
                   padding=(0, 1), pad_edge=False, title_style="bold")
    model_cols: tuple[tuple[str, JustifyMethod], ...] = (
        ("model", "left"), ("req/s", "right"), ("errors", "right"), ("p95", "right"),
        ("tok/min", "right"), ("$/hour", "right"))
    for label, justify in model_cols:
        models.add_column(label, justify=justify, no_wrap=True,
                          overflow="ellipsis", max_width=36 if label == "model" else None)
    for m in snap.models[:12]:
        models.add_row(str(m["model"]), f"{m['requests'] / snap.window_s:,.2f}",
                       human(m["errors"] / m["requests"] if m["requests"] else None, "pct"),
                       human(m["p95_ms"], "ms"), human(m["tokens"] / snap.window_s * 60, "tokens"),
                       human(m["cost_usd"] / snap.window_s * 3600, "usd"))
    if not snap.models:
        models.add_row("(no traffic in the window)", "", "", "", "", "")

    latest = Table(title="Latest records", title_justify="left", box=box.SIMPLE_HEAD,
                   padding=(0, 1), pad_edge=False, title_style="bold")
    # Fixed-width columns keep their width; model, endpoint and user give way on a narrow screen.
    latest_cols: tuple[tuple[str, JustifyMethod, int | None], ...] = (
        ("time", "left", 8), ("status", "right", 6), ("model", "left", None),
        ("endpoint", "left", None), ("tokens", "right", 6), ("latency", "right", 8),
        ("cost", "right", 9), ("user", "left", None))
    for label, justify, width in latest_cols:
        latest.add_column(label, justify=justify, no_wrap=width is not None,
                          overflow="ellipsis", min_width=width,
                          max_width=width or {"model": 24, "endpoint": 28, "user": 16}[label])
    for r in snap.latest:
        status = str(r["status_code"] or r["error_type"] or "–")
        style = "red" if r["error_type"] else None
        latest.add_row(r["ts"].strftime("%H:%M:%S"), Text(status, style=style or ""),
                       str(r["model"] or "–"), str(r["endpoint"] or "–"),
                       human(r["tokens"], "tokens"), human(r["latency_ms"], "ms"),
                       human(r["cost_usd"], "usd"), str(r["user_id"] or "–"))
    if not snap.latest:
        latest.add_row("(no records yet)", "", "", "", "", "", "", "")
    return Group(head, Text(""), kpis, Text(""), models, latest)
