"""``llm-audit sql``: raw DuckDB SQL over the store's views."""

from __future__ import annotations

from typing import Annotated

import duckdb
import typer

from llm_proxy.cli.options import ConfigOpt, FormatOpt, StoreOpt, resolve
from llm_proxy.cli.output import emit
from llm_proxy.errors import QueryError
from llm_proxy.store.views import connect

__all__ = ["register", "run_sql"]


def run_sql(store: str, statement: str) -> tuple[list[str], list[tuple]]:
    """Run one statement over the views; a DuckDB error becomes a ``QueryError``."""
    con = connect(store)
    try:
        cur = con.execute(statement)
        columns = [d[0] for d in cur.description] if cur.description else []
        return columns, cur.fetchall() if columns else []
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise QueryError(f"SQL error: {first}") from None
    finally:
        con.close()


def sql(
    statement: Annotated[str, typer.Argument(help="A SELECT over flows, requests, responses, errors, security.")],
    *,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Run DuckDB SQL over the audit views."""
    store_path, _cfg = resolve(store, config)
    columns, rows = run_sql(store_path, statement)
    emit(columns, rows, fmt)


def register(app: typer.Typer) -> None:
    app.command("sql")(sql)
