"""``llm-audit tail [-f]``: the live audit stream, one colored line per record."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

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
    make_filters,
    tail_line,
)
from llm_proxy.cli.interrupt import until_interrupted
from llm_proxy.cli.options import ConfigOpt, StoreOpt, resolve
from llm_proxy.cli.output import console
from llm_proxy.errors import UsageError
from llm_proxy.store.follow import Follower
from llm_proxy.store.parquet import records_to_table
from llm_proxy.store.search import SUMMARY_COLUMNS
from llm_proxy.store.searcher import Prepared, prepare, search
from llm_proxy.store.views import arrow_table, connect, require_store

__all__ = ["matching", "register"]


def matching(store: Path, prepared: Prepared, records: list[dict[str, Any]]
             ) -> list[dict[str, Any]]:
    """The subset of freshly seen ``records`` the search's filters accept, oldest first."""
    if not records:
        return []
    con = connect(store, partitions=[], journal=records_to_table(records), read_only=True)
    try:
        sql = (f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM flows WHERE {prepared.where} "
               "ORDER BY ts, id")
        return arrow_table(con, sql, prepared.params).to_pylist()
    finally:
        con.close()


def tail(
    *,
    follow: Annotated[bool, typer.Option(
        "--follow", "-f", help="Keep printing new records as they complete, until Ctrl-C.")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many recent records first.")
                     ] = 20,
    interval: Annotated[float, typer.Option(
        "--interval", help="Seconds between checks with -f.", hidden=True)] = 0.5,
    max_seconds: Annotated[float | None, typer.Option(
        "--max-seconds", help="Stop following after this long (for scripts).", hidden=True)
    ] = None,
    user: UserOpt = None,
    model: ModelOpt = None,
    provider: ProviderOpt = None,
    endpoint: EndpointOpt = None,
    status: StatusOpt = None,
    key_id: KeyIdOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    where: WhereOpt = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """The live audit stream: time, method, endpoint, status, model, tokens, latency."""
    if lines < 0:
        raise UsageError(f"--lines {lines} must be 0 or more")
    store_path, _cfg = resolve(store, config)
    root = Path(store_path)
    require_store(root)
    filters = make_filters(user=user, model=model, provider=provider, endpoint=endpoint,
                           status=status, key_id=key_id, since=since, until=until, where=where)
    prepared = prepare(filters)
    out = console()

    def emit(records: list[dict[str, Any]]) -> None:
        for record in records:
            text, style = tail_line(record)
            out.print(f"[{style}]{escape(text)}[/]" if style else escape(text))

    follower = Follower(root)
    if follow:
        follower.start()  # before the history query: nothing falls between the two
    if lines:
        history = list(reversed(search(root, prepared, limit=lines, columns=SUMMARY_COLUMNS)))
        emit(history)
        for record in history:  # arrived between start() and the query: already shown
            follower.seen_ids[record["id"]] = int(record["ts"].timestamp() * 1_000_000)
    if not follow:
        return
    started = time.monotonic()
    with until_interrupted() as stop:
        while not stop.wait(interval) and (
                max_seconds is None or time.monotonic() - started < max_seconds):
            fresh = follower.poll(datetime.now(UTC))
            if fresh:
                # relative --since/--until keep their meaning as time passes
                emit(matching(root, prepare(filters), fresh))


def register(app: typer.Typer) -> None:
    app.command("tail")(tail)
