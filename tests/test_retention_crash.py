"""kill -9 in the middle of ``retention apply`` and of a flush: the store verifies, nothing is lost.

The child is slowed down with ``LLM_AUDIT_TEST_PUBLISH_DELAY`` (a sleep between the steps of
``finalize.publish``) so that a SIGKILL at a random instant lands inside the protocol — before
the chain entry, between the entry and the renames, between the renames and the removals.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from test_retention_support import NOW, ROOT, cli, day_records, fill, ids, spawn, toml

from llm_proxy.store.writer import replay

DELAY = {"LLM_AUDIT_TEST_PUBLISH_DELAY": "0.04"}
ARCHIVE_DAYS = ("2026-01-05", "2026-01-06", "2026-01-07")
EXPIRED_DAYS = ("2025-09-01",)


def test_kill9_during_retention_apply_leaves_a_verifiable_complete_store(tmp_path: Path):
    template = tmp_path / "template"
    for day in ARCHIVE_DAYS + EXPIRED_DAYS + ("2026-01-30",):
        fill(template, day_records(day, hours=(2, 9, 17)))
    expected = {i for i in ids(template) if not i.startswith(EXPIRED_DAYS)}
    config = toml(tmp_path, retention_days=100, archive_after=10)
    rng = random.Random(20261126)
    for attempt in range(4):
        store = tmp_path / f"run{attempt}"
        shutil.copytree(template, store)
        proc = spawn("retention", "apply", "--store", str(store), "--config", str(config),
                     "--now", NOW, env=DELAY)
        delay = rng.uniform(0.7, 3.0)  # start-up ≈0.8 s, the slowed run ≈3 s
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        # whatever the kill interrupted, the store is consistent before anyone finishes the job
        mid = cli("verify", "--store", str(store))
        assert mid.code == 0, f"attempt {attempt}, killed after {delay:.2f}s:\n{mid.out}"
        assert expected <= ids(store), f"attempt {attempt}: records lost by the kill"
        done = cli("retention", "apply", "--store", str(store), "--config", str(config),
                   "--now", NOW)
        assert done.code == 0, done.err
        assert ids(store) == expected, f"attempt {attempt}, killed after {delay:.2f}s"
        assert cli("verify", "--store", str(store)).code == 0
        assert not list(store.rglob(".*.tmp")), "a dead run's stage file was left behind"


_FLUSHER = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from llm_proxy.store.journal import JournalSegment, encode_record
    from llm_proxy.store.writer import flush_records
    from test_retention_support import day_records

    store = Path(sys.argv[1])
    segments = []
    for n in range(6):
        records = day_records(f"2026-01-{{n + 10:02d}}", hours=(1, 2, 3))
        seg = JournalSegment(store / "journal", "w", n + 1, fsync="always", fsync_interval_s=1)
        seg.append(b"".join(encode_record(r) for r in records), len(records))
        segments.append((seg, records))
    print("journaled", flush=True)
    for seg, records in segments:   # what the capture worker's flusher thread does
        seg.sync()
        flush_records(store, seg.path, "w", seg.seq, records)
        seg.close()
""")


def test_kill9_during_a_flush_loses_and_doubles_nothing(tmp_path: Path):
    expected = {r["id"] for n in range(6)
                for r in day_records(f"2026-01-{n + 10:02d}", hours=(1, 2, 3))}
    rng = random.Random(7)
    for attempt in range(3):
        store = tmp_path / f"store{attempt}"
        proc = subprocess.Popen(
            [sys.executable, "-c", _FLUSHER.format(tests=str(ROOT / "tests")), str(store)],
            stdout=subprocess.PIPE, text=True, env={**os.environ, **DELAY})
        assert proc.stdout is not None and proc.stdout.readline().strip() == "journaled"
        time.sleep(rng.uniform(0.05, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        replay(store)  # what the next proxy start does
        assert ids(store) == expected, f"attempt {attempt}"
        count = cli("sql", "--store", str(store), "--format", "csv", "select count(*) from flows")
        assert count.out.split()[-1] == str(len(expected)), "a record was doubled"
        run = cli("verify", "--store", str(store))
        assert run.code == 0, run.out
