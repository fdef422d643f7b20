"""``llm-audit report``, ``dashboard`` and ``reprice``: thin shells over ``llm_proxy.reports``.

``register`` also adds ``llm-audit top`` from ``llm_proxy.cli.top``, so the command list in
``cli/app.py`` names one module for the whole reporting group.
"""

from __future__ import annotations

import io
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from llm_proxy.cli.options import ConfigOpt, StoreOpt, resolve
from llm_proxy.errors import StoreError, UsageError
from llm_proxy.reports import REPORT_KINDS, Report, Scope, build_report, choose_bucket
from llm_proxy.reports.email_html import email_html, email_subject, email_text
from llm_proxy.reports.fmt import human
from llm_proxy.reports.html import render_html
from llm_proxy.reports.mail import Attachment, SmtpSettings, build_message, check_addresses, send
from llm_proxy.reports.model import GROUPINGS
from llm_proxy.reports.shapes import to_csv, to_json
from llm_proxy.reports.text import MAX_WIDTH, render_table, to_markdown
from llm_proxy.store.layout import FLOWS_DIR
from llm_proxy.timeparse import parse_time

__all__ = ["REPORT_FORMATS", "load_reports", "register", "render", "store_span"]

REPORT_FORMATS = ("table", "json", "csv", "markdown", "html")
_HUMAN_LIMIT = 25

SinceOpt = Annotated[str | None, typer.Option(
    "--since", help="From: 15m, 2h, 7d, 2026-11-01 or an ISO timestamp (default: all).",
    show_default=False)]
UntilOpt = Annotated[str | None, typer.Option(
    "--until", help="Up to (exclusive), same forms as --since (default: now).",
    show_default=False)]
ByOpt = Annotated[str, typer.Option(
    "--by", help=f"Group by {', '.join(GROUPINGS)}.")]
OutputOpt = Annotated[Path | None, typer.Option(
    "--output", "-o", help="Write to this file instead of standard output.", show_default=False)]
EmailOpt = Annotated[list[str] | None, typer.Option(
    "--email", help="Mail the report (HTML body, CSV attached) to this address via the config's "
    "smtp server (repeatable).", show_default=False)]
LimitOpt = Annotated[int | None, typer.Option(
    "--limit", help=f"Groups to show, largest first (0: all; default {_HUMAN_LIMIT} for "
    "table/markdown/html, all for json/csv).", show_default=False)]


def store_span(store: Path) -> tuple[datetime | None, datetime | None]:
    """First and last day that have hot partitions, from folder names only (no query)."""
    days = []
    flows = store / FLOWS_DIR
    if flows.is_dir():
        for entry in os.scandir(flows):
            if entry.name.startswith("date="):
                try:
                    days.append(datetime.strptime(entry.name[5:], "%Y-%m-%d").replace(tzinfo=UTC))
                except ValueError:
                    continue
    if not days:
        return None, None
    return min(days), max(days)


def _scope(store: Path, by: str, since: str | None, until: str | None, limit: int | None,
           now: datetime) -> Scope:
    start = parse_time(since, now=now, option="--since") if since else None
    end = parse_time(until, now=now, option="--until") if until else None
    if start is not None:
        bucket = choose_bucket(start, end or now)
    else:
        first, last = store_span(store)
        bucket = choose_bucket(first, (last or now) if first else None) if first else "hour"
    return Scope(by=by, since=start, until=end, limit=limit, bucket=bucket, now=now)


def load_reports(store: str, kinds: tuple[str, ...], *, by: str, since: str | None,
                 until: str | None, limit: int | None) -> list[Report]:
    """Build ``kinds`` over one connection to the store (re-run if compaction swapped files)."""
    from llm_proxy.store.views import connect, retrying

    root = Path(store)
    now = datetime.now(UTC)
    scope = _scope(root, by, since, until, limit, now)

    def attempt() -> list[Report]:
        con = connect(root, since=scope.since, until=scope.until)
        try:
            return [build_report(con, kind, scope) for kind in kinds]
        finally:
            con.close()

    return retrying(attempt)


def render(reports: list[Report], fmt: str) -> str:
    """The text of ``reports`` in ``fmt`` (one report except for html)."""
    if fmt == "html":
        return render_html(reports)
    report = reports[0]
    if fmt == "json":
        return json.dumps(to_json(report), ensure_ascii=False, indent=1) + "\n"
    if fmt == "csv":
        return to_csv(report)
    if fmt == "markdown":
        return to_markdown(report)
    if fmt == "table":
        buf = io.StringIO()
        render_table(report, buf, width=MAX_WIDTH)
        return buf.getvalue()
    raise UsageError(f"unknown --format {fmt!r}: use one of {', '.join(REPORT_FORMATS)}")


def _write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write --output {str(output)!r}: {exc.strerror}") from None


def _check_mail(to: list[str], smtp: dict[str, Any]) -> None:
    """Fail before querying on a bad address or a missing or bad ``smtp`` table."""
    check_addresses(to)
    SmtpSettings.from_config(smtp)


