"""Run searches over the store: newest partitions first, pruned by time and by word index.

The thin I/O shell around ``llm_proxy.store.search``. A search with ``--limit N`` walks the
partitions in range from the newest, in batches that double in size, and stops as soon as it
has N matches from Parquet — every partition it has not opened holds only older records, so the
answer is exact. With search text, the footers of a batch's files are read first and files whose
word index lacks a required word are skipped (``llm_proxy.store.textindex``). Records still in
the journal are searched separately and merged by time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from llm_proxy.schema import COLUMNS
from llm_proxy.store.search import (
    SUMMARY_COLUMNS,
    Filters,
    Term,
    build_where,
    parse_terms,
    time_range,
)
from llm_proxy.store.sqlguard import check_where, explain_error
from llm_proxy.store.textindex import read_token_set
from llm_proxy.store.views import (
    PartitionFiles,
    StaleListing,
    arrow_reader,
    arrow_table,
    connect,
    flows_sql,
    is_stale_listing,
    journal_table,
    require_store,
    retrying,
    scan_partitions,
)

__all__ = [
    "Prepared",
    "SearchStats",
    "count_matches",
    "export_batches",
    "find_record",
    "prepare",
    "search",
    "ulid_time",
]

SNIPPET_COLUMNS = ("request_body", "response_body")


@dataclass(slots=True)
class SearchStats:
    """What a search touched: for ``--explain``-style output and the benchmark."""

    partitions: int = 0
    files_listed: int = 0
    files_skipped_by_index: int = 0
    files_scanned: int = 0
    queries: int = 0


@dataclass(frozen=True, slots=True)
class Prepared:
    """A validated search: time range, terms and the WHERE clause with its parameters."""

    filters: Filters
    since: datetime | None
    until: datetime | None
    terms: list[Term]
    where: str
    params: list[Any] = field(default_factory=list)


def prepare(filters: Filters, now: datetime | None = None) -> Prepared:
    """Validate everything the user typed before touching the store."""
    since, until = time_range(filters, now)
    terms = parse_terms(filters.text)
    if filters.where:
        check_where(filters.where)
    where, params = build_where(filters, since, until, terms)
    return Prepared(filters, since, until, terms, where, params)


def _run(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any]) -> pa.Table:
    try:
        return arrow_table(con, sql, params)
    except duckdb.Error as exc:
        if is_stale_listing(exc):
            raise
        raise explain_error(exc) from None


def _prune(part: PartitionFiles, keys: list[tuple[str, bool]],
           stats: SearchStats) -> PartitionFiles | None:
    """The partition without the files whose word index proves a required word absent."""
    stats.files_listed += len(part.files)
    if not keys:
        return part
    keep = []
    for f in part.files:
        tokens = read_token_set(f)
        if tokens is not None and not tokens.may_match(keys):
            stats.files_skipped_by_index += 1
        else:
            keep.append(f)
    return PartitionFiles(part.partition, tuple(keep)) if keep else None


def _batches(parts: Sequence[PartitionFiles], terms: list[Term], stats: SearchStats,
             first: int = 2) -> Iterator[list[PartitionFiles]]:
    """Newest first, files left after pruning, in batches of 2, 4, 8 … files.

    Footers are read batch by batch, so a search that finds its matches in the newest hours
    never reads the footers of the older ones.
    """
    keys = [k for t in terms for k in t.index_keys()]
    size, batch, count = first, [], 0
    for part in parts:
        kept = _prune(part, keys, stats)
        if kept is None:
            continue
        batch.append(kept)
        count += len(kept.files)
        if count >= size:
            yield batch
            batch, count, size = [], 0, size * 2
    if batch:
        yield batch


def search(store: Path, prepared: Prepared, *, limit: int,
           columns: Sequence[str] = SUMMARY_COLUMNS + SNIPPET_COLUMNS,
           stats: SearchStats | None = None) -> list[dict[str, Any]]:
    """The newest ``limit`` records matching ``prepared``, newest first."""
    require_store(store)
    stats = stats if stats is not None else SearchStats()
    cols = ", ".join(columns)
    sql = (f"SELECT {cols} FROM flows WHERE {prepared.where} "
           "ORDER BY ts DESC, id DESC LIMIT ?")
    params = [*prepared.params, limit]

    def attempt() -> list[dict[str, Any]]:
        journal = journal_table(store, since=prepared.since, until=prepared.until)
        # one locked connection; `flows` is re-pointed at each batch of files
        con = connect(store, partitions=[], journal=journal, read_only=True)
        try:
            found: list[dict[str, Any]] = []
            if journal.num_rows:
                found += _run(con, sql, params).to_pylist()
                stats.queries += 1
            parts = scan_partitions(store, since=prepared.since, until=prepared.until)
            stats.partitions = len(parts)
            from_parquet = 0
            for batch in _batches(parts, prepared.terms, stats):
                stats.files_scanned += sum(len(p.files) for p in batch)
                con.execute(f"CREATE OR REPLACE VIEW flows AS "
                            f"{flows_sql(batch, with_journal=False)}")
                rows = _run(con, sql, params).to_pylist()
                stats.queries += 1
                found += rows
                from_parquet += len(rows)
                if from_parquet >= limit:
                    break
        finally:
            con.close()
        unique = {r["id"]: r for r in found}
        ordered = sorted(unique.values(), key=lambda r: (r["ts"], r["id"]), reverse=True)
        return ordered[:limit]

    return retrying(attempt)


def count_matches(store: Path, prepared: Prepared) -> int:
    """How many records match (for export's progress bar)."""
    require_store(store)

    def attempt() -> int:
        con = connect(store, since=prepared.since, until=prepared.until, read_only=True)
        return int(_run(con, f"SELECT count(*) AS n FROM flows WHERE {prepared.where}",
                        prepared.params).column(0)[0].as_py())

    return retrying(attempt)


def export_batches(store: Path, prepared: Prepared, *, limit: int | None = None,
                   batch_rows: int = 20_000) -> Iterator[pa.RecordBatch]:
    """Every matching record (all columns), oldest first, as Arrow batches of the record schema."""
    require_store(store)
    con = connect(store, since=prepared.since, until=prepared.until, read_only=True)
    sql = f"SELECT {', '.join(COLUMNS)} FROM flows WHERE {prepared.where} ORDER BY ts, id"
    params = list(prepared.params)
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    try:
        reader = arrow_reader(con, sql, params, batch_rows)
        yield from reader
    except duckdb.Error as exc:
        if is_stale_listing(exc):
            raise StaleListing("the store changed during the export (compaction or retention "
                               "removed a file): run the export again") from None
        raise explain_error(exc) from None
    finally:
        con.close()


_CROCKFORD = {c: i for i, c in enumerate("0123456789ABCDEFGHJKMNPQRSTVWXYZ")}


def ulid_time(record_id: str) -> datetime | None:
    """The creation time a ULID encodes (its first 10 characters), or None if it is not one."""
    head = record_id[:10].upper()
    if len(record_id) != 26 or any(c not in _CROCKFORD for c in head):
        return None
    ms = 0
    for c in head:
        ms = ms * 32 + _CROCKFORD[c]
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, ValueError, OSError):
        return None


def find_record(store: Path, record_id: str) -> dict[str, Any] | None:
    """One whole record by id: the hour its ULID names first, then the whole store."""
    require_store(store)
    sql = f"SELECT {', '.join(COLUMNS)} FROM flows WHERE id = ? LIMIT 1"

    def lookup(since: datetime | None, until: datetime | None) -> dict[str, Any] | None:
        con = connect(store, since=since, until=until, read_only=True)
        rows = _run(con, sql, [record_id]).to_pylist()
        con.close()
        return rows[0] if rows else None

    def attempt() -> dict[str, Any] | None:
        at = ulid_time(record_id)
        if at is not None:
            hit = lookup(at - timedelta(hours=1), at + timedelta(hours=1))
            if hit:
                return hit
        return lookup(None, None)

    return retrying(attempt)
