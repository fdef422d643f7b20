"""Recompute the cost columns of stored records after a price change.

``reprice_table`` is pure and vectorised (one price lookup per distinct provider/model, Arrow
for the arithmetic, in the same order of operations as ``compute_cost`` so a repriced record is
bit-for-bit what the capture worker would have written). ``reprice_store`` is the I/O shell:
Parquet files are never modified in place, so each changed file is written anew next to the old
one and swapped through ``publish(..., reason="reprice")``, the store's one path for files, which
keeps the integrity chain informed. Records still in the write-ahead journal are not touched:
they are priced when the proxy flushes them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from llm_proxy.pricing.table import DAY_US, FREE_OPERATIONS, PriceTable, TimeWindow
from llm_proxy.store import rollups
from llm_proxy.store.finalize import publish
from llm_proxy.store.layout import FLOWS_DIR, parquet_name

__all__ = ["COST_COLUMNS", "RepriceResult", "partition_files", "reprice_store", "reprice_table"]

COST_COLUMNS = ("cost_usd", "cost_input_usd", "cost_cached_input_usd", "cost_cache_write_usd",
                "cost_output_usd", "cost_reasoning_usd", "cost_request_usd", "price_version")
_COMPONENTS = COST_COLUMNS[:-1]
_PER_TOKEN = 1_000_000.0
_SEP = "\x1f"
_NO_TIER = 2**63 - 1


@dataclass(slots=True)
class RepriceResult:
    """What a reprice run did (or, with ``dry_run``, would do)."""

    price_version: str
    files_scanned: int = 0
    files_rewritten: int = 0
    records: int = 0
    records_changed: int = 0
    cost_before: float = 0.0
    cost_after: float = 0.0
    unpriced_records: int = 0


def _ints(table: pa.Table, name: str) -> pa.Array:
    return pc.fill_null(table.column(name).combine_chunks(), 0)


def _per_key(values: Sequence[object], idx: pa.Array, typ: pa.DataType) -> pa.Array:
    return pc.take(pa.array(values, typ), idx)


def reprice_table(table: pa.Table, prices: PriceTable) -> pa.Table:
    """``table`` with ``cost_*`` and ``price_version`` recomputed from its token columns."""
    n = table.num_rows
    if n == 0:
        return table
    model = pc.coalesce(table.column("response_model"), table.column("request_model"))
    keys = pc.binary_join_element_wise(pc.fill_null(table.column("provider"), ""),
                                       pc.fill_null(model, ""), _SEP)
    encoded = pc.dictionary_encode(keys).combine_chunks()
    idx = encoded.indices
    known: list[bool] = []
    threshold: list[int] = []
    normal: list[tuple[float, ...]] = []
    long: list[tuple[float, ...]] = []
    windowed: list[tuple[int, tuple[TimeWindow, ...]]] = []
    for k, key in enumerate(encoded.dictionary.to_pylist()):
        provider, _, name = key.partition(_SEP)
        price = prices.resolve(provider or None, name or None)
        known.append(price is not None)
        if price is None:
            normal.append((0.0,) * 6)
            long.append((0.0,) * 6)
            threshold.append(_NO_TIER)
            continue
        if price.time_windows:
            windowed.append((k, price.time_windows))
        normal.append(price.rates(0))
        if price.long_context is not None and price.long_context_threshold is not None:
            threshold.append(price.long_context_threshold)
            long.append(price.rates(price.long_context_threshold + 1))
        else:
            threshold.append(_NO_TIER)
            long.append(normal[-1])

    inp, out = _ints(table, "input_tokens"), _ints(table, "output_tokens")
    cached, write = _ints(table, "cached_input_tokens"), _ints(table, "cache_write_tokens")
    reasoning = pc.min_element_wise(_ints(table, "reasoning_tokens"), out)
    is_long = pc.greater(inp, _per_key(threshold, idx, pa.int64()))
    f64 = pa.float64()
    rates = [pc.if_else(is_long, _per_key([r[k] for r in long], idx, f64),
                        _per_key([r[k] for r in normal], idx, f64)) for k in range(6)]
    if windowed:  # time-window prices by the record's own timestamp (ModelPrice.rates)
        rates = _window_rates(rates, idx, table.column("ts"), windowed)
    # The same operations, in the same order, as table.compute_cost (IEEE: identical results).
    uncached = pc.max_element_wise(pc.subtract(pc.subtract(inp, cached), write), 0)
    c_in = pc.divide(pc.multiply(pc.cast(uncached, f64), rates[0]), _PER_TOKEN)
    c_cached = pc.divide(pc.multiply(pc.cast(cached, f64), rates[1]), _PER_TOKEN)
    c_write = pc.divide(pc.multiply(pc.cast(write, f64), rates[2]), _PER_TOKEN)
    c_out = pc.divide(pc.multiply(pc.cast(pc.subtract(out, reasoning), f64), rates[3]),
                      _PER_TOKEN)
    c_reason = pc.divide(pc.multiply(pc.cast(reasoning, f64), rates[4]), _PER_TOKEN)
    c_req = rates[5]
    total = pc.add(pc.add(pc.add(pc.add(pc.add(c_in, c_cached), c_write), c_out), c_reason),
                   c_req)

    free_ops = pc.fill_null(pc.is_in(table.column("operation"),
                                     value_set=pa.array(sorted(FREE_OPERATIONS))), False)
    no_tokens = pc.and_(pc.and_(pc.equal(inp, 0), pc.equal(out, 0)),
                        pc.and_(pc.equal(cached, 0), pc.equal(write, 0)))
    free = pc.or_(free_ops, no_tokens)
    unpriced = pc.and_(pc.invert(_per_key(known, idx, pa.bool_())), pc.invert(free))
    null = pa.scalar(None, f64)
    for name, values in zip(_COMPONENTS, (total, c_in, c_cached, c_write, c_out, c_reason, c_req),
                            strict=True):
        values = pc.if_else(unpriced, null, pc.if_else(free, 0.0, values))
        table = table.set_column(table.schema.get_field_index(name), name, values)
    version = pa.array([prices.version] * n, pa.string())
    return table.set_column(table.schema.get_field_index("price_version"), "price_version",
                            version)


def _floor_divmod(a: pa.Array, b: int) -> tuple[pa.Array, pa.Array]:
    """Python's divmod, element-wise (Arrow's integer division truncates toward zero)."""
    q = pc.divide(a, b)
    r = pc.subtract(a, pc.multiply(q, b))
    neg = pc.less(r, 0)
    return pc.if_else(neg, pc.subtract(q, 1), q), pc.if_else(neg, pc.add(r, b), r)


def _window_rates(rates: list[pa.Array], idx: pa.Array, ts: pa.ChunkedArray,
                  windowed: list[tuple[int, tuple[TimeWindow, ...]]]) -> list[pa.Array]:
    """``rates`` with each row inside one of its model's time windows at that window's rates.

    The same tests as ``TimeWindow.contains``; a row without a timestamp keeps the standard
    rates, as ``PriceTable.cost(at=None)`` does. Windows are applied last to first, so the
    first window containing a moment wins.
    """
    at = pc.cast(ts.combine_chunks(), pa.int64())
    day, tod = _floor_divmod(at, DAY_US)
    weekday = _floor_divmod(pc.add(day, 3), 7)[1]  # 1970-01-01 was a Thursday (Monday = 0)
    f64 = pa.float64()
    for k, windows in windowed:
        mine = pc.equal(idx, k)
        for window in reversed(windows):
            inside = pa.array([False] * len(at))
            for start, end in window.spans:
                if start < end:
                    span = pc.and_(pc.greater_equal(tod, start), pc.less(tod, end))
                elif start > end:
                    span = pc.or_(pc.greater_equal(tod, start), pc.less(tod, end))
                else:
                    span = pc.is_valid(tod)
                inside = pc.or_(inside, span)
            if window.weekdays is not None:
                inside = pc.and_(inside, pc.is_in(
                    weekday, value_set=pa.array(sorted(window.weekdays), pa.int64())))
            if window.except_days:
                inside = pc.and_(inside, pc.invert(pc.is_in(
                    day, value_set=pa.array(sorted(window.except_days), pa.int64()))))
            hit = pc.fill_null(pc.and_(mine, inside), False)
            wrates = window.price.rates(0)
            rates = [pc.if_else(hit, pa.scalar(wrates[j], f64), rates[j]) for j in range(6)]
    return rates


def partition_files(store: Path, since: datetime | None = None,
                    until: datetime | None = None) -> Iterator[Path]:
    """Finalised Parquet files whose hourly partition overlaps [since, until), oldest first."""
    flows = store / FLOWS_DIR
    if not flows.is_dir():
        return
    lo = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0) if since else None
    for date_dir in sorted(os.scandir(flows), key=lambda e: e.name):
        if not (date_dir.is_dir() and date_dir.name.startswith("date=")):
            continue
        for hour_dir in sorted(os.scandir(date_dir.path), key=lambda e: e.name):
            if not (hour_dir.is_dir() and hour_dir.name.startswith("hour=")):
                continue
            try:
                start = datetime.strptime(f"{date_dir.name[5:]} {hour_dir.name[5:]}",
                                          "%Y-%m-%d %H").replace(tzinfo=UTC)
            except ValueError:
                continue
            if (lo and start < lo) or (until and start >= until):
                continue
            for entry in sorted(os.scandir(hour_dir.path), key=lambda e: e.name):
                if entry.name.endswith(".parquet") and not entry.name.startswith("."):
                    yield Path(entry.path)


def _successor_name(old: Path) -> str:
    """A fresh name that keeps the old file's instance and journal sequence."""
    stem = old.name[: -len(".parquet")]
    parts = stem.rsplit("-", 2)
    if len(parts) == 3 and parts[1].isdigit():
        return parquet_name(parts[0], int(parts[1]))
    return parquet_name("reprice", int(time.time() * 1_000_000))


