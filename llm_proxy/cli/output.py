"""Rendering rows for people (a rich table) and for machines (json, jsonl, csv), defined once."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from llm_proxy.errors import UsageError

__all__ = ["FORMATS", "emit", "json_default", "console"]

FORMATS = ("table", "json", "jsonl", "csv")


def console(file: TextIO | None = None, min_width: int | None = None) -> Console:
    """A rich console; ``min_width`` widens it when output is not a terminal (rich says 80)."""
    con = Console(file=file, soft_wrap=False, highlight=False)
    if min_width and not con.is_terminal and con.width < min_width:
        con = Console(file=file, soft_wrap=False, highlight=False, width=min_width)
    return con


def json_default(value: Any) -> Any:
    """ISO 8601 UTC for timestamps, plain numbers for decimals."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    return str(value)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return json_default(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def emit(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str,
         out: TextIO | None = None, title: str | None = None, min_width: int | None = None) -> None:
    """Print ``rows`` in ``fmt``; json is one array of objects, jsonl one object per line."""
    out = out or sys.stdout
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}: use one of {', '.join(FORMATS)}")
    if fmt == "json":
        json.dump([dict(zip(columns, r, strict=True)) for r in rows], out,
                  default=json_default, ensure_ascii=False)
        out.write("\n")
    elif fmt == "jsonl":
        for r in rows:
            out.write(json.dumps(dict(zip(columns, r, strict=True)), default=json_default,
                                 ensure_ascii=False) + "\n")
    elif fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            writer.writerow(
                [json_default(v) if isinstance(v, dt.datetime) else ("" if v is None else v)
                 for v in r])
    else:
        table = Table(title=title, show_lines=False)
        for c in columns:
            table.add_column(c, overflow="fold")
        for r in rows:
            table.add_row(*(_cell(v) for v in r))
        console(out, min_width).print(table)
