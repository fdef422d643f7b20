"""``llm-audit redact`` (try a policy on stdin) and ``llm-audit rescan`` (prove a store clean)."""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import asdict, fields
from pathlib import Path
from typing import Annotated

import typer

from llm_proxy.audit import load_config
from llm_proxy.cli.options import ConfigOpt, FormatOpt, StoreOpt, resolve
from llm_proxy.errors import StoreError, UsageError
from llm_proxy.redact import RedactionPolicy, Redactor
from llm_proxy.redact.rescan import Finding, ScanReport, scan_store
from llm_proxy.timeparse import parse_time

__all__ = ["register"]



def register(app: typer.Typer) -> None:
    """Add the ``redact`` and ``rescan`` commands to the ``llm-audit`` app."""
    app.command("redact")(redact_command)
    app.command("rescan")(rescan_command)


def redact_command(
    config: ConfigOpt = None,
    jsonl: Annotated[
        bool,
        typer.Option("--jsonl", help="Each input line is a JSON object; redact its strings."),
    ] = False,
) -> None:
    """Redact standard input with the configured policy (to try a policy out).

    Text is redacted as text, a JSON document as JSON (compact when changed).
    Field modes and metadata_only do not apply: this shows what the detectors find.
    """
    redactor = Redactor(RedactionPolicy.from_config(load_config(config)))
    if not jsonl:
        text = sys.stdin.read()
        typer.echo(redactor.redact_body(text, field="stdin")[0], nl=False)
        return
    for line_no, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise UsageError(f"stdin line {line_no}: invalid JSON ({exc})") from None
        if not isinstance(record, dict):
            raise UsageError(f"stdin line {line_no}: expected a JSON object")
        typer.echo(json.dumps(redactor.redact_json(record)[0], ensure_ascii=False))


def rescan_command(
    store: StoreOpt = None,
    config: ConfigOpt = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only files modified since: 15m, 2h, 7d, 2026-11-01 or ISO."),
    ] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Scan every stored file with the current rules; exit 1 if anything would be redacted.

    Findings name file, row, column and kind, never the value. Reads Parquet string
    columns, journal .jsonl lines and .json/.csv/.log/.txt files; skips hidden and
    lock files. --since filters by file modification time.
    """
    root, cfg = resolve(store, config)
    if "://" in root:
        raise UsageError(f"rescan reads a local store, not {root}: copy it to a folder first")
    path = Path(root)
    if not path.is_dir():
        raise StoreError(f"store {root!r} does not exist")
    if fmt not in ("table", "json", "jsonl", "csv"):
        raise UsageError(f"--format must be table, json, jsonl or csv, not {fmt!r}")
    cutoff = parse_time(since) if since else None
    report = scan_store(path, Redactor(RedactionPolicy.from_config(cfg)), since=cutoff)
    typer.echo(_render(report, fmt), nl=False)
    if fmt != "table":
        typer.echo(_summary(report), err=True)
    if report.findings:
        raise typer.Exit(1)


def _summary(report: ScanReport) -> str:
    state = f"{len(report.findings)} findings" if report.findings else "clean"
    return f"scanned {report.files} files, {report.records} records: {state}"


def _render(report: ScanReport, fmt: str) -> str:
    rows = [asdict(f) for f in report.findings]
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    if fmt == "jsonl":
        return "".join(json.dumps(row) + "\n" for row in rows)
    if fmt == "csv":
        out = io.StringIO()
        names = [f.name for f in fields(Finding)]
        writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    return _table(report.findings) + _summary(report) + "\n"


def _table(findings: list[Finding]) -> str:
    if not findings:
        return ""
    header = ("FILE", "ROW", "COLUMN", "KIND", "COUNT")
    cells = [header] + [(f.file, str(f.row), f.column, f.kind, str(f.count)) for f in findings]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "".join(
        "  ".join(cell.rjust(w) if i in (1, 4) else cell.ljust(w)
                  for i, (cell, w) in enumerate(zip(row, widths))).rstrip() + "\n"
        for row in cells
    )
