"""``llm-audit top``: rates over the sliding window, per model, and the latest records."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console
from test_report_support import cli, llm_audit, write_records

from llm_proxy.cli.top import frame
from llm_proxy.pricing import PriceTable
from llm_proxy.schema import empty_record

NOW = datetime.now(UTC).replace(microsecond=0)


def _record(i: int, ago: timedelta, model: str, status: int, latency: float, inp: int,
            out: int, provider: str = "openai") -> dict:
    r = empty_record()
    r.update(id=f"01TOP{i:021d}", ts=int((NOW - ago).timestamp() * 1_000_000),
             method="POST", endpoint="/v1/chat/completions", provider=provider,
             request_model=model, status_code=status, latency_ms=latency, user_id=f"user{i}",
             input_tokens=inp if status < 400 else None,
             output_tokens=out if status < 400 else None,
             error_type="rate_limit" if status == 429 else None)
    c = PriceTable.load().cost(provider=provider, model=model, operation="chat",
                               input_tokens=r["input_tokens"], output_tokens=r["output_tokens"],
                               cached_input_tokens=None, cache_write_tokens=None,
                               reasoning_tokens=None)
    r.update(c.as_columns())
    return r


@pytest.fixture
def live_store(store: Path) -> Path:
    s = timedelta(seconds=1)
    records = [
        _record(1, 10 * s, "gpt-4o", 200, 100, 1000, 1000),  # $0.0125
        _record(2, 20 * s, "gpt-4o", 200, 200, 1000, 1000),
        _record(3, 30 * s, "gpt-4o", 200, 300, 1000, 1000),
        _record(4, 40 * s, "gpt-4o", 429, 20, 0, 0),
        _record(5, 50 * s, "claude-sonnet-4-5", 200, 900, 2000, 0, "anthropic"),  # $0.006
        _record(6, 60 * s, "claude-sonnet-4-5", 200, 800, 2000, 0, "anthropic"),
        _record(7, 2 * 3600 * s, "gpt-4o-mini", 200, 50, 10, 10),  # outside the window
    ]
    write_records(store, records[:3], seq=1, flush=True)
    write_records(store, records[3:], seq=2, flush=False)  # the rest still in the journal
    return store


def _text(renderable) -> str:
    buf = io.StringIO()
    Console(file=buf, width=120, color_system=None).print(renderable)
    return buf.getvalue()


def test_rates_over_the_window(live_store: Path):
    out = _text(frame(str(live_store), window_s=300, latest=10, now=NOW))
    # 6 requests in 5 minutes
    assert "0.02" in out and "requests/s" in out
    assert "16.7%" in out  # one 429 in six
    # tokens: 3 x 2000 + 2 x 2000 = 10,000 in 5 min = 2,000/min
    assert "2,000" in out and "tokens/min" in out
    # cost: 3 x $0.0125 + 2 x $0.006 = $0.0495 in 5 min = $0.594/hour
    assert "$0.5940" in out and "cost/hour" in out
    assert "gpt-4o " in out and "claude-sonnet-4-5" in out
    assert out.index("gpt-4o ") < out.index("claude-sonnet-4-5")  # busiest first


def test_latest_records_include_older_ones_and_errors(live_store: Path):
    out = _text(frame(str(live_store), window_s=60, latest=10, now=NOW))
    assert "Latest records" in out
    assert "gpt-4o-mini" in out  # two hours old: listed below, not in the rates
    assert "429" in out
    latest = out[out.index("Latest records"):]
    assert latest.index("user1 ") < latest.index("user7")  # newest first


def test_once_prints_one_frame_and_exits(live_store: Path):
    res = llm_audit("top", "--once", "--store", str(live_store))
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("requests/s") == 1 and "Per model" in res.stdout


def test_live_mode_refreshes_until_interrupted(live_store: Path):
    proc = subprocess.Popen([sys.executable, "-m", "llm_proxy", "top", "--interval", "0.2",
                             "--store", str(live_store)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ,
                                                                    "COLUMNS": "120"})
    time.sleep(4)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "requests/s" in out and "Traceback" not in err


def test_empty_store_and_bad_options(store: Path):
    write_records(store, [], flush=False)
    code, out, _err = cli("top", "--once", "--store", str(store))
    assert code == 0 and "no traffic in the window" in out
    code, _out, err = cli("top", "--once", "--window", "soon", "--store", str(store))
    assert code == 2 and "--window 'soon' is not a duration" in err


def test_tail_follow_stops_cleanly_on_ctrl_c(live_store: Path):
    """Ctrl-C lands between refreshes, never inside a DuckDB query: exit 0, no traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "llm_proxy", "tail", "-f", "--store",
                             str(live_store)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
