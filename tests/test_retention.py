"""Retention across tiers with a fake clock (``--now``), holds, locks and concurrent runs."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_retention_support import (
    NOW,
    ROOT,
    cli,
    day_records,
    fill,
    ids,
    llm_audit,
    spawn,
    toml,
)

from llm_proxy.store.holds import Hold
from llm_proxy.store.locks import maintenance_lock
from llm_proxy.store.retention import Policy, plan
from llm_proxy.store.tiers import Partition

POLICY = {"retention_days": 100, "archive_after": 10}
RECENT, ARCHIVABLE, OLD_KEPT, EXPIRED = "2026-01-30", "2026-01-15", "2025-10-25", "2025-10-01"


def _chain_lines(store: Path) -> int:
    return len((store / "chain" / "chain.jsonl").read_bytes().splitlines())


@pytest.fixture
def aged(store: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A store with a recent, an archivable, an old-but-kept and an expired day."""
    for day in (RECENT, ARCHIVABLE, OLD_KEPT, EXPIRED):
        fill(store, day_records(day))
    return store, toml(tmp_path, **POLICY)


def _p(tier: str, date: str, hour: int | None = None) -> Partition:
    return Partition(tier, date, hour, Path("/nowhere"))


def test_plan_is_decided_from_partition_names_alone():
    now = datetime(2026, 1, 31, 12, tzinfo=UTC)
    parts = [_p("hot", "2026-01-21", 11), _p("hot", "2026-01-20", 23), _p("hot", "2026-01-20", 0),
             _p("hot", "2025-10-23", 10), _p("hot", "2025-10-23", 12), _p("archive", "2025-10-22"),
             _p("archive", "2025-10-23"), _p("archive", "2026-01-20")]
    due = plan(parts, [], now, Policy(archive_after=10, retention_days=100))
    # a day is archived once all of it is older than archive_after, hot hours are merged into
    # the day's existing archive partition
    assert [(d.date, [h.hour for h in d.hours], d.existing is not None) for d in due.archive] == [
        ("2025-10-23", [12], True), ("2026-01-20", [0, 23], True)]
    # deletion is hourly in the hot tier, daily in the archive
    assert {(p.tier, p.date, p.hour) for p in due.delete} == {
        ("hot", "2025-10-23", 10), ("archive", "2025-10-22", None)}
    assert plan(parts, [], now, Policy(archive_after=0, retention_days=0)).empty


def test_plan_sends_partitions_a_hold_overlaps_to_a_record_level_check():
    now = datetime(2026, 1, 31, 12, tzinfo=UTC)
    hold = Hold(name="CASE-42", reason="r", user="bob", until=datetime(2025, 10, 2, tzinfo=UTC))
    due = plan([_p("hot", "2025-10-01", 5), _p("hot", "2025-10-05", 5)], [hold], now,
               Policy(archive_after=10, retention_days=100))
    assert [(p.date, [h.name for h in hs]) for p, hs in due.held] == [("2025-10-01", ["CASE-42"])]
    assert [p.date for p in due.delete] == ["2025-10-05"]


def test_apply_archives_deletes_and_queries_read_both_tiers(aged: tuple[Path, Path]):
    store, config = aged
    before = ids(store)
    run = cli("retention", "apply", "--store", str(store), "--config", str(config), "--now", NOW)
    assert run.code == 0, run.err
    assert "archive 2 day(s)" in run.out and "delete 2 partition(s) (4 records)" in run.out
    # hot keeps only the recent day; expired records are gone everywhere
    assert sorted(p.name for p in (store / "flows").iterdir()) == [f"date={RECENT}"]
    assert ids(store) == {i for i in before if not i.startswith(EXPIRED)}
    # one zstd, read-only file per archived day
    for day in (ARCHIVABLE, OLD_KEPT):
        [file] = list((store / "archive" / f"date={day}").iterdir())
        assert stat.S_IMODE(file.stat().st_mode) == 0o400
        meta = pq.read_metadata(file)
        assert meta.num_rows == 4
        assert meta.row_group(0).column(0).compression == "ZSTD"
    # the views read the archive with the same columns, date and hour included
    rows = cli("sql", "--store", str(store), "--format", "json",
               f"select id, date, hour from flows where id = '{ARCHIVABLE}-13-bob'")
    assert json.loads(rows.out) == [{"id": f"{ARCHIVABLE}-13-bob", "date": ARCHIVABLE, "hour": 13}]
    assert cli("verify", "--store", str(store)).code == 0


