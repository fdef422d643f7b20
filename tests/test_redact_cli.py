"""``llm-audit redact`` and ``llm-audit rescan`` through the real Typer app, on a real store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from llm_proxy.cli.app import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("LLM_AUDIT_CONFIG", "LLM_AUDIT_STORE", "LLM_AUDIT_PSEUDONYM_SECRET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


def write_store(root: Path, *, dirty: bool) -> Path:
    """A store with one Parquet partition file (two records) and a journal segment."""
    partition = root / "flows" / "date=2026-11-01" / "hour=09"
    partition.mkdir(parents=True)
    body = "contact jane@example.com" if dirty else "contact [EMAIL]"
    table = pa.table({
        "id": ["01J0000000000000000000000A", "01J0000000000000000000000B"],
        "client_ip": ["203.0.113.5", "203.0.113.6"],  # recorded by design: not a finding
        "request_body": ['{"messages":[{"role":"user","content":"hello"}]}', body],
        "status_code": pa.array([200, 200], pa.int64()),
    })
    pq.write_table(table, partition / "inst-000001-abc.parquet")
    journal = root / "journal"
    journal.mkdir()
    token = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z" if dirty else "[API_KEY]"
    lines = [{"id": "a", "request_body": "fine"}, {"id": "b", "error_message": f"bad key {token}"}]
    (journal / "segment-0001.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (root / ".lock").write_text("pid 1 jane@example.com")  # hidden lock file: skipped
    (root / "queries.json").write_text('{"mine": "user_id = \'jane@example.com\'"}')  # state
    return root


def test_redact_text_from_stdin() -> None:
    result = runner.invoke(app, ["redact"], input="mail jane@example.com\ncall +44 20 7946 0958\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == "mail [EMAIL]\ncall [PHONE]\n"


def test_redact_jsonl_keeps_order_and_structure() -> None:
    lines = [{"q": "a@example.com", "n": 1}, {"nested": {"k": ["203.0.113.9"]}}, {"clean": "x"}]
    stdin = "".join(json.dumps(x) + "\n" for x in lines)
    result = runner.invoke(app, ["redact", "--jsonl"], input=stdin)
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert out == [{"q": "[EMAIL]", "n": 1}, {"nested": {"k": ["[IP_ADDRESS]"]}}, {"clean": "x"}]


def test_redact_jsonl_bad_line_names_the_line() -> None:
    result = runner.invoke(app, ["redact", "--jsonl"], input='{"a": 1}\nnot json\n')
    assert result.exit_code == 2 and "line 2" in result.stderr
    result = runner.invoke(app, ["redact", "--jsonl"], input='{"a": 1}\n[1, 2]\n')
    assert result.exit_code == 2 and "line 2" in result.stderr


def test_bad_input_exits_2_with_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "llm_proxy", "redact", "--jsonl"], input="{}\n{oops\n",
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "LLM_AUDIT_CONFIG": ""},
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("Error: stdin line 2") and "\n" not in proc.stderr.strip()


def test_redact_uses_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "audit.toml"
    config.write_text('redact_pii = false\nredact_rules = { ticket = "T-[0-9]+" }\n')
    result = runner.invoke(app, ["redact", "--config", str(config)],
                           input="a@example.com T-42 sk-Ab3dEf6hIj9kLm2nOp5qRs8tUv1w")
    assert result.exit_code == 0, result.output
    assert result.stdout == "a@example.com [TICKET] [API_KEY]"


def test_rescan_reports_findings_without_values(tmp_path: Path) -> None:
    store = write_store(tmp_path / "store", dirty=True)
    result = runner.invoke(app, ["rescan", "--store", str(store)])
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "jane@example.com" not in out and "sk-proj" not in out
    assert "flows/date=2026-11-01/hour=09/inst-000001-abc.parquet" in out
    assert "request_body" in out and "email" in out
    assert "journal/segment-0001.jsonl" in out and "error_message" in out and "api_key" in out
    assert "client_ip" not in out and ".lock" not in out and "queries.json" not in out
    assert out.strip().splitlines()[-1] == "scanned 2 files, 4 records: 2 findings"


def test_rescan_json_format(tmp_path: Path) -> None:
    store = write_store(tmp_path / "store", dirty=True)
    result = runner.invoke(app, ["rescan", "--store", str(store), "--format", "json"])
    assert result.exit_code == 1
    findings = json.loads(result.stdout)
    assert {(f["file"], f["row"], f["column"], f["kind"]) for f in findings} == {
        ("flows/date=2026-11-01/hour=09/inst-000001-abc.parquet", 2, "request_body", "email"),
        ("journal/segment-0001.jsonl", 2, "error_message", "api_key"),
    }


def test_rescan_clean_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = write_store(tmp_path / "store", dirty=False)
    monkeypatch.setenv("LLM_AUDIT_STORE", str(store))
    result = runner.invoke(app, ["rescan"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "scanned 2 files, 4 records: clean\n"


def test_rescan_since_filters_by_mtime(tmp_path: Path) -> None:
    store = write_store(tmp_path / "store", dirty=True)
    old = (datetime.now(UTC) - timedelta(days=3)).timestamp()
    for path in store.rglob("*.*"):
        os.utime(path, (old, old))
    result = runner.invoke(app, ["rescan", "--store", str(store), "--since", "1d"])
    assert result.exit_code == 0
    assert result.stdout == "scanned 0 files, 0 records: clean\n"


def test_rescan_honours_field_modes(tmp_path: Path) -> None:
    store = write_store(tmp_path / "store", dirty=False)
    config = tmp_path / "audit.toml"
    config.write_text('[redact_fields]\nerror_message = "drop"\n')
    result = runner.invoke(app, ["rescan", "--store", str(store), "--config", str(config)])
    assert result.exit_code == 1
    assert "dropped_field" in result.stdout


def test_rescan_missing_store(tmp_path: Path) -> None:
    result = runner.invoke(app, ["rescan", "--store", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "does not exist" in result.stderr
