"""search, show, tail, queries and export through the real CLI, over a store filled by the writer."""

from __future__ import annotations

import csv
import io
import json
import stat
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from llm_proxy.schema import empty_record
from llm_proxy.store.journal import JournalSegment, encode_record
from llm_proxy.store.writer import replay

NOW = datetime.now(UTC)


def us(dt: datetime) -> int:
    return int(dt.timestamp() * 1_000_000)


def ulid_like(i: int, at: datetime) -> str:
    from llm_proxy.addon.record import ulid

    return ulid(at.timestamp(), f"flow-{i}")


def make(i: int, ago: timedelta, **kw) -> dict:
    at = NOW - ago
    r = empty_record()
    r.update(id=ulid_like(i, at), ts=us(at), method="POST", host="api.openai.com",
             path="/v1/chat/completions", endpoint="/v1/chat/completions", provider="openai",
             operation="chat", request_model="gpt-4o", response_model="gpt-4o-2024-08-06",
             user_id="alice", key_id="sk-proj-…WXYZ#3f9c2e1d0a", auth_method="api_key",
             status_code=200, input_tokens=700, output_tokens=112, total_tokens=812,
             cost_usd=0.0029, latency_ms=640.0, ttfb_ms=120.0, stream=False,
             request_headers='{"content-type":"application/json","authorization":"[REDACTED]"}',
             request_body=json.dumps({"model": "gpt-4o", "messages": [
                 {"role": "user", "content": f"routine question number {i}"}]}),
             response_body=json.dumps({"choices": [{"message": {"content": "an answer"}}]}))
    r.update(kw)
    return r


RECORDS = [
    make(1, timedelta(minutes=5), request_body=json.dumps({"model": "gpt-4o", "messages": [
        {"role": "user", "content": "Summarize:\nthe Project Falcon roadmap for [EMAIL]"}]}),
        redactions='{"EMAIL": 1}'),
    make(2, timedelta(minutes=20), user_id="svc-billing", status_code=429,
         error_type="rate_limit", error_message="Rate limit reached for gpt-4o",
         output_tokens=0, total_tokens=700, key_id="sk-proj-…BILL#aa11bb22cc"),
    make(3, timedelta(hours=2), request_model="claude-sonnet-4-5",
         response_model="claude-sonnet-4-5", provider="anthropic", endpoint="/v1/messages",
         path="/v1/messages", user_id="bob",
         response_body=json.dumps({"content": [{"type": "text", "text": "falcon falconry"}]})),
    make(4, timedelta(hours=3), status_code=503, error_type="server_error",
         error_message="upstream overloaded", user_id="bob"),
    make(5, timedelta(days=3), request_body='{"messages":[{"role":"user","content":"old falcon notes"}]}'),
    make(6, timedelta(days=10), user_id="carol", status_code=400, error_type="client_error",
         error_message="context length exceeded"),
]
JOURNAL_ONLY = make(7, timedelta(minutes=1), user_id="dave",
                    request_body='{"messages":[{"role":"user","content":"fresh Falcon question"}]}')


def fill(store: Path, records: list[dict], seq: int) -> None:
    seg = JournalSegment(store / "journal", "h", seq, fsync="never", fsync_interval_s=1)
    seg.append(b"".join(encode_record(r) for r in records), len(records))
    seg.close()


