"""``llm-audit report``: each report's numbers on a store of known records, every grouping and
format, through the real CLI. Expected values are worked out in ``test_report_support``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from test_report_support import (
    EXPECTED,
    SINCE,
    cli,
    fill_known_store,
    known_records,
    llm_audit,
    report_json,
    write_records,
)


@pytest.fixture
def known(store: Path) -> Path:
    return fill_known_store(store)


def _group(doc: dict, name: str) -> dict:
    return next(g for g in doc["groups"] if g["group"] == name)


# ---------------------------------------------------------------------------------- usage

def test_usage_totals_and_groups(known: Path):
    doc = report_json(known, "usage", "--by", "user")
    t = doc["totals"]
    assert t["requests"] == EXPECTED["requests"]
    assert (t["input_tokens"], t["output_tokens"], t["cached_input_tokens"]) == (7210, 3160, 1200)
    assert t["total_tokens"] == 7210 + 3160
    assert t["estimated_requests"] == 1 and t["cache_write_tokens"] == 500
    alice = _group(doc, "alice")  # records 1, 2, 8, 10
    assert alice["requests"] == 4
    assert (alice["input_tokens"], alice["output_tokens"]) == (1000 + 2000 + 10, 500 + 1000 + 10)
    assert [g["group"] for g in doc["groups"]][:2] == ["alice", "bob"]  # most requests first
    assert sum(p["requests"] for p in doc["timeline"]) == 10


def test_usage_by_day_is_in_time_order_with_iso_times(known: Path):
    doc = report_json(known, "usage", "--by", "day")
    assert [(g["group"], g["requests"]) for g in doc["groups"]] == [
        ("2026-11-02T00:00:00Z", 8), ("2026-11-03T00:00:00Z", 2)]


def test_usage_by_hour_and_the_hourly_timeline(known: Path):
    doc = report_json(known, "usage", "--by", "hour", "--since", "2026-11-02T00:00:00Z",
                      "--until", "2026-11-04")  # two days: hourly timeline
    assert doc["bucket"] == "hour"
    assert [(g["group"], g["requests"]) for g in doc["groups"]] == [
        ("2026-11-02T10:00:00Z", 8), ("2026-11-03T09:00:00Z", 2)]
    assert [p["bucket"] for p in doc["timeline"]] == ["2026-11-02T10:00:00Z",
                                                      "2026-11-03T09:00:00Z"]


@pytest.mark.parametrize("by,group,requests", [
    ("provider", "openai", 6), ("provider", "anthropic", 2), ("endpoint", "/v1/messages", 2),
    ("key", "sk-…alic#0000", 4), ("model", "gpt-4o", 4), ("model", "gpt-4o-2024-08-06", 1),
])
def test_every_grouping(known: Path, by: str, group: str, requests: int):
    doc = report_json(known, "usage", "--by", by)
    assert doc["by"] == by
    assert _group(doc, group)["requests"] == requests


def test_since_and_until_filter_on_time(known: Path):
    doc = report_json(known, "usage", "--since", "2026-11-03T00:00:00Z")
    assert doc["totals"]["requests"] == 2  # day 2 only: one from Parquet, one from the journal
    doc = report_json(known, "usage", "--until", "2026-11-02T10:12:00Z")
    assert doc["totals"]["requests"] == 3


# ----------------------------------------------------------------------------------- cost

def test_cost_totals_shares_and_top_spenders(known: Path):
    doc = report_json(known, "cost", "--by", "provider")
    t = doc["totals"]
    assert t["cost_usd"] == pytest.approx(EXPECTED["cost_usd"])
    assert t["cost_cache_write_usd"] == pytest.approx(500 * 3.75 / 1e6)
    assert t["cost_reasoning_usd"] == pytest.approx(1000 * 4.40 / 1e6 + 100 * 2.50 / 1e6)
    assert t["unpriced_requests"] == 1 and t["priced_requests"] == 9
    openai = _group(doc, "openai")
    assert openai["cost_usd"] == pytest.approx(0.00725 + 0.015 + 0.00495 + 0.000125)
    assert openai["share"] == pytest.approx(openai["cost_usd"] / EXPECTED["cost_usd"])
    assert sum(g["share"] for g in doc["groups"]) == pytest.approx(1.0)
    spenders = doc["top_spenders"]
    assert [s["user"] for s in spenders] == ["alice", "bob"]
    assert spenders[0]["cost_usd"] == pytest.approx(EXPECTED["cost_alice"])
    assert spenders[1]["cost_usd"] == pytest.approx(EXPECTED["cost_bob"])
    assert doc["by_model"][0]["model"] == "gpt-4o-2024-08-06"  # $0.015, the largest


def test_unknown_models_are_listed_never_silently_zero(known: Path):
    doc = report_json(known, "cost")
    assert doc["unknown_models"] == [{"provider": "unknown", "priced_model": "corp-llm-13b",
                                      "unpriced_requests": 1, "input_tokens": 100,
                                      "output_tokens": 50}]
    assert any("corp-llm-13b" in n and "reprice" in n for n in doc["notes"])
    code, out, _err = cli("report", "cost", "--store", str(known), "--since", SINCE)
    assert code == 0
    assert "Models without a price" in out and "corp-llm-13b" in out


def test_cost_records_which_price_tables_were_used(known: Path):
    doc = report_json(known, "cost")
    from llm_proxy.pricing import PriceTable

    assert doc["price_versions"] == [{"price_version": PriceTable.load().version,
                                      "requests": 10}]


def test_cost_by_user_keeps_the_json_shape(known: Path):
    doc = report_json(known, "cost", "--by", "user")
    assert set(doc) >= {"totals", "groups", "top_spenders", "by_model", "unknown_models",
                        "price_versions", "timeline", "notes"}
    assert [s["user"] for s in doc["top_spenders"]] == ["alice", "bob"]


# -------------------------------------------------------------------------------- latency

def test_latency_percentiles_of_successful_requests(known: Path):
    doc = report_json(known, "latency")
    t = doc["totals"]
    # successful latencies 100, 200, 300, 400, 500, 600, 700 (errors excluded)
    assert t["measured"] == 7
    assert t["latency_p50_ms"] == pytest.approx(400)
    assert t["latency_p95_ms"] == pytest.approx(600 + 0.7 * 100)  # linear interpolation
    assert t["latency_p99_ms"] == pytest.approx(600 + 0.94 * 100)
    assert t["latency_max_ms"] == 700
    # time to first token over the streamed successes: 40, 60, 150
    assert t["streams"] == 3
    assert t["ttft_p50_ms"] == pytest.approx(60)
    assert t["ttft_p95_ms"] == pytest.approx(60 + 0.9 * 90)
    gpt4o = _group(doc, "gpt-4o")  # records 1 (100 ms) and 10 (700 ms) succeeded
    assert gpt4o["latency_p50_ms"] == pytest.approx(400)
    assert gpt4o["requests"] == 4 and gpt4o["measured"] == 2


# --------------------------------------------------------------------------------- errors

def test_error_rate_429s_5xx_timeouts_retries_fallbacks(known: Path):
    doc = report_json(known, "errors", "--by", "provider")
    t = doc["totals"]
    assert (t["requests"], t["errors"]) == (10, 3)
    assert t["error_rate"] == pytest.approx(0.3)
    assert (t["rate_limited"], t["server_errors"], t["timeouts"]) == (1, 1, 1)
    assert (t["retries"], t["retried_requests"], t["fallbacks"]) == (2, 1, 1)
    openai = _group(doc, "openai")
    assert (openai["errors"], openai["error_rate"]) == (2, pytest.approx(2 / 6))
    messages = {e["message"]: e for e in doc["top_errors"]}
    assert set(messages) == {"Rate limit reached for gpt-4o", "Internal server error",
                             "upstream timed out"}
    assert messages["Rate limit reached for gpt-4o"]["status_code"] == 429
    assert messages["upstream timed out"]["last_seen"] == "2026-11-02T10:35:00Z"
    assert {e["error_type"]: e["errors"] for e in doc["by_type"]} == {
        "rate_limit": 1, "server_error": 1, "timeout": 1}
    rates = {p["bucket"][:10]: p["error_rate"] for p in doc["timeline"]}
    assert rates == {"2026-11-02": pytest.approx(3 / 8), "2026-11-03": 0.0}


# -------------------------------------------------------------------------------- formats

def test_csv_is_the_groups_table(known: Path):
    code, out, err = cli("report", "cost", "--store", str(known), "--format", "csv",
                         "--by", "user", "--since", SINCE)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0])[:3] == ["group", "requests", "input_tokens"]
    assert "cost_usd" in rows[0] and "share" in rows[0]
    by_user = {r["group"]: r for r in rows}
    assert float(by_user["alice"]["cost_usd"]) == pytest.approx(EXPECTED["cost_alice"])


def test_table_output_fits_100_columns(known: Path):
    for kind in ("usage", "cost", "latency", "errors"):
        res = llm_audit("report", kind, "--store", str(known), "--by", "endpoint",
                        env={"COLUMNS": "250", "PATH": "/usr/bin:/bin"})
        assert res.returncode == 0, res.stderr
        lines = res.stdout.splitlines()
        assert max(len(line) for line in lines) <= 100, kind
        assert any("/v1/messages" in line for line in lines)


def test_table_shows_the_people_facing_numbers(known: Path):
    code, out, _err = cli("report", "errors", "--store", str(known), "--since", SINCE)
    assert code == 0
    assert "30.0%" in out and "Top errors" in out and "Rate limit reached" in out


def test_markdown_report(known: Path, tmp_path: Path):
    path = tmp_path / "cost.md"
    code, _out, err = cli("report", "cost", "--store", str(known), "--format", "markdown",
                          "--output", str(path), "--since", SINCE)
    assert code == 0, err
    text = path.read_text()
    assert text.startswith("# Cost report")
    assert "| model | requests |" in text and "| gpt-4o |" in text
    assert "$0.0381" in text and "> 1 requests used models with no price" in text


def test_html_report_to_file(known: Path, tmp_path: Path):
    path = tmp_path / "r.html"
    code, _out, err = cli("report", "errors", "--store", str(known), "--format", "html",
                          "-o", str(path), "--since", SINCE)
    assert code == 0, err
    html = path.read_text()
    assert html.startswith("<!doctype html>") and "Error rate over time" in html
    assert html.count("<svg") >= 3


def test_limit_keeps_the_largest_groups(known: Path):
    doc = report_json(known, "usage", "--by", "user", "--limit", "1")
    assert [g["group"] for g in doc["groups"]] == ["alice"]
    assert doc["totals"]["requests"] == 10  # totals still cover everything


# --------------------------------------------------------------------------------- errors

@pytest.mark.parametrize("args,needle", [
    (["report", "spend"], "unknown report 'spend'"),
    (["report", "cost", "--by", "team"], "--by 'team' is not a grouping"),
    (["report", "cost", "--format", "pdf"], "unknown --format 'pdf'"),
    (["report", "cost", "--since", "yesterday"], "--since 'yesterday' is not a time"),
    (["report", "cost", "--since", "2026-11-05", "--until", "2026-11-01"],
     "--since must be before"),
])
def test_bad_usage_is_one_line_exit_2(known: Path, args: list[str], needle: str):
    res = llm_audit(*args, "--store", str(known))
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and needle in res.stderr, res.stderr


def test_missing_store_is_one_line(tmp_path: Path):
    res = llm_audit("report", "usage", "--store", str(tmp_path / "nope"))
    assert res.returncode == 2 and "no audit store" in res.stderr


def test_empty_period_reports_zeroes(known: Path):
    doc = report_json(known, "cost", "--since", "2026-11-04")
    assert doc["totals"]["requests"] == 0 and doc["totals"]["cost_usd"] == 0
    assert doc["groups"] == [] and doc["timeline"] == []
    code, out, _err = cli("report", "latency", "--store", str(known), "--since", "2026-11-04")
    assert code == 0 and "(none)" in out


def test_journal_only_store(store: Path):
    write_records(store, known_records()[:3], flush=False)
    doc = json.loads(cli("report", "usage", "--store", str(store), "--format", "json")[1])
    assert doc["totals"]["requests"] == 3 and doc["bucket"] == "hour"


# The documented json/csv shapes (docs/reports.md): changing one is a deliberate act.
SHAPES = {
    "usage": {
        "groups": "group requests input_tokens cached_input_tokens cache_write_tokens "
                  "output_tokens reasoning_tokens total_tokens estimated_requests "
                  "missing_usage_requests",
        "timeline": "bucket requests errors input_tokens output_tokens cached_input_tokens",
    },
    "cost": {
        "groups": "group requests input_tokens output_tokens cached_input_tokens cost_input_usd "
                  "cost_cached_input_usd cost_cache_write_usd cost_output_usd "
                  "cost_reasoning_usd cost_request_usd cost_usd share cost_per_1k_requests "
                  "unpriced_requests",
        "top_spenders": "user requests cost_usd share",
        "by_model": "model requests cost_usd share",
        "unknown_models": "provider priced_model unpriced_requests input_tokens output_tokens",
        "price_versions": "price_version requests",
        "timeline": "bucket requests cost_usd input_tokens output_tokens",
    },
    "latency": {
        "groups": "group requests measured latency_p50_ms latency_p95_ms latency_p99_ms "
                  "latency_avg_ms latency_max_ms streams ttft_p50_ms ttft_p95_ms ttft_p99_ms",
        "timeline": "bucket measured latency_p50_ms latency_p95_ms latency_p99_ms ttft_p50_ms "
                    "ttft_p95_ms",
    },
    "errors": {
        "groups": "group requests errors error_rate rate_limited server_errors client_errors "
                  "timeouts connection_errors retries retried_requests fallbacks",
        "top_errors": "error_type status_code message errors share last_seen",
        "by_type": "error_type errors share",
        "timeline": "bucket requests errors error_rate rate_limited server_errors timeouts",
    },
}


@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_json_and_csv_shapes_are_pinned(known: Path, kind: str):
    doc = report_json(known, kind)
    sections = [k for k in doc if isinstance(doc[k], list) and k != "notes"]
    assert list(doc)[:8] == ["report", "by", "since", "until", "generated_at", "bucket",
                             "totals", "groups"] and list(doc)[-1] == "notes"
    assert sorted(sections) == sorted(SHAPES[kind])
    for name, keys in SHAPES[kind].items():
        assert doc[name], name
        assert list(doc[name][0]) == keys.split(), name
    assert list(doc["totals"]) == [k for k in SHAPES[kind]["groups"].split() if k != "group"
                                   and k != "share"] + (
        ["priced_requests", "estimated_requests", "missing_usage_requests"]
        if kind == "cost" else [])
    code, out, _err = cli("report", kind, "--store", str(known), "--format", "csv")
    assert code == 0 and out.splitlines()[0] == ",".join(SHAPES[kind]["groups"].split())
