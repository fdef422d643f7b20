"""Prove it: scan every file of a store with the current rules and report what they would redact.

Each finding names a file, a record (row or line), a column and a kind — never the value
itself, so the report is safe to paste into a ticket. Placeholders such as ``[EMAIL]`` are
what redaction leaves behind and are not findings.

What is checked where:

* the configurable fields (``request_body``, ``response_body``, headers, ``query``,
  ``error_message``) with their mode: ``keep`` fields only for secrets, and a ``drop`` field
  (or a body under ``metadata_only``) that holds anything at all is a ``dropped_field`` finding;
* metadata columns that hold what the proxy records by design (``client_ip``, ``host``,
  ``key_id`` …) only for secrets;
* every other string (other columns, log and text lines) for secrets and the configured PII.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from llm_proxy.redact.engine import Redactor, merge_counts
from llm_proxy.redact.policy import ADDRESS_HEADERS, BODY_FIELDS, FIELDS
from llm_proxy.store.exports import EXPORTS_FILE, export_paths

__all__ = ["DROPPED_FIELD", "SCANNED_SUFFIXES", "Finding", "ScanReport", "scan_store"]

SCANNED_SUFFIXES = (".parquet", ".jsonl", ".json", ".csv", ".log", ".txt")
DROPPED_FIELD = "dropped_field"
# Bookkeeping files of the store and its writers, not record data: locks, the integrity
# hash chain, saved queries, legal holds, storage tiers.
_SKIPPED_SUFFIXES = (".lock", ".tmp", ".pid")
_STATE_FILES = frozenset({"chain.jsonl", "queries.json", "holds.json", "tiers.json", EXPORTS_FILE})
# Columns the proxy fills by design (an IP, a host, a fingerprint): secrets only.
_METADATA_COLUMNS = frozenset({
    "id", "ts", "proxy_instance", "method", "host", "endpoint", "http_version", "client_ip",
    "provider", "operation", "request_model", "response_model", "finish_reason",
    "price_version", "usage_source", "cache_status", "error_type", "resolution",
    "auth_method", "key_id", "scopes", "geo_country", "redactions",
})


@dataclass(frozen=True, slots=True)
class Finding:
    """Something the current rules would redact: where it is and what kind, not the value."""

    file: str  # relative to the store
    row: int  # 1-based record number (Parquet/CSV/JSON) or line number (JSONL, text)
    column: str  # column or top-level JSON key; "-" for a plain text line
    kind: str
    count: int


@dataclass(slots=True)
class ScanReport:
    files: int = 0
    records: int = 0
    findings: list[Finding] = field(default_factory=list)


def scan_store(root: Path, redactor: Redactor, *, since: datetime | None = None) -> ScanReport:
    """Scan every record-bearing file under ``root`` (optionally only those modified since)."""
    report = ScanReport()
    inside = list(_files(root, since))
    cutoff = since.timestamp() if since else None
    exported = [p for p in export_paths(root)  # exports it made, wherever they were written
                if cutoff is None or p.stat().st_mtime >= cutoff]
    for path in inside + exported:
        report.files += 1
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        reader = _READERS.get(path.suffix, _text_records)
        for row, cells in reader(path):
            report.records += 1
            for column, value in cells:
                counts = _counts(redactor, column, value)
                report.findings.extend(
                    Finding(rel, row, column, kind, n) for kind, n in sorted(counts.items())
                )
    return report


def _files(root: Path, since: datetime | None) -> Iterator[Path]:
    cutoff = since.timestamp() if since else None
    for path in sorted(root.rglob("*")):
        rel_parts = path.relative_to(root).parts
        if (not path.is_file() or any(part.startswith(".") for part in rel_parts)
                or path.suffix not in SCANNED_SUFFIXES or path.name.endswith(_SKIPPED_SUFFIXES)
                or path.name in _STATE_FILES):
            continue
        if cutoff is None or path.stat().st_mtime >= cutoff:
            yield path


def _counts(redactor: Redactor, column: str, value: object) -> dict[str, int]:
    """What the current policy would still redact in one stored cell."""
    if value is None or value == "":
        return {}
    if column in FIELDS and (redactor.field_mode(column) == "drop" or (
            redactor.policy.metadata_only and column in BODY_FIELDS)):
        return {DROPPED_FIELD: 1}
    if not isinstance(value, str):
        return redactor.redact_json(value)[1]
    if column in _METADATA_COLUMNS:
        return redactor.mask_secrets(value)[1]
    if column in _HEADER_COLUMNS and (counts := _header_counts(redactor, column, value)) is not None:
        return counts
    # Configured fields get their mode (keep: secrets only); any other text is redacted.
    return redactor.redact_body(value, field=column)[1]


_HEADER_COLUMNS = frozenset({"request_headers", "response_headers"})


def _header_counts(redactor: Redactor, column: str, value: str) -> dict[str, int] | None:
    """Headers as the record builder treats them: address headers for secrets only."""
    try:
        headers = json.loads(value)
    except ValueError:
        return None
    if not isinstance(headers, dict):
        return None
    address = [str(headers.pop(name)) for name in list(headers) if name in ADDRESS_HEADERS]
    counts = [redactor.redact_body(json.dumps(headers), field=column)[1]]
    counts += [redactor.mask_secrets(v)[1] for v in address]
    return merge_counts(*counts)


# A record: its 1-based row (or line) number and its (column, value) cells.
Record = tuple[int, list[tuple[str, object]]]


def _parquet_records(path: Path) -> Iterator[Record]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    columns = [f.name for f in parquet.schema_arrow
               if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    if not columns:
        yield from ((row, []) for row in range(1, parquet.metadata.num_rows + 1))
        return
    offset = 0
    for batch in parquet.iter_batches(columns=columns):
        values = [batch.column(name).to_pylist() for name in columns]
        for i in range(batch.num_rows):
            yield offset + i + 1, [(name, col[i]) for name, col in zip(columns, values)]
        offset += batch.num_rows


def _cells_of(record: object) -> list[tuple[str, object]]:
    if isinstance(record, dict):
        return [(str(key), value) for key, value in record.items()]
    return [("-", record)]


def _jsonl_records(path: Path) -> Iterator[Record]:
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record: object = json.loads(line)
            except ValueError:  # a torn last line of a journal is still scanned, as text
                record = line.rstrip("\n")
            yield line_no, _cells_of(record)


def _json_records(path: Path) -> Iterator[Record]:
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        data = json.loads(text)
    except ValueError:
        yield from _text_records(path)
        return
    records = data if isinstance(data, list) else [data]
    for row, record in enumerate(records, 1):
        yield row, _cells_of(record)


def _csv_records(path: Path) -> Iterator[Record]:
    with path.open(encoding="utf-8", errors="replace", newline="") as fh:
        for row, record in enumerate(csv.DictReader(fh), 1):
            yield row, [(str(column), value) for column, value in record.items()]


def _text_records(path: Path) -> Iterator[Record]:
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, 1):
            if line.strip():
                yield line_no, [("-", line.rstrip("\n"))]


_READERS = {".parquet": _parquet_records, ".jsonl": _jsonl_records, ".json": _json_records,
            ".csv": _csv_records}
