"""The CLI over a real store: sql formats, config loading, one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llm_proxy.audit import AuditConfig, LogExporter, load_config
from llm_proxy.errors import ConfigError
from llm_proxy.schema import empty_record
from llm_proxy.store.journal import JournalSegment, encode_record
from llm_proxy.store.writer import replay

ROOT = Path(__file__).resolve().parent.parent


def llm_audit(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llm_proxy", *args], capture_output=True,
                          text=True, env=env, timeout=60)


@pytest.fixture
def filled_store(store: Path) -> Path:
    seg = JournalSegment(store / "journal", "h", 1, fsync="never", fsync_interval_s=1)
    rows = []
    for i in range(3):
        r = empty_record()
        r.update(id=f"01ID{i}", ts=1_764_140_000_000_000 + i, request_model="gpt-4o",
                 status_code=200 if i else 429, input_tokens=10 * i)
        rows.append(r)
    seg.append(b"".join(encode_record(r) for r in rows), 3)
    seg.close()
    replay(store)
    return store


def test_seed_example_runs_verbatim():
    cfg = load_config(ROOT / "examples" / "audit_log_config.py")
    assert cfg.retention_days == 2555 and cfg.archive_after == 90 and cfg.redact_pii
    assert cfg.exporters == [LogExporter("elasticsearch", endpoint="http://logs.company.com"),
                             LogExporter("s3", bucket="audit-logs-backup")]
    assert {"authorization", "api-key", "x-api-key", "cookie"} <= cfg.secret_headers


def test_toml_config_with_same_keys(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text('retention_days = 30\narchive_after = 7\nredact_headers = ["x-team-token"]\n'
                    '[[exporters]]\nkind = "s3"\nbucket = "b"\n')
    cfg = load_config(path)
    assert cfg.retention_days == 30 and cfg.exporters == [LogExporter("s3", bucket="b")]
    assert "x-team-token" in cfg.secret_headers


@pytest.mark.parametrize("text,needle", [
    ("retention_dayz = 3", "unknown config key 'retention_dayz'"),
    ("retention_days = 'long'", "'retention_days' must be int"),
    ("fsync = 'sometimes'", "'fsync' must be one of"),
    ("[[exporters]]\nkind = 'ftp'\nendpoint = 'x'", "exporter kind 'ftp' is unknown"),
    ("[[exporters]]\nkind = 's3'", "exporter 's3' needs bucket"),
    ("retention_days = [", "invalid TOML"),
])
def test_bad_config_names_the_key(tmp_path: Path, text: str, needle: str):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace("(", r"\(")):
        load_config(path)


def test_bad_config_is_one_line_exit_2(tmp_path: Path, filled_store: Path):
    path = tmp_path / "c.toml"
    path.write_text("log_everything = true\n")
    res = llm_audit("sql", "--store", str(filled_store), "--config", str(path), "select 1")
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "log_everything" in res.stderr
    assert "Traceback" not in res.stderr


def test_python_config_must_define_config(tmp_path: Path):
    path = tmp_path / "c.py"
    path.write_text("x = 1\n")
    with pytest.raises(ConfigError, match="must define `config"):
        load_config(path)
    assert AuditConfig().fsync == "interval"


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "table"])
def test_sql_formats(filled_store: Path, fmt: str):
    res = llm_audit("sql", "--store", str(filled_store), "--format", fmt,
                    "select id, ts, status_code from flows order by id")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    if fmt == "json":
        rows = json.loads(out)
        assert [r["status_code"] for r in rows] == [429, 200, 200]
        assert rows[0]["ts"].endswith("Z") and rows[0]["ts"].startswith("2025-11-26T")
    elif fmt == "jsonl":
        assert [json.loads(line)["id"] for line in out.splitlines()] == ["01ID0", "01ID1", "01ID2"]
    elif fmt == "csv":
        assert out.splitlines()[0] == "id,ts,status_code" and len(out.splitlines()) == 4
    else:
        assert "01ID2" in out and "429" in out


def test_sql_error_and_missing_store_are_one_line(tmp_path: Path, filled_store: Path):
    res = llm_audit("sql", "--store", str(filled_store), "select nope from flows")
    assert res.returncode == 2 and res.stderr.startswith("Error: SQL error:")
    assert "Traceback" not in res.stderr
    res = llm_audit("sql", "--store", str(tmp_path / "missing"), "select 1")
    assert res.returncode == 2 and "no audit store" in res.stderr


def test_store_from_environment(filled_store: Path):
    import os

    env = {**os.environ, "LLM_AUDIT_STORE": str(filled_store)}
    res = llm_audit("sql", "--format", "json", "select count(*) as n from flows", env=env)
    assert json.loads(res.stdout) == [{"n": 3}]


def test_every_command_has_help():
    from typer.testing import CliRunner

    from llm_proxy.cli.app import app

    runner = CliRunner()
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for name in ("proxy", "sql", "demo"):
        assert name in res.output
        sub = runner.invoke(app, [name, "--help"])
        assert sub.exit_code == 0 and len(sub.output) > 100