def _mail(reports: list[Report], to: list[str], smtp: dict[str, Any], kind_label: str) -> None:
    recipients = check_addresses(to)
    settings = SmtpSettings.from_config(smtp)
    stamp = reports[0].generated_at.strftime("%Y%m%d-%H%M")
    attachments = [Attachment(f"llm-{r.kind}-by-{r.by}-{stamp}.csv", "text/csv",
                              to_csv(r).encode()) for r in reports]
    attachments.append(Attachment(f"llm-{kind_label}-{stamp}.html", "text/html",
                                  render_html(reports).encode()))
    message = build_message(sender=settings.sender, to=recipients,
                            subject=email_subject(reports), html_body=email_html(reports),
                            text_body=email_text(reports), attachments=attachments)
    send(settings, message)
    typer.echo(f"sent the {kind_label} report to {', '.join(recipients)}", err=True)


def report(
    kind: Annotated[str, typer.Argument(help=f"Which report: {', '.join(REPORT_KINDS)}.",
                                        show_default=False)],
    *,
    by: ByOpt = "model",
    since: SinceOpt = None,
    until: UntilOpt = None,
    fmt: Annotated[str, typer.Option(
        "--format", help=f"Output format: {', '.join(REPORT_FORMATS)}.")] = "table",
    output: OutputOpt = None,
    limit: LimitOpt = None,
    email: EmailOpt = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Report usage, cost, latency or errors per user, model, provider, endpoint, key or time."""
    if kind not in REPORT_KINDS:
        raise UsageError(f"unknown report {kind!r}: use one of {', '.join(REPORT_KINDS)}")
    if fmt not in REPORT_FORMATS:
        raise UsageError(f"unknown --format {fmt!r}: use one of {', '.join(REPORT_FORMATS)}")
    store_path, cfg = resolve(store, config)
    if email:
        _check_mail(email, cfg.smtp)
    if limit is None and fmt in ("table", "markdown", "html"):
        limit = _HUMAN_LIMIT
    reports = load_reports(store_path, (kind,), by=by, since=since, until=until,
                           limit=limit or None)
    if email:
        _mail(reports, email, cfg.smtp, kind)
        if output is None:
            return
    if fmt == "table" and output is None:
        render_table(reports[0], sys.stdout)  # straight to the terminal: colours, its width
        return
    _write(render(reports, fmt), output)


def dashboard(
    *,
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write.",
                                         show_default=False)],
    since: Annotated[str, typer.Option("--since", help="From: 15m, 2h, 7d, 2026-11-01, ISO.")]
    = "7d",
    until: UntilOpt = None,
    by: ByOpt = "model",
    limit: Annotated[int, typer.Option(
        "--limit", help="Groups per table (0: all).")] = _HUMAN_LIMIT,
    email: EmailOpt = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write one self-contained HTML page with the usage, cost, latency and error reports."""
    store_path, cfg = resolve(store, config)
    if email:
        _check_mail(email, cfg.smtp)
    reports = load_reports(store_path, REPORT_KINDS, by=by, since=since, until=until,
                           limit=limit or None)
    _write(render(reports, "html"), output)
    typer.echo(f"wrote {output}", err=True)
    if email:
        _mail(reports, email, cfg.smtp, "dashboard")


def reprice(
    *,
    since: SinceOpt = None,
    until: UntilOpt = None,
    prices: Annotated[Path | None, typer.Option(
        "--prices", help="Price file to use instead of the config's `prices`.",
        show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show what would change without writing.")] = False,
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Recompute the cost of stored records with the current price table."""
    from llm_proxy.cli.output import console
    from llm_proxy.pricing import PriceTable
    from llm_proxy.pricing.reprice import reprice_store

    store_path, cfg = resolve(store, config)
    root = Path(store_path)
    if not (root / FLOWS_DIR).is_dir():
        raise StoreError(f"no Parquet records in {store_path!r} to reprice: point --store at "
                         "an audit store")
    now = datetime.now(UTC)
    start = parse_time(since, now=now, option="--since") if since else None
    end = parse_time(until, now=now, option="--until") if until else None
    table = PriceTable.load(str(prices) if prices else cfg.prices)
    result = reprice_store(root, table, since=start, until=end, dry_run=dry_run)
    verb = "would rewrite" if dry_run else "rewrote"
    out = console()
    out.print(f"price table {result.price_version}: {verb} {result.files_rewritten:,} of "
              f"{result.files_scanned:,} files, {result.records_changed:,} of "
              f"{result.records:,} records changed")
    out.print(f"total cost {human(result.cost_before, 'usd')} → "
              f"{human(result.cost_after, 'usd')}")
    if result.unpriced_records:
        out.print(f"{result.unpriced_records:,} records use models without a price: see "
                  "`llm-audit report cost` and add them to your price file")
    out.print("records still in the journal are priced when the proxy flushes them")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
    app.command("dashboard")(dashboard)
    app.command("reprice")(reprice)
    from llm_proxy.cli import top

    top.register(app)
