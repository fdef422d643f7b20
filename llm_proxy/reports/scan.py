"""One statement per report, over per-day partial aggregates that are cached between reports.

Reports must stay under a second over ten million records. Reading 10–20 columns of every row
(and sorting them for exact percentiles) cannot, so every table of a report is computed in two
phases, and the first phase is cached per day of the store (``llm_proxy.reports.rollup``):

- **Branches.** The low-cardinality sets (per model, per day, totals, per error type…) share one
  branch: phase one is a ``GROUP BY`` over all their keys together, phase two the grouping sets
  over that. **Side sets** with a high-cardinality key (users, endpoints, API keys, error
  messages) are branches of their own that compute only the aggregates they show, optionally
  over a filtered subset of rows.
- **Partials.** Phase one of each branch yields partial rows per day: sums, counts, maxima and
  minima roll up as they are (``"sum"``, ``"max"``, ``"min"``); an average keeps its sum and
  count (``mean``); percentiles keep a log-bucket histogram (``quantiles``, see ``rollup``).
  A branch's partial rows of a closed day wholly in range are cached under a signature of its
  SQL; other days and the journal are computed live, filtered on ``ts``, in the same statement.
- **One final statement** re-aggregates the partials of every branch (cached ones are handed to
  DuckDB as Arrow tables), so a report still binds the store once.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Container, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from llm_proxy.errors import QueryError
from llm_proxy.reports import rollup
from llm_proxy.reports.query import (
    Scope,
    bucket_sql,
    group_sql,
    run,
    run_arrow,
    time_value,
    where_sql,
)
from llm_proxy.store import rollups

__all__ = ["HEAVY_GROUPINGS", "Aggregate", "Side", "WarmStats", "mean", "quantiles", "scan",
           "warming"]

# (name, SQL, roll-up). Roll-up "sum" | "max" | "min": SQL is an aggregate over the rows, merged
# with that function. "avg" and "quantiles:q,…": SQL is a value expression (NULL where it does
# not count); build those with ``mean`` and ``quantiles``.
Aggregate = tuple[str, str, str]
# --by values with many distinct groups (thousands of users, endpoints with ids in them).
HEAVY_GROUPINGS = frozenset({"user", "endpoint", "key"})
_FORMAT = 1  # bump when the partial layout changes: old cache entries are then ignored


@dataclass(frozen=True, slots=True)
class Side:
    """A grouping set over high-cardinality keys, computed in its own branch."""

    keys: tuple[str, ...]
    aggregates: tuple[str, ...] | None = None  # names of the report's aggregates; None: all
    where: str | None = None  # only rows matching this SQL condition
    extra: tuple[Aggregate, ...] = ()  # aggregates only this side computes


def _filtered(value: str, where: str | None) -> str:
    return f"CASE WHEN {where} THEN {value} END" if where else value


def mean(value: str, where: str | None = None) -> tuple[str, str]:
    """SQL and roll-up of ``avg(value) FILTER (WHERE where)``, mergeable as sum and count."""
    return _filtered(value, where), "avg"


def quantiles(value: str, qs: Sequence[float], where: str | None = None) -> tuple[str, str]:
    """SQL and roll-up of ``quantile_cont(value, qs) FILTER (WHERE where)`` (a list), merged
    from log-bucket histograms (see ``llm_proxy.reports.rollup`` for the accuracy)."""
    return _filtered(value, where), "quantiles:" + ",".join(repr(float(q)) for q in qs)


@dataclass(slots=True)
class WarmStats:
    """What ``warming`` computed: entries written, days and source files they cover."""

    entries: int = 0
    days: set[str] = field(default_factory=set)
    files: set[str] = field(default_factory=set)
    seconds: float = 0.0


_WARMING: ContextVar[WarmStats | None] = ContextVar("rollup_warming", default=None)


@contextmanager
def warming() -> Iterator[WarmStats]:
    """Inside, ``scan`` only computes and caches missing partials and returns empty results."""
    stats = WarmStats()
    token = _WARMING.set(stats)
    try:
        yield stats
    finally:
        _WARMING.reset(token)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _mask(names: Sequence[str], members: Sequence[str]) -> int:
    """``grouping(names…)`` of a set: a bit (leftmost name highest) per name NOT in the set."""
    return sum(1 << (len(names) - 1 - i) for i, k in enumerate(names) if k not in members)


def _grouping_sets(sets: Sequence[Sequence[str]], extra: str = "") -> str:
    return ", ".join("(" + ", ".join([*(_q(k) for k in m), *([extra] if extra else [])]) + ")"
                     for m in sets)


_HIST_COLS = ("_part", "_hb", "_n", "_lo", "_hi")


@dataclass(frozen=True, slots=True)
class _Branch:
    """One phase-one ``GROUP BY`` (its partials) and the grouping sets re-aggregating it."""

    phase: int
    keys: tuple[str, ...]
    sets: tuple[tuple[str, ...], ...]
    aggs: tuple[Aggregate, ...]
    where: str | None

    def scalars(self) -> list[tuple[str, str, str]]:
        """(partial column, its SQL over the rows, final SQL over the partials)."""
        out = []
        for i, (name, sql, roll) in enumerate(self.aggs):
            col = f"_s{i}"
            if roll in ("sum", "max", "min"):
                out.append((col, sql, f"{roll}({col}) AS {_q(name)}"))
            elif roll == "avg":
                out.append((col, f"sum({sql})", ""))
                out.append((col + "c", f"count({sql})",
                            f"sum({col}) / nullif(sum({col}c), 0) AS {_q(name)}"))
            elif not roll.startswith("quantiles:"):
                raise ValueError(f"aggregate {name!r}: roll-up {roll!r} cannot be merged")
        return out

    def hists(self) -> list[tuple[str, str, tuple[float, ...]]]:
        """(aggregate name, value SQL, quantiles) of the percentile aggregates, in order."""
        return [(name, sql, tuple(float(q) for q in roll.split(":", 1)[1].split(",")))
                for name, sql, roll in self.aggs if roll.startswith("quantiles:")]

    def columns(self) -> list[str]:
        return [*self.keys, *_HIST_COLS, *(c for c, _s, _f in self.scalars())]

    def signature(self, key_sql: Mapping[str, str]) -> str:
        spec = [_FORMAT, rollup.HIST_K, [(k, key_sql[k]) for k in self.keys], self.where,
                [list(a) for a in self.aggs]]
        return hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:16]

    def partial_sql(self, key_sql: Mapping[str, str], source: str, cond: str,
                    *, by_day: bool) -> str:
        """Phase one over ``source`` rows matching ``cond``: scalar rows (``_part`` 0), then
        histogram rows (``_part`` j for the j-th percentile aggregate)."""
        keys = ", ".join(f"{key_sql[k]} AS {_q(k)}" for k in self.keys)
        rows = f"SELECT {keys}{', date AS _day' if by_day else ''}, * FROM ({source}) {cond}"
        group = ", ".join(_q(k) for k in (["_day"] if by_day else []) + list(self.keys))
        scalars = self.scalars()
        where = f"({self.where})" if self.where else "true"
        parts = [
            f"SELECT {group}, 0 AS _part, NULL::INTEGER AS _hb, NULL::BIGINT AS _n, "
            f"NULL::DOUBLE AS _lo, NULL::DOUBLE AS _hi"
            + "".join(f", {sql} AS {col}" for col, sql, _f in scalars)
            + f" FROM ({rows}) WHERE {where} GROUP BY {group}"]
        for j, (_name, value, _qs) in enumerate(self.hists(), 1):
            parts.append(
                f"SELECT {group}, {j}, {rollup.bucket_sql(value)} AS _hb, count(*), "
                f"min({value})::DOUBLE, max({value})::DOUBLE"
                + "".join(f", NULL AS {col}" for col, _s, _f in scalars)
                + f" FROM ({rows}) WHERE {where} AND ({value}) IS NOT NULL "
                f"GROUP BY {group}, _hb")
        return "\nUNION ALL\n".join(parts)

    def merge_sql(self, entries: Sequence[Path]) -> str:
        """Partials of several days merged into the partials of their union (a week entry):
        the same columns, each scalar rolled up by its own function, histograms by bucket."""
        src = "read_parquet([" + ", ".join(
            "'" + str(p).replace("'", "''") + "'" for p in entries) + "])"
        merges: list[tuple[str, str]] = []
        for i, (_name, _sql, roll) in enumerate(self.aggs):
            if roll in ("sum", "max", "min"):
                merges.append((f"_s{i}", roll))
            elif roll == "avg":
                merges += [(f"_s{i}", "sum"), (f"_s{i}c", "sum")]
        keys = "".join(f"{_q(k)}, " for k in self.keys)
        group = f"GROUP BY {keys.rstrip(', ')}" if self.keys else ""
        scalars = "".join(f", {fn}({c}) AS {c}" for c, fn in merges)
        nulls = "".join(f", NULL AS {c}" for c, _fn in merges)
        sql = (f"SELECT {keys}0 AS _part, NULL::INTEGER AS _hb, NULL::BIGINT AS _n, "
               f"NULL::DOUBLE AS _lo, NULL::DOUBLE AS _hi{scalars} "
               f"FROM {src} WHERE _part = 0 {group}")
        if self.hists():
            sql += (f"\nUNION ALL\nSELECT {keys}_part, _hb, sum(_n)::BIGINT, min(_lo), "
                    f"max(_hi){nulls} FROM {src} WHERE _part > 0 GROUP BY {keys}_part, _hb")
        return sql

    def final_sql(self, partials: str, names: Sequence[str], agg_names: Sequence[str]) -> str:
        """Phase two of the sums, counts and averages: this branch's rows of the report."""
        kc = ", ".join(_q(k) for k in self.keys)
        finals = [f for _c, _s, f in self.scalars() if f]
        values = {name for name, _s, roll in self.aggs if not roll.startswith("quantiles:")}
        cols = [_q(k) if k in self.keys else f"NULL AS {_q(k)}" for k in names]
        cols += [_q(n) if n in values else f"NULL AS {_q(n)}" for n in agg_names]
        return (f"SELECT {self.phase} AS _phase, _gid, {', '.join(cols)} FROM "
                f"(SELECT grouping({kc}) AS _gid, {', '.join([kc, *finals])} "
                f"FROM {partials} WHERE _part = 0 GROUP BY GROUPING SETS "
                f"({_grouping_sets(self.sets)}))")

    def hist_sql(self, partials: str) -> str:
        """Every percentile aggregate's histograms (``_part`` j for the j-th) merged per
        grouping set and bucket: one scan of the partials for all of them."""
        kc = ", ".join(_q(k) for k in self.keys)
        if len(self.sets) == 1 and self.sets[0] == self.keys:  # a plain GROUP BY is faster
            gid, group_by = "0", f"{kc}, _part, _hb"
        else:
            gid, group_by = f"grouping({kc})", \
                f"GROUPING SETS ({_grouping_sets(self.sets, '_part, _hb')})"
        return (f"SELECT _part, {gid} AS _gid, {kc}, _hb, sum(_n)::BIGINT AS _n, "
                f"min(_lo) AS _lo, max(_hi) AS _hi FROM {partials} WHERE _part > 0 "
                f"GROUP BY {group_by}")


