"""Search speed at scale: filtered and full-text search, tail -f ticks, bytes per record, FTS5.

Builds (or reuses) a store of ``--records`` synthetic records over 30 days of hourly partitions
(``benchmarks/synth.py``, written as ``llm-audit compact`` leaves closed hours: one indexed file
per hour), then measures, on this machine, in this run:

- filtered search: ``--user`` + ``--model`` + ``--since 24h`` (target < 0.5 s);
- full-text search over ``--since 7d`` of ~1 KiB bodies: a rare phrase, a rare word, a common
  phrase, a word that is nowhere, two common words (target < 2 s);
- the same text searches on an SQLite FTS5 table of the same 7 days (the ``llm`` CLI's schema:
  a ``responses`` table and an external-content ``responses_fts``), and the ratio;
- ``tail -f``'s per-tick cost on this store and on a one-hour store (must not grow);
- a small-files hour (the proxy's many flushes) before and after ``compact``;
- Parquet bytes per record vs. the same records as JSONL (target ≤ 1/4).

Timings are in-process medians of warm runs (page cache warm, a fresh DuckDB connection per
search as the CLI makes) plus one end-to-end CLI run (process start included).

Usage: python benchmarks/query.py [--records 10000000] [--store DIR] [--no-fts] [--rebuild]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import pyarrow.compute as pc
import pyarrow.parquet as pq
from synth import SynthSpec, write_store

from llm_proxy.store.compact import compact
from llm_proxy.store.follow import Follower
from llm_proxy.store.journal import encode_record
from llm_proxy.store.search import Filters
from llm_proxy.store.searcher import SearchStats, prepare, search
from llm_proxy.store.views import scan_partitions

TEXT_QUERIES = [
    ("rare phrase", '"project falcon"', '"project falcon"'),
    ("rare word", "falcon", "falcon"),
    ("common phrase", '"quarterly invoice"', '"quarterly invoice"'),
    ("absent word", "zyxwvutq", "zyxwvutq"),
    ("two common words", "invoice kubernetes", "invoice kubernetes"),
]


def timed(fn, runs: int = 5) -> tuple[float, float, object]:
    """(first run, median of the rest, last result)."""
    times, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times[0], statistics.median(times[1:] or times), result


def store_bytes(store: Path) -> tuple[int, int]:
    files = [f for p in scan_partitions(store) for f in p.files]
    return sum(f.stat().st_size for f in files), len(files)


def jsonl_bytes_per_record(store: Path, sample_files: int = 12) -> float:
    """Average size of a record as a journal (JSONL) line, from a sample of hours."""
    files = [f for p in scan_partitions(store) for f in p.files]
    step = max(1, len(files) // sample_files)
    total = rows = 0
    for f in files[::step][:sample_files]:
        for r in pq.read_table(f).to_pylist():
            r["ts"] = int(r["ts"].timestamp() * 1_000_000)
            total += len(encode_record(r))
            rows += 1
    return total / rows


def build_fts(store: Path, db: Path, since: datetime) -> tuple[int, float]:
    """The 7-day records into SQLite FTS5 the way ``llm`` logs them; returns (rows, seconds)."""
    t0 = time.perf_counter()
    db.unlink(missing_ok=True)
    con = sqlite3.connect(db)
    con.executescript("""
        PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
        CREATE TABLE responses (id TEXT PRIMARY KEY, model TEXT, prompt TEXT, response TEXT,
                                error TEXT, datetime_utc TEXT);
        CREATE VIRTUAL TABLE responses_fts USING fts5(prompt, response, error,
                                                      content='responses', content_rowid='rowid');
    """)
    rows = 0
    for part in scan_partitions(store, since=since):
        for f in part.files:
            t = pq.read_table(f, columns=["id", "ts", "request_model", "request_body",
                                          "response_body", "error_message"])
            t = t.filter(pc.greater_equal(t.column("ts"), since))
            con.executemany(
                "INSERT INTO responses VALUES (?, ?, ?, ?, ?, ?)",
                zip(t.column("id").to_pylist(), t.column("request_model").to_pylist(),
                    t.column("request_body").to_pylist(), t.column("response_body").to_pylist(),
                    t.column("error_message").to_pylist(),
                    pc.strftime(t.column("ts"), "%Y-%m-%dT%H:%M:%S").to_pylist(), strict=True))
            rows += t.num_rows
    con.execute("INSERT INTO responses_fts(rowid, prompt, response, error) "
                "SELECT rowid, prompt, response, error FROM responses")
    con.commit()
    con.close()
    return rows, time.perf_counter() - t0


def fts_search(db: Path, query: str, limit: int = 50) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return [r[0] for r in con.execute(
            "SELECT r.id FROM responses_fts f JOIN responses r ON r.rowid = f.rowid "
            "WHERE responses_fts MATCH ? ORDER BY r.datetime_utc DESC LIMIT ?", (query, limit))]
    finally:
        con.close()


def tick_cost(store: Path) -> tuple[float, int]:
    follower = Follower(store)
    follower.start()
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        follower.poll()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), follower.touched


def small_files_case(workdir: Path) -> dict[str, float]:
    """A day written as 120 flushes per hour (every 30 s), queried before and after compact."""
    store = workdir / "small-files"
    shutil.rmtree(store, ignore_errors=True)
    end = datetime.now(UTC) - timedelta(hours=2)
    write_store(store, SynthSpec(records=14_000, days=1, end=end, files_per_hour=120),
                progress=False)
    since = (end - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    query = Filters(user="user-0001", since=since)
    before = timed(lambda: search(store, prepare(query), limit=1000), 3)[1]
    files_before = store_bytes(store)[1]
    t0 = time.perf_counter()
    compact(store)
    compact_s = time.perf_counter() - t0
    after = timed(lambda: search(store, prepare(query), limit=1000), 3)[1]
    return {"files_before": files_before, "files_after": store_bytes(store)[1],
            "query_before_s": before, "query_after_s": after, "compact_s": compact_s}


def cli_seconds(store: Path, *args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "llm_proxy", "search", "--store", str(store),
                    "--format", "jsonl", *args], check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--rebuild", action="store_true", help="regenerate even if it exists")
    parser.add_argument("--no-fts", action="store_true", help="skip the SQLite FTS5 baseline")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    args = parser.parse_args()
    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / "llm-audit-bench"
    workdir.mkdir(parents=True, exist_ok=True)
    store = args.store or workdir / f"store-{args.records}"
    results: dict[str, object] = {"records": args.records, "cores": os.cpu_count(),
                                  "load_avg_at_start": os.getloadavg()}

    if args.rebuild or not (store / "flows").is_dir():
        shutil.rmtree(store, ignore_errors=True)
        print(f"generating {args.records:,} records into {store} …", flush=True)
        stats = write_store(store, SynthSpec(records=args.records, days=30, compacted=True))
        results["generate_s"] = round(stats["seconds"], 1)
        print(f"  {stats['seconds']:.0f} s")
    # "now" is the newest record: a reused store keeps meaning the same 24 h / 7 days
    newest = max(p.partition.end for p in scan_partitions(store))
    now = min(datetime.now(UTC), newest)
    iso = lambda dt: dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    since_24h, since_7d = iso(now - timedelta(hours=24)), iso(now - timedelta(days=7))

    parquet, files = store_bytes(store)
    jsonl = jsonl_bytes_per_record(store)
    results["bytes_per_record"] = round(parquet / args.records, 1)
    results["jsonl_bytes_per_record"] = round(jsonl, 1)
    results["parquet_to_jsonl"] = round(parquet / args.records / jsonl, 3)
    results["files"] = files
    print(f"store: {files} files, {parquet / 1e9:.2f} GB, {parquet / args.records:.0f} B/record;"
          f" JSONL {jsonl:.0f} B/record; ratio {parquet / args.records / jsonl:.2f} (≤ 0.25)")

    f = Filters(user="user-0003", model="gpt-4o", since=since_24h)
    first, med, rows = timed(lambda: search(store, prepare(f), limit=50))
    results["filtered_search_s"] = round(med, 3)
    results["filtered_search_first_s"] = round(first, 3)
    results["filtered_search_cli_s"] = round(
        cli_seconds(store, "--user", "user-0003", "--model", "gpt-4o", "--since", since_24h), 3)
    print(f"filtered search (user+model+24h): {med * 1000:.0f} ms median, first {first * 1000:.0f}"
          f" ms, CLI end-to-end {results['filtered_search_cli_s'] * 1000:.0f} ms, "
          f"{len(rows)} rows (< 500 ms)")

    db = workdir / f"fts-{args.records}.db"
    if not args.no_fts and (args.rebuild or not db.exists()):
        fts_rows, fts_build = build_fts(store, db, now - timedelta(days=7))
        results["fts_rows"], results["fts_build_s"] = fts_rows, round(fts_build, 1)
        print(f"SQLite FTS5 over the same 7 days: {fts_rows:,} rows, built in {fts_build:.0f} s")
    text_results = []
    for label, ours, fts_q in TEXT_QUERIES:
        stats = SearchStats()
        prepared = prepare(Filters(text=ours, since=since_7d))

        def run(p=prepared, s=stats):
            s.__init__()
            return search(store, p, limit=50, stats=s)

        first, med, rows = timed(run)
        entry = {"query": label, "text": ours, "median_s": round(med, 3),
                 "first_s": round(first, 3), "hits": len(rows),
                 "files_scanned": stats.files_scanned,
                 "files_skipped_by_index": stats.files_skipped_by_index}
        if not args.no_fts:
            _, fts_med, fts_rows_hit = timed(lambda q=fts_q: fts_search(db, q))
            entry["fts5_median_s"] = round(fts_med, 4)
            entry["fts5_hits"] = len(fts_rows_hit)
            entry["ratio_vs_fts5"] = round(med / fts_med, 1) if fts_med else None
        text_results.append(entry)
        extra = (f"; FTS5 {entry['fts5_median_s'] * 1000:.1f} ms ({entry['fts5_hits']} hits), "
                 f"×{entry['ratio_vs_fts5']}") if not args.no_fts else ""
        print(f"text {label:17} {ours!r:22}: {med * 1000:6.0f} ms median (first "
              f"{first * 1000:.0f}), {len(rows)} hits, scanned {stats.files_scanned} files, "
              f"skipped {stats.files_skipped_by_index}{extra}")
    results["text_search"] = text_results
    results["text_search_cli_s"] = round(cli_seconds(store, '"project falcon"', "--since",
                                                     since_7d), 3)
    print(f"text search CLI end-to-end: {results['text_search_cli_s'] * 1000:.0f} ms (< 2 s)")

    tick, touched = tick_cost(store)
    tiny = workdir / "tiny"
    shutil.rmtree(tiny, ignore_errors=True)
    write_store(tiny, SynthSpec(records=1000, days=1), progress=False)
    tiny_tick, _ = tick_cost(tiny)
    results["tail_tick_ms"] = round(tick * 1000, 2)
    results["tail_tick_tiny_store_ms"] = round(tiny_tick * 1000, 2)
    print(f"tail -f tick: {tick * 1000:.2f} ms on this store, {tiny_tick * 1000:.2f} ms on a "
          f"1,000-record store ({touched} files read per idle tick)")

    small = small_files_case(workdir)
    results["small_files"] = small
    print(f"small files: one day of 14,000 records in {small['files_before']} files → "
          f"{small['files_after']} after compact ({small['compact_s']:.1f} s); query "
          f"{small['query_before_s'] * 1000:.0f} ms → {small['query_after_s'] * 1000:.0f} ms")
    results["load_avg_at_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