def test_second_run_has_nothing_to_do_and_changes_nothing(aged: tuple[Path, Path]):
    store, config = aged
    args = ("retention", "apply", "--store", str(store), "--config", str(config), "--now", NOW)
    assert cli(*args).code == 0
    entries = _chain_lines(store)
    again = cli(*args)
    assert again.code == 0 and "nothing to do" in again.out
    assert _chain_lines(store) == entries


def test_dry_run_reports_and_changes_nothing(aged: tuple[Path, Path]):
    store, config = aged
    files = sorted(store.rglob("*.parquet"))
    entries = _chain_lines(store)
    run = cli("retention", "apply", "--dry-run", "--store", str(store), "--config", str(config),
              "--now", NOW, "--format", "json")
    actions = json.loads(run.out)
    assert {a["action"] for a in actions} == {"archive", "delete"}
    assert "would archive 2 day(s)" in run.err
    assert sorted(store.rglob("*.parquet")) == files and _chain_lines(store) == entries


def test_status_shows_bytes_per_tier_and_what_is_due(aged: tuple[Path, Path]):
    store, config = aged
    run = cli("retention", "status", "--store", str(store), "--config", str(config), "--now", NOW,
              "--format", "json")
    rows = {r["what"]: r for r in json.loads(run.out)}
    assert rows["hot"]["partitions"] == 8 and rows["hot"]["bytes"] > 0
    assert rows["due for archive"]["partitions"] == 4
    assert rows["due for deletion"]["partitions"] == 2
    cli("retention", "apply", "--store", str(store), "--config", str(config), "--now", NOW)
    rows = {r["what"]: r for r in json.loads(cli(
        "retention", "status", "--store", str(store), "--config", str(config), "--now", NOW,
        "--format", "json").out)}
    assert rows["archive"]["partitions"] == 2 and rows["archive"]["bytes"] > 0
    assert rows["due for archive"]["partitions"] == rows["due for deletion"]["partitions"] == 0


def test_a_late_hour_is_merged_into_the_archived_day(aged: tuple[Path, Path]):
    store, config = aged
    args = ("retention", "apply", "--store", str(store), "--config", str(config), "--now", NOW)
    cli(*args)
    fill(store, day_records(ARCHIVABLE, hours=(20,), users=("carol",), tag="late"))
    assert cli(*args).code == 0
    [file] = list((store / "archive" / f"date={ARCHIVABLE}").iterdir())
    assert pq.read_metadata(file).num_rows == 5
    assert f"{ARCHIVABLE}late-20-carol" in ids(store)
    assert cli("verify", "--store", str(store)).code == 0


def test_archive_path_outside_the_store(aged: tuple[Path, Path], tmp_path: Path):
    store, _ = aged
    cold = tmp_path / "cold"
    config = toml(tmp_path, archive_path=str(cold), **POLICY)
    assert cli("retention", "apply", "--store", str(store), "--config", str(config),
               "--now", NOW).code == 0
    assert len(list(cold.glob("date=*/*.parquet"))) == 2 and not (store / "archive").exists()
    # readers find the archive from the store alone (no config)
    assert f"{ARCHIVABLE}-01-alice" in ids(store)
    assert cli("verify", "--store", str(store)).code == 0
    moved = toml(tmp_path, archive_path=str(tmp_path / "elsewhere"), **POLICY)
    run = cli("retention", "apply", "--store", str(store), "--config", str(moved), "--now", NOW)
    assert run.code == 2 and "archive_path" in run.err and run.err.count("\n") == 1


def test_hold_keeps_records_past_retention_until_released(aged: tuple[Path, Path]):
    store, config = aged
    add = cli("hold", "add", "--store", str(store), "--name", "CASE-42", "--user", "bob",
              "--until", "2025-12-01", "--reason", "litigation hold, counsel J. Doe")
    assert add.code == 0 and "CASE-42" in add.out
    args = ("retention", "apply", "--store", str(store), "--config", str(config), "--now", NOW)
    run = cli(*args)
    assert "keep 2 records" in run.out and "CASE-42" in run.out
    expired = ids(store, f"id like '{EXPIRED}%'")
    assert expired == {f"{EXPIRED}-01-bob", f"{EXPIRED}-13-bob"}  # alice's are gone
    again = cli(*args)  # idempotent: reports what it keeps and why, deletes nothing more
    assert "keep 2 records" in again.out and ids(store, f"id like '{EXPIRED}%'") == expired
    listed = json.loads(cli("hold", "list", "--store", str(store), "--format", "json").out)
    assert [(h["name"], h["status"]) for h in listed] == [("CASE-42", "active")]
    assert cli("hold", "release", "CASE-42", "--store", str(store), "--reason", "case closed"
               ).code == 0
    cli(*args)
    assert ids(store, f"id like '{EXPIRED}%'") == set()
    history = json.loads(cli("hold", "list", "--all", "--store", str(store), "--format", "json").out)
    assert history[0]["status"] == "released" and history[0]["release_reason"] == "case closed"
    assert cli("verify", "--store", str(store)).code == 0


