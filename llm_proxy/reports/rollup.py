"""What a report reads, day by day: cached roll-ups, or the rows themselves.

``scan`` splits a report into branches whose first phase is a ``GROUP BY`` of partial
aggregates; this module decides, per day of the store, where that phase comes from:

- a day wholly inside ``--since``/``--until``, closed (ended an hour ago or more) and not in the
  middle of a compaction swap is **packable**: its partials are read from the roll-up cache
  (``llm_proxy.store.rollups``) or computed — for all such days in one statement, sorted by day — and cached;
- every other day (partly in range, still being written, mid-swap) and the journal are read
  **live**, filtered on ``ts``.

The files come from the connection's own ``flows`` view (the listing ``views.connect`` made), so
the report counts exactly what a query over the view would; the store root is derived from them.

Percentiles are merged as log-bucket histograms: bucket ``round(ln(x)·K)`` with K = 100, each
bucket keeping its count, minimum and maximum. A percentile is read like ``quantile_cont``
(linear interpolation between the two order statistics around ``(n-1)·q``), an order statistic
inside a bucket by rank between its minimum and maximum. A bucket spans a factor e^(1/K), so the
value is within 1 % of the exact one (in practice far less), and *exact* whenever each bucket
holds one distinct value — always for small stores, whose values are rarely within 1 % of each
other. Cold, warm and partly cached runs merge the same histograms, so they agree exactly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from llm_proxy.store import rollups
from llm_proxy.store.layout import FLOWS_DIR
from llm_proxy.store.tiers import ARCHIVE_DIR, Partition, day_start
from llm_proxy.store.views import PartitionFiles, flows_sql, is_store

__all__ = ["HIST_K", "Day", "Plan", "Span", "Week", "bucket_sql", "normalise", "percentiles", "plan",
           "split_days"]

HIST_K = 100
_NONPOSITIVE = -1_000_000_000  # the bucket of zero and negative values
CLOSED_AFTER = timedelta(hours=1)  # a day is cached once it ended this long ago
_PARQUET = re.compile(r"'((?:[^']|'')*\.parquet)'")


@dataclass(slots=True)
class Day:
    date: str
    parts: list[PartitionFiles] = field(default_factory=list)
    members: str | None = None  # digest of its files when packable


@dataclass(slots=True)
class Week:
    """Packable days of one ISO week, read as one merged entry (see ``rollups.week_of``)."""

    name: str
    days: list[Day]
    digest: str


@dataclass(slots=True)
class Span:
    """Consecutive whole weeks, read as one merged entry (see ``rollups.span_name``)."""

    name: str
    weeks: list[Week]
    digest: str


@dataclass(slots=True)
class Plan:
    store: Path | None
    packable: list[Day]
    live: list[PartitionFiles]
    weeks: list[Week] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)


def bucket_sql(value: str) -> str:
    return (f"CASE WHEN ({value}) > 0 THEN CAST(round(ln({value}) * {HIST_K}) AS INTEGER) "
            f"ELSE {_NONPOSITIVE} END")


def _view_files(con: duckdb.DuckDBPyConnection) -> list[Path]:
    rows = con.execute("SELECT sql FROM duckdb_views() WHERE view_name = 'flows'").fetchall()
    row = rows[0] if rows else None
    if not row or not row[0]:
        return []
    return [Path(m.replace("''", "'")) for m in _PARQUET.findall(row[0])]


def _partition(path: Path) -> tuple[Partition, Path] | None:
    """The partition of a listed file and its store root (None: not a store path)."""
    parent = path.parent
    if parent.name.startswith("hour=") and parent.parent.name.startswith("date="):
        flows = parent.parent.parent
        root = flows.parent if flows.name == FLOWS_DIR else None
        part = Partition("hot", parent.parent.name[5:], int(parent.name[5:]), parent)
        return part, root  # type: ignore[return-value]
    if parent.name.startswith("date="):
        archive = parent.parent
        root = archive.parent if archive.name == ARCHIVE_DIR and is_store(archive.parent) else None
        return Partition("archive", parent.name[5:], None, parent), root  # type: ignore[return-value]
    return None


def plan(con: duckdb.DuckDBPyConnection, since: datetime | None, until: datetime | None,
         *, now: datetime | None = None, cache: bool = True) -> Plan:
    """Which days of the view can come from the cache, which partitions are read live."""
    folders: dict[Path, tuple[Partition, list[Path]]] = {}
    store: Path | None = None
    roots: set[Path | None] = set()
    for f in _view_files(con):
        found = _partition(f)
        if found is None:  # not laid out as a store: read everything live
            roots.add(None)
            continue
        part, root = found
        roots.add(root)
        folders.setdefault(part.path, (part, []))[1].append(f)
    if len(roots) == 1:
        store = next(iter(roots))
    days: dict[str, Day] = {}
    for part, files in folders.values():
        days.setdefault(part.date, Day(part.date)).parts.append(
            PartitionFiles(part, tuple(sorted(files))))
    now = now or datetime.now(UTC)
    packable: list[Day] = []
    live: list[PartitionFiles] = []
    for day in days.values():
        start = day_start(day.date)
        end = start + timedelta(days=1)
        ok = (cache and store is not None and (since is None or since <= start)
              and (until is None or end <= until) and end <= now - CLOSED_AFTER
              and not any(p.needs_dedupe for p in day.parts))
        if ok:
            try:
                day.members = rollups.day_members(f for p in day.parts for f in p.files)
            except FileNotFoundError:
                ok = False
        if ok:
            packable.append(day)
        else:
            live.extend(day.parts)
    packable.sort(key=lambda d: d.date)
    weeks = _weeks(days, packable)
    return Plan(store, packable, live, weeks, _spans(weeks))


def _spans(weeks: list[Week]) -> list[Span]:
    """Runs of two or more consecutive whole weeks."""
    runs: list[list[Week]] = []
    for week in weeks:
        if runs and rollups.span_weeks(rollups.span_name(runs[-1][-1].name, week.name)) == [
                runs[-1][-1].name, week.name]:
            runs[-1].append(week)
        else:
            runs.append([week])
    return [Span(rollups.span_name(run[0].name, run[-1].name), run,
                 rollups.week_digest({w.name: w.digest for w in run}))
            for run in runs if len(run) >= 2]


def _weeks(days: dict[str, Day], packable: list[Day]) -> list[Week]:
    """Weeks of two or more days of which every day the store has is packable: the same
    weeks whatever the report's range, so their merged entries are shared between reports."""
    by_week: dict[str, list[Day]] = {}
    for day in days.values():
        by_week.setdefault(rollups.week_of(day.date), []).append(day)
    ready = {d.date for d in packable}
    weeks = []
    for name, members in sorted(by_week.items()):
        if len(members) >= 2 and all(d.date in ready for d in members):
            members.sort(key=lambda d: d.date)
            weeks.append(Week(name, members, rollups.week_digest(
                {d.date: d.members or "" for d in members})))
    return weeks