def _cached(con: duckdb.DuckDBPyConnection, plan: rollup.Plan, branch: _Branch,
            key_sql: Mapping[str, str]) -> tuple[list[Path], list[pa.Table]]:
    """The branch's partials of every packable day: cache entries to read (paths), and the
    partials of days that had none, computed in one statement and cached.

    Three levels, the coarsest present wins: a span (consecutive whole weeks), a week, a day.
    What is missing is built from the level below (days from the rows, weeks from days, spans
    from weeks) and cached for the next report.
    """
    if not plan.packable or plan.store is None:
        return [], []
    store = plan.store
    sig = branch.signature(key_sql)
    expected = branch.columns()
    warm = _WARMING.get()

    def present(path: Path) -> bool:
        if warm is not None:  # warming: only what is missing
            return path.exists()
        return rollups.entry_columns(path) == expected

    def merge(path: Path, parts: list[Path]) -> tuple[pa.Table, bool]:
        merged = rollup.normalise(run_arrow(con, branch.merge_sql(parts)))
        written = rollups.write_entry(path, merged)
        if warm is not None:
            warm.entries += int(written)
        return merged, written

    span_path = {s.name: rollups.entry_path(store, sig, s.name, s.digest) for s in plan.spans}
    spans_ready = {s.name for s in plan.spans if present(span_path[s.name])}
    in_spans = {w.name for s in plan.spans if s.name in spans_ready for w in s.weeks}
    weeks = [w for w in plan.weeks if w.name not in in_spans]
    week_path = {w.name: rollups.entry_path(store, sig, w.name, w.digest) for w in plan.weeks}
    weeks_ready = {w.name for w in weeks if present(week_path[w.name])}
    covered = {d.date for w in plan.weeks if w.name in in_spans | weeks_ready for d in w.days}
    needed = [d for d in plan.packable if d.date not in covered]
    day_path = {d.date: rollups.entry_path(store, sig, d.date, d.members or "") for d in needed}
    on_disk = {d.date for d in needed if present(day_path[d.date])}
    missing = [d for d in needed if d.date not in on_disk]
    in_memory: dict[str, pa.Table] = {}
    if missing:
        source = rollup.source_sql([p for d in missing for p in d.parts], with_journal=False)
        fresh = rollup.normalise(run_arrow(con, branch.partial_sql(
            key_sql, source, "", by_day=True) + "\nORDER BY _day"))
        per_day = rollup.split_days(fresh)
        empty = fresh.drop_columns(["_day"]).slice(0, 0)
        for day in missing:
            table = per_day.get(day.date, empty)
            written = rollups.write_entry(day_path[day.date], table)
            if written:
                on_disk.add(day.date)
            if warm is not None:
                warm.entries += int(written)
                warm.days.add(day.date)
                warm.files.update(str(f) for p in day.parts for f in p.files)
            in_memory[day.date] = table
    week_table: dict[str, pa.Table] = {}
    for week in weeks:  # missing weeks, from their days' entries (an unwritable cache: none)
        if week.name not in weeks_ready and all(d.date in on_disk for d in week.days):
            week_table[week.name], written = merge(week_path[week.name],
                                                   [day_path[d.date] for d in week.days])
            if written:
                weeks_ready.add(week.name)
            covered.update(d.date for d in week.days)
    read = [span_path[s] for s in sorted(spans_ready)]
    tables: list[pa.Table] = []
    for span in plan.spans:  # missing spans, from their weeks' entries
        if span.name in spans_ready or not all(w.name in weeks_ready for w in span.weeks):
            continue
        tables.append(merge(span_path[span.name], [week_path[w.name] for w in span.weeks])[0])
        in_spans.update(w.name for w in span.weeks)
    for week in weeks:
        if week.name not in in_spans:
            _take(week.name, week_table, weeks_ready, week_path, tables, read)
    for day in needed:
        if day.date not in covered:
            _take(day.date, in_memory, on_disk, day_path, tables, read)
    return read, tables