@pytest.mark.parametrize("args,needle", [
    (("hold", "add", "--name", "CASE-1", "--reason", "x", "--since", "2025-02-01",
      "--until", "2025-01-01"), "must be before --until"),
    (("hold", "add", "--name", "CASE-1", "--reason", "x", "--since", "yesterday-ish"),
     "--since 'yesterday-ish' is not a time"),
    (("hold", "release", "NOPE", "--reason", "x"), "no active hold named 'NOPE'"),
])
def test_hold_usage_errors_are_one_line(aged: tuple[Path, Path], args: tuple[str, ...],
                                       needle: str):
    store, _ = aged
    run = cli(*args, "--store", str(store))
    assert run.code == 2 and needle in run.err and run.err.count("\n") == 1


def test_duplicate_hold_name_is_refused(aged: tuple[Path, Path]):
    store, _ = aged
    cli("hold", "add", "--store", str(store), "--name", "CASE-7", "--reason", "x")
    run = cli("hold", "add", "--store", str(store), "--name", "CASE-7", "--reason", "y")
    assert run.code == 2 and "already exists" in run.err


def test_missing_store_is_a_clear_error(tmp_path: Path):
    run = cli("retention", "status", "--store", str(tmp_path / "nope"))
    assert run.code == 2 and "no audit store" in run.err


def test_overlapping_run_exits_cleanly_and_does_nothing(aged: tuple[Path, Path]):
    store, config = aged
    files = sorted(store.rglob("*.parquet"))
    with maintenance_lock(store, purpose="retention apply"):
        run = cli("retention", "apply", "--store", str(store), "--config", str(config),
                  "--now", NOW)
    assert run.code == 0
    assert "another run is active" in run.err and "retention apply (pid" in run.err
    assert sorted(store.rglob("*.parquet")) == files


def test_concurrent_runs_do_the_work_once(aged: tuple[Path, Path]):
    store, config = aged
    expected = {i for i in ids(store) if not i.startswith(EXPIRED)}
    env = {"LLM_AUDIT_TEST_PUBLISH_DELAY": "0.05"}
    procs = [spawn("retention", "apply", "--store", str(store), "--config", str(config),
                   "--now", NOW, env=env) for _ in range(3)]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], results
    assert sum("archive 2 day(s)" in out for out, _ in results) == 1
    assert ids(store) == expected
    assert llm_audit("verify", "--store", str(store)).code == 0


def test_nothing_to_do_is_cheap(store: Path, tmp_path: Path):
    """A cron run over a store with nothing due lists folders and stops (no file is opened)."""
    fill(store, [r for d in range(1, 29) for r in day_records(f"2026-01-{d:02d}", hours=(3,))])
    config = toml(tmp_path, retention_days=400, archive_after=200)
    start = time.perf_counter()
    run = cli("retention", "apply", "--store", str(store), "--config", str(config), "--now", NOW)
    assert "nothing to do" in run.out
    assert time.perf_counter() - start < 2


def test_apply_while_the_proxy_writes(aged: tuple[Path, Path]):
    """A writer flushing recent hours (as the proxy's flusher does) alongside a retention run."""
    store, config = aged
    expected = {i for i in ids(store) if not i.startswith(EXPIRED)}
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT / "tests")!r})
        from pathlib import Path
        from test_retention_support import day_records, fill
        for n in range(20, 28):
            fill(Path({str(store)!r}), day_records(f"2026-01-{{n}}"), instance="proxy")
    """)])
    run = llm_audit("retention", "apply", "--store", str(store), "--config", str(config),
                    "--now", NOW, env={"LLM_AUDIT_TEST_PUBLISH_DELAY": "0.02"})
    assert writer.wait(timeout=60) == 0 and run.code == 0, run.err
    written = {r["id"] for n in range(20, 28) for r in day_records(f"2026-01-{n}")}
    assert ids(store) == expected | written
    assert llm_audit("verify", "--store", str(store)).code == 0