def source_sql(parts: Sequence[PartitionFiles], *, with_journal: bool) -> str:
    """The rows of exactly these partitions (and the connection's journal), like ``flows``."""
    return flows_sql(parts, with_journal=with_journal)


def normalise(table: pa.Table) -> pa.Table:
    """Types that survive Parquet unchanged: DuckDB's HUGEINT sums arrive as decimal(38,0)."""
    fields = []
    for f in table.schema:
        t = f.type
        if pa.types.is_decimal(t):
            t = pa.int64() if t.scale == 0 else pa.float64()
        elif pa.types.is_string_view(t) or pa.types.is_large_string(t):
            t = pa.string()
        fields.append(pa.field(f.name, t))
    schema = pa.schema(fields)
    return table if schema.equals(table.schema) else table.cast(schema)


def split_days(table: pa.Table, column: str = "_day") -> dict[str, pa.Table]:
    """Rows per day (``column`` dropped), for one cache entry each. The rows come sorted by
    day (``ORDER BY``: DuckDB sorts in parallel), so each day is a zero-copy slice — filtering
    once per day, or a ``take`` here, moved millions of rows 30 times or once in one thread."""
    out: dict[str, pa.Table] = {}
    if table.num_rows == 0:
        return out
    counts = pc.value_counts(table.column(column)).to_pylist()
    rest = table.drop_columns([column])
    offset = 0
    for item in sorted(counts, key=lambda c: c["values"]):
        out[item["values"].isoformat()] = rest.slice(offset, item["counts"])
        offset += item["counts"]
    return out


def percentiles(hist: pa.Table, keys: Sequence[str],
                qs: Sequence[float]) -> dict[tuple[Any, ...], list[float]]:
    """``{(_gid, *keys): [p(q)…]}`` from merged histogram rows (columns ``_gid``, ``keys``,
    ``_hb``, ``_n``, ``_lo``, ``_hi``; one row per group and bucket).

    Like ``quantile_cont``: the value at position (n-1)·q, interpolated linearly between the
    order statistics on either side; an order statistic inside a bucket is placed by rank
    between the bucket's minimum and maximum. Vectorised (numpy): a window function over a
    million buckets in SQL costs several times more.
    """
    if hist.num_rows == 0:
        return {}
    group = np.zeros(hist.num_rows, dtype=np.int64)
    groups = 1
    for name in ["_gid", *keys]:
        encoded = pc.dictionary_encode(hist.column(name).combine_chunks())
        size = len(encoded.dictionary) + 1
        codes = pc.fill_null(encoded.indices, size - 1).to_numpy(zero_copy_only=False)
        if groups * size >= 1 << 31:  # renumber densely before the product could overflow
            group = np.unique(group, return_inverse=True)[1]
            groups = int(group.max()) + 1
        group = group * size + codes.astype(np.int64)
        groups *= size
    hb = hist.column("_hb").to_numpy().astype(np.int64)
    hb -= hb.min()
    if groups * (int(hb.max()) + 1) < 1 << 62:  # one integer sort key: much faster
        order = np.argsort(group * (int(hb.max()) + 1) + hb)
    else:
        order = np.lexsort((hb, group))
    group = group[order]
    n = hist.column("_n").to_numpy()[order].astype(np.int64)
    lo = hist.column("_lo").to_numpy()[order]
    hi = hist.column("_hi").to_numpy()[order]
    starts = np.concatenate(([0], np.flatnonzero(np.diff(group)) + 1))
    cum = np.cumsum(n)
    total = np.add.reduceat(n, starts)
    before_group = cum[starts] - n[starts]

    def value_at(rank: np.ndarray) -> np.ndarray:
        b = np.searchsorted(cum, before_group + rank, side="right")
        within = before_group + rank - (cum[b] - n[b])
        step = (hi[b] - lo[b]) / np.maximum(n[b] - 1, 1)  # same operations as the SQL
        return np.where(n[b] == 1, lo[b], lo[b] + step * within)

    columns = []
    for q in qs:
        pos = (total - 1) * float(q)
        low, high = np.floor(pos), np.ceil(pos)
        v_low, v_high = value_at(low.astype(np.int64)), value_at(high.astype(np.int64))
        columns.append(v_low + (v_high - v_low) * (pos - low))
    firsts = hist.select(["_gid", *keys]).take(pa.array(order[starts]))
    labels = zip(*(firsts.column(c).to_pylist() for c in firsts.column_names), strict=True)
    values = np.column_stack(columns).tolist()
    return {tuple(label): v for label, v in zip(labels, values, strict=True)}
