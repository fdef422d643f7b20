"""``llm-audit sql``: raw DuckDB SQL over the store's views, read-only.

The statement is checked by DuckDB's own parser (one SELECT, nothing that writes, attaches,
copies, sets or loads) and runs on a connection that can read only the store
(``llm_proxy.store.sqlguard``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import duckdb
import typer

from llm_proxy.cli.options import ConfigOpt, FormatOpt, StoreOpt, resolve
from llm_proxy.cli.output import emit
from llm_proxy.store.sqlguard import check_read_only, explain_error
from llm_proxy.store.views import connect, is_stale_listing, retrying

__all__ = ["register", "run_sql"]


def run_sql(store: str, statement: str) -> tuple[list[str], list[tuple]]:
    """Run one read-only statement over the views; refusals and DuckDB errors are ``QueryError``."""
    check_read_only(statement)

    def attempt() -> tuple[list[str], list[tuple]]:
        con = connect(Path(store), read_only=True)
        try:
            cur = con.execute(statement)
            columns = [d[0] for d in cur.description] if cur.description else []
            return columns, cur.fetchall() if columns else []
        except duckdb.Error as exc:
            if is_stale_listing(exc):
                raise
            raise explain_error(exc) from None
        finally:
            con.close()

    return retrying(attempt)


def sql(
    statement: Annotated[str, typer.Argument(help="A SELECT over flows, requests, responses, errors, security.")],
    *,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Run read-only DuckDB SQL over the audit views."""
    store_path, _cfg = resolve(store, config)
    columns, rows = run_sql(store_path, statement)
    emit(columns, rows, fmt)


def register(app: typer.Typer) -> None:
    app.command("sql")(sql)
