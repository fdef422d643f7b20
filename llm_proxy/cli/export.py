"""``llm-audit export`` (matching records to a Parquet, CSV or JSONL file) and ``compact``.

Exports are made from the views, so they hold exactly what the store holds: records that were
redacted at capture. The file is written under a temporary name (owner-only) and renamed when
complete, so a failed or interrupted export never leaves half a file behind.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

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
)
from llm_proxy.cli.options import ConfigOpt, FormatOpt, StoreOpt, resolve
from llm_proxy.cli.output import emit, json_default
from llm_proxy.errors import QueryError, StoreError, UsageError
from llm_proxy.schema import RECORD_SCHEMA
from llm_proxy.store.compact import compact as run_compact
from llm_proxy.store.exports import note_export
from llm_proxy.store.locks import LockBusy
from llm_proxy.store.searcher import count_matches, export_batches, prepare
from llm_proxy.store.views import require_store
from llm_proxy.timeparse import parse_duration

__all__ = ["EXPORT_FORMATS", "register"]

EXPORT_FORMATS = ("parquet", "csv", "jsonl")


def _format_for(output: Path, fmt: str | None) -> str:
    if fmt is None:
        suffix = output.suffix.lower().lstrip(".")
        fmt = {"csv": "csv", "jsonl": "jsonl", "ndjson": "jsonl"}.get(suffix, "parquet")
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"unknown export --format {fmt!r}: use parquet, csv or jsonl")
    return fmt


def _iso_ts(batch: pa.RecordBatch) -> pa.RecordBatch:
    """``ts`` as ISO 8601 UTC text, as every machine format of the CLI writes it."""
    idx = batch.schema.get_field_index("ts")
    iso = pc.strftime(batch.column(idx), format="%Y-%m-%dT%H:%M:%SZ")
    return batch.set_column(idx, "ts", iso)


def _write(batches: Iterator[pa.RecordBatch], path: Path, fmt: str, on_rows) -> int:
    rows = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        if fmt == "parquet":
            schema = pa.schema(RECORD_SCHEMA, metadata=RECORD_SCHEMA.metadata)
            with pq.ParquetWriter(fh, schema, compression="zstd") as writer:
                for batch in batches:
                    writer.write_batch(batch.cast(schema))
                    rows += batch.num_rows
                    on_rows(batch.num_rows)
        elif fmt == "csv":
            writer = None
            for batch in batches:
                batch = _iso_ts(batch)
                if writer is None:
                    writer = pacsv.CSVWriter(fh, batch.schema)
                writer.write_batch(batch)
                rows += batch.num_rows
                on_rows(batch.num_rows)
            if writer is None:
                fh.write((",".join(RECORD_SCHEMA.names) + "\n").encode())
            else:
                writer.close()
        else:
            for batch in batches:
                for record in batch.to_pylist():
                    fh.write((json.dumps(record, default=json_default, ensure_ascii=False)
                              + "\n").encode())
                rows += batch.num_rows
                on_rows(batch.num_rows)
        fh.flush()
        os.fsync(fh.fileno())
    return rows


def export(
    *,
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.",
                                         show_default=False)],
    fmt: Annotated[str | None, typer.Option(
        "--format", help="parquet, csv or jsonl (default: from the file name, else parquet).",
        show_default=False)] = None,
    user: UserOpt = None,
    model: ModelOpt = None,
    provider: ProviderOpt = None,
    endpoint: EndpointOpt = None,
    status: StatusOpt = None,
    key_id: KeyIdOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    where: WhereOpt = None,
    text: Annotated[str | None, typer.Option(
        "--text", help='Full-text condition, as search TEXT.', show_default=False)] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="At most this many records.",
                                              show_default=False)] = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Export matching records (already redacted) to Parquet, CSV or JSONL, oldest first."""
    kind = _format_for(output, fmt)
    store_path, _cfg = resolve(store, config)
    filters = make_filters(text=text, user=user, model=model, provider=provider,
                           endpoint=endpoint, status=status, key_id=key_id, since=since,
                           until=until, where=where)
    prepared = prepare(filters)
    if not output.parent.is_dir():
        raise UsageError(f"--output {str(output)!r}: folder {str(output.parent)!r} does not exist")
    root = Path(store_path)
    total = count_matches(root, prepared)
    if limit is not None:
        total = min(total, limit)
    tmp = output.with_name(f".{output.name}.partial")
    stderr = Console(stderr=True)
    progress = Progress(TextColumn("exporting"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), console=stderr, transient=True,
                        disable=not sys.stderr.isatty() or total < 10_000)
    try:
        with progress:
            task = progress.add_task("export", total=total)
            rows = _write(export_batches(root, prepared, limit=limit), tmp, kind,
                          lambda n: progress.advance(task, n))
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    note_export(root, output, rows=rows, fmt=kind)
    typer.echo(f"Exported {rows:,} record(s) to {output} ({kind}).", err=True)


def compact(
    *,
    min_age: Annotated[str, typer.Option(
        "--min-age", help="Only hours that ended at least this long ago (late records).")
    ] = "15m",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be merged.")
                       ] = False,
    warm: Annotated[bool, typer.Option(
        "--warm/--no-warm", help="Then cache the report roll-ups of closed days that lack them.")
    ] = True,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Merge each closed hour's small files into one indexed file (safe while the proxy runs)."""
    age = parse_duration(min_age)
    if age is None:
        raise UsageError(f"--min-age {min_age!r} is not a duration: use e.g. 15m or 2h")
    store_path, _cfg = resolve(store, config)
    root = Path(store_path)
    require_store(root)
    try:
        report = run_compact(root, min_age=age, dry_run=dry_run)
    except LockBusy as busy:  # cron overlap with retention or another compaction: not an error
        typer.echo(f"compact: another maintenance run is active ({busy.holder}); nothing done",
                   err=True)
        return
    if warm and not dry_run:
        _warm_reports(root)
    columns = ["hours", "files_in", "files_out", "records", "bytes_in", "bytes_out", "seconds"]
    values = [report.partitions, report.files_in, report.files_out, report.records,
              report.bytes_in, report.bytes_out, round(report.seconds, 2)]
    if fmt != "table":
        emit(columns, [values], fmt)
        return
    if not report.partitions:
        typer.echo("Nothing to compact: every closed hour is already one file.")
    elif dry_run:
        typer.echo(f"Would merge {report.files_in} files of {report.partitions} closed hour(s) "
                   f"({report.bytes_in / 1e6:.1f} MB).")
    else:
        typer.echo(f"Compacted {report.partitions} hour(s): {report.files_in} files → "
                   f"{report.files_out}, {report.records:,} records, "
                   f"{report.bytes_in / 1e6:.1f} MB → {report.bytes_out / 1e6:.1f} MB, "
                   f"in {report.seconds:.1f} s.")


def _warm_reports(root: Path) -> None:
    """Report roll-ups for closed days (a failure only costs the next report its speed)."""
    from llm_proxy.reports.warm import warm as warm_rollups

    try:
        result = warm_rollups(root)
    except (OSError, StoreError, QueryError, duckdb.Error) as exc:
        typer.echo(f"compact: report roll-ups not warmed: {str(exc).splitlines()[0]}", err=True)
        return
    typer.echo(f"compact: {result.summary()}", err=True)


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("compact")(compact)