def _sum(table: pa.Table) -> float:
    value = pc.sum(table.column("cost_usd")).as_py()
    return float(value or 0.0)


def reprice_store(store: Path, prices: PriceTable, *, since: datetime | None = None,
                  until: datetime | None = None, dry_run: bool = False) -> RepriceResult:
    """Reprice every finalised file in range; only files whose costs change are rewritten."""
    result = RepriceResult(price_version=prices.version)
    for path in partition_files(store, since, until):
        old = pq.read_table(path)
        new = reprice_table(old, prices)
        result.files_scanned += 1
        result.records += old.num_rows
        result.cost_before += _sum(old)
        result.cost_after += _sum(new)
        result.unpriced_records += new.column("cost_usd").null_count
        before, after = old.select(COST_COLUMNS), new.select(COST_COLUMNS)
        if before.equals(after):
            continue
        changed = pa.array([False] * old.num_rows)
        for name in COST_COLUMNS:
            a, b = before.column(name), after.column(name)
            differs = pc.fill_null(pc.not_equal(a, b), True)
            both_null = pc.and_(pc.is_null(a), pc.is_null(b))
            changed = pc.or_(changed, pc.and_not(differs, both_null))
        result.records_changed += pc.sum(pc.cast(changed, pa.int64())).as_py() or 0
        result.files_rewritten += 1
        if not dry_run:
            publish(store, [(new, path.with_name(_successor_name(path)))], remove=[path],
                    reason="reprice")
    if result.files_rewritten and not dry_run:
        with suppress(OSError):  # cached report roll-ups of the repriced days
            rollups.prune(store)
    return result

