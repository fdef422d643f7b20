"""``llm-audit reprice``: past records get the current prices, through the store's publish path."""

from __future__ import annotations

import random
import stat
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_report_support import EXPECTED, cli, known_records, report_json, write_records

from llm_proxy.pricing import PriceTable
from llm_proxy.pricing.reprice import COST_COLUMNS, reprice_table
from llm_proxy.schema import empty_record
from llm_proxy.store.parquet import records_to_table

OLD = PriceTable.from_toml('version = "2020-01-01"\n'
                           '[models.openai."gpt-4o"]\ninput = 5.0\noutput = 15.0\n')


@pytest.fixture
def old_store(store: Path) -> Path:
    """The known records, priced with an old table that only knew gpt-4o at $5/$15."""
    records = known_records()
    for r in records:
        c = OLD.cost(provider=r["provider"], model=r["request_model"], operation="chat",
                     input_tokens=r["input_tokens"], output_tokens=r["output_tokens"],
                     cached_input_tokens=r["cached_input_tokens"],
                     cache_write_tokens=r["cache_write_tokens"],
                     reasoning_tokens=r["reasoning_tokens"])
        r.update(dict.fromkeys(COST_COLUMNS[:-1]))
        r.update(c.as_columns() if c else {"price_version": OLD.version})
    write_records(store, records[:9], seq=1, flush=True)
    write_records(store, records[9:], seq=2, flush=False)
    return store


def _files(store: Path) -> list[Path]:
    return sorted((store / "flows").rglob("*.parquet"))



def _record_cost(table, r, **at):
    """The scalar price of one record, the reference the vectorised reprice must equal."""
    return table.cost(provider=r["provider"], model=r["response_model"],
                      operation=r["operation"], input_tokens=r["input_tokens"],
                      output_tokens=r["output_tokens"],
                      cached_input_tokens=r["cached_input_tokens"],
                      cache_write_tokens=r["cache_write_tokens"],
                      reasoning_tokens=r["reasoning_tokens"], **at)

def test_reprice_rewrites_changed_files_through_publish(old_store: Path):
    before = _files(old_store)
    # the old table priced gpt-4o only: claude, o4-mini, gemini and corp-llm are unpriced
    assert report_json(old_store, "cost")["totals"]["unpriced_requests"] == 4
    code, out, err = cli("reprice", "--store", str(old_store))
    assert code == 0, err
    assert "rewrote 2 of 2 files, 9 of 9 records changed" in out
    after = _files(old_store)
    assert not set(before) & set(after)  # replaced, never modified in place
    for old, new in zip(before, after, strict=True):
        assert new.parent == old.parent  # same partition
        assert new.name.rsplit("-", 1)[0] == old.name.rsplit("-", 1)[0]  # same instance-seq
        assert stat.S_IMODE(new.stat().st_mode) == 0o400
    doc = report_json(old_store, "cost")
    # the journal record (gpt-4o, 10 in / 10 out) keeps its old price: 10*5 + 10*15 per 1M
    assert doc["totals"]["cost_usd"] == pytest.approx(EXPECTED["cost_usd"] - 0.000125 + 0.0002)
    assert doc["totals"]["unpriced_requests"] == 1  # corp-llm-13b
    versions = {v["price_version"]: v["requests"] for v in doc["price_versions"]}
    assert versions == {PriceTable.load().version: 9, "2020-01-01": 1}
    assert "journal" in out


def test_reprice_with_a_user_price_file_prices_the_unknown_model(old_store: Path,
                                                                 tmp_path: Path):
    prices = tmp_path / "prices.toml"
    prices.write_text('version = "acme-1"\n[models.unknown."corp-llm-13b"]\n'
                      "input = 1.0\noutput = 2.0\n")
    config = tmp_path / "config.toml"
    config.write_text(f'prices = "{prices}"\n')
    code, _out, err = cli("reprice", "--store", str(old_store), "--config", str(config))
    assert code == 0, err
    doc = report_json(old_store, "cost")
    assert doc["unknown_models"] == []
    corp = next(m for m in doc["by_model"] if m["model"] == "corp-llm-13b")
    assert corp["cost_usd"] == pytest.approx(100 * 1.0 / 1e6 + 50 * 2.0 / 1e6)
    assert any(v["price_version"].endswith("+user:acme-1") for v in doc["price_versions"])


def test_dry_run_and_since(old_store: Path):
    before = _files(old_store)
    code, out, _err = cli("reprice", "--store", str(old_store), "--dry-run")
    assert code == 0 and "would rewrite 2 of 2 files" in out
    assert _files(old_store) == before
    code, out, _err = cli("reprice", "--store", str(old_store), "--since", "2026-11-03")
    assert code == 0 and "rewrote 1 of 1 files" in out  # only day 2's partition
    after = _files(old_store)
    assert after[0] == before[0] and after[1] != before[1]


def test_second_reprice_changes_nothing(old_store: Path):
    assert cli("reprice", "--store", str(old_store))[0] == 0
    files = _files(old_store)
    code, out, _err = cli("reprice", "--store", str(old_store))
    assert code == 0 and "rewrote 0 of 2 files" in out
    assert _files(old_store) == files


