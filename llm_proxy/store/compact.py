"""Compaction: one Parquet file per closed hour, with its word index, swapped in atomically.

The proxy flushes every few seconds, so a busy hour holds hundreds of small files; each costs a
footer read and a file open per query. Compaction merges the files of every *closed* hour (ended
at least ``min_age`` ago) into one ``compact-…`` file sorted by ``id``, de-duplicated by ``id``,
carrying the word index full-text search uses (``llm_proxy.store.textindex``).

Safety while the proxy writes and while others read:

- It never touches the hour being written, nor a file named by a journal manifest (a flush in
  progress or awaiting replay decides from those files whether its records reached Parquet).
- Files that arrive in an hour after it was compacted (late, long streams) are simply merged by
  the next run.
- The swap is one ``finalize.publish``: the merged file appears first, the inputs are removed
  after it is durable, under the integrity chain. A reader listing the folder in between sees
  both and de-duplicates that partition by ``id`` (``views.PartitionFiles.needs_dedupe``); a
  reader whose listed input vanished re-lists (``views.retrying``). So a concurrent query never
  counts a record twice or misses one.
- ``locks.maintenance_lock`` keeps two compactions (or a compaction and retention / erasure)
  from rewriting the same hour at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from llm_proxy.schema import RECORD_SCHEMA
from llm_proxy.store import rollups
from llm_proxy.store.finalize import publish
from llm_proxy.store.layout import JOURNAL_DIR, parquet_name
from llm_proxy.store.locks import maintenance_lock
from llm_proxy.store.textindex import index_metadata
from llm_proxy.store.views import COMPACT_PREFIX, PartitionFiles, scan_partitions
from llm_proxy.timeparse import utcnow

__all__ = [
    "DEFAULT_MIN_AGE",
    "CompactReport",
    "compact",
    "indexed_table",
    "merge_tables",
    "plan",
]

DEFAULT_MIN_AGE = timedelta(minutes=15)
_INSTANCE = COMPACT_PREFIX.rstrip("-")


@dataclass(slots=True)
class CompactReport:
    """What a run did (or, with ``dry_run``, would do)."""

    partitions: int = 0
    files_in: int = 0
    files_out: int = 0
    records: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0


def _manifest_files(store: Path) -> set[tuple[str, str]]:
    """(partition key ``date/hour``, file name) pairs that pending flushes refer to."""
    found: set[tuple[str, str]] = set()
    journal = store / JOURNAL_DIR
    if not journal.is_dir():
        return found
    for manifest in journal.glob("*.manifest"):
        try:
            planned = json.loads(manifest.read_text())
        except (FileNotFoundError, ValueError):
            continue
        if isinstance(planned, dict):
            found.update((str(k), str(v)) for k, v in planned.items())
    return found


def plan(store: Path, *, now: datetime | None = None,
         min_age: timedelta = DEFAULT_MIN_AGE) -> list[PartitionFiles]:
    """Closed hot hours worth compacting, with the files to merge (oldest hour first)."""
    now = now or utcnow()
    pending = _manifest_files(store)
    todo = []
    for part in scan_partitions(store, until=now - min_age):
        p = part.partition
        if p.tier != "hot" or p.end > now - min_age:
            continue
        key = f"{p.date}/{p.hour:02d}"
        inputs = tuple(f for f in part.files if (key, f.name) not in pending)
        if len(inputs) > 1 or (len(inputs) == 1 and not inputs[0].name.startswith(COMPACT_PREFIX)):
            todo.append(PartitionFiles(p, inputs))
    todo.reverse()
    return todo


def _conform(table: pa.Table) -> pa.Table:
    """Columns in schema order; a column an older file lacks becomes nulls."""
    cols = []
    for f in RECORD_SCHEMA:
        if f.name in table.column_names:
            cols.append(table.column(f.name).cast(f.type))
        else:
            cols.append(pa.nulls(table.num_rows, f.type))
    return pa.table(cols, schema=RECORD_SCHEMA)


def merge_tables(tables: Iterable[pa.Table]) -> pa.Table:
    """One table sorted by ``id`` with each ``id`` once."""
    table = pa.concat_tables([_conform(t) for t in tables])
    table = table.take(pc.sort_indices(table, [("id", "ascending")]))
    ids = table.column("id").combine_chunks()
    if len(ids) > 1:
        keep = pc.not_equal(ids.slice(1), ids.slice(0, len(ids) - 1))
        keep = pa.concat_arrays([pa.array([True]), keep.fill_null(True)])
        if not pc.all(keep).as_py():
            table = table.filter(keep)
    return table


def indexed_table(table: pa.Table, file_name: str) -> pa.Table:
    """``table`` with the word index for ``file_name`` in its schema (footer) metadata."""
    meta = dict(RECORD_SCHEMA.metadata or {})
    meta.update(index_metadata(table, file_name))
    return table.replace_schema_metadata(meta)


def compact(store: Path, *, now: datetime | None = None, min_age: timedelta = DEFAULT_MIN_AGE,
            dry_run: bool = False,
            progress: Callable[[int, int], None] | None = None) -> CompactReport:
    """Merge the small files of every closed hour; see the module docstring for the guarantees."""
    started = time.perf_counter()
    report = CompactReport()
    with maintenance_lock(store, purpose="compact"):
        todo = plan(store, now=now, min_age=min_age)
        for i, part in enumerate(todo):
            report.partitions += 1
            report.files_in += len(part.files)
            report.bytes_in += sum(f.stat().st_size for f in part.files)
            if dry_run:
                continue
            table = merge_tables(pq.read_table(f) for f in part.files)
            seq = time.time_ns() // 1000
            target = part.partition.path / parquet_name(_INSTANCE, seq)
            publish(store, [(indexed_table(table, target.name), target)],
                    remove=part.files, reason="compact")
            report.files_out += 1
            report.records += table.num_rows
            report.bytes_out += target.stat().st_size
            if progress:
                progress(i + 1, len(todo))
        if report.files_out:
            with suppress(OSError):  # the cache is an optimisation: never fail compaction
                rollups.prune(store)
    report.seconds = time.perf_counter() - started
    return report
