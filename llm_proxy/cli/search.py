"""``llm-audit search``, ``show`` and ``queries``: find records, read one whole, keep searches.

Thin shells over ``llm_proxy.store.searcher`` (execution), ``llm_proxy.store.search`` (filters,
terms, snippets) and ``llm_proxy.store.saved`` (saved queries).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from llm_proxy.cli.filters import (
    EndpointOpt,
    KeyIdOpt,
    ModelOpt,
    ProviderOpt,
    SinceOpt,
    StatusOpt,
    UntilOpt,
    UserOpt,
    WhereOpt,
    fmt_cost,
    fmt_latency,
    fmt_time,
    fmt_tokens,
    make_filters,
    status_mark,
    status_style,
)
from llm_proxy.cli.options import ConfigOpt, FormatOpt, StoreOpt, resolve
from llm_proxy.cli.output import FORMATS, console, emit, json_default
from llm_proxy.errors import QueryError, UsageError
from llm_proxy.store.saved import delete_query, get_query, list_queries, save_query
from llm_proxy.store.search import (
    SUMMARY_COLUMNS,
    Filters,
    Term,
    parse_terms,
    prompt_preview,
    snippet,
)
from llm_proxy.store.searcher import find_record, prepare
from llm_proxy.store.searcher import search as run_search
from llm_proxy.store.views import require_store

__all__ = ["print_results", "register"]

DEFAULT_LIMIT = 50

TextArg = Annotated[str | None, typer.Argument(
    help='Words (all required, case-insensitive), "exact phrases", prefix*.',
    show_default=False)]
LimitOpt = Annotated[int | None, typer.Option(
    "--limit", "-n", help=f"At most this many records (default {DEFAULT_LIMIT}).",
    show_default=False)]


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}: use one of {', '.join(FORMATS)}")


def _check_limit(limit: int) -> int:
    if limit < 1:
        raise UsageError(f"--limit {limit} must be at least 1")
    return limit


def _snippet(row: dict[str, Any], terms: list[Term]) -> str:
    """Around the match for a text search; else the error, else the prompt's start."""
    if terms:
        return snippet([row.get("request_body"), row.get("response_body"),
                        row.get("error_message")], terms)
    if row.get("error_message") and status_mark(row.get("status_code"),
                                                row.get("error_type")) != "✓":
        return str(row["error_message"])[:60]
    return prompt_preview(row.get("request_body"))


def print_results(rows: list[dict[str, Any]], filters: Filters, fmt: str) -> None:
    """Search results as a terminal table or as machine output (without the bodies)."""
    terms = parse_terms(filters.text)
    for row in rows:
        row["snippet"] = _snippet(row, terms)
    if fmt != "table":
        columns = [*SUMMARY_COLUMNS, "snippet"]
        emit(columns, [[r.get(c) for c in columns] for r in rows], fmt)
        return
    out = console()
    if not rows:
        out.print("No matching records.")
        return
    wide = out.width >= 160  # narrower terminals drop id and method (see --format jsonl)
    table = Table(show_lines=False, pad_edge=False, box=None, header_style="bold")
    fixed = {"no_wrap": True}
    squeeze = {"no_wrap": True, "overflow": "ellipsis"}
    table.add_column("time", min_width=19, **fixed)
    if wide:
        table.add_column("id", min_width=26, style="dim", **fixed)
        table.add_column("method", min_width=6, **fixed)
    table.add_column("endpoint", max_width=28, **squeeze)
    table.add_column("status", min_width=6, **fixed)
    table.add_column("model", max_width=22, **squeeze)
    table.add_column("user", min_width=12, max_width=18, **squeeze)
    table.add_column("tokens", justify="right", min_width=6, **fixed)
    table.add_column("cost", justify="right", min_width=7, **fixed)
    table.add_column("latency", justify="right", min_width=7, **fixed)
    table.add_column("snippet", max_width=50, **squeeze)
    for r in rows:
        mark = status_mark(r.get("status_code"), r.get("error_type"))
        status = f"{r['status_code'] if r.get('status_code') is not None else '---'} {mark}"
        cells: list[str | Text] = [fmt_time(r.get("ts"))]
        if wide:
            cells += [r.get("id") or "", r.get("method") or ""]
        cells += [r.get("endpoint") or "", Text(status, style=status_style(mark)),
                  r.get("response_model") or r.get("request_model") or "",
                  r.get("user_id") or "", fmt_tokens(r), fmt_cost(r.get("cost_usd")),
                  fmt_latency(r.get("latency_ms")), r["snippet"]]
        table.add_row(*(Text(c) if isinstance(c, str) else c for c in cells))
    out.print(table)
    out.print(f"[dim]{len(rows)} record(s), newest first. `llm-audit show ID` for one whole.[/]")


