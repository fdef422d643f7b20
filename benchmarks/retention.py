"""Retention, chain appends and verify at production scale, each against a baseline in the same run.

  nothing-to-do   ``llm-audit retention apply`` on 7 years of hourly partitions (≈61,000) with
                  nothing due — what cron pays every few minutes. Target < 5 s. Baseline: a bare
                  ``os.scandir`` walk of the same folders.
  steady state    the seed config (retention 2555 d, archive after 90 d): 90 days hot, the rest
                  archived daily, nothing due.
  archive         a run that merges 30 days of hourly files into the archive tier.
  append          ``finalize.publish`` of one small file on an empty chain and on a chain of
                  N entries (the flusher's cost must not grow with the chain). Baseline: the
                  pre-chain writer (``parquet.write_parquet_atomic``) of the same table.
  verify          ``llm-audit verify`` of a store of 10,000 files (one chain entry each), with
                  head-only and with every signature checked. Baseline: SHA-256 of the files.

The 61,000-partition store is built by copying one small Parquet file (no chain: retention does
not need one); the verify store is built through ``publish``, the real path.

Usage: python benchmarks/retention.py [--days 2557] [--verify-files 10000] [--only nothing,verify]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llm_proxy.schema import empty_record  # noqa: E402
from llm_proxy.store.digest import sha256_file  # noqa: E402
from llm_proxy.store.finalize import publish  # noqa: E402
from llm_proxy.store.layout import FINAL_FILE_MODE, parquet_name  # noqa: E402
from llm_proxy.store.parquet import records_to_table, write_parquet_atomic  # noqa: E402
from llm_proxy.store.tiers import Tiers, list_partitions  # noqa: E402

END = datetime(2026, 11, 1, tzinfo=UTC)


def _table(ts: datetime, n: int = 5):  # noqa: ANN202
    rows = []
    for i in range(n):
        r = empty_record()
        r.update(id=f"01BENCH{int(ts.timestamp())}{i:04d}", ts=int(ts.timestamp() * 1e6) + i,
                 user_id=f"user{i}", method="POST", host="api.openai.com", status_code=200,
                 request_body="hello " * 50, input_tokens=10)
        rows.append(r)
    return records_to_table(rows)


def _seed_file(tmp: Path) -> bytes:
    path = tmp / "seed.parquet"
    write_parquet_atomic(_table(END), path)
    return path.read_bytes()


def build_hourly(store: Path, days: int, seed: bytes, *, hot_days: int | None = None) -> int:
    """``days`` days of hourly partitions, one small file each; older than ``hot_days`` archived."""
    n = 0
    for d in range(days):
        day = END - timedelta(days=d + 1)
        date = day.strftime("%Y-%m-%d")
        if hot_days is not None and d >= hot_days:
            folder = store / "archive" / f"date={date}"
            folder.mkdir(parents=True)
            _write(folder / parquet_name("archive", d), seed)
            n += 1
            continue
        for hour in range(24):
            folder = store / "flows" / f"date={date}" / f"hour={hour:02d}"
            folder.mkdir(parents=True)
            _write(folder / parquet_name("bench", hour), seed)
            n += 1
    return n


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, FINAL_FILE_MODE)
    os.write(fd, data)
    os.close(fd)


def cli(*args: str) -> tuple[float, str]:
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "llm_proxy", *args], capture_output=True,
                         text=True, cwd=ROOT, env={**os.environ, "COLUMNS": "200"})
    elapsed = time.perf_counter() - start
    if res.returncode not in (0, 1):
        raise SystemExit(f"llm-audit {' '.join(args)} failed: {res.stderr}")
    return elapsed, (res.stdout + res.stderr).strip().splitlines()[-1]


def scandir_walk(store: Path) -> float:
    start = time.perf_counter()
    for day in os.scandir(store / "flows"):
        for hour in os.scandir(day.path):
            list(os.scandir(hour.path))
    return time.perf_counter() - start


def config(tmp: Path, name: str, **keys: int) -> str:
    path = tmp / f"{name}.toml"
    path.write_text("".join(f"{k} = {v}\n" for k, v in keys.items()))
    return str(path)


def bench_nothing_to_do(tmp: Path, days: int, seed: bytes) -> None:
    store = tmp / "seven-years"
    t = time.perf_counter()
    files = build_hourly(store, days, seed)
    print(f"built {files} hourly partitions in {time.perf_counter() - t:.0f} s")
    parts = len(list_partitions(Tiers.of(store)))
    cfg = config(tmp, "keep-all", retention_days=days + 30, archive_after=days + 30)
    walk = scandir_walk(store)
    apply_s, line = cli("retention", "apply", "--store", str(store), "--config", cfg)
    status_s, _ = cli("retention", "status", "--store", str(store), "--config", cfg,
                      "--format", "json")
    startup_s, _ = cli("--help")
    print(f"nothing-to-do: {parts} partitions: retention apply {apply_s:.2f} s "
          f"(python start-up {startup_s:.2f} s of it), status {status_s:.2f} s; "
          f"bare scandir walk {walk:.2f} s  [{line}]")
    shutil.rmtree(store)


def bench_steady_state(tmp: Path, days: int, seed: bytes) -> None:
    store = tmp / "steady"
    build_hourly(store, min(days, 2550), seed, hot_days=90)  # within the 2555-day retention
    cfg = config(tmp, "seed", retention_days=2555, archive_after=90)
    now = (END + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    apply_s, line = cli("retention", "apply", "--store", str(store), "--config", cfg, "--now", now)
    parts = len(list_partitions(Tiers.of(store)))
    print(f"steady state (seed config): {parts} partitions (90 days hot, rest archived): "
          f"retention apply {apply_s:.2f} s  [{line}]")
    shutil.rmtree(store)


def bench_archive(tmp: Path) -> None:
    store = tmp / "archive-run"
    for d in range(30):
        for hour in range(24):
            ts = END - timedelta(days=100 + d) + timedelta(hours=hour)
            target = store / "flows" / f"date={ts:%Y-%m-%d}" / f"hour={hour:02d}" / \
                parquet_name("bench", hour)
            publish(store, [(_table(ts, 50), target)], reason="flush")
    cfg = config(tmp, "archive", retention_days=2555, archive_after=90)
    now = END.strftime("%Y-%m-%dT%H:%M:%SZ")
    apply_s, line = cli("retention", "apply", "--store", str(store), "--config", cfg, "--now", now)
    print(f"archive: 30 days x 24 hourly files (36,000 records) merged: {apply_s:.2f} s  [{line}]")
    verify_s, line = cli("verify", "--store", str(store))
    print(f"         verify afterwards {verify_s:.2f} s  [{line}]")
    shutil.rmtree(store)


def bench_append(tmp: Path, entries: int) -> None:
    store = tmp / "append"
    table = _table(END, 100)
    seq = iter(range(10**9))

    def timed(n: int) -> tuple[float, float]:
        """Median ms of publish and of the pre-chain writer, interleaved (same disk weather)."""
        pub, base = [], []
        for _ in range(n):
            target = store / "flows" / "date=2026-11-01" / "hour=00" / parquet_name("p", next(seq))
            start = time.perf_counter()
            publish(store, [(table, target)], reason="flush")
            pub.append(time.perf_counter() - start)
            target = tmp / "baseline" / "date=2026-11-01" / parquet_name("b", next(seq))
            start = time.perf_counter()
            write_parquet_atomic(table, target)
            base.append(time.perf_counter() - start)
        return sorted(pub)[n // 2] * 1000, sorted(base)[n // 2] * 1000

    fresh, base1 = timed(50)
    for i in range(entries):  # grow the chain
        target = store / "flows" / "date=2026-10-01" / "hour=00" / parquet_name("grow", i)
        publish(store, [(_table(END, 1), target)], reason="flush")
    long, base2 = timed(50)
    size = (store / "chain" / "chain.jsonl").stat().st_size
    print(f"append: publish of a 100-record file, median {fresh:.1f} ms on a fresh chain "
          f"(pre-chain writer {base1:.1f} ms), {long:.1f} ms on a chain of {entries + 100} "
          f"entries, {size / 1e6:.1f} MB (pre-chain writer {base2:.1f} ms)")
    shutil.rmtree(store)
    shutil.rmtree(tmp / "baseline")


def bench_verify(tmp: Path, files: int) -> None:
    store = tmp / "verify"
    t = time.perf_counter()
    for i in range(files):
        ts = END - timedelta(hours=i // 4)
        target = store / "flows" / f"date={ts:%Y-%m-%d}" / f"hour={ts:%H}" / \
            parquet_name("bench", i)
        publish(store, [(_table(ts, 5), target)], reason="flush")
    build = time.perf_counter() - t
    start = time.perf_counter()
    for path in store.glob("flows/*/*/*.parquet"):
        sha256_file(path)
    hashing = time.perf_counter() - start
    head_s, line = cli("verify", "--store", str(store))
    all_s, _ = cli("verify", "--store", str(store), "--all-signatures")
    print(f"verify: {files} files / {files + 1} chain entries (built via publish in {build:.0f} s, "
          f"{build / files * 1000:.1f} ms each): {head_s:.2f} s, with every signature "
          f"{all_s:.2f} s; bare SHA-256 of the files {hashing:.2f} s  [{line}]")
    shutil.rmtree(store)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=2557, help="days of hourly partitions")
    parser.add_argument("--verify-files", type=int, default=10_000)
    parser.add_argument("--append-entries", type=int, default=5_000)
    parser.add_argument("--keep", type=Path, help="build under this folder and keep it")
    parser.add_argument("--only", default="nothing,steady,archive,append,verify",
                        help="comma-separated subset of: nothing,steady,archive,append,verify")
    args = parser.parse_args()
    only = set(args.only.split(","))
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="llm-audit-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        seed = _seed_file(tmp)
        if "nothing" in only:
            bench_nothing_to_do(tmp, args.days, seed)
        if "steady" in only:
            bench_steady_state(tmp, args.days, seed)
        if "archive" in only:
            bench_archive(tmp)
        if "append" in only:
            bench_append(tmp, args.append_entries)
        if "verify" in only:
            bench_verify(tmp, args.verify_files)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
