"""``tail -f``: new records as they complete, at a per-tick cost independent of store size.

Every record is appended to a journal segment before the proxy relays the response, so the
follower mostly reads *new journal bytes*: it keeps a byte offset per segment and parses only
complete lines past it. As a backstop for a segment flushed and deleted between two ticks, it
also lists the current and previous hour's partition folders and reads Parquet files it has not
seen (skipping compaction outputs, whose records are all old). Records are recognised by ``id``,
so one that is first seen in the journal and later in Parquet is shown once. A tick therefore
touches the journal folder and two partition folders, never the rest of the store.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from llm_proxy.store.journal import list_segments
from llm_proxy.store.layout import JOURNAL_DIR, partition_dir
from llm_proxy.store.views import COMPACT_PREFIX

__all__ = ["Follower"]

_KEEP_SEEN = timedelta(hours=3)


def _ts_us(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        return int(value.timestamp() * 1_000_000)
    return None


@dataclass(slots=True)
class Follower:
    """Yields records that appeared since the previous ``poll`` (journal dicts, ``ts`` in µs)."""

    store: Path
    offsets: dict[Path, int] = field(default_factory=dict)
    seen_files: set[Path] = field(default_factory=set)
    seen_ids: dict[str, int] = field(default_factory=dict)
    touched: int = 0  # files read by the last poll (for tests and the benchmark)

    def start(self, now: datetime | None = None) -> None:
        """Everything already in the store counts as seen: only later records are new."""
        now = now or datetime.now(UTC)
        for _inst, _seq, seg in list_segments(self.store / JOURNAL_DIR):
            for record in self._read_new(seg):
                self._remember(record)
        for folder in self._recent_folders(now):
            self.seen_files.update(self._parquet_in(folder))

    def poll(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """New records, oldest first."""
        now = now or datetime.now(UTC)
        self.touched = 0
        fresh: list[dict[str, Any]] = []
        live = set()
        for _inst, _seq, seg in list_segments(self.store / JOURNAL_DIR):
            live.add(seg)
            fresh += [r for r in self._read_new(seg) if self._remember(r)]
        for gone in set(self.offsets) - live:
            del self.offsets[gone]
        for folder in self._recent_folders(now):
            for path in self._parquet_in(folder):
                if path in self.seen_files:
                    continue
                self.seen_files.add(path)
                if path.name.startswith(COMPACT_PREFIX):
                    continue
                self.touched += 1
                try:
                    rows = pq.read_table(path).to_pylist()
                except FileNotFoundError:
                    continue
                for row in rows:
                    row["ts"] = _ts_us(row.get("ts"))
                    if self._remember(row):
                        fresh.append(row)
        self._forget(now)
        fresh.sort(key=lambda r: (r.get("ts") or 0, r.get("id") or ""))
        return fresh

    def _remember(self, record: dict[str, Any]) -> bool:
        rid = record.get("id")
        ts = _ts_us(record.get("ts"))
        if not isinstance(rid, str) or ts is None or rid in self.seen_ids:
            return False
        record["ts"] = ts
        self.seen_ids[rid] = ts
        return True

    def _forget(self, now: datetime) -> None:
        horizon = int((now - _KEEP_SEEN).timestamp() * 1_000_000)
        if len(self.seen_ids) > 10_000:
            self.seen_ids = {k: v for k, v in self.seen_ids.items() if v >= horizon}
        if len(self.seen_files) > 10_000:
            self.seen_files = {p for p in self.seen_files if p.exists()}

    def _read_new(self, segment: Path) -> list[dict[str, Any]]:
        """Complete lines appended to ``segment`` since the last read."""
        offset = self.offsets.get(segment, 0)
        try:
            with open(segment, "rb") as fh:
                fh.seek(offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        self.touched += 1
        self.offsets[segment] = offset + end
        records = []
        for line in data[:end].splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def _recent_folders(self, now: datetime) -> list[Path]:
        folders = []
        for back in (1, 0):
            at = now - timedelta(hours=back)
            folders.append(self.store / partition_dir(at.strftime("%Y-%m-%d"), at.strftime("%H")))
        return folders

    @staticmethod
    def _parquet_in(folder: Path) -> list[Path]:
        try:
            return sorted(Path(e.path) for e in os.scandir(folder)
                          if e.name.endswith(".parquet") and not e.name.startswith("."))
        except FileNotFoundError:
            return []
