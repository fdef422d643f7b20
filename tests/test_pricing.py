"""Cost with provenance: arithmetic against hand-computed values, aliases, overrides, estimates."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from llm_proxy.errors import ConfigError
from llm_proxy.pricing import PriceTable, estimate_tokens, estimate_usage, heuristic_tokens

TABLE = PriceTable.load()


def cost(provider, model, *, inp=None, out=None, cached=None, write=None, reasoning=None,
         operation="chat", table=TABLE):
    return table.cost(provider=provider, model=model, operation=operation, input_tokens=inp,
                      output_tokens=out, cached_input_tokens=cached, cache_write_tokens=write,
                      reasoning_tokens=reasoning)


# ----------------------------------------------------------------------------- arithmetic

def test_input_cached_and_output_components_gpt_4o():
    # gpt-4o: $2.50 in, $1.25 cached, $10 out per 1M; 1000 in of which 200 cached, 500 out
    c = cost("openai", "gpt-4o", inp=1000, out=500, cached=200)
    assert c.cost_input_usd == pytest.approx(800 * 2.50 / 1e6)  # 0.002
    assert c.cost_cached_input_usd == pytest.approx(200 * 1.25 / 1e6)  # 0.00025
    assert c.cost_output_usd == pytest.approx(500 * 10.0 / 1e6)  # 0.005
    assert c.cost_cache_write_usd == c.cost_reasoning_usd == c.cost_request_usd == 0
    assert c.cost_usd == pytest.approx(0.00725)
    assert c.price_version == TABLE.version


def test_anthropic_cache_reads_and_writes_are_inside_input_tokens():
    # claude-sonnet-4-5: $3 in, $0.30 cache read, $3.75 cache write, $15 out
    c = cost("anthropic", "claude-sonnet-4-5-20250929", inp=3000, cached=1000, write=500, out=200)
    assert c.cost_input_usd == pytest.approx(1500 * 3.0 / 1e6)  # only the uncached 1500
    assert c.cost_cached_input_usd == pytest.approx(1000 * 0.30 / 1e6)
    assert c.cost_cache_write_usd == pytest.approx(500 * 3.75 / 1e6)
    assert c.cost_output_usd == pytest.approx(200 * 15.0 / 1e6)
    assert c.cost_usd == pytest.approx(0.0045 + 0.0003 + 0.001875 + 0.003)


def test_claude_sonnet_4_6_cache_reads_and_writes():
    # claude-sonnet-4-6 (price table 2026-11-26): $3 in, $0.30 cache read, $3.75 5-minute cache
    # write, $15 out; the dateless ID is the snapshot, Bedrock spells it anthropic.<id>
    for model in ("claude-sonnet-4-6", "us.anthropic.claude-sonnet-4-6"):
        c = cost("anthropic" if "." not in model else "bedrock", model,
                 inp=3000, cached=1000, write=500, out=200)
        assert c.cost_input_usd == pytest.approx(1500 * 3.0 / 1e6)  # 0.0045
        assert c.cost_cached_input_usd == pytest.approx(1000 * 0.30 / 1e6)  # 0.0003
        assert c.cost_cache_write_usd == pytest.approx(500 * 3.75 / 1e6)  # 0.001875
        assert c.cost_output_usd == pytest.approx(200 * 15.0 / 1e6)  # 0.003
        assert c.cost_usd == pytest.approx(0.009675)
    # 4.6 serves the 1M window at the standard rates: 500k in, 1k out = 1.5 + 0.015
    assert cost("anthropic", "claude-sonnet-4-6", inp=500_000, out=1000).cost_usd == \
        pytest.approx(1.515)


def test_gpt_6_1_sol_cached_input_and_reasoning_tokens():
    # gpt-6.1-sol: $2 in, $0.10 cached, $10 out (reasoning at the output rate); the dated
    # snapshot Chat Completions reports resolves to it. 10k in of which 8k cached; 2k out of
    # which 1.5k reasoning.
    c = cost("openai", "gpt-6.1-sol-2026-09-29", inp=10_000, cached=8_000, out=2_000,
             reasoning=1_500)
    assert c.cost_input_usd == pytest.approx(2000 * 2.0 / 1e6)  # 0.004
    assert c.cost_cached_input_usd == pytest.approx(8000 * 0.10 / 1e6)  # 0.0008
    assert c.cost_output_usd == pytest.approx(500 * 10.0 / 1e6)  # 0.005
    assert c.cost_reasoning_usd == pytest.approx(1500 * 10.0 / 1e6)  # 0.015
    assert c.cost_usd == pytest.approx(0.0248)


def test_gpt_6_cache_writes_and_the_272k_tier_apply_to_the_whole_request():
    # gpt-6.2-sol: 2.50 per 1M cache writes; above 272K input tokens input and cache rates
    # double ($4, $0.20 cached, $5 writes) and output goes to 1.5x ($15) for every token
    short = cost("openai", "gpt-6.2-sol", inp=272_000, cached=200_000, write=50_000, out=1000)
    assert short.cost_usd == pytest.approx(22_000 * 2.0 / 1e6 + 200_000 * 0.10 / 1e6
                                           + 50_000 * 2.50 / 1e6 + 1000 * 10.0 / 1e6)  # 0.209
    long = cost("openai", "gpt-6.2-sol", inp=300_000, cached=100_000, out=1000)
    assert long.cost_input_usd == pytest.approx(200_000 * 4.0 / 1e6)  # 0.8
    assert long.cost_cached_input_usd == pytest.approx(100_000 * 0.20 / 1e6)  # 0.02
    assert long.cost_output_usd == pytest.approx(1000 * 15.0 / 1e6)  # 0.015
    assert long.cost_usd == pytest.approx(0.835)


def test_claude_haiku_5_5_prompt_size_tier_counts_cache_reads_and_writes():
    # Haiku 5.5: $0.10 / $0.01 read / $0.125 write / $0.50 out up to 100k prompt tokens;
    # $0.50 / $0.05 / $0.625 / $2.50 on every token of a bigger request
    small = cost("anthropic", "claude-haiku-5-5", inp=100_000, cached=90_000, out=1000)
    assert small.cost_usd == pytest.approx(0.001 + 0.0009 + 0.0005)
    big = cost("anthropic", "claude-haiku-5-5", inp=120_000, cached=90_000, write=10_000, out=1000)
    assert big.cost_usd == pytest.approx(20_000 * 0.50 / 1e6 + 90_000 * 0.05 / 1e6
                                         + 10_000 * 0.625 / 1e6 + 1000 * 2.50 / 1e6)  # 0.02325


def test_reasoning_is_shown_apart_at_the_output_rate_by_default():
    # o4-mini: $1.10 in, $4.40 out; OpenAI counts the 1000 reasoning tokens inside the 1100 output
    c = cost("openai", "o4-mini-2025-04-16", inp=100, out=1100, reasoning=1000)
    assert c.cost_output_usd == pytest.approx(100 * 4.40 / 1e6)
    assert c.cost_reasoning_usd == pytest.approx(1000 * 4.40 / 1e6)
    assert c.cost_usd == pytest.approx(100 * 1.10 / 1e6 + 1100 * 4.40 / 1e6)


def test_reasoning_priced_separately_when_the_table_says_so():
    table = PriceTable.from_toml('version = "t1"\n[models.acme."thinker"]\n'
                                 "input = 1.0\noutput = 4.0\nreasoning = 20.0\n")
    c = cost("acme", "thinker", inp=1000, out=1100, reasoning=1000, table=table)
    assert c.cost_output_usd == pytest.approx(100 * 4.0 / 1e6)
    assert c.cost_reasoning_usd == pytest.approx(1000 * 20.0 / 1e6)
    assert c.cost_usd == pytest.approx(0.001 + 0.0004 + 0.02)
    assert c.price_version == "t1"


def test_per_request_fee():
    # Perplexity sonar: $1 in, $1 out per 1M plus $0.005 per request
    c = cost("perplexity", "sonar", inp=1000, out=1000)
    assert c.cost_request_usd == pytest.approx(0.005)
    assert c.cost_usd == pytest.approx(0.001 + 0.001 + 0.005)


@pytest.mark.parametrize("provider,model,inp,out,expected", [
    # Claude Sonnet 4.5 above 200k input tokens: $6 in / $22.50 out
    ("anthropic", "claude-sonnet-4-5", 250_000, 1000, 250_000 * 6 / 1e6 + 1000 * 22.5 / 1e6),
    ("anthropic", "claude-sonnet-4-5", 200_000, 1000, 200_000 * 3 / 1e6 + 1000 * 15 / 1e6),
    # Gemini 2.5 Pro above 200k: $2.50 in / $15 out
    ("gemini", "gemini-2.5-pro", 300_000, 2000, 0.75 + 0.03),
    # Gemini 3.1 Pro Preview: $2 / $12 up to 200k prompt tokens, $4 / $18 above
    ("gemini", "gemini-3.1-pro-preview", 250_000, 2000, 1.0 + 0.036),
    ("gemini", "models/gemini-3.1-pro-preview", 200_000, 2000, 0.4 + 0.024),
])
def test_long_context_tier(provider, model, inp, out, expected):
    assert cost(provider, model, inp=inp, out=out).cost_usd == pytest.approx(expected)


def test_cached_reads_default_to_the_input_rate():
    # mistral-large (2.1) has no cache price: all 1000 input tokens at $2
    c = cost("mistral", "mistral-large-2411", inp=1000, cached=100, out=0)
    assert c.cost_input_usd + c.cost_cached_input_usd == pytest.approx(1000 * 2.0 / 1e6)


def test_free_operations_and_empty_usage_cost_zero_even_for_unknown_models():
    for c in (cost("gemini", "gemini-2.5-pro", inp=5000, operation="count_tokens"),
              cost("openai", "gpt-4o"),  # a 429: no usage
              cost("unknown", "corp-llm-13b"),
              cost("openai", None, operation="models")):
        assert c is not None and c.cost_usd == 0 and c.price_version == TABLE.version


def test_unknown_model_with_tokens_is_none_not_zero():
    assert cost("unknown", "corp-llm-13b", inp=10, out=5) is None
    assert cost("openai", None, inp=10, out=5) is None


def test_components_always_add_up():
    rnd = random.Random(6)
    models = [("openai", "gpt-4o"), ("anthropic", "claude-opus-4-1"), ("gemini", "gemini-2.5-pro"),
              ("perplexity", "sonar-pro"), ("deepseek", "deepseek-chat")]
    for _ in range(500):
        p, m = rnd.choice(models)
        inp = rnd.randint(0, 400_000)
        c = cost(p, m, inp=inp, out=rnd.randint(0, 9000), cached=rnd.randint(0, inp // 2),
                 write=rnd.randint(0, inp // 4), reasoning=rnd.randint(0, 5000))
        parts = (c.cost_input_usd + c.cost_cached_input_usd + c.cost_cache_write_usd
                 + c.cost_output_usd + c.cost_reasoning_usd + c.cost_request_usd)
        assert c.cost_usd == pytest.approx(parts, rel=1e-12)
        assert min(c.cost_input_usd, c.cost_output_usd, c.cost_reasoning_usd) >= 0


# -------------------------------------------------------------------------------- aliases

@pytest.mark.parametrize("provider,model,canonical", [
    ("openai", "gpt-4o-2024-08-06", ("openai", "gpt-4o")),
    ("openai", "GPT-4o", ("openai", "gpt-4o")),
    ("openai", "gpt-4o-2024-05-13", ("openai", "gpt-4o-2024-05-13")),  # its own, older price
    ("openai", "gpt-4.1-2026-01-01", ("openai", "gpt-4.1")),  # a snapshot newer than the table
    ("openai", "gpt-3.5-turbo-0125", ("openai", "gpt-3.5-turbo")),
    ("azure_openai", "gpt-4o-2024-11-20", ("openai", "gpt-4o")),
    ("anthropic", "claude-3-5-haiku-latest", ("anthropic", "claude-3-5-haiku")),
    ("anthropic", "claude-sonnet-4@20250514", ("anthropic", "claude-sonnet-4")),  # Vertex
    ("bedrock", "us.anthropic.claude-3-7-sonnet-20250219-v1:0", ("anthropic", "claude-3-7-sonnet")),
    ("bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0", ("anthropic", "claude-3-5-haiku")),
    ("bedrock", "amazon.nova-pro-v1:0", ("bedrock", "amazon.nova-pro")),
    ("gemini", "models/gemini-2.0-flash-001", ("gemini", "gemini-2.0-flash")),
    ("openrouter", "anthropic/claude-sonnet-4", ("anthropic", "claude-sonnet-4")),
    ("openrouter", "google/gemini-2.5-flash", ("gemini", "gemini-2.5-flash")),
    ("groq", "openai/gpt-oss-120b", ("groq", "openai/gpt-oss-120b")),  # Groq's own price
    ("groq", "llama-3.3-70b-versatile", ("groq", "llama-3.3-70b-versatile")),
    ("mistral", "mistral-large-2411", ("mistral", "mistral-large")),
    ("mistral", "codestral-latest", ("mistral", "codestral")),
    ("deepseek", "deepseek-reasoner", ("deepseek", "deepseek-reasoner")),
    ("xai", "grok-4-0709", ("xai", "grok-4")),
    ("cohere", "command-a-03-2025", ("cohere", "command-a")),
    ("unknown", "gpt-4o-mini", ("openai", "gpt-4o-mini")),  # a gateway: unique name
])
def test_alias_resolution(provider, model, canonical):
    price = TABLE.resolve(provider, model)
    assert price is not None, model
    assert (price.provider, price.model) == canonical


@pytest.mark.parametrize("provider,model", [
    ("openai", "mistral-7b"), ("unknown", "llama3.2"), ("azure_openai", "gpt4o-prod"),
    ("openai", ""), ("openai", None),
])
def test_unknown_names_stay_unknown(provider, model):
    assert TABLE.resolve(provider, model) is None


def test_shipped_table_covers_the_main_providers_with_dated_entries():
    names = TABLE.model_names()
    for provider in ("openai", "anthropic", "gemini", "mistral", "groq", "deepseek"):
        assert sum(p == provider for p, _m in names) >= 2, provider
    for table in TABLE.models.values():
        for price in table.values():
            assert price.since, price.model
            assert price.input >= 0 and price.output >= 0
    assert TABLE.version and TABLE.version[:4].isdigit()


def test_cost_is_fast_enough_for_the_capture_worker():
    n = 20_000
    t0 = time.perf_counter()
    for i in range(n):
        cost("openai", "gpt-4o-2024-08-06", inp=1000 + i, out=500, cached=200)
    assert (time.perf_counter() - t0) / n < 50e-6  # measured ~2 µs


# ------------------------------------------------------------------------------- overrides

def test_user_file_overrides_field_by_field_and_extends(tmp_path: Path):
    path = tmp_path / "prices.toml"
    path.write_text('version = "acme-2026-11"\n'
                    '[models.openai."gpt-4o"]\ninput = 2.0\n'
                    '[models.unknown."corp-llm-13b"]\ninput = 0.5\noutput = 1.0\n'
                    'aliases = ["corp-llm"]\nsince = "2026-11-01"\n')
    table = PriceTable.load(path)
    assert table.version == f"{TABLE.version}+user:acme-2026-11"
    c = cost("openai", "gpt-4o-2024-08-06", inp=1000, out=1000, table=table)
    assert c.cost_input_usd == pytest.approx(1000 * 2.0 / 1e6)
    assert c.cost_output_usd == pytest.approx(1000 * 10.0 / 1e6)  # kept from the shipped table
    assert cost("unknown", "corp-llm", inp=1000, out=1000, table=table).cost_usd == \
        pytest.approx(0.0015)
    assert c.price_version == table.version


def test_unversioned_user_file_is_versioned_by_its_content(tmp_path: Path):
    path = tmp_path / "prices.toml"
    path.write_text('[models.openai."gpt-4o"]\ninput = 2.0\n')
    first = PriceTable.load(path).version
    path.write_text('[models.openai."gpt-4o"]\ninput = 2.1\n')
    second = PriceTable.load(path).version
    assert first.startswith(f"{TABLE.version}+user:sha256:") and first != second


@pytest.mark.parametrize("text,needle", [
    ('[models.openai."gpt-4o"]\ninptu = 2.0\n', "unknown key 'inptu'"),
    ('[models.openai."gpt-4o"]\ninput = -1\n', "input must be a number >= 0"),
    ('[models.openai."gpt-4o"]\ninput = "cheap"\n', "input must be a number"),
    ('[models.acme."new"]\ninput = 1.0\n', "needs both input and output"),
    ('pricez = 1\n', "unknown key 'pricez'"),
    ('[models.openai."gpt-4o"\n', "invalid TOML"),
    ('[models.a."m"]\ninput = 1\noutput = 1\nlong_context_threshold = 5\n', "go together"),
])
def test_bad_user_file_names_the_file_and_key(tmp_path: Path, text: str, needle: str):
    path = tmp_path / "my_prices.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        PriceTable.load(path)
    assert needle in str(exc.value) and "my_prices.toml" in str(exc.value)


def test_missing_user_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist.*'prices'"):
        PriceTable.load(tmp_path / "nope.toml")


def test_config_key_prices_is_accepted(tmp_path: Path):
    from llm_proxy.audit import load_config

    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text('prices = "my_prices.toml"\n')
    assert load_config(cfg_path).prices == "my_prices.toml"


# ------------------------------------------------------------------------------ estimation

def test_heuristic_is_documented_arithmetic():
    assert heuristic_tokens("") == 0
    assert heuristic_tokens("abcd" * 10) == 10  # ASCII / 4
    assert heuristic_tokens("你好世界") == 4  # one per CJK character
    assert heuristic_tokens("привет") == 2  # other characters / 3
    assert heuristic_tokens("hello 你好") == 2 + 2  # ceil(6/4 + 2)


def test_estimate_tokens_without_tiktoken_uses_the_heuristic(monkeypatch: pytest.MonkeyPatch):
    import llm_proxy.pricing.estimate as est

    monkeypatch.setattr(est, "_encoders", {"o200k_base": None, "cl100k_base": None})
    text = "The quick brown fox jumps over the lazy dog. " * 20
    assert estimate_tokens(text, "gpt-4o") == heuristic_tokens(text)
    assert estimate_tokens(None) == 0


def test_estimate_usage_counts_what_the_model_reads_and_writes():
    request = ('{"model":"gpt-4o","user":"u-123","messages":['
               '{"role":"system","content":"You are a helpful assistant."},'
               '{"role":"user","content":[{"type":"text","text":"What is in this picture?"},'
               '{"type":"image_url","image_url":{"url":"data:image/png;base64,' + "A" * 40_000
               + '"}}]}]}')
    response = ('{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-2024-08-06",'
                '"choices":[{"index":0,"message":{"role":"assistant","content":"A cat."},'
                '"finish_reason":"stop"}]}')
    inp, out = estimate_usage(provider="openai", operation="chat", request_body=request,
                              response_body=response, model="gpt-4o")
    # the texts (28 + 24 characters), not the JSON or the base64 image, plus 3 per message + 3
    text_tokens = estimate_tokens("You are a helpful assistant.\nWhat is in this picture?",
                                  "gpt-4o")
    assert inp == text_tokens + 2 * 3 + 3
    assert inp < 40
    assert out == estimate_tokens("A cat.", "gpt-4o")


def test_estimate_usage_embeddings_and_non_json():
    assert estimate_usage(provider="openai", operation="embeddings",
                          request_body='{"input":"hello world, hello"}',
                          response_body='{"data":[{"embedding":[0.1,0.2]}]}')[1] == 0
    inp, out = estimate_usage(provider="unknown", operation=None, request_body="plain text here",
                              response_body="and an answer")
    assert inp > 0 and out > 0


# ------------------------------------------------------- 2026 models and time-of-day prices

def _us(text: str) -> int:
    """A UTC moment as a record's ``ts`` (integer microseconds)."""
    import datetime as dt

    moment = dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
    return (moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


def test_mistral_large_4_with_cache_reads():
    # mistral-large-4: $0.68 in, $0.068 cache read, $2.09 out; 10,000 in of which 4,000 cached
    c = cost("mistral", "mistral-large-4-0", inp=10_000, cached=4_000, out=2_000)
    assert c.cost_input_usd == pytest.approx(6_000 * 0.68 / 1e6)  # 0.00408
    assert c.cost_cached_input_usd == pytest.approx(4_000 * 0.068 / 1e6)  # 0.000272
    assert c.cost_output_usd == pytest.approx(2_000 * 2.09 / 1e6)  # 0.00418
    assert c.cost_usd == pytest.approx(0.008532)
    # mistral-large-latest is Large 3 ($0.50 / $1.50), not Large 4 nor Large 2 ($2 / $6)
    assert cost("mistral", "mistral-large-latest", inp=1000, out=1000).cost_usd == \
        pytest.approx(0.002)



def test_gemini_3_7_flash_introductory_price_with_cache_reads():
    # gemini-3.7-flash (price table 2026-11-26): $0.75 in, $0.075 cache read, $3.75 out, thinking
    # billed as output; 10,000 in of which 6,000 cached, 1,000 out
    c = cost("gemini", "gemini-3.7-flash", inp=10_000, cached=6_000, out=1_000)
    assert c.cost_input_usd == pytest.approx(4_000 * 0.75 / 1e6)  # 0.003
    assert c.cost_cached_input_usd == pytest.approx(6_000 * 0.075 / 1e6)  # 0.00045
    assert c.cost_output_usd == pytest.approx(1_000 * 3.75 / 1e6)  # 0.00375
    assert c.cost_usd == pytest.approx(0.0072)
    # Vertex and OpenRouter-style names reach the same row
    assert cost("vertex", "gemini-3.7-flash", inp=10_000, cached=6_000, out=1_000).cost_usd == \
        pytest.approx(0.0072)
    assert cost("openrouter", "google/gemini-3.7-flash", inp=1_000_000, out=0).cost_usd == \
        pytest.approx(0.75)


def test_gpt_5_5_short_and_long_context():
    # gpt-5.5: $5 in, $0.50 cached, $30 out; above 272K input tokens the whole request pays
    # $10 / $1 / $45
    short = cost("openai", "gpt-5.5-2026-04-23", inp=100_000, cached=40_000, out=2_000)
    assert short.cost_input_usd == pytest.approx(60_000 * 5.0 / 1e6)  # 0.30
    assert short.cost_cached_input_usd == pytest.approx(40_000 * 0.50 / 1e6)  # 0.02
    assert short.cost_output_usd == pytest.approx(2_000 * 30.0 / 1e6)  # 0.06
    assert short.cost_usd == pytest.approx(0.38)
    long = cost("openai", "gpt-5.5", inp=300_000, cached=100_000, out=2_000)
    assert long.cost_input_usd == pytest.approx(200_000 * 10.0 / 1e6)  # 2.00
    assert long.cost_cached_input_usd == pytest.approx(100_000 * 1.0 / 1e6)  # 0.10
    assert long.cost_output_usd == pytest.approx(2_000 * 45.0 / 1e6)  # 0.09
    assert long.cost_usd == pytest.approx(2.19)


def test_grok_4_3_and_claude_mythos_5_1():
    # grok-4.3: $1.25 / $0.20 cached / $2.50; over 200K prompt tokens $2.50 / $0.40 / $5.00
    assert cost("xai", "grok-4.3", inp=10_000, cached=5_000, out=1_000).cost_usd == \
        pytest.approx(5_000 * 1.25 / 1e6 + 5_000 * 0.20 / 1e6 + 1_000 * 2.50 / 1e6)  # 0.00975
    assert cost("xai", "grok-4.3-latest", inp=250_000, cached=50_000, out=1_000).cost_usd == \
        pytest.approx(0.5 + 0.02 + 0.005)
    # claude-mythos-5-1: $10 in, $0.25 cache hit (0.025x), $12.50 5-minute write, $50 out
    c = cost("anthropic", "claude-mythos-5-1", inp=3000, cached=1000, write=500, out=200)
    assert c.cost_input_usd == pytest.approx(1500 * 10.0 / 1e6)  # 0.015
    assert c.cost_cached_input_usd == pytest.approx(1000 * 0.25 / 1e6)  # 0.00025
    assert c.cost_cache_write_usd == pytest.approx(500 * 12.50 / 1e6)  # 0.00625
    assert c.cost_output_usd == pytest.approx(200 * 50.0 / 1e6)  # 0.01
    assert c.cost_usd == pytest.approx(0.0315)

def test_deepseek_cache_hit_and_miss_input_off_peak():
    # deepseek-flash off-peak (a Saturday): miss $0.15, hit $0.003, output $0.60 per 1M
    # (DeepSeek's prompt_cache_hit_tokens are cached_input; input_tokens = hits + misses)
    c = TABLE.cost(provider="deepseek", model="deepseek-flash", operation="chat",
                   input_tokens=100_000, cached_input_tokens=80_000, output_tokens=5_000,
                   cache_write_tokens=None, reasoning_tokens=3_000,
                   at=_us("2026-11-28T02:00:00"))
    assert c.cost_input_usd == pytest.approx(20_000 * 0.15 / 1e6)  # 0.003
    assert c.cost_cached_input_usd == pytest.approx(80_000 * 0.003 / 1e6)  # 0.00024
    assert c.cost_output_usd == pytest.approx(2_000 * 0.60 / 1e6)  # 0.0012
    assert c.cost_reasoning_usd == pytest.approx(3_000 * 0.60 / 1e6)  # 0.0018, as output
    assert c.cost_usd == pytest.approx(0.00624)
    # the retired deepseek-v4-flash name is billed as Flash
    assert TABLE.resolve("deepseek", "deepseek-v4-flash").model == "deepseek-flash"


@pytest.mark.parametrize(("when", "peak"), [
    ("2026-11-26T00:59:59", False),  # Thursday, just before the first peak window
    ("2026-11-26T01:00:00", True),  # start inclusive
    ("2026-11-26T03:59:59", True),
    ("2026-11-26T04:00:00", False),  # end exclusive
    ("2026-11-26T05:30:00", False),  # between the two windows
    ("2026-11-26T09:59:00", True),
    ("2026-11-26T10:00:00", False),
    ("2026-11-28T02:00:00", False),  # Saturday: off-peak all day
    ("2026-10-06T02:00:00", False),  # Tuesday of the National Day holiday
    ("2026-09-25T07:00:00", False),  # Mid-Autumn Festival, a Friday
    ("2026-09-24T07:00:00", True),  # the Thursday before
])
def test_deepseek_peak_hours_by_record_timestamp(when: str, peak: bool):
    # deepseek-v4-pro: off-peak $0.66 / $0.022 / $1.98, peak twice that
    c = TABLE.cost(provider="deepseek", model="deepseek-v4-pro", operation="chat",
                   input_tokens=1_000_000, cached_input_tokens=500_000, output_tokens=100_000,
                   cache_write_tokens=None, reasoning_tokens=None, at=_us(when))
    off_peak = 500_000 * 0.66 / 1e6 + 500_000 * 0.022 / 1e6 + 100_000 * 1.98 / 1e6  # 0.539
    assert c.cost_usd == pytest.approx(2 * off_peak if peak else off_peak)
    assert c.cost_input_usd == pytest.approx(0.66 if peak else 0.33)


def test_without_a_timestamp_the_standard_prices_apply():
    kw = dict(provider="deepseek", model="deepseek-flash", operation="chat", input_tokens=1000,
              output_tokens=1000, cached_input_tokens=0, cache_write_tokens=0,
              reasoning_tokens=0)
    assert TABLE.cost(**kw).cost_usd == pytest.approx((0.15 + 0.60) / 1000)
    import datetime as dt

    at = dt.datetime(2026, 11, 26, 2, 0, tzinfo=dt.UTC)  # a datetime works too
    assert TABLE.cost(**kw, at=at).cost_usd == pytest.approx((0.30 + 1.20) / 1000)


WINDOWED = PriceTable.from_toml('''
version = "t-1"
[models.acme."night-owl"]
input = 1.0
cached_input = 0.5
output = 4.0
[[models.acme."night-owl".time_windows]]
hours_utc = "16:30-00:30"
input = 0.25
output = 1.0
[[models.acme."night-owl".time_windows]]
hours_utc = ["12:00-12:00"]
weekdays = ["sun"]
input = 0.0
output = 0.0
''')


@pytest.mark.parametrize(("when", "rates"), [
    ("2026-11-26T16:29:59", (1.0, 0.5, 4.0)),  # Thursday, before the window
    ("2026-11-26T16:30:00", (0.25, 0.25, 1.0)),  # no cached_input in the window: its input rate
    ("2026-11-26T23:59:59", (0.25, 0.25, 1.0)),
    ("2026-11-27T00:00:00", (0.25, 0.25, 1.0)),  # past midnight, still inside
    ("2026-11-27T00:29:59", (0.25, 0.25, 1.0)),
    ("2026-11-27T00:30:00", (1.0, 0.5, 4.0)),
    ("2026-11-29T20:00:00", (0.25, 0.25, 1.0)),  # Sunday: both windows match, the first wins
    ("2026-11-29T10:00:00", (0.0, 0.0, 0.0)),  # Sunday, whole-day window
])
def test_window_wrapping_midnight_and_first_match_wins(when: str, rates: tuple):
    c = cost("acme", "night-owl", inp=2000, cached=1000, out=1000, table=WINDOWED)
    assert c.cost_usd == pytest.approx((1000 * 1.0 + 1000 * 0.5 + 1000 * 4.0) / 1e6)  # no ts
    c = WINDOWED.cost(provider="acme", model="night-owl", operation="chat", input_tokens=2000,
                      cached_input_tokens=1000, output_tokens=1000, cache_write_tokens=None,
                      reasoning_tokens=None, at=_us(when))
    r_in, r_cached, r_out = rates
    assert c.cost_input_usd == pytest.approx(1000 * r_in / 1e6)
    assert c.cost_cached_input_usd == pytest.approx(1000 * r_cached / 1e6)
    assert c.cost_output_usd == pytest.approx(1000 * r_out / 1e6)


@pytest.mark.parametrize(("window", "needle"), [
    ('hours_utc = "25:00-02:00"\ninput = 1.0', "hours_utc"),
    ('hours_utc = "1:00-2:00"\ninput = 1.0', "hours_utc"),
    ('input = 1.0', "hours_utc"),
    ('hours_utc = "01:00-02:00"\nweekdays = ["monday"]', "weekdays"),
    ('hours_utc = "01:00-02:00"\nexcept_dates = ["26-10-01"]', "except_dates"),
    ('hours_utc = "01:00-02:00"\ninput = -1', "input"),
    ('hours_utc = "01:00-02:00"\npeak = true', "peak"),
])
def test_bad_time_window_names_the_key(tmp_path: Path, window: str, needle: str):
    path = tmp_path / "p.toml"
    path.write_text('[models.acme."m"]\ninput = 1.0\noutput = 2.0\n'
                    f'[[models.acme."m".time_windows]]\n{window}\n')
    with pytest.raises(ConfigError, match=needle):
        PriceTable.load(path)


def test_time_windows_and_long_context_do_not_combine(tmp_path: Path):
    path = tmp_path / "p.toml"
    path.write_text('[models.gemini."gemini-2.5-pro".time_windows]\n')  # not an array of tables
    with pytest.raises(ConfigError, match="time_windows"):
        PriceTable.load(path)
    path.write_text('[[models.gemini."gemini-2.5-pro".time_windows]]\n'
                    'hours_utc = "00:00-01:00"\ninput = 1.0\n')
    with pytest.raises(ConfigError, match="cannot be combined"):
        PriceTable.load(path)


def test_user_file_can_add_a_time_window(tmp_path: Path):
    path = tmp_path / "p.toml"
    path.write_text('version = "night"\n[[models.openai."gpt-4o".time_windows]]\n'
                    'hours_utc = "22:00-06:00"\ninput = 1.0\noutput = 5.0\n')
    table = PriceTable.load(path)
    night = table.cost(provider="openai", model="gpt-4o", operation="chat", input_tokens=1000,
                       output_tokens=1000, cached_input_tokens=0, cache_write_tokens=0,
                       reasoning_tokens=0, at=_us("2026-11-26T23:00:00"))
    day = table.cost(provider="openai", model="gpt-4o", operation="chat", input_tokens=1000,
                     output_tokens=1000, cached_input_tokens=0, cache_write_tokens=0,
                     reasoning_tokens=0, at=_us("2026-11-26T12:00:00"))
    assert night.cost_usd == pytest.approx((1.0 + 5.0) / 1000)
    assert day.cost_usd == pytest.approx((2.50 + 10.0) / 1000)
