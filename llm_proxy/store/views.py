"""DuckDB over the store: the ``flows`` view and one view per column group.

``flows`` unions the Parquet partitions with the records still in the write-ahead journal, so a
record is queryable as soon as the proxy has acknowledged it, not only after the next flush.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pyarrow as pa

from llm_proxy.errors import StoreError
from llm_proxy.schema import COLUMN_GROUPS, COLUMNS
from llm_proxy.store.journal import list_segments
from llm_proxy.store.layout import FLOWS_DIR, JOURNAL_DIR
from llm_proxy.store.parquet import records_to_table
from llm_proxy.store.writer import unflushed_records

__all__ = ["connect", "journal_table", "parquet_glob", "VIEW_NAMES"]

VIEW_NAMES = ("flows", "requests", "responses", "errors", "security")


def parquet_glob(store: Path) -> str:
    return str(store / FLOWS_DIR / "*" / "*" / "*.parquet")


def _has_parquet(store: Path) -> bool:
    flows = store / FLOWS_DIR
    if not flows.is_dir():
        return False
    for date_dir in os.scandir(flows):
        if date_dir.is_dir():
            for hour_dir in os.scandir(date_dir.path):
                if hour_dir.is_dir() and any(
                    e.name.endswith(".parquet") and not e.name.startswith(".")
                    for e in os.scandir(hour_dir.path)
                ):
                    return True
    return False


def journal_table(store: Path) -> pa.Table:
    """Records acknowledged but not yet in Parquet, as an Arrow table of the record schema."""
    records = []
    for _instance, _seq, segment in list_segments(store / JOURNAL_DIR):
        records.extend(unflushed_records(store, segment))
    return records_to_table(records)


def connect(store: str | os.PathLike[str], *, require: bool = True) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the views over ``store``.

    With ``require``, a path that is not a store is a ``StoreError`` naming it.
    """
    root = Path(store)
    if require and not ((root / FLOWS_DIR).is_dir() or (root / JOURNAL_DIR).is_dir()):
        raise StoreError(
            f"no audit store at {str(root)!r}: run `llm-audit proxy --store {root}` first, "
            "or point --store / LLM_AUDIT_STORE at an existing store"
        )
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    con.register("_journal", journal_table(root))
    cols = ", ".join(COLUMNS)
    journal_part = (
        f"SELECT {cols}, CAST(ts AS DATE) AS date, CAST(hour(ts) AS INTEGER) AS hour FROM _journal"
    )
    if _has_parquet(root):
        glob = parquet_glob(root).replace("'", "''")
        parquet_part = (
            f"SELECT {cols}, date, hour FROM read_parquet('{glob}', hive_partitioning = true, "
            "union_by_name = true, hive_types = {'date': DATE, 'hour': INTEGER})"
        )
        con.execute(f"CREATE VIEW flows AS {parquet_part} UNION ALL {journal_part}")
    else:
        con.execute(f"CREATE VIEW flows AS {journal_part}")
    for view, group in (("requests", "request"), ("responses", "response"),
                        ("errors", "error"), ("security", "security")):
        group_cols = ", ".join(c for c in COLUMN_GROUPS[group] if c not in ("id", "ts"))
        where = " WHERE error_type IS NOT NULL" if group == "error" else ""
        con.execute(f"CREATE VIEW {view} AS SELECT id, ts, {group_cols} FROM flows{where}")
    return con