def _run_and_print(store: str, filters: Filters, limit: int, fmt: str) -> None:
    prepared = prepare(filters)
    rows = run_search(Path(store), prepared, limit=limit)
    print_results(rows, filters, fmt)


def search(
    text: TextArg = None,
    *,
    user: UserOpt = None,
    model: ModelOpt = None,
    provider: ProviderOpt = None,
    endpoint: EndpointOpt = None,
    status: StatusOpt = None,
    key_id: KeyIdOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    where: WhereOpt = None,
    limit: LimitOpt = None,
    save: Annotated[str | None, typer.Option(
        "--save", help="Also save this search under NAME (see `llm-audit queries`).",
        show_default=False)] = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Search the audit trail: full text over bodies and errors, plus filters; newest first."""
    _check_format(fmt)
    store_path, _cfg = resolve(store, config)
    filters = make_filters(text=text, user=user, model=model, provider=provider,
                           endpoint=endpoint, status=status, key_id=key_id, since=since,
                           until=until, where=where)
    prepare(filters)  # validate everything before saving
    count = _check_limit(limit if limit is not None else DEFAULT_LIMIT)
    if save:
        require_store(Path(store_path))
        save_query(Path(store_path), save, filters, limit)
        typer.echo(f"Saved query {save!r}.", err=True)
    _run_and_print(store_path, filters, count, fmt)


def _pretty(text: str | None) -> str:
    """JSON indented; anything else as stored."""
    if text is None or text == "":
        return "(none)"
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def _show_table(record: dict[str, Any]) -> None:
    out = console()
    mark = status_mark(record.get("status_code"), record.get("error_type"))
    out.print(f"[bold]Record {record['id']}[/]  "
              f"[{status_style(mark)}]{record.get('status_code') or '---'} {mark}[/]")
    summary = Table(show_header=False, box=None, pad_edge=False)
    summary.add_column(style="bold")
    summary.add_column(overflow="fold")
    r = record
    fields = [
        ("time", fmt_time(r.get("ts")) + " UTC"),
        ("request", f"{r.get('method') or ''} {r.get('host') or ''}"
                    + (r.get("path") or r.get("endpoint") or "")),
        ("provider / operation", f"{r.get('provider') or '-'} / {r.get('operation') or '-'}"),
        ("model", f"{r.get('request_model') or '-'} → {r.get('response_model') or '-'}"),
        ("user", r.get("user_id")), ("client", r.get("client_ip")),
        ("key", f"{r.get('key_id') or '-'} ({r.get('auth_method') or '-'})"),
        ("tokens", f"in {r.get('input_tokens')} (cached {r.get('cached_input_tokens')}), "
                   + f"out {r.get('output_tokens')}, total {r.get('total_tokens')}"),
        ("cost", f"{fmt_cost(r.get('cost_usd')) or '-'} ({r.get('usage_source') or '-'}, "
                 + f"prices {r.get('price_version') or '-'})"),
        ("latency", f"{fmt_latency(r.get('latency_ms')) or '-'} "
                    + f"(first byte {fmt_latency(r.get('ttfb_ms')) or '-'})"),
        ("stream", "yes (response body is the assembled message)" if record.get("stream")
         else "no"),
        ("finish", record.get("finish_reason")), ("cache", record.get("cache_status")),
        ("proxy", record.get("proxy_instance")),
    ]
    for name, value in fields:
        summary.add_row(name, escape(str(value)) if value not in (None, "") else "-")
    out.print(summary)
    sections = [("Request headers", record.get("request_headers")),
                ("Request body", record.get("request_body")),
                ("Response headers", record.get("response_headers")),
                ("Response body", record.get("response_body"))]
    for title, value in sections:
        out.print(f"\n[bold]{title}[/]")
        out.print(escape(_pretty(value)), soft_wrap=True)
    if record.get("error_type") or record.get("error_message"):
        out.print("\n[bold]Error[/]")
        out.print(escape(f"{record.get('error_type') or '-'}: {record.get('error_message') or ''}"
                         f" (retries {record.get('retry_count') or 0})"))
        if record.get("error_trace"):
            out.print(escape(str(record["error_trace"])), soft_wrap=True)
    out.print("\n[bold]Redactions[/]")
    try:
        redactions = json.loads(record.get("redactions") or "{}")
    except ValueError:
        redactions = {}
    if redactions:
        for kind, count in sorted(redactions.items()):
            out.print(escape(f"  [{kind}] × {count}"))
    else:
        out.print("  none")


def show(
    record_id: Annotated[str, typer.Argument(metavar="ID", help="The record's id (from search).")],
    *,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Show one whole record: headers, bodies pretty-printed, errors and redactions."""
    if fmt not in ("table", "json"):
        raise UsageError(f"unknown --format {fmt!r}: use table or json")
    store_path, _cfg = resolve(store, config)
    record = find_record(Path(store_path), record_id.strip())
    if record is None:
        raise QueryError(f"no record with id {record_id!r} in {store_path}")
    if fmt == "json":
        sys.stdout.write(json.dumps(record, default=json_default, ensure_ascii=False, indent=2)
                         + "\n")
    else:
        _show_table(record)


queries_app = typer.Typer(help="Saved searches: list, run, delete.", no_args_is_help=True)


@queries_app.command("list")
def queries_list(*, store: StoreOpt = None, config: ConfigOpt = None,
                 fmt: FormatOpt = "table") -> None:
    """List saved queries."""
    _check_format(fmt)
    store_path, _cfg = resolve(store, config)
    saved = list_queries(Path(store_path))
    if fmt == "table" and not saved:
        typer.echo("No saved queries. Save one with `llm-audit search … --save NAME`.")
        return
    rows = [[q.name, " ".join(f"--{k.replace('_', '-')} {v!r}" if k != "text" else repr(v)
                              for k, v in q.filters.to_dict().items()),
             q.limit, q.saved_at] for q in saved]
    emit(["name", "search", "limit", "saved_at"], rows, fmt)


@queries_app.command("run")
def queries_run(
    name: Annotated[str, typer.Argument(help="Saved query name.")],
    *,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: LimitOpt = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Run a saved query; --since/--until/--limit override what was saved."""
    _check_format(fmt)
    store_path, _cfg = resolve(store, config)
    saved = get_query(Path(store_path), name)
    filters = saved.filters.merged(since=since, until=until)
    if limit is None:
        limit = saved.limit or DEFAULT_LIMIT
    _run_and_print(store_path, filters, _check_limit(limit), fmt)


@queries_app.command("delete")
def queries_delete(name: Annotated[str, typer.Argument(help="Saved query name.")], *,
                   store: StoreOpt = None, config: ConfigOpt = None) -> None:
    """Delete a saved query."""
    store_path, _cfg = resolve(store, config)
    delete_query(Path(store_path), name)
    typer.echo(f"Deleted query {name!r}.")


def register(app: typer.Typer) -> None:
    app.command("search")(search)
    app.command("show")(show)
    app.add_typer(queries_app, name="queries")
