"""One statement per report: every table a report shows comes from a single query.

Reports must stay under a second over ten million records, and each statement over the
``flows`` view pays for binding it (reading Parquet footers) before it reads a row, so a
report's groups, timeline, totals and side tables come from one statement. Inside it:

- **Low-cardinality sets** (per model, per day, totals, per error type…) are aggregated in two
  phases when every aggregate can be rolled up (sums, counts, max): phase one is a single
  ``GROUP BY`` over all their keys together (a small hash table fed by every row), phase two
  the grouping sets over that small result. Feeding every row to one hash table per set
  (``GROUPING SETS`` over the rows) costs several times more.
- **Side sets** with a high-cardinality key (users, endpoints, API keys, error messages) are
  separate ``UNION ALL`` branches that compute only the aggregates they show (top spenders
  need requests and dollars, not twelve sums), optionally over a filtered subset of rows.
- Percentiles cannot be rolled up: a report with such an aggregate (roll-up ``None``) groups
  its low-cardinality sets with ``GROUPING SETS`` over the rows directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb

from llm_proxy.reports.query import Scope, bucket_sql, group_sql, run, time_value, where_sql

__all__ = ["HEAVY_GROUPINGS", "Aggregate", "Side", "scan"]

# (name, SQL over the rows, roll-up of partial results: "sum" | "max" | "min" | None)
Aggregate = tuple[str, str, str | None]
# --by values with many distinct groups (thousands of users, endpoints with ids in them).
HEAVY_GROUPINGS = frozenset({"user", "endpoint", "key"})


@dataclass(frozen=True, slots=True)
class Side:
    """A grouping set over high-cardinality keys, computed in its own branch."""

    keys: tuple[str, ...]
    aggregates: tuple[str, ...] | None = None  # names of the report's aggregates; None: all
    where: str | None = None  # only rows matching this SQL condition
    extra: tuple[Aggregate, ...] = ()  # aggregates only this side computes (roll-up unused)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _mask(names: Sequence[str], members: Sequence[str]) -> int:
    """``grouping(names…)`` of a set: a bit (leftmost name highest) per name NOT in the set."""
    return sum(1 << (len(names) - 1 - i) for i, k in enumerate(names) if k not in members)


def _grouping_sets(sets: Sequence[Sequence[str]]) -> str:
    return ", ".join("(" + ", ".join(_q(k) for k in m) + ")" for m in sets)


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
    light = [k for k in names if any(k in m for m in light_sets.values())]
    where, params = where_sql(scope)
    main_names = [name for name, _s, _r in aggregates]
    agg_sql = {name: sql for name, sql, _r in aggregates}
    for side in side_sets.values():
        agg_sql.update({name: sql for name, sql, _r in side.extra})
    agg_names = list(agg_sql)  # the output columns: the main aggregates, then the sides' own

    def rows(extra: str | None = None) -> str:
        cond: str = where
        if extra:
            cond = f"{where} AND ({extra})" if where else f"WHERE {extra}"
        cols = ", ".join(f"{key_sql[k]} AS {_q(k)}" for k in names)
        return f"SELECT {cols}, * FROM flows {cond}"

    def out_cols(present_keys: Sequence[str], values: Mapping[str, str]) -> str:
        ks = [_q(k) if k in present_keys else f"NULL AS {_q(k)}" for k in names]
        vs = [f"{values[n]} AS {_q(n)}" if n in values else f"NULL AS {_q(n)}"
              for n in agg_names]
        return ", ".join(ks + vs)

    light_cols = ", ".join(_q(k) for k in light) or "NULL"
    branches: list[str] = []
    masks: dict[tuple[int, int], str] = {}
    if all(rollup is not None for _n, _s, rollup in aggregates):
        partial = ", ".join(f"{agg_sql[n]} AS {_q(n)}" for n in main_names)
        final = {name: f"{rollup}({_q(name)})" for name, _s, rollup in aggregates}
        group_by = f"GROUP BY {light_cols}" if light else ""
        branches.append(
            f"SELECT 2 AS _phase, grouping({light_cols}) AS _gid, {out_cols(light, final)}\n"
            f"FROM (SELECT {light_cols}, {partial} FROM ({rows()}) {group_by})\n"
            f"GROUP BY GROUPING SETS ({_grouping_sets(list(light_sets.values()))})")
    else:
        branches.append(
            f"SELECT 2 AS _phase, grouping({light_cols}) AS _gid, "
            f"{out_cols(light, {n: agg_sql[n] for n in main_names})}\n"
            f"FROM ({rows()})\n"
            f"GROUP BY GROUPING SETS ({_grouping_sets(list(light_sets.values()))})")
    for set_name, members in light_sets.items():
        masks[(2, _mask(light, members))] = set_name
    for i, (set_name, side) in enumerate(side_sets.items()):
        names_wanted = [*(side.aggregates or main_names), *(n for n, _s, _r in side.extra)]
        wanted = {n: agg_sql[n] for n in names_wanted}
        cols = ", ".join(_q(k) for k in side.keys)
        branches.append(f"SELECT {100 + i}, 0, {out_cols(side.keys, wanted)}\n"
                        f"FROM ({rows(side.where)}) GROUP BY {cols}")
        masks[(100 + i, 0)] = set_name
    sql = "\nUNION ALL\n".join(branches).replace("grouping(NULL)", "0")
    all_params = params * len(branches)

    additive = {name for name, _s, rollup in aggregates if rollup == "sum"}
    members_of = {**light_sets, **{n: s.keys for n, s in side_sets.items()}}
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in members_of}
    for record in run(con, sql, all_params):
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
