"""Turn journal segments into hourly Parquet partitions, and replay what a crash left behind.

A flush groups a segment's records by (date, hour), writes one Parquet file per partition and
then deletes the segment. Before writing, it records the chosen file names in a manifest next to
the segment, so that if the process dies half-way, replay (and the query layer, which also reads
the journal) can tell which partitions already reached Parquet: no record is lost or doubled.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from llm_proxy.store.finalize import publish
from llm_proxy.store.journal import list_segments, read_segment
from llm_proxy.store.layout import (
    FILE_MODE,
    JOURNAL_DIR,
    parquet_name,
    partition_dir,
    partition_of,
    record_time_us,
)
from llm_proxy.store.parquet import records_to_table

__all__ = ["flush_records", "flush_table", "replay", "manifest_path", "unflushed_records"]


_US_PER_HOUR = 3_600_000_000


def manifest_path(segment: Path) -> Path:
    return segment.with_suffix(".manifest")


def _group_by_partition(table: pa.Table) -> dict[tuple[str, str], pa.Table]:
    """The table's rows by (date, hour) partition, each sorted by id — in Arrow's C++ kernels,
    which release the GIL. (``ts`` is after 1970, so truncating division is floor division.)"""
    hours = pc.divide(table.column("ts").cast(pa.int64()), _US_PER_HOUR)
    found = pc.unique(hours).to_pylist()
    if len(found) == 1:  # the usual flush: one hour
        by_hour = {found[0]: table}
    else:
        by_hour = {hour: table.filter(pc.equal(hours, hour)) for hour in found}
    return {partition_of(hour * _US_PER_HOUR): rows.sort_by("id") for hour, rows in by_hour.items()}


def flush_table(store: Path, segment: Path, instance: str, seq: int, table: pa.Table) -> list[Path]:
    """Write ``table`` (the content of ``segment``) as Parquet, then delete the segment."""
    groups = _group_by_partition(table) if table.num_rows else {}
    manifest = manifest_path(segment)
    planned = _read_manifest(manifest)
    for key in groups:
        planned.setdefault(f"{key[0]}/{key[1]}", parquet_name(instance, seq))
    _write_manifest(manifest, planned)
    written = []
    for (date, hour), rows in sorted(groups.items()):
        target = store / partition_dir(date, hour) / planned[f"{date}/{hour}"]
        if not target.exists():
            publish(store, [(rows, target)], reason="flush")
        written.append(target)
    segment.unlink(missing_ok=True)
    manifest.unlink(missing_ok=True)
    return written


def flush_records(store: Path, segment: Path, instance: str, seq: int,
                  records: Iterable[dict[str, Any]]) -> list[Path]:
    """``flush_table`` for records as dicts (what replay recovers from a segment)."""
    return flush_table(store, segment, instance, seq, records_to_table(records))


def unflushed_records(store: Path, segment: Path) -> list[dict[str, Any]]:
    """Records of a segment whose partition file a (possibly interrupted) flush has not written."""
    done = {
        key for key, name in _read_manifest(manifest_path(segment)).items()
        if (store / partition_dir(*key.split("/")) / name).exists()
    }
    records = list(read_segment(segment))
    if not done:
        return records
    kept = []
    for r in records:  # (a record that cannot be placed: records_to_table leaves it out)
        when = record_time_us(r)
        if when is None or "/".join(partition_of(when)) not in done:
            kept.append(r)
    return kept


def replay(store: Path, recovered_ids: set[str] | None = None) -> int:
    """Flush every journal segment that no live writer holds; returns the records recovered.

    ``recovered_ids`` collects their ids, so a restarted worker can drop captures the proxy
    resends although a dead worker had already journaled them.
    """
    recovered = 0
    for instance, seq, segment in list_segments(store / JOURNAL_DIR):
        try:
            fd = os.open(segment, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a running proxy still writes it
                continue
            records = unflushed_records(store, segment)
            seen: set[str] = set()
            unique = [r for r in records if not isinstance(r.get("id"), str)
                      or not (r["id"] in seen or seen.add(r["id"]))]
            if recovered_ids is not None:  # (journaled, even if the segment stays below)
                recovered_ids.update(seen)
            try:
                table = records_to_table(unique)
            except Exception as exc:  # damaged content must not stop the proxy's start
                print(f"llm-audit: journal segment {segment.name} could not be read "
                      f"({type(exc).__name__}: {exc}); it stays for the next start",
                      file=sys.stderr)
                continue
            # (a store that cannot be written — a lost signing key, a full disk — still stops
            # the start loudly: the proxy then fails closed rather than record nothing)
            flush_table(store, segment, instance, seq, table)
            recovered += table.num_rows
        finally:
            os.close(fd)
    return recovered


def _read_manifest(path: Path) -> dict[str, str]:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}


def _write_manifest(path: Path, planned: dict[str, str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w") as fh:
        json.dump(planned, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