def _take(key: str, built: Mapping[str, pa.Table], ready: Container[str],
          path: Mapping[str, Path], tables: list[pa.Table], read: list[Path]) -> None:
    """An entry built in this call is used from memory, else a cached one is read."""
    if key in built:
        tables.append(built[key])
    elif key in ready:
        read.append(path[key])


def _concat(tables: Sequence[pa.Table]) -> pa.Table:
    """Partials of one branch from cache entries and live rows, in one Arrow table."""
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowException:  # e.g. a key typed differently in an old entry: align on the last
        schema = tables[-1].schema
        return pa.concat_tables([t.select(schema.names).cast(schema) for t in tables])


def _final(con: duckdb.DuckDBPyConnection, scope: Scope, plan: rollup.Plan,
           branches: Sequence[_Branch], packed: Sequence[tuple[list[Path], list[pa.Table]]],
           key_sql: Mapping[str, str], names: Sequence[str], agg_names: Sequence[str],
           ) -> tuple[list[tuple], dict[int, dict[str, dict[tuple[Any, ...], list[float]]]]]:
    """Phase two over cached, fresh and live partials: the report's rows and percentiles."""
    where, params = where_sql(scope)
    live = rollup.source_sql(plan.live, with_journal=True)
    selects: list[str] = []
    registered: list[str] = []
    pcts: dict[int, dict[str, dict[tuple[Any, ...], list[float]]]] = {}
    try:
        for i, (branch, (paths, tables)) in enumerate(zip(branches, packed, strict=True)):
            fresh = rollup.normalise(run_arrow(con, branch.partial_sql(
                key_sql, live, where, by_day=False), params * (1 + len(branch.hists()))))
            name = f"_rollup_{secrets.token_hex(4)}_{i}"
            con.register(name, _concat([*tables, fresh]))
            registered.append(name)
            cols = ", ".join(_q(c) for c in branch.columns())
            partials = f"SELECT {cols} FROM {name}"
            if paths:
                files = ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths)
                partials += f" UNION ALL SELECT {cols} FROM read_parquet([{files}])"
            partials = f"({partials})"
            selects.append(branch.final_sql(partials, names, agg_names))
            if branch.hists():
                hists = run_arrow(con, branch.hist_sql(partials))
                parts = hists.column("_part")
                for j, (agg, _value, qs) in enumerate(branch.hists(), 1):
                    hist = hists.filter(pc.equal(parts, j)).drop_columns(["_part"])
                    pcts.setdefault(branch.phase, {})[agg] = rollup.percentiles(
                        hist, list(branch.keys), qs)
        return run(con, "\nUNION ALL\n".join(selects)), pcts
    finally:
        for name in registered:
            con.unregister(name)


