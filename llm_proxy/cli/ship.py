"""``llm-audit ship``: push to the configured exporters what they lack (idempotent, cron-safe).

A thin shell over ``llm_proxy.ship``: it resolves the store and the configuration, runs each
exporter (one failing never stops the others), renders what was shipped and exits 2 if any
exporter failed or reported a problem (one line each on stderr).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llm_proxy.audit import LogExporter
from llm_proxy.cli.options import ConfigOpt, StoreOpt, resolve
from llm_proxy.cli.output import emit
from llm_proxy.errors import AuditError, StoreError, UsageError
from llm_proxy.ship import ShipError, ShipResult
from llm_proxy.store.layout import FLOWS_DIR, JOURNAL_DIR
from llm_proxy.store.locks import LOCKS_DIR, LockBusy, file_lock
from llm_proxy.store.signing import CHAIN_DIR

__all__ = ["register", "exporter_label", "run_ship"]

SHIP_FORMATS = ("table", "json")


def exporter_label(exporter: LogExporter) -> str:
    """``name`` option if given, else ``kind:bucket`` / ``kind:endpoint``."""
    opts = exporter.options
    if opts.get("name"):
        return str(opts["name"])
    target = opts.get("bucket") or opts.get("endpoint")
    prefix = opts.get("prefix")
    return f"{exporter.kind}:{target}" + (f"/{str(prefix).strip('/')}" if prefix else "")


def _select(exporters: list[LogExporter], wanted: str | None) -> list[LogExporter]:
    if not exporters:
        raise UsageError("no exporters configured: add [[exporters]] kind = \"s3\" bucket = \"…\" "
                         "(or LogExporter(...)) to the config file (see docs/ship.md)")
    if wanted is None:
        return exporters
    chosen = [e for e in exporters
              if wanted in (e.kind, exporter_label(e), e.options.get("name"))]
    if not chosen:
        names = ", ".join(exporter_label(e) for e in exporters)
        raise UsageError(f"--exporter {wanted!r} matches no configured exporter: use a kind "
                         f"(s3, elasticsearch) or one of {names}")
    return chosen


def _run_one(store: Path, exporter: LogExporter, dry_run: bool) -> ShipResult:
    label = exporter_label(exporter)
    if exporter.kind == "s3":
        from llm_proxy.ship.s3 import ship_s3

        return ship_s3(store, exporter.options, label, dry_run=dry_run)
    if exporter.kind == "elasticsearch":
        from llm_proxy.ship.elasticsearch import ship_elasticsearch

        return ship_elasticsearch(store, exporter.options, label, dry_run=dry_run)
    raise ShipError(f"exporter kind {exporter.kind!r} is not supported by ship yet "
                    "(s3 and elasticsearch are)")


def run_ship(store: Path, exporters: list[LogExporter], *, dry_run: bool = False
             ) -> tuple[list[ShipResult], list[str]]:
    """Run every exporter; returns results and one-line failures (exporter label first)."""
    results: list[ShipResult] = []
    failures: list[str] = []
    for exporter in exporters:
        label = exporter_label(exporter)
        try:
            result = _run_one(store, exporter, dry_run)
        except AuditError as exc:  # ShipError, or a broken ship-state file
            failures.append(f"{label}: {exc}")
            results.append(ShipResult(label, exporter.kind, problems=[str(exc)]))
            continue
        results.append(result)
        for problem in result.problems:
            failures.append(f"{label}: {problem}")
    return results, failures


def ship(
    store: StoreOpt = None,
    config: ConfigOpt = None,
    exporter: Annotated[str | None, typer.Option(
        "--exporter", help="Ship to this exporter only: its name= option, label or kind.",
        show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List what would be shipped; send nothing.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="Output format: table or json.")] = "table",
) -> None:
    """Push to the configured exporters (S3, Elasticsearch) what they lack; safe from cron."""
    if fmt not in SHIP_FORMATS:
        raise UsageError(f"unknown --format {fmt!r}: use one of {', '.join(SHIP_FORMATS)}")
    location, cfg = resolve(store, config)
    if location.startswith("s3://"):
        raise UsageError(f"{location}: ship reads a local store (s3:// is not supported)")
    path = Path(location)
    if not any((path / d).exists() for d in (FLOWS_DIR, JOURNAL_DIR, CHAIN_DIR)):
        raise StoreError(f"no audit store at {str(path)!r}: point --store / LLM_AUDIT_STORE at "
                         "an existing store")
    chosen = _select(cfg.exporters, exporter)
    try:
        with file_lock(path / LOCKS_DIR / "ship.lock", wait=0, purpose="ship"):
            results, failures = run_ship(path, chosen, dry_run=dry_run)
    except LockBusy as exc:  # the previous cron run is still shipping: not an error
        typer.echo(f"ship: another run is shipping ({exc.holder}); nothing done", err=True)
        return
    if dry_run:
        rows = [(r.exporter, rel, size) for r in results for rel, size in r.planned]
        emit(("exporter", "would_ship", "bytes"), rows, fmt,
             title="Dry run: nothing was sent", min_width=120)
    else:
        rows = [(r.exporter, r.kind, r.files, r.records, r.skipped, r.bytes,
                 "failed" if r.problems else "ok") for r in results]
        emit(("exporter", "kind", "files", "records", "skipped", "bytes", "status"), rows, fmt,
             min_width=120)
    for line in failures:
        typer.echo(f"Error: {line}", err=True)
    if failures:
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.command("ship")(ship)
