"""What the integrity chain records about one Parquet file: SHA-256, size, records, time range.

Record count and time range come from the Parquet footer (row-group statistics of ``ts``), so
describing a file costs one sequential read for the hash and no decoding of its data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

__all__ = ["FileDigest", "sha256_file", "describe_file", "iso"]

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def iso(value: datetime | None) -> str | None:
    """ISO 8601 UTC with microseconds and ``Z``: the chain's one time format."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class FileDigest:
    sha256: str
    bytes: int
    records: int
    min_ts: str | None
    max_ts: str | None

    def entry(self, tier_path: str) -> dict[str, Any]:
        """The chain's description of the file at ``tier_path``."""
        return {"path": tier_path, "sha256": self.sha256, "bytes": self.bytes,
                "records": self.records, "min_ts": self.min_ts, "max_ts": self.max_ts}


def _ts_range(path: Path, meta: pq.FileMetaData) -> tuple[str | None, str | None]:
    try:
        col = meta.schema.names.index("ts")
    except ValueError:
        return None, None
    lo: datetime | None = None
    hi: datetime | None = None
    for i in range(meta.num_row_groups):
        stats = meta.row_group(i).column(col).statistics
        if stats is None or not stats.has_min_max:
            table = pq.read_table(path, columns=["ts"])
            values = [v for v in table.column("ts").to_pylist() if v is not None]
            return (iso(min(values)), iso(max(values))) if values else (None, None)
        lo = stats.min if lo is None or stats.min < lo else lo
        hi = stats.max if hi is None or stats.max > hi else hi
    return iso(lo), iso(hi)


def describe_file(path: Path) -> FileDigest:
    """Hash, size, record count and ``ts`` range of a Parquet file."""
    path = Path(path)
    size = path.stat().st_size
    digest = sha256_file(path)
    try:
        meta = pq.read_metadata(path)
        records = meta.num_rows
        lo, hi = _ts_range(path, meta)
    except Exception:  # not Parquet (a foreign file): still hashable, nothing more to say
        records, lo, hi = 0, None, None
    return FileDigest(digest, size, records, lo, hi)
