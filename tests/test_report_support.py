"""A store of ten known records for the report tests, written through the real journal + writer.

The numbers the report tests expect are worked out by hand in the comments below; costs are
stamped by ``PriceTable.cost`` exactly as the capture worker stamps them. Nine records are
flushed to Parquet, the tenth stays in the journal (queries must see it too).
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from llm_proxy.pricing import PriceTable
from llm_proxy.schema import empty_record
from llm_proxy.store.journal import JournalSegment, encode_record
from llm_proxy.store.layout import JOURNAL_DIR
from llm_proxy.store.writer import replay

DAY1 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
DAY2 = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
SINCE, UNTIL = "2026-11-01", "2026-11-05"

# (ts, user, provider, model, endpoint, status, error_type, error_message, latency, ttfb, stream,
#  input, output, cached, cache_write, reasoning, retry_count, fallback, usage_source)
_ROWS: list[tuple[Any, ...]] = [
    # 1 gpt-4o: 800 uncached*2.5 + 200 cached*1.25 + 500 out*10 (per 1M) = 0.002+0.00025+0.005
    (DAY1, "alice", "openai", "gpt-4o", "/v1/chat/completions", 200, None, None, 100.0, 40.0,
     True, 1000, 500, 200, None, None, 0, False, "provider"),
    # 2 gpt-4o: 2000*2.5 + 1000*10 = 0.005 + 0.01 = 0.015
    (DAY1.replace(minute=5), "alice", "openai", "gpt-4o-2024-08-06", "/v1/chat/completions",
     200, None, None, 200.0, 60.0, True, 2000, 1000, 0, None, None, 0, False, "provider"),
    # 3 claude-sonnet-4-5: 1500*3 + 1000*0.3 + 500*3.75 + 200*15 = 0.0045+0.0003+0.001875+0.003
    (DAY1.replace(minute=10), "bob", "anthropic", "claude-sonnet-4-5", "/v1/messages", 200,
     None, None, 300.0, 300.0, False, 3000, 200, 1000, 500, None, 0, False, "provider"),
    # 4 o4-mini: 100*1.1 + 100*4.4 (output) + 1000*4.4 (reasoning) = 0.00011+0.00044+0.0044
    (DAY1.replace(minute=15), "bob", "openai", "o4-mini", "/v1/chat/completions", 200, None,
     None, 400.0, 400.0, False, 100, 1100, 0, None, 1000, 0, False, "provider"),
    # 5 a 429 the SDK retried twice: no tokens, $0
    (DAY1.replace(minute=20), "carol", "openai", "gpt-4o", "/v1/chat/completions", 429,
     "rate_limit", "Rate limit reached for gpt-4o", 50.0, 50.0, False, None, None, None, None,
     None, 2, False, "missing"),
    # 6 a 500
    (DAY1.replace(minute=25), "carol", "anthropic", "claude-sonnet-4-5", "/v1/messages", 500,
     "server_error", "Internal server error", 1000.0, 1000.0, False, None, None, None, None,
     None, 0, False, "missing"),
    # 7 a model without a price: cost NULL, listed as unknown
    (DAY1.replace(minute=30), "dave", "unknown", "corp-llm-13b", "/v1/chat/completions", 200,
     None, None, 500.0, 500.0, False, 100, 50, None, None, None, 0, False, "provider"),
    # 8 an upstream timeout (no HTTP status)
    (DAY1.replace(minute=35), "alice", "openai", "gpt-4o", "/v1/chat/completions", None,
     "timeout", "upstream timed out", 30000.0, None, False, None, None, None, None, None, 0,
     False, "missing"),
    # 9 day 2, gemini with thinking, a fallback: 1000*0.3 + 200*2.5 + 100*2.5 = 0.00105
    (DAY2, "bob", "gemini", "gemini-2.5-flash",
     "/v1beta/models/gemini-2.5-flash:streamGenerateContent", 200, None, None, 600.0, 150.0,
     True, 1000, 300, None, None, 100, 0, True, "provider"),
    # 10 day 2, estimated usage, left in the journal: 10*2.5 + 10*10 = 0.000125
    (DAY2.replace(minute=30), "alice", "openai", "gpt-4o", "/v1/chat/completions", 200, None,
     None, 700.0, 700.0, False, 10, 10, None, None, None, 0, False, "estimated"),
]

EXPECTED = {
    "requests": 10,
    "input_tokens": 7210,
    "output_tokens": 3160,
    "cached_input_tokens": 1200,
    "cost_usd": 0.00725 + 0.015 + 0.009675 + 0.00495 + 0.00105 + 0.000125,
    "cost_alice": 0.00725 + 0.015 + 0.000125,
    "cost_bob": 0.009675 + 0.00495 + 0.00105,
    "errors": 3,
}


def known_records() -> list[dict[str, Any]]:
    """The ten records, priced with the built-in table."""
    prices = PriceTable.load()
    out = []
    for i, row in enumerate(_ROWS):
        (ts, user, provider, model, endpoint, status, etype, emsg, lat, ttfb, stream, inp, outp,
         cached, write, reasoning, retries, fallback, source) = row
        r = empty_record()
        r.update(
            id=f"01KNOWN{i:019d}", ts=int(ts.timestamp() * 1_000_000), latency_ms=lat,
            ttfb_ms=ttfb, proxy_instance="test", method="POST", host=f"api.{provider}.test",
            path=endpoint, endpoint=endpoint, user_id=user, provider=provider,
            operation="chat", request_model=model, stream=stream, status_code=status,
            input_tokens=inp, output_tokens=outp, cached_input_tokens=cached,
            cache_write_tokens=write, reasoning_tokens=reasoning, usage_source=source,
            error_type=etype, error_message=emsg, retry_count=retries, fallback_used=fallback,
            key_id=f"sk-…{user[:4]}#0000", auth_method="api_key",
        )
        cost = prices.cost(provider=provider, model=model, operation="chat", input_tokens=inp,
                           output_tokens=outp, cached_input_tokens=cached,
                           cache_write_tokens=write, reasoning_tokens=reasoning)
        if cost is None:
            r["price_version"] = prices.version
        else:
            r.update(cost.as_columns())
        out.append(r)
    return out


def write_records(store: Path, records: list[dict[str, Any]], *, seq: int = 1,
                  flush: bool = True) -> None:
    """Journal ``records`` like the capture worker does; ``flush`` replays them into Parquet."""
    seg = JournalSegment(store / JOURNAL_DIR, "test", seq, fsync="never", fsync_interval_s=1)
    seg.append(b"".join(encode_record(r) for r in records), len(records))
    seg.close()
    if flush:
        replay(store)


def fill_known_store(store: Path) -> Path:
    records = known_records()
    write_records(store, records[:9], seq=1, flush=True)
    write_records(store, records[9:], seq=2, flush=False)
    return store


def cli(*args: str) -> tuple[int, str, str]:
    """Run ``llm-audit`` in-process (CliRunner over the real app); (exit code, stdout, stderr)."""
    from llm_proxy.cli.app import app

    res = CliRunner().invoke(app, list(args), catch_exceptions=True)
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        from llm_proxy.errors import AuditError

        if isinstance(res.exception, AuditError):
            return 2, res.stdout, f"Error: {res.exception}"
        raise res.exception
    return res.exit_code, res.stdout, res.stderr


def llm_audit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m llm_proxy`` as a subprocess (the real entry point and exit codes)."""
    return subprocess.run([sys.executable, "-m", "llm_proxy", *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)


def report_json(store: Path, kind: str, *extra: str) -> dict[str, Any]:
    code, out, err = cli("report", kind, "--store", str(store), "--format", "json",
                         "--since", SINCE, "--until", UNTIL, *extra)
    assert code == 0, err
    return json.loads(out)


def test_known_store_holds_ten_records_one_in_the_journal(store: Path):
    from llm_proxy.store.views import connect

    fill_known_store(store)
    assert len(list((store / "flows").rglob("*.parquet"))) == 2  # two days, one file each
    assert len(list((store / JOURNAL_DIR).glob("*.jsonl"))) == 1
    con = connect(store)
    assert con.execute("select count(*), count(cost_usd) from flows").fetchone() == (10, 9)
