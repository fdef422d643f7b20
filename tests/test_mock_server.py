"""The bundled mock LLM server, driven directly (no proxy) by the real OpenAI and Anthropic SDKs.

These tests pin what the demo, the end-to-end tests and the benchmarks rely on: responses shaped
like the real APIs (the SDKs parse them), deterministic content and usage, rate-limit headers,
and every failure scenario surfacing in the SDK the way the real failure would.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from llm_proxy.mock import SCENARIOS, MockLLMServer

USER_TEXT = "Write a haiku about audit logs"
MSG: Any = [{"role": "user", "content": USER_TEXT}]  # Any: the SDKs want their TypedDicts
REPLY = f"Mock reply to: {USER_TEXT}"
CLAUDE = "claude-sonnet-4-6"

OAI = Callable[..., openai.OpenAI]
ANT = Callable[..., anthropic.Anthropic]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockLLMServer]:
    with MockLLMServer(cert_dir=tmp_path_factory.mktemp("mock-certs")) as mock:
        yield mock


@pytest.fixture
def oai(server: MockLLMServer) -> Iterator[OAI]:
    """Factory of OpenAI clients for `server` (or `on=`), closed after the test; the scenario
    goes into every request's `x-mock-scenario` header."""
    made: list[openai.OpenAI] = []

    def make(
        scenario: str | None = None, *, on: MockLLMServer | None = None, **kwargs: Any
    ) -> openai.OpenAI:
        mock = on or server
        kwargs.setdefault("max_retries", 0)
        client = openai.OpenAI(
            base_url=f"{mock.url}/v1",
            api_key="sk-test-mock",
            http_client=openai.DefaultHttpxClient(verify=mock.client_ssl_context()),
            default_headers={"x-mock-scenario": scenario} if scenario else {},
            **kwargs,
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def ant(server: MockLLMServer) -> Iterator[ANT]:
    """Factory of Anthropic clients for `server`, closed after the test."""
    made: list[anthropic.Anthropic] = []

    def make(scenario: str | None = None, **kwargs: Any) -> anthropic.Anthropic:
        kwargs.setdefault("max_retries", 0)
        client = anthropic.Anthropic(
            base_url=server.url,
            api_key="sk-ant-test-mock",
            http_client=anthropic.DefaultHttpxClient(verify=server.client_ssl_context()),
            default_headers={"x-mock-scenario": scenario} if scenario else {},
            **kwargs,
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def words(text: str) -> int:
    return len(text.split())


# --------------------------------------------------------------------------- OpenAI


def test_chat_completion_has_content_usage_and_dated_model(oai: OAI) -> None:
    messages = [{"role": "system", "content": "Be brief."}, *MSG]
    reply = oai().chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    assert reply.model == "gpt-4o-mini-2024-07-18"
    assert reply.choices[0].message.content == REPLY
    assert reply.choices[0].finish_reason == "stop"
    usage = reply.usage
    assert usage is not None
    assert usage.prompt_tokens == words("Be brief.") + words(USER_TEXT)
    assert usage.completion_tokens == words(REPLY)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details and usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details and usage.completion_tokens_details.reasoning_tokens == 0


def test_already_dated_model_is_echoed_unchanged(oai: OAI) -> None:
    reply = oai().chat.completions.create(model="gpt-4o-2024-08-06", messages=MSG)
    assert reply.model == "gpt-4o-2024-08-06"


def test_chat_stream_with_include_usage_ends_with_a_usage_chunk(oai: OAI) -> None:
    stream = oai().chat.completions.create(
        model="gpt-4o-mini", messages=MSG, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    *content_chunks, last = chunks
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == words(REPLY)
    assert all(c.usage is None for c in content_chunks)


@pytest.mark.parametrize("scenario", [None, "no_usage"])
def test_chat_stream_without_usage(scenario: str | None, oai: OAI) -> None:
    """No usage chunk unless asked for; `no_usage` suppresses it even when asked for."""
    options = {"include_usage": True} if scenario else openai.omit
    chunks = list(
        oai(scenario).chat.completions.create(
            model="gpt-4o-mini", messages=MSG, stream=True, stream_options=options
        )
    )
    assert all(c.usage is None and c.choices for c in chunks)


def test_no_usage_scenario_omits_usage_from_plain_replies(oai: OAI) -> None:
    reply = oai("no_usage").chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert reply.usage is None and reply.choices[0].message.content == REPLY


def test_chat_tool_call_carries_json_arguments(oai: OAI) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    client = oai("tool_call")
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=MSG, tools=tools)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"query": USER_TEXT}

    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=MSG, tools=tools, stream=True
    )
    chunks = list(stream)
    deltas = [tc for c in chunks for tc in c.choices[0].delta.tool_calls or []]
    streamed = "".join(tc.function.arguments or "" for tc in deltas if tc.function)
    assert json.loads(streamed) == {"query": USER_TEXT}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_responses_api_plain_and_streamed(oai: OAI) -> None:
    client = oai()
    response = client.responses.create(model="gpt-4o-mini", input=USER_TEXT)
    assert response.status == "completed" and response.output_text == REPLY
    assert response.model == "gpt-4o-mini-2024-07-18"
    assert response.usage is not None
    assert response.usage.input_tokens == words(USER_TEXT)
    assert response.usage.output_tokens == words(REPLY)

    events = list(client.responses.create(model="gpt-4o-mini", input=MSG, stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.output_text.done" in kinds
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == REPLY
    completed = events[-1].response
    assert completed.usage.total_tokens == words(USER_TEXT) + words(REPLY)

    with client.responses.stream(model="gpt-4o-mini", input=USER_TEXT) as stream:
        assert stream.get_final_response().output_text == REPLY


def test_embeddings_are_deterministic_unit_vectors(oai: OAI) -> None:
    client = oai()
    as_base64 = client.embeddings.create(model="text-embedding-3-small", input=["one", "two words"])
    as_floats = client.embeddings.create(
        model="text-embedding-3-small", input=["one", "two words"], encoding_format="float"
    )
    assert [len(d.embedding) for d in as_floats.data] == [8, 8]
    for packed, plain in zip(as_base64.data, as_floats.data, strict=True):
        assert packed.embedding == pytest.approx(plain.embedding, abs=1e-6)
        assert math.fsum(v * v for v in plain.embedding) == pytest.approx(1.0, abs=1e-4)
    assert as_floats.data[0].embedding != as_floats.data[1].embedding
    assert as_floats.usage.prompt_tokens == 3 and as_floats.model == "text-embedding-3-small"
    wide = client.embeddings.create(model="text-embedding-3-small", input="one", dimensions=20)
    assert len(wide.data[0].embedding) == 20


def test_models_and_legacy_completions(oai: OAI) -> None:
    client = oai()
    assert "gpt-4o-mini" in [m.id for m in client.models.list()]
    completion = client.completions.create(model="gpt-3.5-turbo-instruct", prompt=USER_TEXT)
    assert completion.choices[0].text == REPLY
    assert completion.usage is not None and completion.usage.completion_tokens == words(REPLY)
    streamed = client.completions.create(
        model="gpt-3.5-turbo-instruct", prompt=USER_TEXT, stream=True
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == REPLY


def test_rate_limit_headers_count_down(oai: OAI) -> None:
    client = oai()
    first = client.models.with_raw_response.list()
    second = client.models.with_raw_response.list()
    limit = int(first.headers["x-ratelimit-limit-requests"])
    remaining = [int(r.headers["x-ratelimit-remaining-requests"]) for r in (first, second)]
    assert 0 <= remaining[1] < remaining[0] < limit
    assert int(first.headers["x-ratelimit-remaining-tokens"]) <= int(
        first.headers["x-ratelimit-limit-tokens"]
    )
    assert first.headers["x-ratelimit-reset-requests"]
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


def test_prefixed_and_azure_style_paths_are_served(server: MockLLMServer, oai: OAI) -> None:
    prefixed = oai().with_options(base_url=f"{server.url}/openai/v1")
    assert prefixed.chat.completions.create(model="gpt-4o-mini", messages=MSG).choices
    with openai.AzureOpenAI(
        azure_endpoint=server.url, api_key="azure-key", api_version="2024-10-21", max_retries=0,
        http_client=openai.DefaultHttpxClient(verify=server.client_ssl_context()),
    ) as azure:  # fmt: skip
        reply = azure.chat.completions.create(model="my-deployment", messages=MSG)
    assert reply.choices[0].message.content == REPLY
    _, path, headers, _ = server.received[-1]
    assert path.startswith("/openai/deployments/my-deployment/chat/completions?api-version=")
    assert headers["api-key"] == "azure-key"


# --------------------------------------------------------------------------- Anthropic


def test_anthropic_message_plain(ant: ANT) -> None:
    message = ant().messages.create(model=CLAUDE, max_tokens=100, system="Be brief.", messages=MSG)
    assert message.model == CLAUDE and message.stop_reason == "end_turn"
    assert message.content[0].text == REPLY
    assert message.usage.input_tokens == words("Be brief.") + words(USER_TEXT)
    assert message.usage.output_tokens == words(REPLY)
    assert message.usage.cache_read_input_tokens == 0


def test_anthropic_stream_follows_the_real_event_sequence(ant: ANT) -> None:
    client = ant()
    events = list(client.messages.create(model=CLAUDE, max_tokens=100, messages=MSG, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert kinds.count("content_block_delta") > 1
    start, delta = events[0], events[-2]
    assert start.message.usage.input_tokens == words(USER_TEXT)
    assert delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens == words(REPLY)

    with client.messages.stream(model=CLAUDE, max_tokens=100, messages=MSG) as stream:
        assert "".join(stream.text_stream) == REPLY
        assert stream.get_final_message().usage.output_tokens == words(REPLY)


def test_anthropic_cached_tool_use_and_count_tokens(ant: ANT) -> None:
    cached = ant("cached").messages.create(model=CLAUDE, max_tokens=100, messages=MSG)
    assert cached.usage.cache_read_input_tokens and cached.usage.cache_read_input_tokens > 0
    assert cached.usage.input_tokens + cached.usage.cache_read_input_tokens == words(USER_TEXT)

    tools = [{"name": "search", "input_schema": {"type": "object"}}]
    with ant("tool_call").messages.stream(
        model=CLAUDE, max_tokens=100, messages=MSG, tools=tools
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "tool_use" and final.content[0].input == {"query": USER_TEXT}

    counted = ant().messages.count_tokens(model=CLAUDE, messages=MSG)
    assert counted.input_tokens == words(USER_TEXT)


def test_anthropic_models_list(ant: ANT) -> None:
    models = ant().models.list()
    assert CLAUDE in [m.id for m in models.data] and models.data[0].type == "model"


def test_anthropic_rate_limit_headers(ant: ANT) -> None:
    raw = ant().messages.with_raw_response.create(model=CLAUDE, max_tokens=10, messages=MSG)
    limit = int(raw.headers["anthropic-ratelimit-requests-limit"])
    assert 0 <= int(raw.headers["anthropic-ratelimit-requests-remaining"]) < limit
    assert int(raw.headers["anthropic-ratelimit-tokens-remaining"]) <= int(
        raw.headers["anthropic-ratelimit-tokens-limit"]
    )
    assert raw.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    assert raw.headers["request-id"].startswith("req_")


# --------------------------------------------------------------------------- errors


def test_missing_credentials_get_401_in_each_providers_shape(
    server: MockLLMServer, oai: OAI
) -> None:
    with pytest.raises(openai.AuthenticationError) as oai_error:
        oai().models.list(extra_headers={"Authorization": openai.Omit()})
    assert oai_error.value.status_code == 401
    assert oai_error.value.body["type"] == "invalid_request_error"

    with httpx2.Client(verify=server.client_ssl_context()) as http:
        response = http.post(f"{server.url}/v1/messages", json={"model": CLAUDE, "messages": MSG})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_rate_limit_then_ok_is_absorbed_by_sdk_retries(
    server: MockLLMServer, oai: OAI, ant: ANT
) -> None:
    key = uuid.uuid4().hex
    client = oai("rate_limit_then_ok:1", max_retries=2)
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=MSG, extra_headers={"x-mock-key": key}
    )
    assert reply.choices[0].message.content == REPLY
    attempts = [h for _, _, h, _ in server.received if h.get("x-mock-key") == key]
    assert [h["x-stainless-retry-count"] for h in attempts] == ["0", "1"]

    key = uuid.uuid4().hex
    message = ant("rate_limit_then_ok:2", max_retries=2).messages.create(
        model=CLAUDE, max_tokens=10, messages=MSG, extra_headers={"x-mock-key": key}
    )
    assert message.content[0].text == REPLY
    assert sum(h.get("x-mock-key") == key for _, _, h, _ in server.received) == 3


def test_rate_limit_error_shapes(oai: OAI, ant: ANT) -> None:
    with pytest.raises(openai.RateLimitError) as oai_error:
        oai("rate_limit").chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert oai_error.value.body["code"] == "rate_limit_exceeded"
    assert oai_error.value.response.headers["retry-after"] == "0"
    assert oai_error.value.response.headers["x-ratelimit-remaining-requests"] == "0"

    with pytest.raises(anthropic.RateLimitError) as ant_error:
        ant("rate_limit").messages.create(model=CLAUDE, max_tokens=10, messages=MSG)
    assert ant_error.value.body["error"]["type"] == "rate_limit_error"


def test_server_errors(oai: OAI, ant: ANT) -> None:
    with pytest.raises(openai.InternalServerError) as oai_error:
        oai("server_error").chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert oai_error.value.status_code == 500
    with pytest.raises(anthropic.OverloadedError) as ant_error:
        ant("overloaded").messages.create(model=CLAUDE, max_tokens=10, messages=MSG)
    assert ant_error.value.status_code == 529


def test_unknown_scenario_is_a_400_naming_it(oai: OAI) -> None:
    with pytest.raises(openai.BadRequestError, match="no_such_thing"):
        oai("no_such_thing").models.list()


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
def test_compressed_replies_are_decoded_by_the_sdk(encoding: str, oai: OAI) -> None:
    client = oai(encoding)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
    assert raw.headers["content-encoding"] == encoding
    assert raw.parse().choices[0].message.content == REPLY
    chunks = client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY


def test_compressed_stream_still_arrives_progressively(oai: OAI) -> None:
    stream = oai("gzip,chunk_delay:60").chat.completions.create(
        model="gpt-4o-mini", messages=MSG, stream=True
    )
    arrivals = [time.monotonic() for c in stream if c.choices and c.choices[0].delta.content]
    assert len(arrivals) == words(REPLY)
    assert arrivals[-1] - arrivals[0] >= 0.05 * (len(arrivals) - 1)


def test_slow_delays_the_reply(oai: OAI) -> None:
    started = time.monotonic()
    oai("slow:250").models.list()
    assert time.monotonic() - started >= 0.25


def test_reset_and_hang_surface_as_sdk_errors(oai: OAI, ant: ANT) -> None:
    with pytest.raises(openai.APIConnectionError):
        oai("reset").chat.completions.create(model="gpt-4o-mini", messages=MSG)
    with pytest.raises(anthropic.APIConnectionError):
        ant("reset").messages.create(model=CLAUDE, max_tokens=10, messages=MSG)
    with pytest.raises(openai.APITimeoutError):
        oai("hang", timeout=0.3).chat.completions.create(model="gpt-4o-mini", messages=MSG)
    with pytest.raises(anthropic.APITimeoutError):
        ant("hang", timeout=0.3).messages.create(model=CLAUDE, max_tokens=10, messages=MSG)


def test_stream_abort_raises_after_the_first_chunks(oai: OAI, ant: ANT) -> None:
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in oai("stream_abort").chat.completions.create(
            model="gpt-4o-mini", messages=MSG, stream=True
        ):
            received.append(chunk)
    assert received, "some chunks arrive before the connection drops"
    stream = ant("stream_abort").messages.create(
        model=CLAUDE, max_tokens=10, messages=MSG, stream=True
    )
    with pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)):
        list(stream)  # the SDK lets httpx2's "incomplete chunked read" through


def test_malformed_and_binary_bodies_break_the_sdk_parser(oai: OAI) -> None:
    raw = oai("malformed").chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSG
    )
    assert raw.status_code == 200 and raw.headers["content-type"] == "application/json"
    with pytest.raises(ValueError):
        raw.parse()
    raw = oai("binary").chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
    assert raw.headers["content-type"] == "application/octet-stream"
    with pytest.raises(UnicodeDecodeError):
        raw.http_response.content.decode()


def test_big_echo_secret_and_cached_shape_the_reply(oai: OAI) -> None:
    big = oai("big:20000").chat.completions.create(model="gpt-4o-mini", messages=MSG)
    content = big.choices[0].message.content or ""
    assert content.startswith(REPLY) and abs(len(content) - 20000) < 50
    assert big.usage is not None and big.usage.completion_tokens == words(content)
    streamed = oai("big:20000").chat.completions.create(
        model="gpt-4o-mini", messages=MSG, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == content

    secret = "my key is sk-proj-ABCDEF0123456789abcdef0123456789 and mail bob@example.com " * 2
    echoed = oai("echo_secret").chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": secret}]
    )
    assert echoed.choices[0].message.content == secret

    cached = oai("cached").chat.completions.create(model="gpt-4o-mini", messages=MSG)
    details = cached.usage.prompt_tokens_details
    assert details is not None and 0 < details.cached_tokens <= cached.usage.prompt_tokens


def test_chunked_request_bodies_are_read(server: MockLLMServer) -> None:
    body = json.dumps({"model": "gpt-4o-mini", "messages": MSG}).encode()
    pieces = iter([body[:10], body[10:]])
    with httpx2.Client(verify=server.client_ssl_context()) as http:
        response = http.post(
            f"{server.url}/v1/chat/completions",
            content=pieces,
            headers={"authorization": "Bearer sk-test", "content-type": "application/json"},
        )
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == REPLY
    assert server.received[-1][2]["transfer-encoding"] == "chunked"


# --------------------------------------------------------------------------- modes


def test_plain_http_mode_with_global_latency() -> None:
    with MockLLMServer(tls=False, latency_ms=100) as plain:
        assert plain.url.startswith("http://") and plain.ca_cert_path is None
        with openai.OpenAI(
            base_url=f"{plain.url}/v1", api_key="sk-test", max_retries=0,
            http_client=openai.DefaultHttpxClient(),
        ) as client:  # fmt: skip
            started = time.monotonic()
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        assert time.monotonic() - started >= 0.1
        assert reply.choices[0].message.content == REPLY
        assert plain.requests_served == 1


def test_stop_closes_the_port(tmp_path_factory: pytest.TempPathFactory, oai: OAI) -> None:
    mock = MockLLMServer(cert_dir=tmp_path_factory.mktemp("stop-certs")).start()
    assert oai(on=mock).models.list().data
    mock.stop()
    with pytest.raises(openai.APIConnectionError):
        oai(on=mock).models.list()


def test_cli_serves_until_sigterm() -> None:
    command = [sys.executable, "-m", "llm_proxy.mock", "--port", "0", "--no-tls"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().split()[-1]
            assert url.startswith("http://127.0.0.1:")
            response = httpx2.get(f"{url}/v1/models", headers={"authorization": "Bearer sk-test"})
            assert response.status_code == 200 and response.json()["object"] == "list"
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=5) == 0
        finally:
            process.kill()


# --------------------------------------------------------------------------- HTTP/2

CHAT = "/v1/chat/completions"
AUTH = {"authorization": "Bearer sk-test-mock"}
_ID_OR_TIME = re.compile(rb'(?<=[-_])[0-9a-f]{16}|"created(_at)?":\d+')
# every scenario that answers (the arguments keep the test quick)
_ANSWERING = {name: name for name in SCENARIOS - {"reset", "hang", "stream_abort"}} | {
    "rate_limit_then_ok": "rate_limit_then_ok:0", "slow": "slow:10",
    "chunk_delay": "chunk_delay:5", "big": "big:5000"}  # fmt: skip


@pytest.fixture
def h2(server: MockLLMServer) -> Iterator[httpx2.Client]:
    """An HTTP/2 client of `server` (httpx2, which offers "h2" and "http/1.1" by ALPN)."""
    with httpx2.Client(http2=True, verify=server.client_ssl_context(), timeout=10) as client:
        yield client


def post_chat(
    client: httpx2.Client, server: MockLLMServer, scenario: str | None = None, **payload: Any
) -> httpx2.Response:
    headers = {**AUTH, "x-mock-scenario": scenario} if scenario else AUTH
    body = {"model": "gpt-4o-mini", "messages": MSG, **payload}
    return client.post(f"{server.url}{CHAT}", json=body, headers=headers)


def stream_chat(client: httpx2.Client, server: MockLLMServer, scenario: str | None = None,
                **payload: Any) -> Any:
    """A streamed chat request (a context manager yielding the response)."""
    headers = {**AUTH, "x-mock-scenario": scenario} if scenario else AUTH
    body = {"model": "gpt-4o-mini", "messages": MSG, "stream": True, **payload}
    return client.stream("POST", f"{server.url}{CHAT}", json=body, headers=headers)


def sse_data(lines: list[str]) -> list[Any]:
    """The JSON payloads of `data:` lines, up to `[DONE]`."""
    payloads = [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]
    assert payloads[-1] == "[DONE]"
    return [json.loads(p) for p in payloads[:-1]]


def test_http2_json_reply(server: MockLLMServer, h2: httpx2.Client) -> None:
    before = server.requests_served_http2
    response = post_chat(h2, server)
    assert response.http_version == "HTTP/2" and response.status_code == 200
    assert response.headers["x-mock-http-version"] == "HTTP/2"
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.headers["x-request-id"].startswith("req_")
    reply = response.json()
    assert reply["choices"][0]["message"]["content"] == REPLY
    assert reply["usage"]["completion_tokens"] == words(REPLY)
    assert server.requests_served_http2 == before + 1
    assert server.received[-1][2]["authorization"] == AUTH["authorization"]


def test_http2_sse_stream_arrives_event_by_event(server: MockLLMServer, h2: httpx2.Client) -> None:
    arrivals: list[float] = []
    lines: list[str] = []
    scenario = "chunk_delay:50"
    with stream_chat(h2, server, scenario, stream_options={"include_usage": True}) as response:
        assert response.http_version == "HTTP/2"
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "content-length" not in response.headers
        for line in response.iter_lines():
            if '"content":"' in line and '"content":""' not in line:
                arrivals.append(time.monotonic())
            lines.append(line)
    events = sse_data(lines)
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    assert text == REPLY and events[-1]["usage"]["completion_tokens"] == words(REPLY)
    assert len(arrivals) == words(REPLY)
    assert arrivals[-1] - arrivals[0] >= 0.05 * (len(arrivals) - 1) * 0.9  # paced, not batched


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
def test_http2_compressed_reply_and_stream(
    encoding: str, server: MockLLMServer, h2: httpx2.Client
) -> None:
    plain = post_chat(h2, server, encoding)
    assert plain.http_version == "HTTP/2" and plain.headers["content-encoding"] == encoding
    assert plain.json()["choices"][0]["message"]["content"] == REPLY
    with stream_chat(h2, server, encoding) as response:
        assert response.headers["content-encoding"] == encoding
        events = sse_data(list(response.iter_lines()))
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events) == REPLY


def test_http2_error_statuses(server: MockLLMServer, h2: httpx2.Client) -> None:
    limited = post_chat(h2, server, "rate_limit")
    assert limited.http_version == "HTTP/2" and limited.status_code == 429
    assert limited.headers["retry-after-ms"] == "10"
    assert limited.headers["x-ratelimit-remaining-requests"] == "0"
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    failed = post_chat(h2, server, "server_error")
    assert failed.status_code == 500 and failed.json()["error"]["type"] == "server_error"
    unknown = post_chat(h2, server, "no_such_thing")
    assert unknown.status_code == 400 and "no_such_thing" in unknown.text


def test_http2_stream_abort_resets_the_stream_not_the_connection(
    server: MockLLMServer, h2: httpx2.Client
) -> None:
    """stream_abort sends a few events, then RST_STREAM; the connection serves on."""
    lines: list[str] = []
    with pytest.raises(httpx2.RemoteProtocolError, match="StreamReset"):
        with stream_chat(h2, server, "stream_abort") as response:
            lines.extend(response.iter_lines())
    assert any(line.startswith("data: {") for line in lines), "events arrive before the reset"
    with pytest.raises(httpx2.RemoteProtocolError, match="StreamReset"):
        post_chat(h2, server, "stream_abort")  # a whole body cut after half of it
    assert post_chat(h2, server).status_code == 200


def test_http2_reset_drops_the_connection_and_hang_never_answers(
    server: MockLLMServer, h2: httpx2.Client
) -> None:
    """reset is a TCP RST, as over HTTP/1.1 (not RST_STREAM: stream_abort is that)."""
    with pytest.raises(httpx2.TransportError) as reset:
        post_chat(h2, server, "reset")
    assert "StreamReset" not in str(reset.value)
    with pytest.raises(httpx2.ReadTimeout):
        h2.post(f"{server.url}{CHAT}", headers={**AUTH, "x-mock-scenario": "hang"},
                json={"model": "gpt-4o-mini", "messages": MSG}, timeout=0.3)  # fmt: skip
    assert post_chat(h2, server).json()["choices"][0]["message"]["content"] == REPLY


def test_http2_big_bodies_respect_flow_control(server: MockLLMServer, h2: httpx2.Client) -> None:
    """Both bodies are far beyond h2's 64 KiB initial windows: the reply waits for the
    client's WINDOW_UPDATEs, the upload for the server's."""
    prompt = "word " * 300_000
    response = post_chat(h2, server, "big:2097152",
                         messages=[{"role": "user", "content": prompt}])  # fmt: skip
    assert response.status_code == 200 and len(response.content) > 2_097_152
    reply = response.json()
    assert reply["usage"]["prompt_tokens"] == 300_000
    assert len(reply["choices"][0]["message"]["content"]) == pytest.approx(2_097_152, abs=50)
    assert len(server.received[-1][3]) > 1_500_000


def test_http2_streams_are_answered_independently(server: MockLLMServer) -> None:
    """A slow stream does not hold up a quick one multiplexed on the same connection."""

    async def both() -> tuple[float, float]:
        """Seconds each of a slow and a quick request took, sent at once."""
        async with httpx2.AsyncClient(http2=True, verify=server.client_ssl_context()) as client:
            await client.get(f"{server.url}/v1/models", headers=AUTH)  # one connection, open
            started = time.monotonic()

            async def timed(scenario: str) -> float:
                response = await client.get(f"{server.url}/v1/models",
                                            headers={**AUTH, "x-mock-scenario": scenario})
                assert response.http_version == "HTTP/2" and response.status_code == 200
                return time.monotonic() - started

            return await asyncio.gather(timed("slow:600"), timed("no_usage"))

    slow, quick = asyncio.run(asyncio.wait_for(both(), 10))
    assert quick < 0.3 and slow >= 0.6


@pytest.mark.parametrize("scenario", sorted(_ANSWERING.values()))
@pytest.mark.parametrize("stream", [False, True])
def test_http2_answers_match_http1(
    scenario: str, stream: bool, server: MockLLMServer, h2: httpx2.Client
) -> None:
    """One reply producer: the same request gets the same answer over both protocols (ids
    and timestamps aside). (The scenarios that drop a request are tested above.)"""
    with httpx2.Client(verify=server.client_ssl_context(), timeout=10) as h1:
        answers = [post_chat(client, server, scenario, stream=stream) for client in (h1, h2)]
    assert [a.http_version for a in answers] == ["HTTP/1.1", "HTTP/2"]
    first, second = ((a.status_code, a.headers["content-type"], a.headers.get("content-encoding"),
                      _ID_OR_TIME.sub(b"", a.content)) for a in answers)  # fmt: skip
    assert first == second


def test_http1_is_chosen_when_the_client_offers_only_http1(server: MockLLMServer) -> None:
    before = server.requests_served_http2
    with httpx2.Client(http2=False, verify=server.client_ssl_context()) as h1:
        response = post_chat(h1, server)
    assert response.http_version == "HTTP/1.1" and response.status_code == 200
    assert "x-mock-http-version" not in response.headers
    context = server.client_ssl_context()
    context.set_alpn_protocols(["http/1.1"])
    with socket.create_connection((server.host, server.port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=server.host) as tls:
            assert tls.selected_alpn_protocol() == "http/1.1"
    assert server.requests_served_http2 == before


def test_http2_can_be_turned_off(tmp_path_factory: pytest.TempPathFactory) -> None:
    with MockLLMServer(cert_dir=tmp_path_factory.mktemp("h1-certs"), http2=False) as only_h1:
        with httpx2.Client(http2=True, verify=only_h1.client_ssl_context()) as client:
            response = post_chat(client, only_h1)
        assert response.http_version == "HTTP/1.1" and response.status_code == 200
        assert only_h1.requests_served == 1 and only_h1.requests_served_http2 == 0


def test_cli_no_http2_flag(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "llm_proxy.mock", "--port", "0", "--no-http2",
               "--cert-dir", str(tmp_path)]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().split()[-1]
            ca = process.stdout.readline().split()[-1]
            with httpx2.Client(http2=True, verify=ssl.create_default_context(cafile=ca)) as client:
                response = client.get(f"{url}/v1/models", headers=AUTH)
            assert response.status_code == 200 and response.http_version == "HTTP/1.1"
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=5) == 0
        finally:
            process.kill()


def test_sdks_over_http2(server: MockLLMServer) -> None:
    """The real SDKs (on httpx2) parse plain and streamed replies served over HTTP/2."""
    with openai.OpenAI(
        base_url=f"{server.url}/v1", api_key="sk-test", max_retries=0,
        http_client=openai.DefaultHttpxClient(verify=server.client_ssl_context(), http2=True),
    ) as client:  # fmt: skip
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSG)
        assert raw.http_response.http_version == "HTTP/2"
        assert raw.parse().choices[0].message.content == REPLY
        chunks = client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    with anthropic.Anthropic(
        base_url=server.url, api_key="sk-ant-test", max_retries=0,
        http_client=anthropic.DefaultHttpxClient(verify=server.client_ssl_context(), http2=True),
    ) as claude:  # fmt: skip
        with claude.messages.stream(model=CLAUDE, max_tokens=10, messages=MSG) as stream:
            assert "".join(stream.text_stream) == REPLY
