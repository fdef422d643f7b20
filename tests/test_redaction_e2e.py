"""Issue 4 end to end: plant every kind of secret and PII in requests and streamed responses,
then find none of them in any file under the store (journal, Parquet) — and prove it with rescan."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from e2e_support import anthropic_client, openai_client, records, store_text

from llm_proxy.cli.proxy_process import ProxyProcess
from llm_proxy.mock.server import MockLLMServer

pytestmark = pytest.mark.e2e

# Format-valid fake values, one per kind.
PLANTED = {
    "EMAIL": "jane.doe@example.com",
    "PHONE": "+44 20 7946 0958",
    "CREDIT_CARD": "4111 1111 1111 1111",
    "IBAN": "DE89 3704 0044 0532 0130 00",
    "SSN": "078-05-1120",
    "IP_ADDRESS": "203.0.113.42",
    "API_KEY": "sk-proj-PLANTEDabcdefghijklmnopqrstuvwxyz0123456789",
    "AWS_ACCESS_KEY": "AKIAIOSFODNN7EXAMPLE",
    "GITHUB": "ghp_PLANTEDabcdefghijklmnopqrstuvwxyz0123",
    "JWT": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGFudGVkIn0.c2lnbmF0dXJlcGxhbnRlZA",
    "PERSON": "Margaret Thornbury",
}
PROMPT = (f"My name is {PLANTED['PERSON']}, e-mail {PLANTED['EMAIL']}, phone {PLANTED['PHONE']}. "
          f"Card {PLANTED['CREDIT_CARD']}, IBAN {PLANTED['IBAN']}, SSN {PLANTED['SSN']}, "
          f"from {PLANTED['IP_ADDRESS']}. Keys: {PLANTED['API_KEY']} {PLANTED['AWS_ACCESS_KEY']} "
          f"{PLANTED['GITHUB']} token {PLANTED['JWT']}")


def test_planted_pii_and_secrets_reach_no_file(tmp_path: Path):
    store = tmp_path / "store"
    with MockLLMServer(tls=True, cert_dir=tmp_path / "certs") as mock, \
            ProxyProcess(store=store, confdir=tmp_path / "mitm", upstream_ca=Path(mock.ca_cert_path)) as proxy:
        # echo_secret: the mock's reply repeats the prompt, so responses carry it too
        oai = openai_client(mock.url, proxy.url, proxy.ca_bundle,
                            default_headers={"x-mock-scenario": "echo_secret", "x-user-id": "plant"})
        msgs = [{"role": "user", "content": PROMPT}]
        oai.chat.completions.create(model="gpt-4o-mini", messages=msgs)
        streamed = list(oai.chat.completions.create(model="gpt-4o-mini", messages=msgs, stream=True))
        assert streamed  # the client itself got the clear text: redaction is for the record only
        tool = openai_client(mock.url, proxy.url, proxy.ca_bundle,
                             default_headers={"x-mock-scenario": "tool_call", "x-user-id": "plant"})
        tool.chat.completions.create(model="gpt-4o-mini", messages=msgs, tools=[{
            "type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}])
        ant = anthropic_client(mock.url, proxy.url, proxy.ca_bundle,
                               default_headers={"x-mock-scenario": "echo_secret", "x-user-id": "plant"})
        with ant.messages.stream(model="claude-sonnet-4-6", max_tokens=400, messages=msgs) as s:
            s.get_final_message()
        rows = records(store, "user_id = 'plant'", expect=4)
        assert len(rows) == 4
        journal_text = store_text(store)  # the journal, before any flush
        for kind, value in PLANTED.items():
            assert value not in journal_text, f"{kind} in the journal"
    text = store_text(store)  # after shutdown: Parquet
    assert list(store.rglob("*.parquet"))
    for kind, value in PLANTED.items():
        assert value not in text, f"{kind} reached a stored file"
    counts = json.loads(rows[0]["redactions"])
    assert {"email", "credit_card", "iban", "ssn", "api_key"} <= set(counts)
    # tool-call arguments stay valid JSON-in-a-string after redaction
    call = json.loads(rows[2]["response_body"])["choices"][0]["message"]["tool_calls"][0]
    json.loads(call["function"]["arguments"])
    rescan = subprocess.run([sys.executable, "-m", "llm_proxy", "rescan", "--store", str(store)],
                            capture_output=True, text=True, timeout=120)
    assert rescan.returncode == 0, rescan.stdout + rescan.stderr
    assert "clean" in rescan.stdout + rescan.stderr


def test_large_prompt_is_prefetched_and_redacted(tmp_path: Path):
    """A RAG-sized prompt goes to the worker early (request hook); its record is still exact."""
    store = tmp_path / "store"
    context = "Background document. " * 2500  # ~50 KiB, sent ahead from the request hook
    prompt = f"{context} Contact {PLANTED['EMAIL']} about card {PLANTED['CREDIT_CARD']}."
    with MockLLMServer(tls=True, cert_dir=tmp_path / "certs") as mock, \
            ProxyProcess(store=store, confdir=tmp_path / "mitm", upstream_ca=Path(mock.ca_cert_path)) as proxy:
        client = openai_client(mock.url, proxy.url, proxy.ca_bundle,
                               default_headers={"x-user-id": "rag", "x-mock-scenario": "slow:50"})
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
        [r] = records(store, "user_id = 'rag'", expect=1)
    body = json.loads(r["request_body"])["messages"][0]["content"]
    assert body.startswith("Background document.") and body.endswith("about card [CREDIT_CARD].")
    assert PLANTED["EMAIL"] not in store_text(store) and "[EMAIL]" in body
