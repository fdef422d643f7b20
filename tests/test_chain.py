"""The integrity chain: what each entry holds, cheap appends, crash repair, concurrent writers."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_retention_support import ROOT, cli, day_records, fill, ids, rec, us

from llm_proxy.errors import StoreError
from llm_proxy.store import chain as chainlog
from llm_proxy.store import finalize
from llm_proxy.store.digest import sha256_file
from llm_proxy.store.parquet import records_to_table, write_parquet_atomic
from llm_proxy.store.signing import read_public_key, signature_ok


def _entries(store: Path) -> list[dict]:
    return [json.loads(line) for line in (store / "chain" / "chain.jsonl").read_bytes().splitlines()]


def test_every_flush_is_a_signed_linked_entry(store: Path, tmp_path: Path):
    fill(store, day_records("2026-01-10", hours=(3, 4)))
    entries = _entries(store)
    assert [e["seq"] for e in entries] == list(range(len(entries)))
    assert entries[0]["op"] == "genesis" and entries[0]["prev"] == "0" * 64
    lines = (store / "chain" / "chain.jsonl").read_bytes().splitlines()
    for before, after in zip(lines, entries[1:], strict=False):
        assert after["prev"] == chainlog.line_hash(before)
    # exported public key verifies every signature
    pem = tmp_path / "audit.pub"
    assert cli("verify", "--store", str(store), "--export-public-key", str(pem)).code == 0
    public = read_public_key(pem)
    assert base64.b64encode(public).decode() == entries[0]["public_key"]
    for e in entries:
        assert signature_ok(public, base64.b64decode(e["sig"]), chainlog.signed_bytes(e))
    # a flush entry: path, SHA-256, record count, time range, who and why
    flushes = [e for e in entries if e.get("reason") == "flush"]
    assert len(flushes) == 2
    item = flushes[0]["add"][0]
    path = store / item["path"]
    assert item["sha256"] == sha256_file(path) and item["bytes"] == path.stat().st_size
    assert item["records"] == 2 and item["min_ts"].startswith("2026-01-10T03:00:00")
    assert flushes[0]["actor"]["pid"] > 0 and flushes[0]["time"].endswith("Z")
    # owner-only key and chain
    assert stat.S_IMODE((store / "chain" / "signing.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((store / "chain" / "chain.jsonl").stat().st_mode) == 0o600


def test_appending_reads_only_the_tail(tmp_path: Path):
    """The flusher appends every few seconds: cost must not grow with the chain's length."""
    path = tmp_path / "chain.jsonl"
    filler = b'{"seq": 1, "pad": "' + b"x" * 400 + b'"}\n'
    with open(path, "wb") as fh:
        fh.write(filler * 200_000)  # ≈ 80 MB, a few years of flushes
        fh.write(b'{"seq": 200001, "prev": "p"}\n')
    start = time.perf_counter()
    tail = chainlog.read_tail(path)
    assert time.perf_counter() - start < 0.05
    assert tail is not None and tail.seq == 200001


def test_a_torn_append_is_cut_off_and_the_chain_continues(store: Path):
    fill(store, day_records("2026-01-10", hours=(3,)))
    with open(store / "chain" / "chain.jsonl", "ab") as fh:
        fh.write(b'{"seq": 99, "op": "publ')  # power loss in the middle of an append
    fill(store, day_records("2026-01-10", hours=(5,)))
    assert [e["seq"] for e in _entries(store)] == list(range(len(_entries(store))))
    assert cli("verify", "--store", str(store)).code == 0


def test_a_crash_after_the_commit_is_rolled_forward(store: Path, monkeypatch: pytest.MonkeyPatch):
    fill(store, day_records("2026-01-10", hours=(3,)))
    target = store / "flows/date=2026-01-10/hour=07/late.parquet"

    real_apply, calls = finalize._apply, []

    def crash(tiers: object, entry: dict) -> None:
        calls.append(entry)
        if entry.get("add") and entry["add"][0]["path"].endswith("late.parquet"):
            raise KeyboardInterrupt("killed between the chain entry and the rename")
        real_apply(tiers, entry)

    monkeypatch.setattr(finalize, "_apply", crash)
    with pytest.raises(KeyboardInterrupt):
        finalize.publish(store, [(records_to_table([rec("late-1", us("2026-01-10T07:00:00Z"))]),
                                  target)], reason="flush")
    monkeypatch.undo()
    assert not target.exists() and list(target.parent.glob(".late.parquet.*.tmp"))
    run = cli("verify", "--store", str(store))  # verify finishes the publish first
    assert run.code == 0, run.out
    assert target.exists() and "late-1" in ids(store)


def test_concurrent_publishers_keep_one_linear_chain(store: Path):
    """Four writers flushing at once, as four proxies' flusher threads on one store do."""
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT / "tests")!r})
        from pathlib import Path
        from llm_proxy.store.writer import flush_records
        from test_retention_support import day_records, journal
        store, tag = Path(sys.argv[1]), sys.argv[2]
        for n in range(8):
            records = day_records(f"2026-01-{{n + 10:02d}}", hours=(int(tag),), tag=tag)
            seg = journal(store, records, instance="p" + tag)
            flush_records(store, seg.path, "p" + tag, seg.seq, records)
            seg.close()
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(store), str(h)])
             for h in (1, 2, 3, 4)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    entries = _entries(store)
    assert [e["seq"] for e in entries] == list(range(len(entries)))
    assert sum(len(e.get("add", ())) for e in entries) == 32
    assert len(ids(store)) == 64
    assert cli("verify", "--store", str(store), "--all-signatures").code == 0


def test_a_lost_signing_key_stops_writes_loudly(store: Path):
    fill(store, day_records("2026-01-10", hours=(3,)))
    (store / "chain" / "signing.key").unlink()
    with pytest.raises(StoreError, match="signing key .* is missing"):
        fill(store, day_records("2026-01-11", hours=(3,)))


def test_a_deleted_chain_is_not_silently_restarted(store: Path):
    fill(store, day_records("2026-01-10", hours=(3,)))
    (store / "chain" / "chain.jsonl").unlink()
    with pytest.raises(StoreError, match="chain .* is missing"):
        fill(store, day_records("2026-01-11", hours=(3,)))
    run = cli("verify", "--store", str(store))
    assert run.code == 1 and "the chain file is gone" in run.out


def test_files_older_than_the_chain_are_adopted(store: Path):
    legacy = store / "flows/date=2026-01-09/hour=05/old-0000000000000001-aaaa.parquet"
    write_parquet_atomic(records_to_table([rec("legacy", us("2026-01-09T05:00:00Z"))]), legacy)
    fill(store, day_records("2026-01-10", hours=(3,)))
    adopted = [e for e in _entries(store) if e.get("reason") == "adopt"]
    assert [a["path"] for a in adopted[0]["add"]] == [
        "flows/date=2026-01-09/hour=05/old-0000000000000001-aaaa.parquet"]
    assert cli("verify", "--store", str(store)).code == 0


def test_signing_key_path_from_the_environment(store: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch):
    key = tmp_path / "keys" / "audit.key"
    monkeypatch.setenv("LLM_AUDIT_SIGNING_KEY", str(key))
    fill(store, day_records("2026-01-10", hours=(3,)))
    assert key.exists() and not (store / "chain" / "signing.key").exists()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert oct(stat.S_IMODE(os.stat(key.parent).st_mode)) == oct(0o700)
