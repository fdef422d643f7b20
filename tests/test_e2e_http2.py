"""End to end over HTTP/2 on both legs: SDK clients speaking h2 to a real mitmdump with the
audit addon, which speaks h2 to the bundled mock (it mirrors the client's ALPN offer upstream).

Every test checks that the upstream leg really was HTTP/2 (the mock counts the requests it
serves over h2, and marks its h2 responses with `x-mock-http-version`), then the audit record:
plain and streamed replies, compression, upstream errors, and upstream resets and aborts,
which over h2 are RST_STREAM frames rather than dropped connections, and the journal
guarantee (a response relayed, a stream ended, only once its record is journaled). One test
keeps the mixed case, an h2 client in front of an HTTP/1.1-only upstream, which mitmproxy
translates.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from e2e_support import OPENAI_KEY, anthropic_client, openai_client, records
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import DataReceived, Event

from llm_proxy.cli.proxy_process import ProxyProcess
from llm_proxy.mock.server import MockLLMServer

pytestmark = pytest.mark.e2e

MSG: Any = [{"role": "user", "content": "Write a haiku about audit logs"}]
REPLY = "Mock reply to: Write a haiku about audit logs"
CHUNK_DELAY_MS = 60


@pytest.fixture(scope="module")
def proxy(mock: MockLLMServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    base = tmp_path_factory.mktemp("proxy")
    with ProxyProcess(store=base / "store", confdir=base / "mitm", intercept=["127.0.0.1"],
                      upstream_ca=Path(mock.ca_cert_path or "")) as p:
        yield p


@pytest.fixture
def user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


def oai(mock: MockLLMServer, proxy: ProxyProcess, user: str, scenario: str | None = None,
        **kw: Any) -> openai.OpenAI:
    """An OpenAI SDK client speaking HTTP/2 to the proxy, tagged with `user`."""
    headers = {"x-user-id": user, **({"x-mock-scenario": scenario} if scenario else {})}
    kw.setdefault("max_retries", 0)
    return openai_client(mock.url, proxy.url, proxy.ca_bundle, http2=True,
                         default_headers=headers, **kw)


def ant(mock: MockLLMServer, proxy: ProxyProcess, user: str,
        scenario: str | None = None) -> anthropic.Anthropic:
    """An Anthropic SDK client speaking HTTP/2 to the proxy, tagged with `user`."""
    headers = {"x-user-id": user, **({"x-mock-scenario": scenario} if scenario else {})}
    return anthropic_client(mock.url, proxy.url, proxy.ca_bundle, http2=True, max_retries=0,
                            default_headers=headers)


@contextmanager
def upstream_h2(mock: MockLLMServer) -> Iterator[None]:
    """Assert that the block made the proxy send the mock one request, over HTTP/2."""
    served, served_h2 = mock.requests_served, mock.requests_served_http2
    yield
    assert (mock.requests_served - served, mock.requests_served_http2 - served_h2) == (1, 1)


def one_record(proxy: ProxyProcess, user: str) -> dict[str, Any]:
    """The single record of `user`, after a moment for a stray second one to show up."""
    [record] = records(proxy.store, f"user_id = '{user}'", expect=1)
    time.sleep(0.3)
    assert len(records(proxy.store, f"user_id = '{user}'")) == 1
    return record


def test_h2_chat_is_recorded_and_the_upstream_leg_is_h2(mock, proxy, user):
    with upstream_h2(mock):
        raw = oai(mock, proxy, user).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MSG)
    assert raw.http_response.http_version == "HTTP/2"
    assert raw.headers["x-mock-http-version"] == "HTTP/2"  # relayed from the upstream
    reply = raw.parse()
    r = one_record(proxy, user)
    assert r["http_version"] == "HTTP/2.0" and r["status_code"] == 200
    assert r["provider"] == "openai" and r["operation"] == "chat" and r["stream"] is False
    assert r["request_model"] == "gpt-4o-mini" and r["response_model"] == reply.model
    assert r["input_tokens"] == reply.usage.prompt_tokens
    assert r["output_tokens"] == reply.usage.completion_tokens
    assert r["finish_reason"] == "stop" and r["error_type"] is None
    assert reply.choices[0].message.content == REPLY and REPLY in r["response_body"]
    assert json.loads(r["response_headers"])["x-mock-http-version"] == "HTTP/2"
    assert r["latency_ms"] > 0 and r["ttfb_ms"] <= r["latency_ms"]


def test_h2_sse_stream_is_relayed_incrementally_and_assembled(mock, proxy, user):
    client = oai(mock, proxy, user, f"chunk_delay:{CHUNK_DELAY_MS}")
    arrivals: list[float] = []
    chunks = []
    with upstream_h2(mock):
        for chunk in client.chat.completions.create(
                model="gpt-4o", messages=MSG, stream=True,
                stream_options={"include_usage": True}):
            if chunk.choices and chunk.choices[0].delta.content:
                arrivals.append(time.monotonic())
            chunks.append(chunk)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage = chunks[-1].usage
    assert text == REPLY and len(arrivals) == len(REPLY.split())
    # each token reached the client as the mock paced it, not all at the end
    gap = CHUNK_DELAY_MS / 1000
    assert arrivals[-1] - arrivals[0] >= 0.9 * gap * (len(arrivals) - 1)
    r = one_record(proxy, user)
    assert r["http_version"] == "HTTP/2.0" and r["stream"] is True and r["status_code"] == 200
    assert json.loads(r["response_body"])["choices"][0]["message"]["content"] == text
    assert r["input_tokens"] == usage.prompt_tokens
    assert r["output_tokens"] == usage.completion_tokens
    assert r["finish_reason"] == "stop" and r["error_type"] is None
    # the first token came one pause after the role-only chunk, the end many pauses later
    assert 0.8 * CHUNK_DELAY_MS <= r["ttfb_ms"] <= r["latency_ms"] - 5 * CHUNK_DELAY_MS


def test_h2_anthropic_stream_is_assembled(mock, proxy, user):
    client = ant(mock, proxy, user)
    with upstream_h2(mock):
        with client.messages.stream(model="claude-sonnet-4-6", max_tokens=100,
                                    messages=MSG) as stream:
            final = stream.get_final_message()
    r = one_record(proxy, user)
    assert r["provider"] == "anthropic" and r["stream"] is True and r["http_version"] == "HTTP/2.0"
    assert json.loads(r["response_body"])["content"][0]["text"] == final.content[0].text == REPLY
    assert r["output_tokens"] == final.usage.output_tokens and r["finish_reason"] == "end_turn"


@pytest.mark.parametrize("stream", [False, True])
def test_h2_gzip_body_is_decoded_for_the_record(mock, proxy, user, stream):
    client = oai(mock, proxy, user, "gzip")
    with upstream_h2(mock):
        if stream:
            chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MSG,
                                                         stream=True))
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            text = client.chat.completions.create(
                model="gpt-4o-mini", messages=MSG).choices[0].message.content
    assert text == REPLY
    r = one_record(proxy, user)
    assert json.loads(r["response_headers"])["content-encoding"] == "gzip"
    assert r["http_version"] == "HTTP/2.0" and r["stream"] is stream
    body = json.loads(r["response_body"])
    assert body["choices"][0]["message"]["content"] == REPLY
    assert r["finish_reason"] == "stop"


@pytest.mark.parametrize(("scenario", "status", "error_type", "sdk_error"), [
    ("server_error", 500, "server_error", openai.InternalServerError),
    ("rate_limit", 429, "rate_limit", openai.RateLimitError),
])
def test_h2_upstream_error_is_recorded(mock, proxy, user, scenario, status, error_type, sdk_error):
    with upstream_h2(mock), pytest.raises(sdk_error):
        oai(mock, proxy, user, scenario).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    r = one_record(proxy, user)
    assert r["status_code"] == status and r["error_type"] == error_type and r["error_message"]
    assert r["http_version"] == "HTTP/2.0" and r["request_model"] == "gpt-4o-mini"


def test_h2_upstream_reset_gives_one_record(mock, proxy, user):
    """The mock resets the TCP connection before any response: one record, with the request
    (mitmproxy words it "peer closed connection", as when the client hangs up)."""
    with upstream_h2(mock), pytest.raises(openai.APIError):
        oai(mock, proxy, user, "reset").chat.completions.create(model="gpt-4o-mini", messages=MSG)
    r = one_record(proxy, user)
    assert r["error_type"] == "connection_reset" and r["error_message"]
    assert r["status_code"] is None and "haiku" in r["request_body"]
    assert r["http_version"] == "HTTP/2.0"


def test_h2_upstream_stream_abort_gives_one_record(mock, proxy, user):
    """The mock sends RST_STREAM after three events: one record, the partial stream kept."""
    client = oai(mock, proxy, user, "stream_abort")
    received = []
    with upstream_h2(mock), pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True):
            received.append(chunk)
    assert received, "the first events reach the client before the reset"
    r = one_record(proxy, user)
    assert r["error_type"] == "connection_reset" and r["error_message"]
    assert r["status_code"] == 200 and r["stream"] is True and r["http_version"] == "HTTP/2.0"
    assert "chatcmpl-" in r["response_body"]


def test_h2_client_hanging_up_mid_stream_is_a_client_abort(mock, proxy, user):
    """The client closes its connection after the first event, while the upstream still sends
    (mitmproxy words this "peer closed connection", as when the upstream hangs up)."""
    client = oai(mock, proxy, user, "chunk_delay:200")
    with upstream_h2(mock):
        stream = client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
        assert next(iter(stream)) is not None
        client.close()  # httpx's h2 has no per-stream cancel: it drops the connection
    r = one_record(proxy, user)
    assert r["error_type"] == "client_abort" and r["status_code"] == 200 and r["stream"] is True


@pytest.mark.parametrize("how", ["cancel", "goaway"])
def test_h2_client_cancelling_its_stream_is_a_client_abort(mock, proxy, user, how):
    """RST_STREAM(CANCEL) from the client, its connection left open (mitmproxy words this
    "stream reset by client (CANCEL)", and an upstream's reset "stream reset by client" too);
    or a GOAWAY and a hang-up, as curl, browsers and Node close (mitmproxy: "HTTP/2 connection
    closed", as for an upstream's GOAWAY)."""
    with upstream_h2(mock):
        events = h2_request_given_up_after_first_data(proxy, mock, user, "chunk_delay:200", how)
    assert any(isinstance(e, DataReceived) for e in events)
    r = one_record(proxy, user)
    assert r["error_type"] == "client_abort" and r["status_code"] == 200 and r["stream"] is True


def h2_request_given_up_after_first_data(
    proxy: ProxyProcess, mock: MockLLMServer, user: str, scenario: str, how: str
) -> list[Event]:
    """As a bare h2 client through the proxy: ask for a stream, read until its first DATA, then
    give up: ``cancel`` it with RST_STREAM(CANCEL) (what browsers and most h2 clients do when a
    caller gives up on one request) and keep the connection open a moment, or send a
    ``goaway`` and close the connection. Returns the events received."""
    authority = f"127.0.0.1:{mock.port}"
    body = json.dumps({"model": "gpt-4o", "messages": MSG, "stream": True}).encode()
    headers = [(":method", "POST"), (":scheme", "https"), (":authority", authority),
               (":path", "/v1/chat/completions"), ("content-type", "application/json"),
               ("authorization", f"Bearer {OPENAI_KEY}"), ("x-user-id", user),
               ("x-mock-scenario", scenario)]  # fmt: skip
    context = ssl.create_default_context(cafile=proxy.ca_bundle)
    context.set_alpn_protocols(["h2"])
    received: list[Event] = []
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as raw:
        raw.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
        assert b" 200 " in raw.recv(4096)
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.selected_alpn_protocol() == "h2"
            conn = H2Connection(H2Configuration(client_side=True))
            conn.initiate_connection()
            conn.send_headers(1, headers)
            conn.send_data(1, body, end_stream=True)
            tls.sendall(conn.data_to_send())
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not any(
                    isinstance(e, DataReceived) for e in received):
                received += conn.receive_data(tls.recv(65536))
                tls.sendall(conn.data_to_send())
            if how == "cancel":
                conn.reset_stream(1, ErrorCodes.CANCEL)
                tls.sendall(conn.data_to_send())
                time.sleep(0.5)  # the cancel, not a hang-up, is what ends the exchange
            else:
                conn.close_connection()
                tls.sendall(conn.data_to_send())
    return received


def test_h2_big_bodies_cross_both_legs(mock, proxy, user):
    """3 MiB up, 2 MiB down: far beyond h2's initial flow-control windows on both legs."""
    prompt = "word " * (3 * 1024 * 1024 // 5)
    with upstream_h2(mock):
        reply = oai(mock, proxy, user, "big:2097152").chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
    assert len(reply.choices[0].message.content) > 2_000_000
    r = one_record(proxy, user)
    assert r["request_bytes"] > 3_000_000 and r["response_bytes"] > 2_000_000
    assert r["request_truncated"] and r["response_truncated"]
    assert r["output_tokens"] == reply.usage.completion_tokens


def test_h2_client_in_front_of_an_http1_only_upstream(user, tmp_path):
    """mitmproxy translates: HTTP/2 from the client, HTTP/1.1 to an upstream without h2."""
    with MockLLMServer(tls=True, cert_dir=tmp_path / "certs", http2=False) as only_h1, \
            ProxyProcess(store=tmp_path / "store", confdir=tmp_path / "mitm",
                         intercept=["127.0.0.1"], upstream_ca=Path(only_h1.ca_cert_path or "")
                         ) as translating:
        raw = oai(only_h1, translating, user).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MSG)
        chunks = list(oai(only_h1, translating, user).chat.completions.create(
            model="gpt-4o-mini", messages=MSG, stream=True))
        plain, streamed = records(translating.store, f"user_id = '{user}'", expect=2)
        assert only_h1.requests_served == 2 and only_h1.requests_served_http2 == 0
    assert raw.http_response.http_version == "HTTP/2" and "x-mock-http-version" not in raw.headers
    assert plain["http_version"] == streamed["http_version"] == "HTTP/2.0"
    assert plain["output_tokens"] == raw.parse().usage.completion_tokens
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(streamed["response_body"])["choices"][0]["message"]["content"] == text


def test_h2_responses_are_relayed_only_once_journaled(mock: MockLLMServer, tmp_path: Path):
    """SPEC guarantee 2 over HTTP/2 on both legs: with the capture worker stopped, a plain
    response never reaches the client and a streamed one reaches it event by event, `[DONE]`
    included, but without its END_STREAM; once the worker runs again both records exist and
    both responses complete."""
    with ProxyProcess(store=tmp_path / "store", confdir=tmp_path / "mitm",
                      upstream_ca=Path(mock.ca_cert_path or "")) as proxy:
        assert proxy.proc is not None
        [worker] = Path(f"/proc/{proxy.proc.pid}/task/{proxy.proc.pid}/children").read_text().split()
        served_h2 = mock.requests_served_http2
        client = oai(mock, proxy, "h2-held", timeout=httpx2.Timeout(30.0, read=1.5))
        oai(mock, proxy, "h2-warm").chat.completions.create(model="gpt-4o", messages=MSG)
        os.kill(int(worker), signal.SIGSTOP)
        lines: list[str] = []
        plain: list[object] = []
        try:
            waiting = threading.Thread(target=lambda: plain.append(
                oai(mock, proxy, "h2-held-plain", timeout=30.0).chat.completions.create(
                    model="gpt-4o", messages=MSG)), daemon=True)
            waiting.start()
            with client.chat.completions.with_streaming_response.create(
                    model="gpt-4o", messages=MSG, stream=True) as resp:
                assert resp.http_version == "HTTP/2"
                with pytest.raises(httpx2.ReadTimeout):
                    for line in resp.iter_lines():
                        lines.append(line)
            assert not plain, "a plain response was relayed before its record was journaled"
            assert not records(proxy.store, "user_id LIKE 'h2-held%'")
        finally:
            os.kill(int(worker), signal.SIGCONT)
        assert "data: [DONE]" in lines  # every event came; only the stream's end waited
        waiting.join(30)
        assert plain and plain[0].choices[0].message.content == REPLY  # type: ignore[attr-defined]
        held = records(proxy.store, "user_id LIKE 'h2-held%'", expect=2)
    assert mock.requests_served_http2 - served_h2 == 3  # the upstream leg was HTTP/2 too
    assert sorted((r["user_id"], r["http_version"], r["status_code"]) for r in held) == [
        ("h2-held", "HTTP/2.0", 200), ("h2-held-plain", "HTTP/2.0", 200)]
