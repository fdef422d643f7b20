"""GDPR erasure: gone from every tier and the journal, audited in the chain, blocked by holds."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_retention_support import NOW, cli, day_records, fill, ids, journal, rec, toml, us


@pytest.fixture
def subjects(store: Path, tmp_path: Path) -> Path:
    """alice and bob in the archive, the hot tier, and a journal segment left by a crash."""
    for day in ("2026-01-05", "2026-01-06", "2026-01-29"):
        fill(store, day_records(day))
    assert cli("retention", "apply", "--store", str(store), "--now", NOW, "--config",
               str(toml(tmp_path, retention_days=100, archive_after=10))).code == 0
    journal(store, [rec("journal-alice", us("2026-01-30T10:00:00Z"), user="alice"),
                    rec("journal-bob", us("2026-01-30T10:00:01Z"), user="bob")]).close()
    return store


def _chain(store: Path) -> list[dict]:
    return [json.loads(x) for x in (store / "chain" / "chain.jsonl").read_bytes().splitlines()]


def _every_record(store: Path) -> list[dict]:
    rows = []
    for path in store.rglob("*.parquet"):
        rows.extend(pq.read_table(path).to_pylist())
    return rows


def test_erasure_reaches_every_tier_and_is_audited(subjects: Path):
    store = subjects
    bob = ids(store, "user_id = 'bob'")
    assert len(ids(store, "user_id = 'alice'")) == 7
    run = cli("erase", "--store", str(store), "--user", "alice", "--reason", "DSR-2026-001")
    assert run.code == 0, run.err
    assert "erased 7 record(s) of user=alice" in run.out
    assert ids(store, "user_id = 'alice'") == set() and ids(store, "user_id = 'bob'") == bob
    # nothing of alice left in any file: Parquet of both tiers (decoded), journal, stage files
    assert all("alice" not in json.dumps(r, default=str) for r in _every_record(store))
    assert not list((store / "journal").glob("*.jsonl")) and not list(store.rglob(".*.tmp"))
    # the erasure is a chain entry: who, when, why, counts — not the identifier
    entry = _chain(store)[-1]
    assert entry["op"] == "erase" and entry["reason"] == "DSR-2026-001"
    assert entry["actor"]["user"] == getpass.getuser() and entry["time"].endswith("Z")
    assert entry["records"] == 7 and entry["by_tier"] == {"hot": 3, "archive": 4}
    assert entry["journal_flushed"] == 2 and entry["criteria"] == ["user_id"]
    assert entry["subject"].startswith("hmac-sha256:")
    assert b"alice" not in (store / "chain" / "chain.jsonl").read_bytes()
    rewrites = [e for e in _chain(store) if e.get("reason") == "erase"]
    assert rewrites and all(e["detail"]["erasure"] == entry["erasure"] for e in rewrites)
    run = cli("verify", "--store", str(store))
    assert run.code == 0 and "1 erasure(s)" in run.out


def test_a_hold_on_the_subject_refuses_erasure_until_released(subjects: Path):
    store = subjects
    cli("hold", "add", "--store", str(store), "--name", "CASE-1", "--user", "alice",
        "--since", "2026-01-06", "--reason", "regulator inquiry")
    chain_before = _chain(store)
    run = cli("erase", "--store", str(store), "--user", "alice", "--reason", "DSR-2")
    assert run.code == 2 and run.err.count("\n") == 1
    assert "legal hold CASE-1" in run.err and "hold release" in run.err
    assert len(ids(store, "user_id = 'alice'")) == 7
    assert [e["seq"] for e in _chain(store) if e["op"] != "publish"] == [
        e["seq"] for e in chain_before if e["op"] != "publish"]  # no erase entry
    cli("hold", "release", "CASE-1", "--store", str(store), "--reason", "closed")
    assert cli("erase", "--store", str(store), "--user", "alice", "--reason", "DSR-2").code == 0
    assert ids(store, "user_id = 'alice'") == set()


def test_a_hold_on_someone_else_does_not_block(subjects: Path):
    store = subjects
    cli("hold", "add", "--store", str(store), "--name", "CASE-B", "--user", "bob",
        "--reason", "r")
    assert cli("erase", "--store", str(store), "--user", "alice", "--reason", "DSR-3").code == 0
    assert len(ids(store, "user_id = 'bob'")) == 7


def test_dry_run_counts_per_tier_and_changes_nothing(subjects: Path):
    store = subjects
    files = sorted(store.rglob("*"))
    run = cli("erase", "--dry-run", "--store", str(store), "--user", "alice", "--reason", "x")
    assert run.code == 0 and "would erase 7 record(s)" in run.out
    assert "archive 4" in run.out and "hot 2" in run.out and "journal 1" in run.out
    assert sorted(store.rglob("*")) == files


def test_records_in_a_running_proxys_journal_stop_the_erasure(subjects: Path):
    store = subjects
    live = journal(store, [rec("live-alice", us("2026-01-30T11:00:00Z"), user="alice")])
    before = sorted(p.name for p in store.rglob("*.parquet"))
    run = cli("erase", "--store", str(store), "--user", "alice", "--reason", "x", "--wait", "0")
    assert run.code == 2
    assert "still in the journal of a running proxy" in run.err and "stop the proxy" in run.err
    assert "live-alice" in ids(store)
    live.close()  # the proxy stopped (or flushed)
    assert cli("erase", "--store", str(store), "--user", "alice", "--reason", "x").code == 0
    assert ids(store, "user_id = 'alice'") == set() and before


def test_erase_by_key_id(store: Path):
    fill(store, [rec("k1", us("2026-01-29T01:00:00Z"), user=None, key_id="sk-…dead#01"),
                 rec("k2", us("2026-01-29T01:00:01Z"), user=None, key_id="sk-…beef#02")])
    run = cli("erase", "--store", str(store), "--key-id", "sk-…dead#01", "--reason", "leaked key")
    assert run.code == 0 and "erased 1 record(s)" in run.out
    assert ids(store) == {"k2"}


@pytest.mark.parametrize("args,needle", [
    (("--reason", "x"), "--user and/or --key-id"),
    (("--user", "alice", "--reason", " "), "--reason must say why"),
])
def test_erase_usage_errors(subjects: Path, args: tuple[str, ...], needle: str):
    run = cli("erase", "--store", str(subjects), *args)
    assert run.code == 2 and needle in run.err
