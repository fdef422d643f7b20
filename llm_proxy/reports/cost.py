"""The cost report: dollars per group with their share, top spenders, and what has no price.

Models that used tokens but have no price are listed, never silently counted as $0; so are
successful requests without usage, and the price-table versions the costs were computed with.
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

from llm_proxy.reports.common import bucket_column, group_column, ordered, section, share, top
from llm_proxy.reports.model import Column, Report
from llm_proxy.reports.query import (
    ESTIMATED_SQL,
    GROUP_SQL,
    MISSING_USAGE_SQL,
    PRICED_MODEL_SQL,
    UNPRICED_SQL,
    Scope,
    count_where,
)
from llm_proxy.reports.scan import Aggregate, Side, scan

__all__ = ["build_cost"]

_COMPONENTS = ("cost_input_usd", "cost_cached_input_usd", "cost_cache_write_usd",
               "cost_output_usd", "cost_reasoning_usd", "cost_request_usd")
_AGGREGATES: list[Aggregate] = [
    ("requests", "count(*)", "sum"),
    ("cost_usd", "coalesce(sum(cost_usd), 0)", "sum"),
    *[(c, f"coalesce(sum({c}), 0)", "sum") for c in _COMPONENTS],
    ("input_tokens", "coalesce(sum(input_tokens), 0)", "sum"),
    ("output_tokens", "coalesce(sum(output_tokens), 0)", "sum"),
    ("cached_input_tokens", "coalesce(sum(cached_input_tokens), 0)", "sum"),
    ("unpriced_requests", count_where(UNPRICED_SQL), "sum"),
    ("estimated_requests", count_where(ESTIMATED_SQL), "sum"),
    ("missing_usage_requests", count_where(MISSING_USAGE_SQL), "sum"),
]
_SEP = "\x1f"
# Unpriced (provider, model) pairs as one key that is NULL for every priced row: one cheap
# hash key instead of a two-string grouping over all the rows.
_UNPRICED_KEY = (
    f"CASE WHEN {UNPRICED_SQL} THEN coalesce(provider, '(none)') || '{_SEP}' || "
    f"coalesce({PRICED_MODEL_SQL}, '(none)') END"
)
_KEYS = {
    "user": GROUP_SQL["user"],
    "model": GROUP_SQL["model"],
    "unpriced": _UNPRICED_KEY,
    "price_version": "coalesce(price_version, '(not priced)')",
}

_MONEY = [
    Column("requests", "requests"),
    Column("input_tokens", "input tok", "tokens", human=False),
    Column("output_tokens", "output tok", "tokens", human=False),
    Column("cached_input_tokens", "cached tok", "tokens", human=False),
    Column("cost_input_usd", "input cost", "usd"),
    Column("cost_cached_input_usd", "cached cost", "usd", human=False),
    Column("cost_cache_write_usd", "cache write cost", "usd", human=False),
    Column("cost_output_usd", "output cost", "usd"),
    Column("cost_reasoning_usd", "reasoning cost", "usd", human=False),
    Column("cost_request_usd", "request fees", "usd", human=False),
    Column("cost_usd", "cost", "usd"),
    Column("share", "share", "pct"),
    Column("cost_per_1k_requests", "per 1k req", "usd"),
    Column("unpriced_requests", "unpriced", "int", human=False),
]


def _finish(row: dict, total_cost: float) -> dict:
    row["share"] = share(row.get("cost_usd"), total_cost)
    row["cost_per_1k_requests"] = (row["cost_usd"] / row["requests"] * 1000
                                   if row.get("requests") else None)
    return row


def build_cost(con: duckdb.DuckDBPyConnection, scope: Scope) -> Report:
    """Dollars per group, share of total, top spenders, cost by model, unpriced models."""
    # Side tables that equal the main grouping are taken from it instead of grouped again.
    sets: dict[str, tuple[str, ...]] = {"unknown_models": ("unpriced",),
                                        "price_versions": ("price_version",)}
    sides = {}
    if scope.by != "user":
        sides["top_spenders"] = Side(("user",), ("requests", "cost_usd"))
    if scope.by != "model":
        sets["by_model"] = ("model",)
    data = scan(con, scope, _AGGREGATES, keys=_KEYS, sets=sets, sides=sides)
    for name, key in (("top_spenders", "user"), ("by_model", "model")):
        if name not in sets and name not in sides:
            data[name] = [{**r, key: r["group"]} for r in data["groups"]]
    totals = data["totals"][0]
    total_cost = totals.get("cost_usd") or 0.0
    groups = ordered([_finish(r, total_cost) for r in data["groups"]], scope, "cost_usd")
    spenders = [_finish(dict(r), total_cost) for r in top(data["top_spenders"], "cost_usd")]
    models = [_finish(dict(r), total_cost) for r in top(data["by_model"], "cost_usd")]
    unknown = []
    for r in data["unknown_models"]:
        if r["unpriced"] is not None:
            provider, _, model = r["unpriced"].partition(_SEP)
            unknown.append({**r, "provider": provider, "priced_model": model})
    unknown.sort(key=lambda r: -r["unpriced_requests"])
    versions = sorted(data["price_versions"], key=lambda r: -r["requests"])
    totals = _finish(totals, total_cost)
    totals["priced_requests"] = (totals["requests"] or 0) - (totals["unpriced_requests"] or 0)

    short = [Column("requests", "requests"), Column("cost_usd", "cost", "usd"),
             Column("share", "share", "pct")]
    sections = [
        section("top_spenders", "Top spenders (users)", [Column("user", "user", "text"), *short],
                spenders),
        section("by_model", "Cost by model", [Column("model", "model", "text"), *short], models),
        section("unknown_models", "Models without a price (counted as $0)", [
            Column("provider", "provider", "text"), Column("priced_model", "model", "text"),
            Column("unpriced_requests", "requests"),
            Column("input_tokens", "input tok", "tokens"),
            Column("output_tokens", "output tok", "tokens")], unknown),
        section("price_versions", "Price tables used", [
            Column("price_version", "price version", "text"), Column("requests", "records")],
            versions),
        section("timeline", "Requests and cost over time", [
            bucket_column(scope), Column("requests", "requests"), Column("cost_usd", "cost", "usd"),
            Column("input_tokens", "input tok", "tokens"),
            Column("output_tokens", "output tok", "tokens")], data["timeline"]),
    ]
    notes = []
    if unknown:
        names = ", ".join(f"{r['provider']}/{r['priced_model']}" for r in unknown[:5])
        notes.append(f"{totals['unpriced_requests']:,} requests used models with no price "
                     f"({names}{', …' if len(unknown) > 5 else ''}): add them to your price file "
                     "(config `prices`) and run `llm-audit reprice`.")
    if totals.get("missing_usage_requests"):
        notes.append(f"{totals['missing_usage_requests']:,} successful requests reported no "
                     "token usage and cost $0.")
    if totals.get("estimated_requests"):
        notes.append(f"{totals['estimated_requests']:,} requests are priced from estimated "
                     "token counts.")
    total_cols = [c for c in _MONEY if c.key not in ("share",)] + [
        Column("priced_requests", "priced", "int"),
        Column("estimated_requests", "estimated", "int"),
        Column("missing_usage_requests", "no usage", "int")]
    return Report(
        kind="cost", title="Cost", by=scope.by, since=scope.since, until=scope.until,
        generated_at=scope.now or datetime.now(UTC), bucket=scope.bucket,
        totals=section("totals", "Totals", total_cols, [totals]),
        groups=section("groups", f"Cost by {scope.by}", [group_column(scope), *_MONEY], groups),
        sections=sections, notes=notes,
    )
