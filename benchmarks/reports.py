"""How long each report takes over ten million records.

Usage: python benchmarks/reports.py [--records 10000000] [--store PATH] [--runs 3]

Reports read per-day roll-ups cached in ``STORE/.cache/rollups`` (``llm_proxy.reports.rollup``).
Each report is timed **cold** (the cache deleted first: the report computes and writes its
roll-ups) and **warm** (best of ``--runs`` with the cache in place); then the cost of warming
the whole store from nothing, as ``llm-audit compact`` does, is measured.

The store is generated once with ``benchmarks/synth.py`` (realistic records, vectorised,
written through the real writer: ``records_to_table`` schema, ``publish``, the partition
layout) into ``--store`` (default: a folder under the system temp dir, reused by later runs).
Each report is timed in-process the way ``llm-audit report`` runs it: ``connect()`` to the
store, then the report's one query, best of ``--runs``; wall and CPU seconds are printed with
the load average, because on a shared two-core machine other processes inflate wall time.

The baseline, measured in the same run: a bare DuckDB aggregate over the same Parquet files
(``SELECT count(*), sum(cost_usd), sum(input_tokens), sum(output_tokens) FROM read_parquet(…)``,
no views, no grouping), i.e. the cost of merely reading the columns a report needs; each
report's time is also printed as a ratio to it.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from llm_proxy.reports import REPORT_KINDS, Scope, build_report, choose_bucket
from llm_proxy.store import rollups, views

GROUPINGS = ("model", "user", "day")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def ensure_store(store: Path, records: int) -> None:
    """Generate the synthetic store unless one of that size is already there."""
    marker = store / f".bench-{records}"
    if marker.exists():
        return
    from synth import SynthSpec, write_store

    print(f"generating {records:,} records into {store} (once) …", file=sys.stderr)
    stats = write_store(store, SynthSpec(records=records, days=30))
    print(f"  {stats['files']:,} files, {stats['bytes'] / 1e9:.2f} GB, "
          f"{stats['seconds']:.0f} s", file=sys.stderr)
    marker.write_text("ok\n")


def time_baseline(store: Path, runs: int) -> float:
    """Best wall time of a bare aggregate over every Parquet file of the store."""
    import duckdb

    glob = str(store / "flows" / "*" / "*" / "*.parquet")
    best = float("inf")
    for _ in range(runs):
        con = duckdb.connect()
        t = time.perf_counter()
        con.execute("SELECT count(*), sum(cost_usd), sum(input_tokens), sum(output_tokens) "
                    "FROM read_parquet(?)", [glob]).fetchall()
        best = min(best, time.perf_counter() - t)
        con.close()
    return best


def _scope(store: Path, by: str) -> Scope:
    first, last = None, None
    days = sorted(p.name[5:] for p in (store / "flows").iterdir() if p.name.startswith("date="))
    if days:
        from datetime import UTC, datetime

        first = datetime.fromisoformat(days[0]).replace(tzinfo=UTC)
        last = datetime.fromisoformat(days[-1]).replace(tzinfo=UTC)
    return Scope(by=by, bucket=choose_bucket(first, last), limit=25)


def time_report(store: Path, kind: str, by: str, runs: int, *,
                cold: bool = False) -> tuple[float, float, float]:
    """(best wall seconds, its CPU seconds, its connect seconds) of one report; ``cold``: one
    run with the roll-up cache deleted first."""
    scope = _scope(store, by)
    best = (float("inf"), 0.0, 0.0)
    for _ in range(1 if cold else runs):
        if cold:
            rollups.clear(store)
        c0, t0 = _cpu(), time.perf_counter()
        con = views.connect(store)
        t1 = time.perf_counter()
        build_report(con, kind, scope)
        con.close()
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
        if wall < best[0]:
            best = (wall, cpu, t1 - t0)
    return best


def run_matrix(store: Path, runs: int, groupings: tuple[str, ...] = GROUPINGS,
               ) -> dict[tuple[str, str], tuple]:
    results = {}
    print(f"\n{'report':8} {'by':6} {'cold s':>7} {'warm s':>7} {'warm cpu':>8} {'connect':>7} "
          f"{'load':>5}")
    for kind in REPORT_KINDS:
        for by in groupings:
            cold, _c, _n = time_report(store, kind, by, runs, cold=True)
            wall, cpu, conn = time_report(store, kind, by, runs)
            results[(kind, by)] = (cold, wall, cpu, conn)
            flag = "" if wall < 1.0 else "  > 1 s"
            print(f"{kind:8} {by:6} {cold:7.3f} {wall:7.3f} {cpu:8.3f} {conn:7.3f} "
                  f"{os.getloadavg()[0]:5.1f}{flag}", flush=True)
    return results


def time_warmup(store: Path) -> None:
    """Warm every standard report from an empty cache, as ``llm-audit compact`` does."""
    from llm_proxy.reports.warm import warm

    rollups.clear(store)
    result = warm(store)
    size = sum(f.stat().st_size for f in rollups.cache_root(store).rglob("*.parquet"))
    print(f"\nwarm-up from an empty cache (every kind x every --by x hour/day): "
          f"{result.seconds:.1f} s for {result.files} files ({result.per_file * 1000:.0f} ms per "
          f"file), {result.entries} entries, {size / 1e6:.0f} MB; load {os.getloadavg()[0]:.1f}")
    again = warm(store)
    print(f"warm-up with nothing missing: {again.seconds:.2f} s")


def time_cli(store: Path) -> float:
    """One end-to-end ``llm-audit report cost --format json`` (interpreter start included)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "llm_proxy", "report", "cost", "--store", str(store),
                    "--format", "json"], check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--by", default=",".join(GROUPINGS),
                        help="groupings to time (comma-separated; every one: "
                             "model,user,day,hour,provider,endpoint,key)")
    args = parser.parse_args()
    store = args.store or Path(tempfile.gettempdir()) / f"llm-audit-bench-reports-{args.records}"
    ensure_store(store, args.records)
    print(f"store {store}: {len(list((store / 'flows').rglob('*.parquet'))):,} files, "
          f"{args.records:,} records; {os.cpu_count()} cores")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    baseline = time_baseline(store, args.runs)
    print(f"baseline: bare DuckDB aggregate over the same files {baseline:.3f} s")
    results = run_matrix(store, args.runs, tuple(args.by.split(",")))
    worst = max(w for _c, w, _p, _n in results.values())
    worst_cold = max(c for c, _w, _p, _n in results.values())
    print(f"slowest warm report: {worst:.2f} s = {worst / baseline:.1f}x the baseline "
          f"(target < 1 s); slowest cold: {worst_cold:.2f} s = {worst_cold / baseline:.1f}x")
    time_warmup(store)  # ends with a warm cache: the CLI below finds its entries
    print(f"end to end `llm-audit report cost --format json` (warm): {time_cli(store):.2f} s "
          "(interpreter start and imports included)")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
