"""Batch encoder: records (dicts) → Arrow table → zstd Parquet, written atomically.

Files are written under a temporary name, fsynced, renamed into place and made read-only, so a
reader or a crash never sees half a file and nothing modifies a finalised file in place.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from operator import itemgetter
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
import pyarrow.parquet as pq

from llm_proxy.schema import RECORD_SCHEMA
from llm_proxy.store.journal import read_segment
from llm_proxy.store.layout import (
    FINAL_FILE_MODE,
    TS_END_US,
    fsync_dir,
    make_dirs,
    record_time_us,
)

__all__ = ["PARQUET_OPTIONS", "encode_parquet", "fsync_dir", "records_to_table", "segment_to_table",
           "write_parquet_atomic"]


# Rows converted per call. The conversion holds the GIL for its whole call (it reads Python
# objects); where it runs beside the capture worker's journaling thread (the worker's replay;
# the live flush reads segments with ``segment_to_table`` instead), slices of ~2 ms keep it
# from holding back acknowledgements.
_CONVERT_ROWS = 256


_AS_ROW = itemgetter(*RECORD_SCHEMA.names)
_ROW_TYPE = pa.struct(list(RECORD_SCHEMA))


def _batch(rows: list[Mapping[str, Any]]) -> pa.RecordBatch:
    """Records with every column (what the capture worker builds) go in as tuples in schema
    order — a third cheaper than dicts, whose keys are looked up cell by cell; others as dicts."""
    try:
        tuples = [_AS_ROW(r) for r in rows]
    except KeyError:
        return pa.RecordBatch.from_pylist(rows, schema=RECORD_SCHEMA)  # C++: 3x a column loop
    return pa.RecordBatch.from_struct_array(pa.array(tuples, type=_ROW_TYPE))


def records_to_table(records: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Columnar conversion; missing keys are null, ``ts`` is integer microseconds (UTC).

    A value of the wrong type (a journal line edited or damaged on disk) does not fail the
    whole conversion — which would break every query of the journal and every flush of its
    segment: the value is stored as null and the record's ``error_trace`` says which column.
    A ``ts`` no partition can hold is taken from the time in the record's ULID ``id``; a
    record without either cannot be placed and is left out, with a warning on stderr.
    """
    rows = records if isinstance(records, list) else list(records)
    batches = []
    for i in range(0, len(rows), _CONVERT_ROWS):
        chunk = rows[i:i + _CONVERT_ROWS]
        try:
            batch = _batch(chunk)
            if not placeable(batch):
                raise ValueError("a ts no partition can hold")
            batches.append(batch)
        except _UNCONVERTIBLE:
            repaired = [r for r in map(_repaired, chunk) if r is not None]
            batches.append(pa.RecordBatch.from_pylist(repaired, schema=RECORD_SCHEMA))
    return pa.Table.from_batches(batches, schema=RECORD_SCHEMA)


_UNCONVERTIBLE = (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError)


def placeable(rows: pa.Table | pa.RecordBatch) -> bool:
    """Whether every ``ts`` falls in a partition (1970 to year 9999), checked in Arrow."""
    ts = rows.column("ts")
    if not len(ts):
        return True
    if ts.null_count:
        return False
    low, high = pc.min_max(ts.cast(pa.int64())).values()
    return low.as_py() >= 0 and high.as_py() < TS_END_US


