"""Pure functions that name things in the store: partitions, Parquet files, journal segments.

Layout (Hive-style, UTC, readable as is by DuckDB, Athena, Trino and Spark)::

    STORE/flows/date=YYYY-MM-DD/hour=HH/<instance>-<seq>-<id>.parquet
    STORE/journal/<instance>-<seq>.jsonl        (write-ahead journal, one segment per batch)
    STORE/journal/<instance>-<seq>.manifest     (which Parquet files a segment's flush wrote)

``seq`` is the segment's creation time in microseconds, so it only grows for one instance and a
Parquet file names the journal segment it came from; ``id`` is random, so names never collide
between proxy instances (or restarts) writing to the same store.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import socket
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from llm_proxy.errors import StoreError

__all__ = [
    "FLOWS_DIR",
    "JOURNAL_DIR",
    "partition_of",
    "partition_dir",
    "parquet_name",
    "segment_name",
    "parse_segment_name",
    "default_instance_name",
    "DIR_MODE",
    "FILE_MODE",
    "FINAL_FILE_MODE",
    "make_dirs",
    "prepare_writable_store",
    "fsync_dir",
    "record_time_us",
    "CROCKFORD",
    "TS_END_US",
]

FLOWS_DIR = "flows"
JOURNAL_DIR = "journal"
DIR_MODE = 0o700
FILE_MODE = 0o600
FINAL_FILE_MODE = 0o400  # finalised Parquet files are never modified in place

_SEGMENT_RE = re.compile(r"^(?P<instance>.+)-(?P<seq>\d{16})\.jsonl$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.]+")


def partition_of(ts_us: int) -> tuple[str, str]:
    """(date, hour) strings of a UTC timestamp in microseconds."""
    return _hour_partition(ts_us // 3_600_000_000)


# Partitions exist from 1970 to the end of year 9999 (what a date can name).
TS_END_US = int(datetime(9999, 12, 31, 23, tzinfo=UTC).timestamp()) * 1_000_000
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # the ULID alphabet of record ids
_CROCKFORD_VALUE = {c: i for i, c in enumerate(CROCKFORD)}


def record_time_us(record: Mapping[str, Any]) -> int | None:
    """A record's time as integer microseconds that a partition can hold: its ``ts``, or —
    when a damaged journal line has none usable (a string, a float, nanoseconds) — the
    millisecond time in its ULID ``id``; ``None`` when neither says."""
    ts = record.get("ts")
    if isinstance(ts, float) and math.isfinite(ts):
        ts = int(ts)  # truncated, as Arrow converts it: the flush and the views must agree
    if isinstance(ts, int) and not isinstance(ts, bool) and 0 <= ts < TS_END_US:
        return ts
    rid = record.get("id")
    if not isinstance(rid, str) or len(rid) != 26:
        return None
    ms = 0
    for ch in rid[:10].upper():
        if ch not in _CROCKFORD_VALUE:
            return None
        ms = ms * 32 + _CROCKFORD_VALUE[ch]
    return ms * 1000 if 0 <= ms * 1000 < TS_END_US else None


@lru_cache(maxsize=4096)
def _hour_partition(hour_number: int) -> tuple[str, str]:
    dt = datetime.fromtimestamp(hour_number * 3600, tz=UTC)
    return dt.strftime("%Y-%m-%d"), dt.strftime("%H")


def partition_dir(date: str, hour: str) -> str:
    """Relative folder of one hourly partition."""
    return f"{FLOWS_DIR}/date={date}/hour={hour}"


def parquet_name(instance: str, seq: int) -> str:
    """A Parquet file name unique across instances and restarts."""
    return f"{instance}-{seq:016d}-{secrets.token_hex(4)}.parquet"


def segment_name(instance: str, seq: int) -> str:
    return f"{instance}-{seq:016d}.jsonl"


def parse_segment_name(name: str) -> tuple[str, int] | None:
    """(instance, seq) of a journal segment file name, or None if it is not one."""
    m = _SEGMENT_RE.match(name)
    return (m["instance"], int(m["seq"])) if m else None


def default_instance_name() -> str:
    """Host name made safe for file names: hyphens separate name parts, so they are replaced."""
    return sanitize_instance(os.environ.get("LLM_AUDIT_INSTANCE") or socket.gethostname())


def sanitize_instance(name: str) -> str:
    return _UNSAFE.sub("_", name).strip("_") or "proxy"


def make_dirs(path: Path) -> None:
    """``mkdir -p`` where every folder created is owner-only (``mkdir(mode=)`` skips parents)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass


def prepare_writable_store(store: Path) -> None:
    """Create the store and its journal folder (owner-only) and prove that this user can
    write a file there: a proxy that started anyway would relay traffic it cannot record
    (the capture worker would die at start, again and again). Raises ``StoreError``."""
    journal = store / JOURNAL_DIR
    try:
        make_dirs(journal)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=journal)  # owner-only
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise StoreError(f"cannot write the store {store}: {exc.strerror or exc}{where}; "
                         "pass --store a folder this user can write") from None


def fsync_dir(path: Path) -> None:
    """Make a rename (or a new name) in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
