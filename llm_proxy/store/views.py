"""DuckDB over the store: the ``flows`` view and one view per column group.

``flows`` unions the Parquet partitions (hot hourly tier and daily archive tier) with the records
still in the write-ahead journal, so a record is queryable as soon as the proxy has acknowledged
it, not only after the next flush.

Three things make it fast and safe on a large store:

- **Partition pruning before any read.** ``connect(store, since=…, until=…)`` lists partition
  folders (names only) and hands DuckDB just the files of the hours in range, so a query over the
  last day never opens a footer of the other 29.
- **Compaction-safe reads.** ``llm-audit compact`` publishes one merged file (named
  ``compact-…``) and only then deletes the small files it replaces. A reader that lists the
  folder in between sees both; for such partitions — a ``compact-`` file next to other files —
  the view keeps one row per ``id``, so a record is never counted twice. A reader whose listed
  file vanished before DuckDB opened it gets a ``StaleListing`` and re-runs on a fresh listing
  (``retrying``), so a record is never missed either.
- **Read-only lockdown** (``read_only=True``): after the views exist, file access is restricted
  to the store's tiers and the configuration is locked (see ``llm_proxy.store.sqlguard``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from llm_proxy.errors import StoreError
from llm_proxy.schema import COLUMN_GROUPS, COLUMNS
from llm_proxy.store.journal import list_segments
from llm_proxy.store.layout import FLOWS_DIR, JOURNAL_DIR, record_time_us
from llm_proxy.store.locks import LOCKS_DIR, chain_lock
from llm_proxy.store.parquet import records_to_table
from llm_proxy.store.tiers import Partition, Tiers, list_partitions, partition_files
from llm_proxy.store.writer import unflushed_records

__all__ = [
    "COMPACT_PREFIX",
    "VIEW_NAMES",
    "PartitionFiles",
    "StaleListing",
    "arrow_reader",
    "arrow_table",
    "connect",
    "is_store",
    "journal_table",
    "parquet_glob",
    "require_store",
    "retrying",
    "scan_partitions",
]

VIEW_NAMES = ("flows", "requests", "responses", "errors", "security")
COMPACT_PREFIX = "compact-"  # file names of compaction outputs (layout.parquet_name("compact", …))

class StaleListing(StoreError):
    """A file listed for the query was removed (compaction, retention) before it was read."""


@dataclass(frozen=True, slots=True)
class PartitionFiles:
    """One partition folder and its finalised Parquet files at listing time."""

    partition: Partition
    files: tuple[Path, ...]

    @property
    def needs_dedupe(self) -> bool:
        """A compaction output next to other files: compaction is mid-swap (or ran twice)."""
        return len(self.files) > 1 and any(f.name.startswith(COMPACT_PREFIX) for f in self.files)


def parquet_glob(store: Path) -> str:
    return str(store / FLOWS_DIR / "*" / "*" / "*.parquet")


def is_store(store: Path) -> bool:
    return (store / FLOWS_DIR).is_dir() or (store / JOURNAL_DIR).is_dir()


def require_store(store: Path) -> None:
    """Raise a ``StoreError`` naming ``store`` and the fix when it is not an audit store."""
    if not is_store(store):
        raise StoreError(
            f"no audit store at {str(store)!r}: run `llm-audit proxy --store {store}` first, "
            "or point --store / LLM_AUDIT_STORE at an existing store"
        )


def scan_partitions(store: Path, *, since: datetime | None = None,
                    until: datetime | None = None) -> list[PartitionFiles]:
    """Partitions overlapping [since, until) with their files, newest first; names only.

    The listing is taken under the chain lock, shared: a publish (flush, compaction, archive,
    erase) renames its new files and removes the old ones under that lock held exclusively,
    so a reader sees the store before or after it, never a record twice or not at all.
    """
    with ExitStack() as stack:
        if (store / LOCKS_DIR).is_dir():  # no locks folder: nothing was ever published
            try:
                stack.enter_context(chain_lock(store, shared=True))
            except OSError:  # a read-only copy of a store: nobody publishes there
                pass
        return _scan_partitions(store, since, until)


def _scan_partitions(store: Path, since: datetime | None,
                     until: datetime | None) -> list[PartitionFiles]:
    found = []
    for part in list_partitions(Tiers.of(store)):
        if since is not None and part.end <= since:
            continue
        if until is not None and part.start >= until:
            continue
        files = tuple(f for f in partition_files(part) if not f.name.startswith("_"))
        if files:
            found.append(PartitionFiles(part, files))
    found.sort(key=lambda p: (p.partition.start, p.partition.tier), reverse=True)
    return found


def journal_table(store: Path, *, since: datetime | None = None,
                  until: datetime | None = None) -> pa.Table:
    """Records acknowledged but not yet in Parquet, as an Arrow table of the record schema."""
    lo = int(since.timestamp() * 1_000_000) if since else None
    hi = int(until.timestamp() * 1_000_000) if until else None
    records = []
    for _instance, _seq, segment in list_segments(store / JOURNAL_DIR):
        for r in unflushed_records(store, segment):
            ts = record_time_us(r)  # (what the flush will place the record by)
            if ts is None:
                continue
            if (lo is not None and ts < lo) or (hi is not None and ts >= hi):
                continue
            records.append(r)
    return records_to_table(records)


def _sql_list(paths: Sequence[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


# Every file has the one versioned record schema (pinned by tests/test_schema.py), so files are
# bound by position: ``union_by_name`` would re-read every footer on each bind (0.9 CPU-s for
# the five views over 720 files). A schema version 2 must bring back by-name binding for the
# files of version 1 (the version is in each file's metadata).
_READ_OPTIONS = "hive_partitioning = true, union_by_name = false"


def _parquet_select(paths: Sequence[Path], *, archive: bool, dedupe: bool) -> str:
    cols = ", ".join(COLUMNS)
    if archive:  # daily files: only `date` in the path
        source = (f"read_parquet({_sql_list(paths)}, {_READ_OPTIONS}, "
                  "hive_types = {'date': DATE})")
        select = f"SELECT {cols}, date, CAST(hour(ts) AS INTEGER) AS hour FROM {source}"
    else:
        source = (f"read_parquet({_sql_list(paths)}, {_READ_OPTIONS}, "
                  "hive_types = {'date': DATE, 'hour': INTEGER})")
        select = f"SELECT {cols}, date, hour FROM {source}"
    if dedupe:
        select += " QUALIFY row_number() OVER (PARTITION BY id) = 1"
    return select


def flows_sql(parts: Sequence[PartitionFiles], *, with_journal: bool = True) -> str:
    """The ``flows`` view's body over exactly these partitions (and the journal)."""
    plain_hot = [f for p in parts if p.partition.tier == "hot" and not p.needs_dedupe
                 for f in p.files]
    plain_archive = [f for p in parts if p.partition.tier != "hot" and not p.needs_dedupe
                     for f in p.files]
    branches = []
    if plain_hot:
        branches.append(_parquet_select(plain_hot, archive=False, dedupe=False))
    if plain_archive:
        branches.append(_parquet_select(plain_archive, archive=True, dedupe=False))
    for p in parts:
        if p.needs_dedupe:
            branches.append(_parquet_select(p.files, archive=p.partition.tier != "hot",
                                            dedupe=True))
    if with_journal or not branches:
        cols = ", ".join(COLUMNS)
        branches.append(f"SELECT {cols}, CAST(ts AS DATE) AS date, "
                        "CAST(hour(ts) AS INTEGER) AS hour FROM _journal")
    return " UNION ALL ".join(branches)


