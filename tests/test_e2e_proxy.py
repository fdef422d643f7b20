"""End to end: real mitmdump + the audit addon, real openai/anthropic SDKs, real HTTPS.

The upstream is the bundled mock LLM server on loopback (TLS with its own CA, which the proxy is
told to trust with --upstream-ca); clients trust the CA bundle the proxy writes.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
import uuid
from pathlib import Path

import httpx2
import openai
import pytest
from e2e_support import ANTHROPIC_KEY, OPENAI_KEY, anthropic_client, openai_client, records

from llm_proxy.cli.proxy_process import ProxyProcess, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def proxy(mock, tmp_path_factory):
    base = tmp_path_factory.mktemp("proxy")
    with ProxyProcess(store=base / "store", confdir=base / "mitm", intercept=["127.0.0.1"],
                      upstream_ca=Path(mock.ca_cert_path)) as p:
        yield p


@pytest.fixture
def user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


def oai(mock, proxy, user, **kw):
    headers = {"x-user-id": user, **kw.pop("default_headers", {})}
    return openai_client(mock.url, proxy.url, proxy.ca_bundle, default_headers=headers, **kw)


def ant(mock, proxy, user, **kw):
    headers = {"x-user-id": user, **kw.pop("default_headers", {})}
    return anthropic_client(mock.url, proxy.url, proxy.ca_bundle, default_headers=headers, **kw)


MSG = [{"role": "user", "content": "Write a haiku about audit logs"}]


def test_openai_chat_is_recorded_with_usage_and_fingerprint(mock, proxy, user):
    reply = oai(mock, proxy, user).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    [r] = records(proxy.store, f"user_id = '{user}'", expect=1)
    assert r["provider"] == "openai" and r["operation"] == "chat"
    assert r["request_model"] == "gpt-4o-mini" and r["response_model"] == reply.model
    assert r["status_code"] == 200 and r["stream"] is False
    assert r["input_tokens"] == reply.usage.prompt_tokens
    assert r["output_tokens"] == reply.usage.completion_tokens
    assert r["finish_reason"] == "stop"
    assert "haiku about audit logs" in r["request_body"]
    assert reply.choices[0].message.content in r["response_body"]
    assert r["auth_method"] == "api_key"
    assert r["key_id"].startswith("sk-proj-…") and r["key_id"][len("sk-proj-…"):].startswith(OPENAI_KEY[-4:])
    assert OPENAI_KEY not in r["request_headers"]
    assert 0 <= r["ratelimit_usage_pct"] <= 100
    assert r["latency_ms"] > 0 and r["ttfb_ms"] <= r["latency_ms"]
    assert r["endpoint"] == "/v1/chat/completions" and r["method"] == "POST"
    assert r["client_ip"] == "127.0.0.1"


def test_openai_stream_is_relayed_and_assembled(mock, proxy, user):
    client = oai(mock, proxy, user, default_headers={"x-mock-scenario": "chunk_delay:20"})
    chunks = list(client.chat.completions.create(
        model="gpt-4o", messages=MSG, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage = chunks[-1].usage
    [r] = records(proxy.store, f"user_id = '{user}'", expect=1)
    assert r["stream"] is True
    assert r["input_tokens"] == usage.prompt_tokens and r["output_tokens"] == usage.completion_tokens
    body = json.loads(r["response_body"])
    assert body["choices"][0]["message"]["content"] == text
    assert r["finish_reason"] == "stop"
    # first token arrived well before the end of a stream with 20 ms between chunks
    assert r["ttfb_ms"] < r["latency_ms"] - 20


def test_anthropic_messages_plain_and_streamed(mock, proxy, user):
    client = ant(mock, proxy, user)
    msg = client.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=MSG)
    with client.messages.stream(model="claude-sonnet-4-6", max_tokens=100, messages=MSG) as s:
        streamed = s.get_final_message()
    rows = records(proxy.store, f"user_id = '{user}'", expect=2)
    plain, stream = rows
    assert plain["provider"] == stream["provider"] == "anthropic"
    assert plain["operation"] == "messages" and plain["stream"] is False and stream["stream"] is True
    assert plain["output_tokens"] == msg.usage.output_tokens
    assert stream["output_tokens"] == streamed.usage.output_tokens
    assert plain["finish_reason"] == stream["finish_reason"] == "end_turn"
    assert json.loads(stream["response_body"])["content"][0]["text"] == streamed.content[0].text
    assert plain["key_id"].startswith("sk-ant-api03-…")


def test_429_then_retry_gives_two_records(mock, proxy, user):
    client = oai(mock, proxy, user, max_retries=2,
                 default_headers={"x-mock-scenario": "rate_limit_then_ok:1", "x-mock-key": user})
    client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    first, second = records(proxy.store, f"user_id = '{user}'", expect=2)
    assert first["status_code"] == 429 and first["error_type"] == "rate_limit"
    assert first["retry_count"] == 0 and first["resolution"] == "failed"
    assert second["status_code"] == 200 and second["retry_count"] == 1
    assert second["error_type"] is None and second["resolution"] == "succeeded_after_retry"


def test_server_error_is_recorded(mock, proxy, user):
    client = oai(mock, proxy, user, max_retries=0, default_headers={"x-mock-scenario": "server_error"})
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    [r] = records(proxy.store, f"user_id = '{user}'", expect=1)
    assert r["status_code"] == 500 and r["error_type"] == "server_error" and r["error_message"]


def test_gzip_response_is_decoded_for_the_record(mock, proxy, user):
    reply = oai(mock, proxy, user, default_headers={"x-mock-scenario": "gzip"}).chat.completions.create(
        model="gpt-4o-mini", messages=MSG)
    [r] = records(proxy.store, f"user_id = '{user}'", expect=1)
    assert reply.choices[0].message.content in r["response_body"]
    assert json.loads(r["response_headers"])["content-encoding"] == "gzip"
    assert r["output_tokens"] == reply.usage.completion_tokens


def test_upstream_down_is_recorded_with_the_request(proxy, user, tmp_path):
    dead = free_port()  # nothing listens here
    client = openai_client(f"https://127.0.0.1:{dead}", proxy.url, proxy.ca_bundle, max_retries=0,
                           default_headers={"x-user-id": user})
    with pytest.raises(openai.APIError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    [r] = records(proxy.store, f"user_id = '{user}'", expect=1)
    assert r["error_type"] == "connection" and r["status_code"] is None
    assert "haiku" in r["request_body"] and r["request_model"] == "gpt-4o-mini"


def test_upstream_reset_is_recorded(mock, proxy, user):
    client = oai(mock, proxy, user, max_retries=0, default_headers={"x-mock-scenario": "reset"})
    with pytest.raises(openai.APIError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    [r] = records(proxy.store, f"user_id = '{user}'", expect=1)
    assert r["error_type"] in ("connection_reset", "connection") and r["error_message"]


def test_client_abort_mid_stream_is_recorded(mock, proxy, user):
    client = oai(mock, proxy, user, default_headers={"x-mock-scenario": "chunk_delay:200"})
    stream = client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
    first = next(iter(stream))
    assert first is not None
    stream.close()  # the client hangs up mid-stream
    [r] = records(proxy.store, f"user_id = '{user}'", expect=1)
    assert r["error_type"] == "client_abort" and r["status_code"] == 200 and r["stream"] is True


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_client_hanging_up_mid_upload_is_a_client_abort(mock, proxy, framing):
    """A client that hangs up before its request body is complete: one record, a client_abort
    (mitmproxy words it like a reset), with the request line and no response (mitmproxy keeps
    no part of a body it buffers and never completes)."""
    user = f"upload-{framing}"
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "half'
    length = (f"Content-Length: {len(body) + 5000}" if framing == "content-length"
              else "Transfer-Encoding: chunked")
    sent = body if framing == "content-length" else f"{len(body):x}\r\n".encode() + body + b"\r\n"
    host = f"127.0.0.1:{mock.port}"
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as raw:
        raw.sendall(f"CONNECT {host} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert raw.recv(1024).startswith(b"HTTP/1.1 200")
        ctx = ssl.create_default_context(cafile=str(proxy.ca_bundle))
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n"
                        f"Authorization: Bearer {OPENAI_KEY}\r\nx-user-id: {user}\r\n"
                        f"Content-Type: application/json\r\n{length}\r\n\r\n".encode() + sent)
            time.sleep(0.3)  # the proxy has read the part sent before the client hangs up
    [r] = records(proxy.store, f"user_id = '{user}'", expect=1)
    assert r["error_type"] == "client_abort", r["error_message"]
    assert "complete message body" in r["error_message"] and r["status_code"] is None
    assert r["method"] == "POST" and r["endpoint"] == "/v1/chat/completions"


def test_upstream_aborting_a_stream_is_recorded(mock, proxy, user):
    client = oai(mock, proxy, user, max_retries=0, default_headers={"x-mock-scenario": "stream_abort"})
    with pytest.raises(Exception):
        list(client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True))
    [r] = records(proxy.store, f"user_id = '{user}'", expect=1)
    assert r["error_type"] is not None and r["stream"] is True


def test_client_timeout_on_hanging_upstream_is_recorded(mock, proxy, user):
    client = oai(mock, proxy, user, max_retries=0, timeout=0.5,
                 default_headers={"x-mock-scenario": "hang"})
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    [r] = records(proxy.store, f"user_id = '{user}'", expect=1)
    assert r["error_type"] == "client_abort" and r["latency_ms"] >= 400


def test_malformed_and_binary_bodies_are_recorded(mock, proxy, user):
    for scenario in ("malformed", "binary"):
        client = oai(mock, proxy, user, max_retries=0, default_headers={"x-mock-scenario": scenario})
        try:  # what the SDK makes of garbage is its business; the record is ours
            client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        except Exception:
            pass
    malformed, binary = records(proxy.store, f"user_id = '{user}'", expect=2)
    assert malformed["status_code"] == 200 and malformed["response_body"].startswith('{"id"')
    assert binary["response_body"].startswith("[binary body:")


def test_http2_client_is_recorded(mock, proxy, user):
    with httpx2.Client(proxy=proxy.url, verify=ssl.create_default_context(cafile=proxy.ca_bundle),
                       http2=True) as http:
        resp = http.post(f"{mock.url}/v1/chat/completions",
                         headers={"authorization": f"Bearer {OPENAI_KEY}", "x-user-id": user},
                         json={"model": "gpt-4o-mini", "messages": MSG})
    assert resp.status_code == 200 and resp.http_version == "HTTP/2"
    [r] = records(proxy.store, f"user_id = '{user}'", expect=1)
    assert r["http_version"] == "HTTP/2.0" and r["input_tokens"] == resp.json()["usage"]["prompt_tokens"]


def test_non_llm_host_is_tunnelled_not_decrypted(mock, proxy, user):
    """'localhost' is not in the intercept list: the client sees the mock's own certificate."""
    before = len(records(proxy.store, "true"))
    host, port = "localhost", mock.port
    with socket.create_connection(("127.0.0.1", proxy.port)) as raw:
        raw.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        assert b" 200 " in raw.recv(4096)
        ctx = ssl.create_default_context(cafile=mock.ca_cert_path)  # NOT the mitmproxy CA
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            tls.sendall(f"GET /v1/models HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer "
                        f"{OPENAI_KEY}\r\nConnection: close\r\n\r\n".encode())
            assert tls.recv(4096).startswith(b"HTTP/1.1 200")
    assert len(records(proxy.store, "true")) == before


