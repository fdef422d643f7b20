"""Read-only SQL: what ``llm-audit sql`` and ``--where`` may run over the audit views.

An audit trail must not be editable through its own query tool, and a query tool must not become
a way to read arbitrary files of the machine it runs on. Two independent layers:

1. ``check_read_only`` parses the text with DuckDB's own parser (``duckdb.extract_statements``)
   and accepts exactly one ``SELECT`` (or ``EXPLAIN`` of one). Anything that writes, attaches,
   copies, sets, installs or loads is refused by statement type, before it runs.
2. ``lock_down`` switches the connection, *after* the views exist, to
   ``enable_external_access = false`` with ``allowed_directories`` = the store's tiers, and then
   ``lock_configuration = true``. Table functions such as ``read_csv``, ``read_text`` or
   ``glob`` on any path outside the store then fail inside DuckDB, and no statement can undo it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb

from llm_proxy.errors import QueryError

__all__ = ["check_read_only", "check_where", "explain_error", "lock_down"]

_ALLOWED = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


def _parse(sql: str, what: str) -> list[duckdb.Statement]:
    try:
        return duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"{what}: {_first_line(exc)}") from None


def check_read_only(sql: str, *, what: str = "SQL") -> None:
    """Accept one SELECT (or EXPLAIN); raise ``QueryError`` naming the refused statement."""
    statements = _parse(sql, f"{what} error")
    if not statements:
        raise QueryError(f"{what} is empty: give one SELECT over flows, requests, responses, "
                         "errors or security")
    if len(statements) > 1:
        raise QueryError(f"{what} has {len(statements)} statements: give exactly one SELECT")
    kind = statements[0].type
    if kind not in _ALLOWED:
        name = kind.name if hasattr(kind, "name") else str(kind)
        raise QueryError(
            f"{what} is read-only: {name} statements are refused; use a SELECT over flows, "
            "requests, responses, errors or security")


def check_where(expr: str) -> None:
    """A ``--where`` must be one boolean condition over the flows columns, nothing else."""
    try:
        statements = duckdb.extract_statements(f"SELECT 1 FROM flows WHERE ({expr})")
    except duckdb.Error as exc:
        raise QueryError(f"--where {expr!r} is not one SQL condition ({_first_line(exc)}); "
                         "example: --where \"status_code >= 500\"") from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        raise QueryError(f"--where {expr!r} is not one SQL condition; "
                         "example: --where \"status_code >= 500\"")


def lock_down(con: duckdb.DuckDBPyConnection, readable: Sequence[Path]) -> None:
    """Restrict ``con`` to reading ``readable`` folders and lock its configuration."""
    dirs = [str(Path(d).absolute()).rstrip("/") + "/" for d in readable]
    literal = "[" + ", ".join("'" + d.replace("'", "''") + "'" for d in dirs) + "]"
    con.execute(f"SET allowed_directories = {literal}")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def explain_error(exc: duckdb.Error) -> QueryError:
    """One line for a DuckDB error, with the read-only refusals spelled out."""
    line = _first_line(exc)
    if isinstance(exc, duckdb.PermissionException) or "disabled by configuration" in line:
        return QueryError("refused: queries may read only the audit store (file access outside "
                          f"it is disabled): {line}")
    if "configuration has been locked" in line:
        return QueryError(f"refused: settings cannot be changed by a query: {line}")
    return QueryError(f"SQL error: {line}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