def scan(con: duckdb.DuckDBPyConnection, scope: Scope, aggregates: Sequence[Aggregate], *,
         keys: Mapping[str, str] | None = None, sets: Mapping[str, Sequence[str]] | None = None,
         sides: Mapping[str, Side] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Rows per set, as dicts of key and aggregate names.

    Always present: ``groups`` (key ``group``), ``timeline`` (key ``bucket``, sorted) and
    ``totals`` (one row). ``keys`` names extra key expressions; ``sets`` adds low-cardinality
    grouping sets over them, ``sides`` high-cardinality ones (e.g. top spenders per user).
    """
    light_sets: dict[str, tuple[str, ...]] = {"timeline": ("bucket",), "totals": ()}
    side_sets: dict[str, Side] = dict(sides or {})
    if scope.by in HEAVY_GROUPINGS:
        side_sets["groups"] = Side(("group",))
    else:
        light_sets["groups"] = ("group",)
    light_sets.update({n: tuple(m) for n, m in (sets or {}).items()})
    key_sql = {"group": group_sql(scope.by), "bucket": bucket_sql(scope.bucket), **(keys or {})}
    used = {k for m in light_sets.values() for k in m} | {k for s in side_sets.values()
                                                         for k in s.keys}
    names = [k for k in key_sql if k in used]
    light = tuple(k for k in names if any(k in m for m in light_sets.values()))
    main_names = [name for name, _s, _r in aggregates]
    by_name = {a[0]: a for a in aggregates}
    agg_names = [*main_names, *dict.fromkeys(
        a[0] for s in side_sets.values() for a in s.extra if a[0] not in by_name)]

    branches = [_Branch(2, light, tuple(light_sets.values()), tuple(aggregates), None)]
    masks: dict[tuple[int, int], str] = {(2, _mask(light, m)): n for n, m in light_sets.items()}
    for i, (set_name, side) in enumerate(side_sets.items()):
        wanted = [by_name[n] for n in (side.aggregates or main_names)] + list(side.extra)
        branches.append(_Branch(100 + i, tuple(side.keys), (tuple(side.keys),), tuple(wanted),
                                side.where))
        masks[(100 + i, 0)] = set_name

    warm = _WARMING.get()
    started = time.perf_counter()
    members_of = {**light_sets, **{n: s.keys for n, s in side_sets.items()}}
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in members_of}
    additive = {name for name, _s, roll in aggregates if roll == "sum"}
    plan = rollup.plan(con, scope.since, scope.until)
    packed = [_cached(con, plan, b, key_sql) for b in branches]
    if warm is not None:
        warm.seconds += time.perf_counter() - started
        out["totals"] = [{name: (0 if name in additive else None) for name in main_names}]
        return out
    try:
        records, pcts = _final(con, scope, plan, branches, packed, key_sql, names, agg_names)
    except QueryError:
        if not any(paths for paths, _t in packed):
            raise
        for paths, _tables in packed:  # an unreadable cache entry: drop them, read the rows
            for path in paths:
                path.unlink(missing_ok=True)
        plan = rollup.plan(con, scope.since, scope.until, cache=False)
        records, pcts = _final(con, scope, plan, branches, [([], [])] * len(branches),
                               key_sql, names, agg_names)

    positions = {k: 2 + i for i, k in enumerate(names)}
    keys_of = {b.phase: b.keys for b in branches}
    for record in records:
        target = masks.get((record[0], record[1]))
        if target is None:
            continue
        members = members_of[target]
        data = {k: v for k, v in zip(names, record[2:2 + len(names)], strict=True)
                if k in members}
        side_spec = side_sets.get(target)
        wanted_aggs = main_names if side_spec is None else \
            [*(side_spec.aggregates or main_names), *(n for n, _s, _r in side_spec.extra)]
        for name, value in zip(agg_names, record[2 + len(names):], strict=True):
            if name in wanted_aggs:
                data[name] = 0 if value is None and name in additive else value
        if record[0] in pcts:
            label = (record[1], *(record[positions[k]] for k in keys_of[record[0]]))
            for name, values in pcts[record[0]].items():
                data[name] = values.get(label)
        out[target].append(data)
    if not out["totals"]:
        out["totals"] = [{name: (0 if name in additive else None) for name in main_names}]
    for row in out["timeline"]:
        row["bucket"] = time_value(scope.bucket, row["bucket"])
    if scope.time_grouped:
        for row in out["groups"]:
            row["group"] = time_value(scope.by, row["group"])
    out["timeline"].sort(key=lambda r: r["bucket"])
    return out