def test_secrets_never_reach_disk(mock, proxy, user):
    pasted = "AKIAIOSFODNN7EXAMPLE and sk-ant-api03-PASTEDsecret0123456789abcdefghijklmnop"
    oai(mock, proxy, user, default_headers={"x-mock-scenario": "echo_secret"}).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"my keys: {pasted}"}])
    ant(mock, proxy, user).messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=MSG)
    records(proxy.store, f"user_id = '{user}'", expect=2)
    secrets = [OPENAI_KEY, ANTHROPIC_KEY, "AKIAIOSFODNN7EXAMPLE",
               "sk-ant-api03-PASTEDsecret0123456789abcdefghijklmnop"]
    found = subprocess.run(["grep", "-rlF", *sum((["-e", s] for s in secrets), []), str(proxy.store)],
                           capture_output=True, text=True)
    assert found.stdout == "", f"secrets on disk in: {found.stdout}"
    # and the Parquet files, once flushed, hold none either (checked after the proxy stops in
    # test_kill9; here the journal is what exists)


def test_untrusted_upstream_certificate_is_a_tls_error(mock, tmp_path, user):
    """A proxy that does not trust the upstream's CA refuses it, and records why."""
    with ProxyProcess(store=tmp_path / "store", confdir=tmp_path / "mitm",
                      intercept=["127.0.0.1"]) as strict:
        client = openai_client(mock.url, strict.url, strict.ca_bundle, max_retries=0,
                               default_headers={"x-user-id": user})
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        [r] = records(strict.store, f"user_id = '{user}'", expect=1)
    assert r["error_type"] == "tls" and "certificate" in r["error_message"].lower()


def test_huge_bodies_are_cut_at_the_cap_and_marked(mock, proxy, user):
    """3 MiB prompt, 2 MiB answer: relayed whole, recorded up to max_body_bytes (1 MiB)."""
    prompt = "word " * (3 * 1024 * 1024 // 5)
    reply = oai(mock, proxy, user, default_headers={"x-mock-scenario": "big:2097152"}
                ).chat.completions.create(model="gpt-4o-mini",
                                          messages=[{"role": "user", "content": prompt}])
    assert len(reply.choices[0].message.content) > 2_000_000  # the client got everything
    [r] = records(proxy.store, f"user_id = '{user}'", expect=1)
    assert r["request_truncated"] and r["response_truncated"]
    assert r["request_bytes"] > 3_000_000 and r["response_bytes"] > 2_000_000
    assert len(r["request_body"]) < 1_100_000 and "[truncated:" in r["request_body"]
    assert r["output_tokens"] == reply.usage.completion_tokens  # parsed from the whole body
