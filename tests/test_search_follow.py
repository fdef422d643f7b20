"""tail -f: a record shows up within a second of being journaled; a tick reads only new data."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from llm_proxy.schema import empty_record
from llm_proxy.store.follow import Follower
from llm_proxy.store.journal import JournalSegment, encode_record
from llm_proxy.store.writer import flush_records, replay


def rec(i: int, at: datetime, **kw) -> dict:
    r = empty_record()
    r.update(id=f"01F{i:023d}", ts=int(at.timestamp() * 1_000_000), method="POST",
             endpoint="/v1/chat/completions", status_code=200, response_model="gpt-4o",
             total_tokens=812, latency_ms=640.0, user_id="alice")
    r.update(kw)
    return r


def test_tail_follow_prints_new_records_within_a_second(store: Path):
    now = datetime.now(UTC)
    seg = JournalSegment(store / "journal", "h", 1, fsync="never", fsync_interval_s=1)
    seg.append(encode_record(rec(0, now - timedelta(minutes=1))), 1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "llm_proxy", "tail", "-f", "--store", str(store), "-n", "1",
         "--interval", "0.2", "--max-seconds", "4", "--status", "2xx,429"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert "200 ✓ gpt-4o 812 tok 640 ms" in first
        appended = time.monotonic()
        seg.append(encode_record(rec(1, datetime.now(UTC), status_code=429,
                                     error_type="rate_limit")), 1)
        seg.append(encode_record(rec(2, datetime.now(UTC), status_code=500)), 1)  # filtered
        line = proc.stdout.readline()
        assert time.monotonic() - appended < 1.5
        assert "429 ⚠ gpt-4o 812 tok 640 ms rate_limit" in line
        # the flush moves both into Parquet: not printed again
        flush_records(store, seg.path, "h", 1, [rec(0, now - timedelta(minutes=1)),
                                               rec(1, datetime.now(UTC), status_code=429)])
        seg.close()
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert out == ""


def test_follower_tick_cost_does_not_grow_with_the_store(store: Path):
    old = datetime.now(UTC) - timedelta(days=5)
    for s in range(30):  # 30 old hourly flushes already in Parquet
        seg = JournalSegment(store / "journal", "h", s + 1, fsync="never", fsync_interval_s=1)
        rows = [rec(s * 10 + k, old + timedelta(hours=s)) for k in range(10)]
        seg.append(b"".join(encode_record(r) for r in rows), len(rows))
        seg.close()
    replay(store)
    follower = Follower(store)
    follower.start()
    assert follower.poll() == [] and follower.touched == 0
    seg = JournalSegment(store / "journal", "h", 99, fsync="never", fsync_interval_s=1)
    seg.append(encode_record(rec(1000, datetime.now(UTC))), 1)
    fresh = follower.poll()
    assert [r["id"] for r in fresh] == [rec(1000, datetime.now(UTC))["id"]]
    assert follower.touched == 1  # one journal segment read, no old partition opened
    assert follower.poll() == []
    seg.close()