def _repaired(row: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """``row`` with every value its column cannot hold set to null (and noted) and an unusable
    ``ts`` taken from its id, or None when it cannot be placed at all."""
    when = record_time_us(row)
    if when is None or not isinstance(row.get("id"), str):
        print(f"llm-audit: skipped a journal record without a usable id and ts "
              f"(id={str(row.get('id'))[:40]!r})", file=sys.stderr)
        return None
    notes = []
    fixed = dict(row)
    if when != row.get("ts"):
        fixed["ts"] = when
        notes.append("ts unusable, taken from the id")
    try:
        pa.RecordBatch.from_pylist([fixed], schema=RECORD_SCHEMA)
    except _UNCONVERTIBLE:
        bad = []
        for field in RECORD_SCHEMA:
            value = fixed.get(field.name)
            if value is None:
                continue
            try:
                pa.array([value], type=field.type)
            except _UNCONVERTIBLE:
                fixed[field.name] = None
                bad.append(field.name)
        notes.append(f"unreadable {', '.join(bad)} stored as null")
    if not notes:
        return row
    note = "journal: " + "; ".join(notes)
    fixed["error_trace"] = f"{fixed['error_trace']}; {note}" if fixed.get("error_trace") else note
    return fixed


# The journal writes ``ts`` as integer microseconds: read as such, then cast (zero-copy).
_JSON_SCHEMA = pa.schema([f.with_type(pa.int64()) if pa.types.is_timestamp(f.type) else f
                          for f in RECORD_SCHEMA])
_JSON_PARSE = pajson.ParseOptions(explicit_schema=_JSON_SCHEMA, unexpected_field_behavior="ignore")
# Blocks of 4 MiB: a whole 20 MB segment as one block took 2.3x the time and +22 MB of peak
# memory. A record longer than a block (its bodies are capped at ``max_body_bytes`` each, but
# JSON escaping can double them) makes Arrow refuse the segment: it is then read as one block.
_JSON_BLOCK = 4 << 20


def _read_json(data: bytes, block_size: int) -> pa.Table:
    return pajson.read_json(pa.BufferReader(data), parse_options=_JSON_PARSE,
                            read_options=pajson.ReadOptions(use_threads=False,
                                                            block_size=block_size))


def segment_to_table(segment: Path) -> pa.Table:
    """A sealed journal segment as an Arrow table, parsed by Arrow's C++ JSON reader.

    The reader runs without the GIL, unlike ``records_to_table`` on the same records as Python
    dicts (which holds it for the whole conversion): the capture worker's flusher then no longer
    competes with the thread that journals and acknowledges records, and the conversion overlaps
    the Parquet encoding of the previous batch (benchmarks/writer_throughput.py). It costs
    somewhat more CPU per record. Whatever Arrow rejects (a torn last line after a crash, a
    value the strict reader will not coerce) goes the lenient way: ``read_segment`` and
    ``records_to_table``, as before.
    """
    try:
        data = segment.read_bytes()
    except FileNotFoundError:
        data = b""
    table = None
    for block_size in (_JSON_BLOCK, len(data) + 1):  # (an empty segment: the lenient way)
        try:
            table = _read_json(data, block_size)
            break
        except (pa.ArrowException, OverflowError):  # (OverflowError: a block over 2 GiB)
            if block_size > len(data):
                break
    if table is not None and placeable(table):  # (else a damaged ts: the lenient way)
        table = table.select(RECORD_SCHEMA.names)
        for i, field in enumerate(RECORD_SCHEMA):
            if field.type != table.schema.field(i).type:
                table = table.set_column(i, field, table.column(i).cast(field.type))
        return table.replace_schema_metadata(RECORD_SCHEMA.metadata)  # the schema version
    return records_to_table(list(read_segment(segment)))


# Free text and unique values: a dictionary page would be built and then abandoned (every value
# differs), and min/max statistics of a body prune nothing; both cost the writer time for each
# record. Every other column keeps both (ids keep statistics: lookups by id prune on them).
_FREE_TEXT = frozenset({"request_headers", "request_body", "response_headers", "response_body",
                        "error_trace"})
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": [f.name for f in RECORD_SCHEMA if f.name not in _FREE_TEXT | {"id"}],
    "write_statistics": [f.name for f in RECORD_SCHEMA if f.name not in _FREE_TEXT],
}


def encode_parquet(table: pa.Table, sink: BinaryIO | str) -> None:
    """zstd-compressed Parquet with the schema version in the file metadata.

    A Python file object is written once, from an Arrow buffer: handed to Arrow directly, every
    page write would call back into Python and take the GIL, so an encoding thread crawled
    whenever another thread ran Python (16x slower in benchmarks/ measurements beside a busy
    thread) instead of overlapping it.
    """
    if isinstance(sink, str):
        pq.write_table(table, sink, **PARQUET_OPTIONS)
        return
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer, **PARQUET_OPTIONS)
    sink.write(memoryview(buffer.getvalue()))


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    """Write ``path`` via a temp file + fsync + rename; the result is read-only."""
    make_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb", closefd=False) as fh:
            encode_parquet(table, fh)
            fh.flush()
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, FINAL_FILE_MODE)
    os.replace(tmp, path)
    fsync_dir(path.parent)
