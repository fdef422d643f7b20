"""The filter options shared by ``search``, ``tail`` and ``export``, defined once, plus rendering
of one record for people (status marks, times, tokens, cost, latency)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from llm_proxy.store.search import Filters

__all__ = [
    "EndpointOpt",
    "KeyIdOpt",
    "ModelOpt",
    "ProviderOpt",
    "SinceOpt",
    "StatusOpt",
    "UntilOpt",
    "UserOpt",
    "WhereOpt",
    "fmt_cost",
    "fmt_latency",
    "fmt_time",
    "fmt_tokens",
    "make_filters",
    "status_mark",
    "status_style",
    "tail_line",
]

UserOpt = Annotated[str | None, typer.Option("--user", help="user_id (exact; * globs).",
                                             show_default=False)]
ModelOpt = Annotated[str | None, typer.Option(
    "--model", help="Requested or answering model (exact; * globs).", show_default=False)]
ProviderOpt = Annotated[str | None, typer.Option(
    "--provider", help="openai, anthropic, azure_openai, gemini, …", show_default=False)]
EndpointOpt = Annotated[str | None, typer.Option(
    "--endpoint", help="Path without query, e.g. /v1/chat/completions (* globs).",
    show_default=False)]
StatusOpt = Annotated[str | None, typer.Option(
    "--status", help="HTTP status: 429, 4xx, 5xx or a list like 429,5xx.", show_default=False)]
KeyIdOpt = Annotated[str | None, typer.Option(
    "--key-id", help="API key fingerprint, or any part of it (e.g. its last 4 or hash).",
    show_default=False)]
SinceOpt = Annotated[str | None, typer.Option(
    "--since", help="From: 15m, 2h, 7d, 2026-11-01 or an ISO timestamp.", show_default=False)]
UntilOpt = Annotated[str | None, typer.Option(
    "--until", help="Up to (exclusive), same forms as --since.", show_default=False)]
WhereOpt = Annotated[str | None, typer.Option(
    "--where", help="Extra read-only DuckDB SQL condition over the flows columns.",
    show_default=False)]


def make_filters(*, text: str | None = None, user: str | None = None, model: str | None = None,
                 provider: str | None = None, endpoint: str | None = None,
                 status: str | None = None, key_id: str | None = None, since: str | None = None,
                 until: str | None = None, where: str | None = None) -> Filters:
    return Filters(text=text, user=user, model=model, provider=provider, endpoint=endpoint,
                   status=status, key_id=key_id, since=since, until=until, where=where)


def status_mark(status: int | None, error_type: str | None = None) -> str:
    """✓ success, ⚠ client-side problem (4xx: rate limits, bad requests), ✗ failure."""
    if status is None:
        return "✗"
    if status >= 500:
        return "✗"
    if status >= 400:
        return "⚠"
    return "✗" if error_type else "✓"


def status_style(mark: str) -> str:
    return {"✓": "green", "⚠": "yellow", "✗": "red"}.get(mark, "")


def fmt_time(ts: Any) -> str:
    if isinstance(ts, int):
        ts = datetime.fromtimestamp(ts / 1_000_000, tz=UTC)
    if isinstance(ts, datetime):
        return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return ""


def fmt_tokens(record: dict[str, Any]) -> str:
    total = record.get("total_tokens")
    if total is None and (record.get("input_tokens") is not None
                          or record.get("output_tokens") is not None):
        total = (record.get("input_tokens") or 0) + (record.get("output_tokens") or 0)
    return "" if total is None else str(total)


def fmt_cost(value: float | None) -> str:
    if value is None:
        return ""
    return f"${value:.4f}" if value < 100 else f"${value:,.0f}"


def fmt_latency(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.0f} ms" if value < 10_000 else f"{value / 1000:.1f} s"


def tail_line(record: dict[str, Any]) -> tuple[str, str]:
    """``2025-03-17 14:23:45 POST /v1/chat/completions 200 ✓ gpt-4o 812 tok 640 ms`` and its style."""
    status = record.get("status_code")
    mark = status_mark(status, record.get("error_type"))
    model = record.get("response_model") or record.get("request_model") or "-"
    parts = [fmt_time(record.get("ts")), record.get("method") or "-",
             record.get("endpoint") or record.get("path") or "-",
             str(status) if status is not None else "---", mark, model]
    tokens = fmt_tokens(record)
    if tokens:
        parts.append(f"{tokens} tok")
    latency = fmt_latency(record.get("latency_ms"))
    if latency:
        parts.append(latency)
    if mark != "✓" and record.get("error_type"):
        parts.append(str(record["error_type"]))
    return " ".join(parts), status_style(mark)
