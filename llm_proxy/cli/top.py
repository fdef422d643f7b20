"""``llm-audit top``: live rates, errors, latency and cost in the terminal, every second."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from llm_proxy.cli.interrupt import until_interrupted
from llm_proxy.cli.options import ConfigOpt, StoreOpt, resolve
from llm_proxy.errors import UsageError
from llm_proxy.timeparse import parse_duration

__all__ = ["frame", "register"]


def frame(store: str, *, window_s: float, latest: int, now: datetime | None = None):
    """One rendered frame over the last ``window_s`` seconds of ``store``."""
    from datetime import timedelta

    from llm_proxy.reports.live import render_frame, snapshot
    from llm_proxy.store.views import connect, require_store, retrying

    root = Path(store)
    require_store(root)
    now = now or datetime.now(UTC)
    window = timedelta(seconds=window_s)
    since = now - max(window, timedelta(hours=24))

    def attempt():
        con = connect(root, since=since)
        try:
            return snapshot(con, now=now, window=window, latest=latest)
        finally:
            con.close()

    return render_frame(retrying(attempt), store=store)


def top(
    *,
    window: Annotated[str, typer.Option(
        "--window", help="Rates over this sliding window: 1m, 5m, 1h.")] = "5m",
    interval: Annotated[float, typer.Option(
        "--interval", help="Seconds between refreshes.")] = 1.0,
    latest: Annotated[int, typer.Option("--latest", help="Latest records to list.")] = 15,
    once: Annotated[bool, typer.Option(
        "--once", help="Print one frame and exit (for scripts and pipes).")] = False,
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Live dashboard: requests/s, error rate, p95 latency, tokens/min, cost/hour per model."""
    from rich.console import Console
    from rich.live import Live

    store_path, _cfg = resolve(store, config)
    delta = parse_duration(window)
    if delta is None or delta.total_seconds() <= 0:
        raise UsageError(f"--window {window!r} is not a duration: use 1m, 5m or 1h")
    if interval <= 0:
        raise UsageError("--interval must be more than 0 seconds")
    window_s = delta.total_seconds()
    console = Console(highlight=False)
    if once:
        console.print(frame(store_path, window_s=window_s, latest=latest))
        return
    with until_interrupted() as stop, Live(
            frame(store_path, window_s=window_s, latest=latest), console=console,
            refresh_per_second=4, screen=False, transient=False) as live:
        while not stop.wait(interval):
            live.update(frame(store_path, window_s=window_s, latest=latest))


def register(app: typer.Typer) -> None:
    app.command("top")(top)
