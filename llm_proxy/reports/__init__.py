"""Usage, cost, latency and error reports over the store, and their renderings.

Pure library code: builders take a DuckDB connection from ``llm_proxy.store.views.connect`` and
a ``Scope`` and return a ``Report``; renderers turn a ``Report`` into a rich table, markdown,
json, csv or a self-contained HTML page. ``llm_proxy.cli.report`` is the thin shell.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from llm_proxy.errors import UsageError
from llm_proxy.reports.cost import build_cost
from llm_proxy.reports.errors import build_errors
from llm_proxy.reports.latency import build_latency
from llm_proxy.reports.model import GROUPINGS, REPORT_KINDS, Column, Report, Section
from llm_proxy.reports.query import Scope, choose_bucket
from llm_proxy.reports.usage import build_usage

__all__ = [
    "BUILDERS",
    "GROUPINGS",
    "REPORT_KINDS",
    "Column",
    "Report",
    "Scope",
    "Section",
    "build_report",
    "choose_bucket",
]

BUILDERS: dict[str, Callable[[duckdb.DuckDBPyConnection, Scope], Report]] = {
    "usage": build_usage,
    "cost": build_cost,
    "latency": build_latency,
    "errors": build_errors,
}


def build_report(con: duckdb.DuckDBPyConnection, kind: str, scope: Scope) -> Report:
    """The ``kind`` report (usage, cost, latency, errors) over ``scope``."""
    try:
        builder = BUILDERS[kind]
    except KeyError:
        raise UsageError(f"unknown report {kind!r}: use one of {', '.join(REPORT_KINDS)}") \
            from None
    return builder(con, scope)