def test_reprice_keeps_the_integrity_chain_valid(old_store: Path):
    from llm_proxy.cli.app import app

    if "verify" not in {c.name for c in app.registered_commands}:
        pytest.skip("llm-audit verify is not part of this build")
    assert cli("verify", "--store", str(old_store))[0] == 0
    assert cli("reprice", "--store", str(old_store))[0] == 0
    code, out, err = cli("verify", "--store", str(old_store))
    assert code == 0, out + err


def test_repriced_rows_are_bit_identical_to_the_capture_path():
    """The vectorised reprice and ``PriceTable.cost`` agree exactly, for every kind of row."""
    table = PriceTable.load()
    rnd = random.Random(3)
    models = [("openai", "gpt-4o"), ("openai", "o4-mini-2025-04-16"), ("anthropic",
              "claude-sonnet-4-5"), ("gemini", "gemini-2.5-pro"), ("openai", "nope"),
              ("perplexity", "sonar"), ("openai", None), ("bedrock", "amazon.nova-pro-v1:0")]
    rows = []
    for i in range(1500):
        p, m = rnd.choice(models)
        r = empty_record()
        r.update(id=str(i), ts=1_764_140_000_000_000, provider=p, response_model=m,
                 operation=rnd.choice(["chat", "count_tokens", None]),
                 input_tokens=rnd.choice([None, 0, rnd.randint(1, 400_000)]),
                 output_tokens=rnd.choice([None, rnd.randint(0, 5000)]),
                 cached_input_tokens=rnd.choice([None, rnd.randint(0, 1000)]),
                 cache_write_tokens=rnd.choice([None, rnd.randint(0, 1000)]),
                 reasoning_tokens=rnd.choice([None, rnd.randint(0, 6000)]))
        rows.append(r)
    repriced = reprice_table(records_to_table(rows), table).to_pylist()
    for r, got in zip(rows, repriced, strict=True):
        c = _record_cost(table, r)
        want = c.as_columns() if c else {**dict.fromkeys(COST_COLUMNS),
                                         "price_version": table.version}
        assert {k: got[k] for k in COST_COLUMNS} == want


def test_reprice_needs_parquet(tmp_path: Path):
    code, _out, err = cli("reprice", "--store", str(tmp_path / "empty"))
    assert code == 2 and "no Parquet records" in err


def test_written_files_keep_the_schema(old_store: Path):
    cli("reprice", "--store", str(old_store))
    from llm_proxy.schema import RECORD_SCHEMA

    for path in _files(old_store):
        assert pq.read_schema(path).equals(RECORD_SCHEMA, check_metadata=False)


NIGHT = PriceTable.from_toml('''
version = "night-1"
[models.acme."night-owl"]
input = 1.0
cached_input = 0.5
output = 4.0
[[models.acme."night-owl".time_windows]]
hours_utc = "16:30-00:30"
except_dates = ["2026-11-27"]
input = 0.25
output = 1.0
[[models.acme."night-owl".time_windows]]
hours_utc = ["12:00-12:00"]
weekdays = ["sat", "sun"]
input = 0.1
cached_input = 0.05
output = 0.2
[models.acme."plain"]
input = 2.0
output = 3.0
''')


@pytest.mark.parametrize("table", [PriceTable.load(), NIGHT], ids=["shipped", "wrapping"])
def test_repriced_time_window_rows_are_bit_identical_to_the_capture_path(table: PriceTable):
    """Peak/off-peak prices by each record's own ``ts``: vectorised == ``cost(at=ts)``."""
    rnd = random.Random(7)
    models = [("deepseek", "deepseek-flash"), ("deepseek", "deepseek-v4-pro"),
              ("deepseek", "deepseek-v4-flash"), ("acme", "night-owl"), ("acme", "plain"),
              ("openai", "gpt-4o"), ("gemini", "gemini-2.5-pro")]
    start = 1_790_000_000_000_000  # 2026-09-21, a Monday; a fortnight with holidays after it
    rows = []
    for i in range(3000):
        p, m = rnd.choice(models)
        r = empty_record()
        ts = start + rnd.randrange(0, 16 * 86_400_000_000)
        if i % 7 == 0:  # exactly on a window edge: 01:00, 04:00, 16:30 or 00:30 UTC
            day = ts - ts % 86_400_000_000
            ts = day + rnd.choice([3600, 4 * 3600, 16 * 3600 + 1800, 1800]) * 1_000_000
        r.update(id=str(i), ts=ts, provider=p, response_model=m, operation="chat",
                 input_tokens=rnd.randint(1, 300_000), output_tokens=rnd.randint(0, 5000),
                 cached_input_tokens=rnd.choice([None, rnd.randint(0, 1000)]),
                 cache_write_tokens=None, reasoning_tokens=rnd.choice([None, 100]))
        rows.append(r)
    repriced = reprice_table(records_to_table(rows), table).to_pylist()
    windowed = 0
    for r, got in zip(rows, repriced, strict=True):
        c = _record_cost(table, r, at=r["ts"])
        want = c.as_columns() if c else {**dict.fromkeys(COST_COLUMNS),
                                         "price_version": table.version}
        assert {k: got[k] for k in COST_COLUMNS} == want
        plain = _record_cost(table, r)
        windowed += c is not None and plain is not None and c.cost_usd != plain.cost_usd
    assert windowed > 100  # the windows really were exercised