@pytest.fixture
def audit_store(store: Path) -> Path:
    fill(store, RECORDS[:3], 1)
    fill(store, RECORDS[3:], 2)
    replay(store)  # → Parquet, two files in some hours
    fill(store, [JOURNAL_ONLY], 3)  # acknowledged, not flushed yet
    return store


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``llm-audit`` in-process through ``main`` (the real error → exit-code mapping)."""
    from llm_proxy.cli.app import main

    old = sys.argv
    sys.argv = ["llm-audit", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = old
    out, err = capsys.readouterr()
    return code, out, err


def ids(capsys, store: Path, *args: str) -> list[str]:
    code, out, err = cli(capsys, "search", "--store", str(store), "--format", "jsonl", *args)
    assert code == 0, err
    return [json.loads(line)["id"] for line in out.splitlines()]


IDS = {i + 1: r["id"] for i, r in enumerate([*RECORDS, JOURNAL_ONLY])}


def rid(n: int) -> str:
    return IDS[n]


def test_full_text_words_phrases_and_case(audit_store: Path, capsys):
    assert ids(capsys, audit_store, "falcon") == [rid(7), rid(1), rid(3), rid(5)]
    assert ids(capsys, audit_store, "FALCON roadmap") == [rid(1)]
    assert ids(capsys, audit_store, '"project falcon"') == [rid(1)]  # across a JSON \n too
    assert ids(capsys, audit_store, '"falcon project"') == []
    assert ids(capsys, audit_store, "falc") == []  # whole words
    assert ids(capsys, audit_store, "falc*", "--since", "1d") == [rid(7), rid(1), rid(3)]
    assert ids(capsys, audit_store, "overloaded") == [rid(4)]  # error messages too


def test_filters_combine_and_newest_first(audit_store: Path, capsys):
    assert ids(capsys, audit_store, "--user", "bob") == [rid(3), rid(4)]
    assert ids(capsys, audit_store, "--model", "claude-*") == [rid(3)]
    assert ids(capsys, audit_store, "--model", "gpt-4o-2024-08-06", "--user", "bob") == [rid(4)]
    assert ids(capsys, audit_store, "--status", "429") == [rid(2)]
    assert ids(capsys, audit_store, "--status", "5xx") == [rid(4)]
    assert ids(capsys, audit_store, "--status", "429,4xx") == [rid(2), rid(6)]
    assert ids(capsys, audit_store, "--key-id", "BILL") == [rid(2)]
    assert ids(capsys, audit_store, "--provider", "anthropic") == [rid(3)]
    assert ids(capsys, audit_store, "--endpoint", "/v1/messages") == [rid(3)]
    assert ids(capsys, audit_store, "--since", "1h") == [rid(7), rid(1), rid(2)]
    assert ids(capsys, audit_store, "--since", "7d", "--until", "1h") == [rid(3), rid(4), rid(5)]
    assert ids(capsys, audit_store, "--where", "latency_ms > 100 AND user_id = 'carol'") == [rid(6)]
    assert ids(capsys, audit_store, "--limit", "2") == [rid(7), rid(1)]


def test_table_view_has_marks_and_snippet(audit_store: Path, capsys):
    code, out, _ = cli(capsys, "search", "--store", str(audit_store), "falcon", "--since", "1d")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["time", "id", "method", "endpoint"]
    first = next(line for line in lines if rid(1) in line)
    assert "POST" in first and "200 ✓" in first and "gpt-4o-2024-08-06" in first
    assert "812" in first and "$0.0029" in first and "640 ms" in first
    assert "Project Falcon roadmap" in first  # the snippet, the JSON \n shown as a space
    code, out, _ = cli(capsys, "search", "--store", str(audit_store), "--since", "1d")
    assert "429 ⚠" in out and "503 ✗" in out and "Rate limit reached" in out
    assert "routine question number" in out  # no text: the prompt's start


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_machine_formats(audit_store: Path, capsys, fmt: str):
    code, out, _ = cli(capsys, "search", "--store", str(audit_store), "--status", "429",
                       "--format", fmt)
    assert code == 0
    if fmt == "json":
        rows = json.loads(out)
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in out.splitlines()]
    else:
        rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["id"] for r in rows] == [rid(2)]
    assert rows[0]["ts"].endswith("Z") and rows[0]["error_type"] == "rate_limit"


@pytest.mark.parametrize("args,needle", [
    (["--status", "42x"], "--status '42x' is not understood"),
    (["--status", "600"], "is not understood"),
    (["--since", "last tuesday"], "--since 'last tuesday' is not a time"),
    (["--since", "1h", "--until", "2h"], "is not before"),
    (["--where", "no_such_column = 1"], "SQL error"),
    (["--where", "1=1; DROP TABLE x"], "is not one SQL condition"),
    (['"unclosed'], "unclosed quote"),
    (["!!!"], "no words"),
    (["--limit", "0"], "--limit 0"),
    (["--format", "xml"], "unknown --format"),
])
def test_bad_input_is_one_line_exit_2(audit_store: Path, capsys, args, needle):
    code, _, err = cli(capsys, "search", "--store", str(audit_store), *args)
    assert code == 2
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_missing_and_empty_store(tmp_path: Path, capsys):
    code, _, err = cli(capsys, "search", "--store", str(tmp_path / "nope"), "x")
    assert code == 2 and "no audit store" in err and err.count("\n") == 1
    (tmp_path / "empty" / "flows").mkdir(parents=True)
    code, out, _ = cli(capsys, "search", "--store", str(tmp_path / "empty"), "x")
    assert code == 0 and "No matching records" in out


def test_show_whole_record(audit_store: Path, capsys):
    code, out, _ = cli(capsys, "show", "--store", str(audit_store), rid(1))
    assert code == 0
    assert f"Record {rid(1)}" in out and "200 ✓" in out
    assert '"content": "Summarize:\\nthe Project Falcon roadmap for [EMAIL]"' in out
    assert '    {\n      "role": "user",' in out  # JSON bodies indented
    assert "Redactions" in out and "[EMAIL] × 1" in out
    code, out, _ = cli(capsys, "show", "--store", str(audit_store), rid(2), "--format", "json")
    record = json.loads(out)
    assert record["error_type"] == "rate_limit" and record["ts"].endswith("Z")
    assert record["request_body"] == RECORDS[1]["request_body"]
    code, out, _ = cli(capsys, "show", "--store", str(audit_store), rid(7))  # journal only
    assert code == 0 and "fresh Falcon question" in out
    code, _, err = cli(capsys, "show", "--store", str(audit_store), "01NOPE")
    assert code == 2 and "no record with id '01NOPE'" in err


def test_tail_lines(audit_store: Path, capsys):
    code, out, _ = cli(capsys, "tail", "--store", str(audit_store), "-n", "3")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3
    t = (NOW - timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S")
    assert lines[1] == f"{t} POST /v1/chat/completions 200 ✓ gpt-4o-2024-08-06 812 tok 640 ms"
    assert lines[0].endswith("429 ⚠ gpt-4o-2024-08-06 700 tok 640 ms rate_limit")
    assert "dave" not in out and lines[2].startswith(
        (NOW - timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M"))
    code, out, _ = cli(capsys, "tail", "--store", str(audit_store), "--status", "5xx")
    assert out.splitlines()[-1].endswith("503 ✗ gpt-4o-2024-08-06 812 tok 640 ms server_error")


def test_saved_queries(audit_store: Path, capsys):
    s = str(audit_store)
    code, out, err = cli(capsys, "search", "--store", s, "falcon", "--user", "alice",
                         "--since", "1h", "--save", "falcon-alice", "--format", "jsonl")
    assert code == 0 and "Saved query 'falcon-alice'" in err
    assert [json.loads(x)["id"] for x in out.splitlines()] == [rid(1)]
    path = audit_store / "queries.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())["queries"]["falcon-alice"]
    assert saved["filters"] == {"text": "falcon", "user": "alice", "since": "1h"}
    code, out, _ = cli(capsys, "queries", "list", "--store", s)
    assert "falcon-alice" in out and "--user 'alice'" in out
    code, out, _ = cli(capsys, "queries", "run", "falcon-alice", "--store", s,
                       "--format", "jsonl")
    assert [json.loads(x)["id"] for x in out.splitlines()] == [rid(1)]
    code, out, _ = cli(capsys, "queries", "run", "falcon-alice", "--store", s,
                       "--since", "30d", "--format", "jsonl")
    assert [json.loads(x)["id"] for x in out.splitlines()] == [rid(1), rid(5)]
    code, out, _ = cli(capsys, "queries", "delete", "falcon-alice", "--store", s)
    assert code == 0 and json.loads(path.read_text())["queries"] == {}
    code, _, err = cli(capsys, "queries", "run", "falcon-alice", "--store", s)
    assert code == 2 and "no saved query 'falcon-alice'" in err
    code, _, err = cli(capsys, "search", "--store", s, "x", "--save", "../evil")
    assert code == 2 and "not allowed" in err


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_export(audit_store: Path, tmp_path: Path, capsys, fmt: str):
    out_file = tmp_path / f"out.{fmt}"
    code, _, err = cli(capsys, "export", "--store", str(audit_store), "--output", str(out_file),
                       "--since", "1d")
    assert code == 0 and "Exported 5 record(s)" in err
    assert stat.S_IMODE(out_file.stat().st_mode) == 0o600
    if fmt == "parquet":
        table = pq.read_table(out_file)
        assert table.num_rows == 5 and table.column("user_id").to_pylist()[-1] == "dave"
    elif fmt == "csv":
        rows = list(csv.DictReader(out_file.open()))
        assert len(rows) == 5 and rows[0]["ts"].endswith("Z")
    else:
        rows = [json.loads(x) for x in out_file.read_text().splitlines()]
        assert [r["id"] for r in rows][-1] == rid(7)
        assert "[EMAIL]" in rows[-2]["request_body"]  # what the store holds: redacted
    assert not list(tmp_path.glob(".*partial"))


def test_export_filters_and_errors(audit_store: Path, tmp_path: Path, capsys):
    out_file = tmp_path / "x.jsonl"
    code, _, err = cli(capsys, "export", "--store", str(audit_store), "-o", str(out_file),
                       "--user", "bob", "--text", "falcon")
    assert code == 0 and [json.loads(x)["id"] for x in out_file.read_text().splitlines()] == [
        rid(3)]
    code, _, err = cli(capsys, "export", "--store", str(audit_store), "-o", str(out_file),
                       "--format", "xlsx")
    assert code == 2 and "parquet, csv or jsonl" in err
    code, _, err = cli(capsys, "export", "--store", str(audit_store),
                       "-o", str(tmp_path / "no" / "x.csv"))
    assert code == 2 and "does not exist" in err