def _create_views(con: duckdb.DuckDBPyConnection, flows: str) -> None:
    con.execute(f"CREATE VIEW flows AS {flows}")
    for view, group in (("requests", "request"), ("responses", "response"),
                        ("errors", "error"), ("security", "security")):
        group_cols = ", ".join(c for c in COLUMN_GROUPS[group] if c not in ("id", "ts"))
        where = " WHERE error_type IS NOT NULL" if group == "error" else ""
        con.execute(f"CREATE VIEW {view} AS SELECT id, ts, {group_cols} FROM flows{where}")


def connect(store: str | os.PathLike[str], *, require: bool = True,
            since: datetime | None = None, until: datetime | None = None,
            partitions: Sequence[PartitionFiles] | None = None, with_journal: bool = True,
            journal: pa.Table | None = None, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the views over ``store``.

    With ``require``, a path that is not a store is a ``StoreError`` naming it. ``since`` /
    ``until`` restrict the views to the partitions (and journal records) in that time range —
    rows of a partition that only partly overlaps are still there, so callers filter on ``ts``
    as well. ``partitions`` gives the exact partitions instead (from ``scan_partitions``);
    ``journal`` an already loaded journal table, ``with_journal=False`` none.
    With ``read_only`` the connection can read nothing but the store and change no setting.
    """
    root = Path(store)
    if require:
        require_store(root)
    if partitions is None:
        partitions = scan_partitions(root, since=since, until=until)
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    if journal is None:
        journal = journal_table(root, since=since, until=until) if with_journal else \
            records_to_table([])
    con.register("_journal", journal)
    _create_views(con, flows_sql(partitions, with_journal=True))
    if read_only:
        from llm_proxy.store.sqlguard import lock_down

        tiers = Tiers.of(root)
        lock_down(con, [tiers.hot, tiers.archive])
    return con


_STALE_MARKERS = ("no such file", "no files found", "cannot open file", "could not open file")


def is_stale_listing(exc: BaseException) -> bool:
    """A DuckDB error caused by a listed file that has since been removed."""
    return isinstance(exc, duckdb.IOException) and any(
        m in str(exc).lower() for m in _STALE_MARKERS)


def retrying[T](run: Callable[[], T], *, attempts: int = 3) -> T:
    """Run ``run`` (which lists files and queries them); re-run it if a listed file vanished.

    Files only disappear after their replacement is durable (``finalize.publish``), so a fresh
    listing always finds the records again.
    """
    for attempt in range(attempts):
        try:
            return run()
        except duckdb.Error as exc:
            if not is_stale_listing(exc) or attempt == attempts - 1:
                if is_stale_listing(exc):
                    raise StaleListing(
                        "the store changed under the query three times in a row (compaction or "
                        "retention running?): run the command again") from None
                raise
    raise AssertionError("unreachable")



def arrow_table(con: duckdb.DuckDBPyConnection, sql: str,
                params: Sequence[object] = ()) -> pa.Table:
    """Run ``sql`` and return an Arrow table (``to_arrow_table`` since DuckDB 2, ``arrow`` before)."""
    rel = con.sql(sql, params=list(params))
    fetch = getattr(rel, "to_arrow_table", None) or rel.arrow
    return fetch()


def arrow_reader(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object],
                 batch_rows: int) -> pa.RecordBatchReader:
    """Run ``sql`` and stream the result as Arrow batches."""
    rel = con.sql(sql, params=list(params))
    fetch = getattr(rel, "to_arrow_reader", None) or rel.fetch_arrow_reader
    return fetch(batch_rows)
