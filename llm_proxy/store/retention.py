"""Retention: move old partitions to the archive tier, delete expired ones, keep held records.

The decision is a pure function (``plan``) of the partition folders, the active holds, the clock
and the policy, computed from directory listings alone; only partitions that something happens
to are opened. That is what makes a run with nothing to do cost well under a second even on 7
years of hourly partitions, so cron can run ``llm-audit retention apply`` every few minutes.

Policy (config ``archive_after`` and ``retention_days``, in days; 0 turns either off):

- a hot (hourly) partition whose *day* ended ``archive_after`` days ago or more is merged, with
  the other hours of that day, into one zstd Parquet file in the archive tier
  (``ARCHIVE/date=YYYY-MM-DD/archive-….parquet``);
- a partition that ended ``retention_days`` ago or more is deleted — hourly in the hot tier,
  daily in the archive tier, so a record lives at most ``retention_days`` + 1 day;
- unless an active legal hold overlaps it: then its files are read and the records a hold covers
  are kept (the rest is deleted, the file rewritten), and the run reports what it kept and why.

Every change goes through ``finalize.publish``, so it is atomic, crash-safe and in the chain.
A run holds the store's maintenance lock; an overlapping run gets ``LockBusy``.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from llm_proxy.schema import RECORD_SCHEMA
from llm_proxy.store import rollups
from llm_proxy.store.finalize import publish, recover, sweep_temps
from llm_proxy.store.holds import Hold, active_holds, held_mask, holds_overlapping
from llm_proxy.store.journal import list_segments
from llm_proxy.store.layout import JOURNAL_DIR, parquet_name
from llm_proxy.store.locks import maintenance_lock
from llm_proxy.store.tiers import (
    Partition,
    Tiers,
    configure_archive,
    day_start,
    list_partitions,
    partition_files,
)

__all__ = ["Policy", "Plan", "ArchiveDay", "Action", "plan", "apply", "status", "TierUsage"]



@dataclass(frozen=True, slots=True)
class Policy:
    """Ages in days; 0 disables archiving / deletion."""

    archive_after: int
    retention_days: int


@dataclass(frozen=True, slots=True)
class ArchiveDay:
    date: str
    hours: tuple[Partition, ...]
    existing: Partition | None  # the day's archive partition, merged into the new file


@dataclass(frozen=True, slots=True)
class Plan:
    """What is due, from folder names alone."""

    archive: tuple[ArchiveDay, ...] = ()
    delete: tuple[Partition, ...] = ()  # past retention, no hold overlaps
    held: tuple[tuple[Partition, tuple[Hold, ...]], ...] = ()  # past retention, hold overlaps

    @property
    def empty(self) -> bool:
        return not (self.archive or self.delete or self.held)


def _day_end(date: str) -> datetime:
    return day_start(date) + timedelta(days=1)


def plan(partitions: Sequence[Partition], holds: Sequence[Hold], now: datetime,
         policy: Policy) -> Plan:
    """Which partitions are due for archive or deletion at ``now`` (pure)."""
    delete_before = now - timedelta(days=policy.retention_days) if policy.retention_days else None
    archive_before = now - timedelta(days=policy.archive_after) if policy.archive_after else None
    delete: list[Partition] = []
    held: list[tuple[Partition, tuple[Hold, ...]]] = []
    hours: dict[str, list[Partition]] = defaultdict(list)
    archived: dict[str, Partition] = {}
    for p in partitions:
        if delete_before is not None and p.end <= delete_before:
            covering = holds_overlapping(holds, p.start, p.end)
            if covering:
                held.append((p, tuple(covering)))
            else:
                delete.append(p)
        elif p.tier == "archive":
            archived[p.date] = p
        elif archive_before is not None and _day_end(p.date) <= archive_before:
            hours[p.date].append(p)
    days = tuple(ArchiveDay(d, tuple(sorted(hs, key=lambda p: p.start)), archived.get(d))
                 for d, hs in sorted(hours.items()))
    return Plan(days, tuple(delete), tuple(held))


@dataclass(slots=True)
class Action:
    """One thing a run did (or, with ``--dry-run``, would do)."""

    action: str  # archive | delete | keep | prune
    tier: str
    partition: str
    files: int
    records: int
    bytes: int
    detail: str = ""
    holds: tuple[str, ...] = ()

    COLUMNS = ("action", "tier", "partition", "files", "records", "bytes", "detail")

    def row(self) -> tuple[Any, ...]:
        return (self.action, self.tier, self.partition, self.files, self.records, self.bytes,
                self.detail)


@dataclass(slots=True)
class Report:
    actions: list[Action] = field(default_factory=list)
    dry_run: bool = False

    GROUPED_COLUMNS = ("action", "tier", "partitions", "first", "last", "files", "records",
                       "bytes", "detail")

    def grouped(self) -> list[tuple[Any, ...]]:
        """One row per (action, tier, detail) — what a person reads; machines get ``actions``."""
        groups: dict[tuple[str, str, str], list[Action]] = defaultdict(list)
        for a in self.actions:
            groups[(a.action, a.tier, a.detail if a.action != "archive" else "")].append(a)
        rows = []
        for (action, tier, detail), items in groups.items():
            labels = [a.partition for a in items]
            rows.append((action, tier, len(items), min(labels), max(labels),
                         sum(a.files for a in items), sum(a.records for a in items),
                         sum(a.bytes for a in items),
                         detail or "hourly partitions merged into one archive file per day"))
        return rows

    def summary(self) -> str:
        verb = "would " if self.dry_run else ""
        if not self.actions:
            return "retention: nothing to do"
        by: dict[str, list[Action]] = defaultdict(list)
        for a in self.actions:
            by[a.action].append(a)
        parts = []
        if arch := by.get("archive"):
            parts.append(f"{verb}archive {len(arch)} day(s) ({sum(a.files for a in arch)} files, "
                         f"{sum(a.records for a in arch)} records)")
        if dele := by.get("delete"):
            parts.append(f"{verb}delete {len(dele)} partition(s) ({sum(a.records for a in dele)} "
                         "records)")
        if prune := by.get("prune"):
            parts.append(f"{verb}delete {sum(a.records for a in prune)} unheld records from "
                         f"{len(prune)} held partition(s)")
        if keep := by.get("keep"):
            names = sorted({n for a in keep for n in a.holds})
            parts.append(f"{verb}keep {sum(a.records for a in keep)} records in {len(keep)} "
                         f"partition(s) past retention under legal hold {', '.join(names)}")
        return "retention: " + "; ".join(parts)


def _records(files: Sequence[Path]) -> int:
    return sum(pq.read_metadata(f).num_rows for f in files)


def _bytes(files: Sequence[Path]) -> int:
    return sum(f.stat().st_size for f in files)


def _tidy(store: Path, tiers: Tiers, partition: Partition) -> None:
    """Drop stage files of dead processes, then the folder if that leaves it empty."""
    sweep_temps(store, [partition.path])
    folder = partition.path
    while folder not in (tiers.hot, tiers.archive):
        try:
            folder.rmdir()
        except OSError:
            break
        folder = folder.parent


def _aligned_batches(files: Sequence[Path]) -> Iterator[pa.RecordBatch]:
    """Batches of every file in the current record schema (older files get null columns)."""
    for f in files:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=4096):
            if batch.schema.equals(RECORD_SCHEMA, check_metadata=False):
                yield pa.RecordBatch.from_arrays(batch.columns, schema=RECORD_SCHEMA)
                continue
            cols = []
            for fld in RECORD_SCHEMA:
                idx = batch.schema.get_field_index(fld.name)
                cols.append(batch.column(idx).cast(fld.type) if idx >= 0
                            else pa.nulls(batch.num_rows, fld.type))
            yield pa.RecordBatch.from_arrays(cols, schema=RECORD_SCHEMA)


def _archive_day(store: Path, tiers: Tiers, day: ArchiveDay, dry_run: bool,
                 seq: int) -> Action | None:
    hot_files = [f for p in day.hours for f in partition_files(p)]
    old_archive = partition_files(day.existing) if day.existing else []
    if not hot_files:
        if not dry_run:
            for p in day.hours:
                _tidy(store, tiers, p)
        return None
    sources = old_archive + hot_files
    action = Action("archive", "hot", day.date, len(hot_files), _records(hot_files),
                    _bytes(hot_files), f"{len(day.hours)} hourly partition(s) → archive/date="
                    f"{day.date}" + (f" (merged with {len(old_archive)} archived file(s))"
                                     if old_archive else ""))
    if dry_run:
        return action
    target = tiers.archive / f"date={day.date}" / parquet_name("archive", seq)
    reader = pa.RecordBatchReader.from_batches(RECORD_SCHEMA, _aligned_batches(sources))
    publish(store, [(reader, target)], remove=sources, reason="archive",
            detail={"date": day.date, "hours": len(day.hours)})
    sweep_temps(store, [target.parent])  # an earlier run killed while staging this day
    for p in day.hours:
        _tidy(store, tiers, p)
    return action


def _delete(store: Path, tiers: Tiers, p: Partition, dry_run: bool) -> Action | None:
    files = partition_files(p)
    if not files:
        if not dry_run:
            _tidy(store, tiers, p)
        return None
    action = Action("delete", p.tier, p.label, len(files), _records(files), _bytes(files),
                    "past retention")
    if not dry_run:
        publish(store, [], remove=files, reason="retention", detail={"partition": p.label})
        _tidy(store, tiers, p)
    return action


def _held(store: Path, tiers: Tiers, p: Partition, holds: Sequence[Hold], dry_run: bool,
          seq: int) -> list[Action]:
    """Delete what no hold covers; keep the rest (rewriting files that mix both)."""
    files = partition_files(p)
    names = ", ".join(h.name for h in holds)
    keep_files: list[Path] = []
    drop_files: list[Path] = []
    rewrites: list[tuple[pa.Table, Path, Path]] = []
    kept = dropped = 0
    for i, f in enumerate(files):
        mask = held_mask(pq.read_table(f, columns=["user_id", "key_id", "ts"]), holds)
        n_held = pc.sum(mask).as_py() or 0
        kept += n_held
        dropped += len(mask) - n_held
        if n_held == len(mask):
            keep_files.append(f)
        elif n_held == 0:
            drop_files.append(f)
        else:
            rewrites.append((pq.read_table(f).filter(mask), f,
                             f.with_name(parquet_name("retention", seq + i))))
    actions = []
    if kept:
        actions.append(Action("keep", p.tier, p.label, len(keep_files) + len(rewrites), kept,
                              _bytes(keep_files), f"held by {names}",
                              tuple(h.name for h in holds)))
    if dropped:
        gone = drop_files + [old for _, old, _ in rewrites]
        actions.append(Action("delete" if not rewrites and not keep_files else "prune", p.tier,
                              p.label, len(gone), dropped, _bytes(gone),
                              f"past retention, not covered by {names}"))
        if not dry_run:
            publish(store, [(t, new) for t, _, new in rewrites], remove=gone, reason="retention",
                    detail={"partition": p.label, "kept_for": [h.name for h in holds]})
            _tidy(store, tiers, p)
    return actions


def apply(store: Path, *, policy: Policy, now: datetime, archive_path: str | None = None,
          dry_run: bool = False) -> Report:
    """Run retention once under the maintenance lock (``LockBusy`` if a run is active)."""
    store = Path(store)
    with maintenance_lock(store, purpose="retention apply", wait=0):
        if not dry_run:
            configure_archive(store, archive_path)
            recover(store)
        tiers = Tiers.of(store)
        holds = active_holds(store)
        due = plan(list_partitions(tiers), holds, now, policy)
        report = Report(dry_run=dry_run)
        seq = time.time_ns() // 1000
        for p in due.delete:
            if action := _delete(store, tiers, p, dry_run):
                report.actions.append(action)
        for p, covering in due.held:
            report.actions.extend(_held(store, tiers, p, covering, dry_run, seq))
            seq += 1000
        for day in due.archive:
            if action := _archive_day(store, tiers, day, dry_run, seq):
                report.actions.append(action)
            seq += 1
        if report.actions and not dry_run:
            with suppress(OSError):  # cached roll-ups of deleted or rewritten days
                rollups.prune(store)
        return report


@dataclass(slots=True)
class TierUsage:
    what: str
    partitions: int = 0
    files: int = 0
    bytes: int = 0
    oldest: str = ""
    newest: str = ""
    note: str = ""

    COLUMNS = ("what", "partitions", "files", "bytes", "oldest", "newest", "note")

    def add(self, p: Partition, files: int, size: int) -> None:
        self.partitions += 1
        self.files += files
        self.bytes += size
        self.oldest = min(self.oldest or p.label, p.label)
        self.newest = max(self.newest, p.label)

    def row(self) -> tuple[Any, ...]:
        return (self.what, self.partitions, self.files, self.bytes, self.oldest, self.newest,
                self.note)


def _usage(p: Partition) -> tuple[int, int]:
    files = size = 0
    try:
        for e in os.scandir(p.path):
            if e.name.endswith(".parquet") and not e.name.startswith("."):
                files += 1
                size += e.stat().st_size
    except FileNotFoundError:
        pass
    return files, size


def status(store: Path, *, policy: Policy, now: datetime) -> list[TierUsage]:
    """Bytes and partitions per tier, and what a run at ``now`` would archive, delete or keep."""
    store = Path(store)
    tiers = Tiers.of(store)
    partitions = list_partitions(tiers)
    holds = active_holds(store)
    due = plan(partitions, holds, now, policy)
    usage = {p: _usage(p) for p in partitions}
    hot = TierUsage("hot", note=str(tiers.hot))
    archive = TierUsage("archive", note=str(tiers.archive))
    for p in partitions:
        (hot if p.tier == "hot" else archive).add(p, *usage[p])
    journal = TierUsage("journal", note="not yet flushed to Parquet")
    for _instance, _seq, path in list_segments(store / JOURNAL_DIR):
        journal.files += 1
        try:
            journal.bytes += path.stat().st_size
        except FileNotFoundError:
            pass
    to_archive = TierUsage("due for archive",
                           note=f"archive_after = {policy.archive_after} days"
                           if policy.archive_after else "archiving off (archive_after = 0)")
    for day in due.archive:
        for p in day.hours:
            to_archive.add(p, *usage[p])
    to_delete = TierUsage("due for deletion",
                          note=f"retention_days = {policy.retention_days}"
                          if policy.retention_days else "deletion off (retention_days = 0)")
    for p in due.delete:
        to_delete.add(p, *usage[p])
    held = TierUsage("held past retention",
                     note=", ".join(f"{h.name} ({h.scope()})" for h in holds) or "no active holds")
    for p, _covering in due.held:
        held.add(p, *usage[p])
    return [hot, archive, journal, to_archive, to_delete, held]
