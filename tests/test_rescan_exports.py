"""rescan covers the exports the store made, wherever they were written."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from llm_proxy.cli.app import app
from llm_proxy.schema import empty_record
from llm_proxy.store.journal import JournalSegment, encode_record
from llm_proxy.store.writer import replay

runner = CliRunner()


def test_rescan_finds_a_leak_in_an_export(tmp_path: Path):
    store = tmp_path / "store"
    seg = JournalSegment(store / "journal", "h", 1, fsync="never", fsync_interval_s=1)
    r = empty_record()
    r.update(id="01EXPORT", ts=1_764_140_000_000_000, request_body='{"q":"[EMAIL] asked"}')
    seg.append(encode_record(r), 1)
    seg.close()
    replay(store)
    out = tmp_path / "elsewhere" / "export.jsonl"
    out.parent.mkdir()
    res = runner.invoke(app, ["export", "--store", str(store), "--output", str(out), "--format", "jsonl"])
    assert res.exit_code == 0, res.output
    clean = runner.invoke(app, ["rescan", "--store", str(store)])
    assert clean.exit_code == 0, clean.output
    # someone (or a bug) puts clear personal data into the exported file
    out.write_text(out.read_text().replace("[EMAIL]", "jane.doe@example.com"))
    dirty = runner.invoke(app, ["rescan", "--store", str(store)])
    assert dirty.exit_code == 1
    assert str(out) in dirty.output and "email" in dirty.output
    assert "jane.doe@example.com" not in dirty.output
