"""``llm-audit verify`` finds every kind of tampering, one line each, and passes a clean store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from test_retention_support import NOW, ROOT, cli, day_records, fill, rec, toml, us

from llm_proxy.store.parquet import records_to_table, write_parquet_atomic
from llm_proxy.store.verify import verify


@pytest.fixture
def audited(store: Path, tmp_path: Path) -> Path:
    """Hot and archive tiers, a hold: every kind of chain entry."""
    for day in ("2026-01-28", "2026-01-29", "2026-01-10", "2026-01-11"):
        fill(store, day_records(day))
    config = toml(tmp_path, retention_days=100, archive_after=10)
    assert cli("retention", "apply", "--store", str(store), "--config", str(config),
               "--now", NOW).code == 0
    assert cli("hold", "add", "--store", str(store), "--name", "CASE-9", "--user", "bob",
               "--reason", "audit").code == 0
    fill(store, day_records("2026-01-30", hours=(5,)))
    return store


def _hot(store: Path, n: int = 0) -> Path:
    return sorted(store.glob("flows/*/*/*.parquet"))[n]


def _rel(store: Path, path: Path) -> str:
    return path.relative_to(store).as_posix()


def _chain(store: Path) -> Path:
    return store / "chain" / "chain.jsonl"


def _edit_lines(store: Path, edit: Callable[[list[bytes]], list[bytes]]) -> None:
    path = _chain(store)
    path.write_bytes(b"\n".join(edit(path.read_bytes().splitlines())) + b"\n")


def _change_in_place(store: Path) -> tuple[str, str]:
    path = _hot(store)
    os.chmod(path, 0o600)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    path.write_bytes(bytes(data))
    return "changed", _rel(store, path)


def _replace(store: Path) -> tuple[str, str]:
    path = _hot(store, 1)
    os.chmod(path, 0o600)
    write_parquet_atomic(records_to_table([rec("forged", us("2026-01-28T01:00:00Z"))]), path)
    return "changed", _rel(store, path)


def _delete(store: Path) -> tuple[str, str]:
    path = _hot(store)
    path.unlink()
    return "deleted", _rel(store, path)


def _delete_archived(store: Path) -> tuple[str, str]:
    path = sorted(store.glob("archive/*/*.parquet"))[0]
    path.unlink()
    return "deleted", _rel(store, path)


def _add(store: Path) -> tuple[str, str]:
    path = store / "flows/date=2026-01-28/hour=01/evil-0000000000000001-abcd.parquet"
    write_parquet_atomic(records_to_table([rec("planted", us("2026-01-28T01:30:00Z"))]), path)
    return "added", _rel(store, path)


def _copy(store: Path) -> tuple[str, str]:
    target = store / "flows/date=2026-01-28/hour=02/copy.parquet"
    target.parent.mkdir()
    shutil.copy(_hot(store), target)
    return "added", _rel(store, target)


def _move(store: Path) -> tuple[str, str]:
    source = _hot(store)
    target = store / "flows/date=2026-01-28/hour=03" / source.name
    target.parent.mkdir()
    source.rename(target)
    return "moved", _rel(store, source)


def _alter_entry(store: Path) -> tuple[str, str]:
    def edit(lines: list[bytes]) -> list[bytes]:
        entry = json.loads(lines[3])
        entry["add"][0]["records"] += 1  # claim one record more
        lines[3] = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
        return lines
    _edit_lines(store, edit)
    return "entry altered", "chain entry #3"


def _remove_entry(store: Path) -> tuple[str, str]:
    _edit_lines(store, lambda lines: lines[:4] + lines[5:])
    return "entry removed", "chain entry #4"


def _reorder(store: Path) -> tuple[str, str]:
    _edit_lines(store, lambda lines: lines[:3] + [lines[4], lines[3]] + lines[5:])
    return "entry reordered", "chain entry #3"


def _alter_head(store: Path) -> tuple[str, str]:
    def edit(lines: list[bytes]) -> list[bytes]:
        lines[-1] = lines[-1].replace(b'"reason":"flush"', b'"reason":"compact"')
        return lines
    _edit_lines(store, edit)
    return "entry altered", f"chain entry #{len(_chain(store).read_bytes().splitlines()) - 1}"


def _drop_hold(store: Path) -> tuple[str, str]:
    (store / "holds.json").write_text('{"holds": []}')
    return "hold", "CASE-9"


TAMPERING = [_change_in_place, _replace, _delete, _delete_archived, _add, _copy, _move,
             _alter_entry, _remove_entry, _reorder, _alter_head, _drop_hold]


def test_a_clean_store_verifies_clean(audited: Path):
    run = cli("verify", "--store", str(audited), "--all-signatures")
    assert run.code == 0
    assert run.out.startswith("verify: clean") and run.out.count("\n") == 1
    assert "1 hold event(s)" in run.out


@pytest.mark.parametrize("tamper", TAMPERING, ids=lambda f: f.__name__.strip("_"))
def test_tampering_is_found_one_line_each(audited: Path, tamper: Callable[[Path], tuple[str, str]]):
    kind, subject = tamper(audited)
    run = cli("verify", "--store", str(audited))
    assert run.code == 1, run.out
    findings = run.out.splitlines()[:-1]
    assert any(line.startswith(f"{kind}: {subject}") for line in findings), run.out
    assert run.out.splitlines()[-1].startswith("verify: ") and "problem(s) found" in run.out


def test_findings_as_json(audited: Path):
    _delete(audited)
    run = cli("verify", "--store", str(audited), "--format", "json")
    assert run.code == 1
    [finding] = json.loads(run.out)
    assert finding["kind"] == "deleted" and finding["subject"].startswith("flows/")


def test_anchor_catches_newest_entries_cut_off(audited: Path, tmp_path: Path):
    anchor = tmp_path / "outside" / "anchor.json"
    anchor.parent.mkdir()
    assert cli("verify", "--store", str(audited), "--anchor", str(anchor)).code == 0
    # the attacker removes the newest entry and the file it added: the chain alone looks fine
    last = json.loads(_chain(audited).read_bytes().splitlines()[-1])
    for item in last["add"]:
        (audited / item["path"]).unlink()
    _edit_lines(audited, lambda lines: lines[:-1])
    assert cli("verify", "--store", str(audited)).code == 0
    run = cli("verify", "--store", str(audited), "--anchor", str(anchor))
    assert run.code == 1 and run.out.startswith("anchor: chain entry #")


def test_exported_public_key_catches_a_chain_rebuilt_under_a_new_key(audited: Path, tmp_path: Path):
    pem = tmp_path / "audit.pub"
    assert cli("verify", "--store", str(audited), "--export-public-key", str(pem)).code == 0
    # the attacker throws the chain and key away; the next write starts a fresh, adopted chain
    shutil.rmtree(audited / "chain")
    (audited / "holds.json").unlink()
    fill(audited, day_records("2026-01-30", hours=(6,)))
    assert cli("verify", "--store", str(audited)).code == 0
    run = cli("verify", "--store", str(audited), "--public-key", str(pem))
    assert run.code == 1 and "key: chain entry #0" in run.out


def test_verify_since_still_checks_the_chain_and_missing_files(audited: Path):
    _alter_entry(audited)
    run = cli("verify", "--store", str(audited), "--since", "2026-01-29")
    assert run.code == 1 and "entry altered: chain entry #3" in run.out


def test_verify_is_clean_while_the_store_is_being_written(store: Path):
    fill(store, day_records("2026-01-01"))
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT / "tests")!r})
        from pathlib import Path
        from test_retention_support import day_records, fill
        for n in range(2, 20):
            fill(Path({str(store)!r}), day_records(f"2026-01-{{n:02d}}"), instance="w")
    """)])
    try:
        while writer.poll() is None:
            result = verify(store)
            assert result.clean, [f.line() for f in result.findings]
    finally:
        writer.wait(timeout=60)
    assert verify(store).clean


def test_a_read_only_copy_verifies_without_locking(audited: Path, monkeypatch: pytest.MonkeyPatch):
    """An auditor's copy on read-only media: verify must not need to write a lock file."""
    import llm_proxy.store.verify as verify_mod

    def refuse(*_args: object, **_kw: object) -> None:
        raise AssertionError("tried to lock a read-only store")

    monkeypatch.setattr(verify_mod, "chain_lock", refuse)
    monkeypatch.setattr(verify_mod, "recover", refuse)
    monkeypatch.setattr(verify_mod.os, "access", lambda *_a: False)
    assert verify(audited).clean
    _delete(audited)
    assert [f.kind for f in verify(audited).findings] == ["deleted"]
