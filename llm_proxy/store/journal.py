"""The write-ahead journal: records are appended here before the client sees the response.

A segment is a JSON-lines file. The capture worker appends each record's line and only then
acknowledges it to the proxy, so once a response is relayed its record is in the OS page cache
and survives ``kill -9``; the fsync policy bounds what a power loss can take:

- ``always``: fsync before every acknowledgement (slowest, loses nothing);
- ``interval`` (default): fsync at most every ``fsync_interval_s`` (1 s) from a timer thread;
- ``never``: leave it to the OS.

When a batch is flushed to Parquet the segment is closed and deleted; a segment left behind by a
crash is replayed on the next start (``llm_proxy.store.writer.replay``).
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from llm_proxy.store.layout import (
    FILE_MODE,
    fsync_dir,
    make_dirs,
    parse_segment_name,
    segment_name,
)

__all__ = ["JournalSegment", "list_segments", "read_segment", "encode_record"]


def encode_record(record: dict[str, Any]) -> bytes:
    """One journal line: compact JSON, UTF-8, newline-terminated (orjson: 3-5x json's speed)."""
    try:
        return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
    except (orjson.JSONEncodeError, TypeError):  # a value orjson refuses; json is more lenient
        return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode(
            "utf-8", "replace")


class JournalSegment:
    """An open, append-only journal segment file."""

    def __init__(self, journal_dir: Path, instance: str, seq: int, *, fsync: str,
                 fsync_interval_s: float) -> None:
        make_dirs(journal_dir)
        # Created and locked under a hidden name, then linked into place: replay (which skips
        # segments a live writer holds) can never see a segment before its lock is taken.
        tmp = journal_dir / f".{segment_name(instance, seq)}.{os.getpid()}.new"
        self._fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, FILE_MODE)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held until flushed and closed
        while True:  # another proxy of the same name may share the store: never reuse a segment
            self.path = journal_dir / segment_name(instance, seq)
            try:
                os.link(tmp, self.path)
                break
            except FileExistsError:
                seq += 1
        tmp.unlink()
        self.seq = seq
        self.count = 0
        self._fsync = fsync
        self._dirty = False
        # The new name must be durable too, not only the lines: after a power loss a segment
        # whose folder entry never reached the disk would vanish with every synced line in it.
        # Synced with the first lines (``always``) or on the timer's first tick (``interval``).
        self._dir = journal_dir
        self._dir_dirty = fsync != "never"
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._interval = fsync_interval_s
        if fsync == "interval":
            self._schedule()

    def append(self, lines: bytes, count: int) -> None:
        """Append already-encoded lines; with ``always`` they are on disk when this returns."""
        view = memoryview(lines)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.count += count
        if self._fsync == "always":
            os.fsync(self._fd)
            self._sync_dir()
        else:
            self._dirty = True

    def _schedule(self) -> None:
        self._timer = threading.Timer(self._interval, self._tick)
        self._timer.daemon = True
        self._timer.start()

    def _sync_dir(self) -> None:
        if self._dir_dirty:
            self._dir_dirty = False
            fsync_dir(self._dir)

    def _tick(self) -> None:
        with self._lock:
            if self._fd < 0:
                return
            if self._dirty:
                self._dirty = False
                os.fsync(self._fd)
            self._sync_dir()
            self._schedule()

    def sync(self) -> None:
        """Stop the timer and make everything appended durable (before the flush reads it)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._fd >= 0 and self._fsync != "never":
                os.fsync(self._fd)
                self._sync_dir()

    def close(self) -> None:
        """Sync, release the lock and close (after the flush has deleted the file)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            if self._fd >= 0:
                if self._fsync != "never":
                    os.fsync(self._fd)
                os.close(self._fd)
                self._fd = -1


def list_segments(journal_dir: Path) -> list[tuple[str, int, Path]]:
    """Journal segments as (instance, seq, path), oldest first."""
    if not journal_dir.is_dir():
        return []
    found = []
    for entry in os.scandir(journal_dir):
        parsed = parse_segment_name(entry.name)
        if parsed:
            found.append((parsed[0], parsed[1], Path(entry.path)))
    return sorted(found, key=lambda t: (t[1], t[0]))


def read_segment(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a segment; a torn last line (crash mid-write) is skipped, not an error."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:  # flushed and deleted while we looked
        return
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(record, dict):
            yield record
