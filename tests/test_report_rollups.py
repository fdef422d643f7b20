"""Report roll-ups cached per day (``llm_proxy.reports.rollup``, ``llm_proxy.store.rollups``).

A store of a few hundred records over three days (several files per hour, a few records left
in the journal) is reported cold, warm, partly cached, uncached, after compaction, erasure and
corruption of the cache; every run must give the same numbers, and the numbers must match plain
SQL over the ``flows`` view (percentiles within the documented 1 %).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from test_report_support import cli, write_records

from llm_proxy.reports import REPORT_KINDS, Scope, build_report
from llm_proxy.reports.shapes import to_json
from llm_proxy.schema import empty_record
from llm_proxy.store import rollups, views
from llm_proxy.store.compact import compact
from llm_proxy.store.erase import erase

START = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
BYS = ("model", "user", "day", "hour", "provider", "endpoint", "key")


def _records(n: int, *, seed: int, start: datetime = START, days: int = 3) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ts = start + timedelta(seconds=rng.randrange(days * 86400))
        user = f"u{rng.randrange(6)}"
        err = rng.random() < 0.15
        r = empty_record()
        r.update(
            id=f"01R{seed:04d}{i:016d}", ts=int(ts.timestamp() * 1_000_000),
            latency_ms=round(rng.lognormvariate(6, 0.8), 1), proxy_instance="test",
            ttfb_ms=round(rng.lognormvariate(4, 0.5), 1), method="POST", host="api.test",
            path=f"/v1/e{rng.randrange(3)}", endpoint=f"/v1/e{rng.randrange(3)}", user_id=user,
            provider=rng.choice(["openai", "anthropic"]), operation="chat",
            request_model=f"m{rng.randrange(4)}", stream=rng.random() < 0.5,
            status_code=rng.choice([429, 500]) if err else 200,
            error_type=rng.choice(["rate_limit", "server_error"]) if err else None,
            error_message=f"failure {rng.randrange(3)} for {user}" if err else None,
            input_tokens=rng.randrange(1, 5000), output_tokens=rng.randrange(1, 2000),
            cached_input_tokens=rng.randrange(0, 100), cost_usd=rng.random() / 100,
            cost_input_usd=rng.random() / 200, retry_count=rng.randrange(3),
            fallback_used=rng.random() < 0.1, usage_source="provider",
            key_id=f"sk-…{user}#0000", auth_method="api_key", price_version="test-1",
        )
        out.append(r)
    return out


@pytest.fixture
def filled(store: Path) -> Path:
    for seq in range(1, 5):  # several files per hour partition
        write_records(store, _records(150, seed=seq), seq=seq, flush=True)
    write_records(store, _records(12, seed=99), seq=50, flush=False)  # still in the journal
    return store


def _report(store: Path, kind: str, by: str, **scope: Any) -> dict[str, Any]:
    con = views.connect(store, since=scope.get("since"), until=scope.get("until"))
    try:
        doc = to_json(build_report(con, kind, Scope(by=by, **scope)))
    finally:
        con.close()
    doc.pop("generated_at", None)
    return doc


def _same(a: Any, b: Any) -> None:
    """Equal, floats to 1e-9 relative (summation order may differ in the last bits)."""
    if isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, list):
        assert len(a) == len(b)
        if a and all(isinstance(x, dict) for x in a + b):  # ties may come in any order
            a, b = sorted(a, key=_row_key), sorted(b, key=_row_key)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    else:
        assert a == b


def _row_key(row: dict) -> str:
    return repr(sorted((k, round(v, 6) if isinstance(v, float) else v) for k, v in row.items()))


def _entries(store: Path) -> dict[Path, int]:
    root = rollups.cache_root(store)
    return {p: p.stat().st_mtime_ns for p in root.rglob("*.parquet")} if root.is_dir() else {}


def _sql(store: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = views.connect(store)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _uncached(store: Path, kind: str, by: str, monkeypatch: pytest.MonkeyPatch,
              **scope: Any) -> dict[str, Any]:
    with monkeypatch.context() as m:
        m.setattr(rollups, "entry_columns", lambda _p: None)
        m.setattr(rollups, "write_entry", lambda _p, _t: False)
        return _report(store, kind, by, **scope)


def test_cold_warm_and_uncached_runs_agree(filled: Path, monkeypatch: pytest.MonkeyPatch):
    for kind in REPORT_KINDS:
        for by in BYS:
            reference = _uncached(filled, kind, by, monkeypatch)
            cold = _report(filled, kind, by)
            written = _entries(filled)
            warm = _report(filled, kind, by)
            assert _entries(filled) == written  # warm: nothing recomputed
            _same(cold, reference)
            _same(warm, reference)
    # one entry per day and branch, and the three days (Mon 2 – Wed 4 Nov) merged as a week
    assert {p.name.rsplit("-", 1)[0] for p in _entries(filled)} == {
        "2026-11-02", "2026-11-03", "2026-11-04", "w2026-45"}


def test_numbers_match_plain_sql_journal_included(filled: Path):
    doc = _report(filled, "usage", "model")
    [(requests, tokens)] = _sql(filled, "SELECT count(*), sum(input_tokens) FROM flows")
    assert requests == 612  # 600 in Parquet + 12 in the journal
    assert (doc["totals"]["requests"], doc["totals"]["input_tokens"]) == (requests, tokens)
    per_model = dict(_sql(filled, "SELECT request_model, count(*) FROM flows GROUP BY 1"))
    assert {g["group"]: g["requests"] for g in doc["groups"]} == per_model
    errors = _report(filled, "errors", "user")
    per_user = dict(_sql(filled, "SELECT user_id, count(error_type) FROM flows GROUP BY 1"))
    assert {g["group"]: g["errors"] for g in errors["groups"]} == per_user
    latency = _report(filled, "latency", "model")
    [(mx, avg)] = _sql(filled, "SELECT max(latency_ms), avg(latency_ms) FROM flows "
                               "WHERE error_type IS NULL")
    assert latency["totals"]["latency_max_ms"] == mx
    assert latency["totals"]["latency_avg_ms"] == pytest.approx(avg, rel=1e-12)


@pytest.mark.parametrize("by", ["model", "user", "day"])
def test_percentiles_within_tolerance_of_quantile_cont(filled: Path, by: str):
    _report(filled, "latency", by)  # cold: fills the cache
    doc = _report(filled, "latency", by)  # warm
    key = {"model": "request_model", "user": "user_id", "day": "date"}[by]
    exact = {row[0]: row[1:] for row in _sql(filled, (
        f"SELECT {key}, quantile_cont(latency_ms, [0.5, 0.95, 0.99]), "
        "quantile_cont(ttfb_ms, [0.5, 0.95, 0.99]) FILTER (WHERE stream) FROM flows "
        f"WHERE error_type IS NULL GROUP BY 1"))}
    checked = 0
    for g in doc["groups"]:
        label = g["group"][:10] if by == "day" else g["group"]
        want = exact[datetime.fromisoformat(label).date() if by == "day" else label]
        for (prefix, values) in (("latency", want[0]), ("ttft", want[1])):
            for q, value in zip(("p50", "p95", "p99"), values, strict=True):
                assert g[f"{prefix}_{q}_ms"] == pytest.approx(value, rel=0.01)
                checked += 1
    assert checked >= 18


def test_percentiles_are_exact_when_buckets_hold_one_value(store: Path):
    records = _records(40, seed=5, days=1)
    for i, r in enumerate(records):
        r.update(latency_ms=100.0 * 1.05 ** i, error_type=None, status_code=200)
    write_records(store, records, seq=1)
    doc = _report(store, "latency", "day")
    [(exact,)] = _sql(store, "SELECT quantile_cont(latency_ms, [0.5, 0.95, 0.99]) FROM flows")
    t = doc["totals"]
    assert [t["latency_p50_ms"], t["latency_p95_ms"], t["latency_p99_ms"]] == \
        pytest.approx(exact, rel=1e-12)


def test_since_inside_an_hour(filled: Path, monkeypatch: pytest.MonkeyPatch):
    since = datetime(2026, 11, 3, 10, 30, tzinfo=UTC)
    until = datetime(2026, 11, 5, tzinfo=UTC)
    [(n,)] = _sql(filled, "SELECT count(*) FROM flows WHERE ts >= ? AND ts < ?", [since, until])
    for kind in REPORT_KINDS:
        reference = _uncached(filled, kind, "model", monkeypatch, since=since, until=until)
        cold = _report(filled, kind, "model", since=since, until=until)
        warm = _report(filled, kind, "model", since=since, until=until)
        _same(cold, reference)
        _same(warm, reference)
        assert warm["totals"]["requests"] == n
    assert {p.name[:10] for p in _entries(filled)} == {"2026-11-04"}  # the only whole day


def test_partly_cached_and_corrupt_entries_are_recomputed(filled: Path):
    before = {k: _report(filled, k, "user") for k in REPORT_KINDS}
    # the week entries are what a warm run reads (their days' entries only rebuild them)
    entries = sorted(p for p in _entries(filled) if p.name.startswith("w"))
    entries[0].unlink()
    entries[1].write_bytes(b"not parquet")
    entries[2].write_bytes(entries[2].read_bytes()[:-40])  # truncated footer
    for kind in REPORT_KINDS:
        _same(_report(filled, kind, "user"), before[kind])
    for path in entries[:3]:  # recomputed, readable again
        assert pq.read_table(path).num_columns > 0


def test_an_unwritable_cache_still_reports(filled: Path, monkeypatch: pytest.MonkeyPatch):
    (filled / ".cache").write_text("a file where the cache folder would be")
    for kind in REPORT_KINDS:
        _same(_report(filled, kind, "model"), _uncached(filled, kind, "model", monkeypatch))


def test_compaction_replaces_files_without_stale_entries(filled: Path):
    before = {k: _report(filled, k, "model") for k in REPORT_KINDS}
    stale = set(_entries(filled))
    assert stale
    result = compact(filled, now=datetime(2026, 11, 26, tzinfo=UTC))
    assert result.files_out
    assert not stale & set(_entries(filled))  # pruned: every day's files changed
    for kind in REPORT_KINDS:
        _same(_report(filled, kind, "model"), before[kind])


def test_erased_subject_leaves_the_cache(filled: Path):
    for kind in REPORT_KINDS:
        _report(filled, kind, "user")
    assert any("u1" in pq.read_table(p).to_pydict().get("group", []) for p in _entries(filled))
    erase(filled, user="u1", key_id=None, reason="test", journal_wait=0)
    for path in _entries(filled):  # what is left was computed without the subject
        table = pq.read_table(path).to_pydict()
        assert all("u1" not in str(v) for col in table.values() for v in col)
    for kind in REPORT_KINDS:
        doc = _report(filled, kind, "user")
        assert "u1" not in {g["group"] for g in doc["groups"]}
    assert all("u1" not in str(p) for p in _entries(filled))


def test_compact_warms_and_reports_then_compute_nothing(filled: Path):
    code, _out, err = cli("compact", "--store", str(filled), "--min-age", "0m")
    assert code == 0
    assert "warmed" in err and "ms per file" in err
    warmed = _entries(filled)
    assert len(warmed) >= 3 * 20
    for kind in REPORT_KINDS:
        for by in ("model", "user", "day"):
            _report(filled, kind, by)
    assert _entries(filled) == warmed  # every standard report found its entries
    code, _out, err = cli("compact", "--store", str(filled), "--min-age", "0m")
    assert code == 0 and "already warm" in err
    for path in warmed:
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.parent.stat().st_mode & 0o777 == 0o700


def test_verify_and_listings_ignore_the_cache(filled: Path):
    _report(filled, "cost", "user")
    assert _entries(filled)
    code, out, err = cli("verify", "--store", str(filled))
    assert code == 0, out + err
    files = [f for p in views.scan_partitions(filled) for f in p.files]
    assert files and not any(".cache" in str(f) for f in files)


def test_prune_drops_entries_of_days_that_are_gone(filled: Path):
    _report(filled, "usage", "model")
    day = rollups.cache_root(filled) / ("0" * 16)
    day.mkdir(parents=True)
    orphan = day / f"2020-01-01-{'0' * 20}.parquet"
    orphan.write_bytes(b"x")
    kept = set(_entries(filled)) - {orphan}
    assert rollups.prune(filled) == 1
    assert set(_entries(filled)) == kept


def test_whole_weeks_are_read_from_one_merged_entry(filled: Path, monkeypatch: pytest.MonkeyPatch):
    """Days of a whole ISO week merge into a week entry: reports read it instead of the days
    (nothing of the days is recomputed when their entries are gone), prune keeps it while its
    days are unchanged and drops it when one of them changes."""
    for kind in REPORT_KINDS:
        _report(filled, kind, "user")
    weeks = [p for p in _entries(filled) if p.name.startswith("w2026-45-")]
    branches = {p.parent for p in _entries(filled)}
    assert len(weeks) == len(branches) >= len(REPORT_KINDS)  # one per branch
    for p in _entries(filled):
        if not p.name.startswith("w"):
            p.unlink()  # the day entries: a warm run must not need them
    for kind in REPORT_KINDS:
        _same(_report(filled, kind, "user"), _uncached(filled, kind, "user", monkeypatch))
    assert set(_entries(filled)) == set(weeks)
    assert rollups.prune(filled) == 0 and set(_entries(filled)) == set(weeks)
    # a day of the week changes (one of its files replaced): the week entry is stale
    victim = next(f for p in views.scan_partitions(filled) if p.partition.date == "2026-11-03"
                  for f in p.files)
    data = victim.read_bytes()
    victim.chmod(0o600)
    victim.unlink()
    victim.with_name("replaced-" + victim.name).write_bytes(data)
    assert rollups.prune(filled) == len(weeks) and not _entries(filled)
    _same(_report(filled, "latency", "user"), _uncached(filled, "latency", "user", monkeypatch))


def test_consecutive_weeks_are_read_from_one_span_entry(store: Path,
                                                        monkeypatch: pytest.MonkeyPatch):
    """Two whole ISO weeks (Mon 2 – Sun 15 Nov) merge into one span entry: every report agrees
    with the uncached one, a warm run reads the span alone, prune keeps it while its days are
    unchanged and drops it when one of them changes."""
    for seq in range(1, 3):
        write_records(store, _records(400, seed=seq, days=14), seq=seq, flush=True)
    for kind in REPORT_KINDS:
        for by in ("user", "model", "hour"):
            _same(_report(store, kind, by), _uncached(store, kind, by, monkeypatch))
    spans = [p for p in _entries(store) if p.name.startswith("s2026-45_2026-46-")]
    assert spans and len(spans) == len({p.parent for p in _entries(store)})
    for p in _entries(store):
        if not p.name.startswith("s"):
            p.unlink()  # weeks and days: a warm run must not need them
    for kind in REPORT_KINDS:
        _same(_report(store, kind, "user"), _uncached(store, kind, "user", monkeypatch))
    assert set(_entries(store)) == set(spans)
    assert rollups.prune(store) == 0
    victim = next(f for p in views.scan_partitions(store) if p.partition.date == "2026-11-10"
                  for f in p.files)
    data = victim.read_bytes()
    victim.chmod(0o600)
    victim.unlink()
    victim.with_name("replaced-" + victim.name).write_bytes(data)
    assert rollups.prune(store) == len(spans) and not _entries(store)
