"""A mock OpenAI / Anthropic API server for the demo, the tests and the benchmarks.

It speaks HTTP/1.1 (optionally over TLS with a private CA) on asyncio streams, and HTTP/2 when
TLS negotiates it (ALPN "h2", see `http2.py`; both framings share one reply producer), answers
the main endpoints with bodies shaped like the real APIs, and misbehaves on request: a header
`x-mock-scenario: gzip,slow:200` selects failures (429, 500, resets, hangs, aborted streams,
malformed or binary bodies, compression…) so the proxy's capture guarantees can be exercised
with real SDK clients. Answers are deterministic, so tests can assert on content and usage.

The request path is kept lean (no logging, precomputed headers and bodies) because benchmarks
push more than a thousand requests per second through a single core.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import secrets
import signal
import ssl
import struct
import threading
import time
import zlib
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Self

import brotli
import zstandard

from llm_proxy.mock.certs import ensure_certificates
from llm_proxy.mock.http2 import serve_http2
from llm_proxy.mock.wire import STREAM_HEADERS, Answer, Drop, Request, reset_connection

__all__ = ["SCENARIOS", "MockLLMServer", "Scenario", "parse_scenarios", "run_forever"]

log = logging.getLogger(__name__)

SCENARIOS = frozenset(
    {
        "rate_limit", "rate_limit_then_ok", "server_error", "overloaded",
        "gzip", "deflate", "br", "zstd",
        "slow", "chunk_delay", "reset", "hang", "stream_abort",
        "malformed", "binary", "big", "no_usage", "cached", "echo_secret", "tool_call",
    }
)  # fmt: skip
"""Names accepted in the `x-mock-scenario` header (comma-separated, `name:arg` for arguments)."""

_ENCODINGS = frozenset({"gzip", "deflate", "br", "zstd"})
_RECEIVED_MAX = 10_000
_RECEIVED_MAX_BYTES = 256 << 20  # also bound `received` by body bytes: benchmarks send big bodies
_READ_LIMIT = 1 << 20  # longest accepted request head / chunk-size line
_MAX_DELTAS = 64  # stream at most this many content deltas, however big the reply
_ABORT_AFTER_EVENTS = 3
_REQUESTS_LIMIT = 1000
_TOKENS_LIMIT = 200_000
_DATE_SUFFIX = "-2024-07-18"
_DATED_RE = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|\d{4})$")
_PIECE_RE = re.compile(r"\s*\S+|\s+$")
_FINGERPRINT = "fp_mock0001"
_JSON = b"application/json"
_SSE = b"text/event-stream; charset=utf-8"
_PAD_WORDS = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
_MALFORMED_BODY = b'{"id": "chatcmpl-malformed", "object": "chat.completion", "choices": [{,'
_BINARY_BODY = bytes((i * 167 + 13) % 256 for i in range(2048)) + b"\xff\xfe\xc3\x28\x00\x80"
_REASONS = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
    500: "Internal Server Error", 503: "Service Unavailable", 529: "Overloaded",
}  # fmt: skip


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True, slots=True)
class Scenario:
    """The parsed `x-mock-scenario` header: plain flags plus the arguments of `name:N` entries."""

    flags: frozenset[str] = frozenset()
    fail_first: int = 0  # rate_limit_then_ok:N
    slow_ms: float = 0.0
    chunk_delay_ms: float = 0.0
    big_bytes: int = 0
    encoding: str | None = None


_NO_SCENARIO = Scenario()
_INT_ARGS = {"rate_limit_then_ok": "fail_first", "big": "big_bytes"}
_MS_ARGS = {"slow": "slow_ms", "chunk_delay": "chunk_delay_ms"}


@lru_cache(maxsize=512)
def parse_scenarios(header: str) -> Scenario:
    """Parse e.g. `"gzip, slow:200, rate_limit_then_ok:2"`; raise ValueError on unknown names.

    Cached because load generators repeat the same few header values thousands of times.
    """
    flags: set[str] = set()
    args: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in header.split(","))):
        name, _, arg = item.partition(":")
        name = name.strip().lower()
        if name not in SCENARIOS:
            known = ", ".join(sorted(SCENARIOS))
            raise ValueError(f"unknown x-mock-scenario {name!r}; known: {known}")
        flags.add(name)
        if name in _INT_ARGS:
            args[_INT_ARGS[name]] = _parse_number(name, arg, int)
        elif name in _MS_ARGS:
            args[_MS_ARGS[name]] = _parse_number(name, arg, float)
        elif name in _ENCODINGS:
            args["encoding"] = name
    return Scenario(flags=frozenset(flags), **args) if flags else _NO_SCENARIO


def _parse_number(name: str, arg: str, kind: type[int] | type[float]) -> Any:
    try:
        value = kind(arg.strip())
    except ValueError:
        raise ValueError(f"x-mock-scenario {name!r} needs a number, as in {name}:100") from None
    if value < 0:
        raise ValueError(f"x-mock-scenario {name!r} needs a non-negative number")
    return value


# --------------------------------------------------------------------------- HTTP messages


class _BadRequest(Exception):
    """The request can not be answered normally; the message goes into a 400 error body."""


@dataclass(slots=True)
class Reply:
    """What a handler answers: a whole body, or (when `events` is set) an SSE stream."""

    status: int
    body: bytes = b""
    content_type: bytes = _JSON
    events: list[bytes] | None = None
    retry_after: bool = False


def _json_reply(obj: Any) -> Reply:
    return Reply(200, _dumps(obj))


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    """Read one request; None when the client closed the connection between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise _BadRequest("incomplete request head") from None
        return None
    lines = head[:-4].decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ", 2)
    except ValueError:
        raise _BadRequest(f"bad request line {lines[0][:100]!r}") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await _read_body(reader, headers)
    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
    return Request(method, target, headers, body, keep_alive)


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _read_chunked(reader)
    length = headers.get("content-length")
    if not length:
        return b""
    try:
        size = int(length)
    except ValueError:
        raise _BadRequest(f"bad content-length {length[:40]!r}") from None
    return await reader.readexactly(size)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise _BadRequest("bad chunk size") from None
        if size == 0:
            break
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
    while await reader.readuntil(b"\r\n") != b"\r\n":  # skip trailers
        pass
    return b"".join(parts)


@lru_cache(maxsize=32)
def _status_line(status: int) -> bytes:
    return f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n".encode()


class _Encoder:
    """Incremental Content-Encoding; `chunk` flushes so each SSE event is decodable on arrival."""

    def __init__(self, encoding: str) -> None:
        self._finish: Callable[[], bytes]
        if encoding in ("gzip", "deflate"):
            zobj = zlib.compressobj(6, zlib.DEFLATED, 31 if encoding == "gzip" else 15)
            self._process, self._finish = zobj.compress, zobj.flush
            self._flush: Callable[[], bytes] = lambda: zobj.flush(zlib.Z_SYNC_FLUSH)
        elif encoding == "br":
            bobj = brotli.Compressor()
            self._process, self._flush, self._finish = bobj.process, bobj.flush, bobj.finish
        else:
            cobj = zstandard.ZstdCompressor().compressobj()
            self._process, self._finish = cobj.compress, cobj.flush
            self._flush = lambda: cobj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)

    def chunk(self, data: bytes) -> bytes:
        return self._process(data) + self._flush()

    def finish(self) -> bytes:
        return self._finish()

    @classmethod
    def whole(cls, encoding: str, data: bytes) -> bytes:
        encoder = cls(encoding)
        return encoder._process(data) + encoder.finish()


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _negotiated_h2(writer: asyncio.StreamWriter) -> bool:
    """Whether TLS chose HTTP/2 by ALPN (anything else, or no TLS, is HTTP/1.1)."""
    ssl_object = writer.get_extra_info("ssl_object")
    return ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2"


# --------------------------------------------------------------------------- providers


class _Provider(ABC):
    """How one provider shapes errors, authentication and rate-limit headers."""

    errors: dict[str, tuple[int, str, str]]  # kind -> (status, error type, default message)

    def error(self, kind: str, request_id: str, message: str | None = None) -> Reply:
        status, etype, default = self.errors[kind]
        return Reply(
            status,
            self.error_body(etype, message or default, request_id),
            retry_after=status == 429,
        )

    @abstractmethod
    def authenticated(self, headers: dict[str, str]) -> bool: ...

    @abstractmethod
    def error_body(self, etype: str, message: str, request_id: str) -> bytes: ...

    @abstractmethod
    def headers(self, request_id: str, remaining: int) -> bytes:
        """Request id and rate-limit headers; `remaining` requests in the current window."""


def _bearer(headers: dict[str, str]) -> bool:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


class _OpenAI(_Provider):
    errors = {
        "auth": (401, "invalid_request_error",
                 "You didn't provide an API key. You need to provide your API key in an "
                 "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."),
        "rate_limit": (429, "rate_limit_error",
                       "Rate limit reached for requests per min (RPM): Limit 1000, Used 1000, "
                       "Requested 1. Please try again in 60ms. (mock)"),
        "server_error": (500, "server_error", "The server had an error while processing your "
                                               "request. Sorry about that!"),
        "overloaded": (503, "server_error", "The server is overloaded or not ready yet."),
        "bad_request": (400, "invalid_request_error", "Invalid request."),
        "not_found": (404, "invalid_request_error", "Invalid URL."),
    }  # fmt: skip
    _codes = {"rate_limit_error": "rate_limit_exceeded"}
    _headers = (
        "x-request-id: %s\r\nopenai-version: 2020-10-01\r\nopenai-processing-ms: 1\r\n"
        f"x-ratelimit-limit-requests: {_REQUESTS_LIMIT}\r\n"
        f"x-ratelimit-limit-tokens: {_TOKENS_LIMIT}\r\n"
        "x-ratelimit-remaining-requests: %d\r\nx-ratelimit-remaining-tokens: %d\r\n"
        "x-ratelimit-reset-requests: 60ms\r\nx-ratelimit-reset-tokens: 30ms\r\n"
    )

    def authenticated(self, headers: dict[str, str]) -> bool:
        # Azure OpenAI authenticates with an `api-key` header instead of a bearer token.
        return _bearer(headers) or bool(headers.get("api-key"))

    def error_body(self, etype: str, message: str, request_id: str) -> bytes:
        error = {"message": message, "type": etype, "param": None, "code": self._codes.get(etype)}
        return _dumps({"error": error})

    def headers(self, request_id: str, remaining: int) -> bytes:
        tokens = _TOKENS_LIMIT * remaining // _REQUESTS_LIMIT
        return (self._headers % (request_id, remaining, tokens)).encode()


class _Anthropic(_Provider):
    errors = {
        "auth": (401, "authentication_error", "x-api-key header is required"),
        "rate_limit": (429, "rate_limit_error",
                       "This request would exceed the rate limit for your organization of "
                       "1,000 requests per minute. (mock)"),
        "server_error": (500, "api_error", "Internal server error"),
        "overloaded": (529, "overloaded_error", "Overloaded"),
        "bad_request": (400, "invalid_request_error", "Invalid request."),
        "not_found": (404, "not_found_error", "Not found."),
    }  # fmt: skip
    _headers = (
        "request-id: %s\r\n"
        f"anthropic-ratelimit-requests-limit: {_REQUESTS_LIMIT}\r\n"
        "anthropic-ratelimit-requests-remaining: %d\r\nanthropic-ratelimit-requests-reset: %s\r\n"
        f"anthropic-ratelimit-tokens-limit: {_TOKENS_LIMIT}\r\n"
        "anthropic-ratelimit-tokens-remaining: %d\r\nanthropic-ratelimit-tokens-reset: %s\r\n"
    )

    def authenticated(self, headers: dict[str, str]) -> bool:
        return bool(headers.get("x-api-key")) or _bearer(headers)

    def error_body(self, etype: str, message: str, request_id: str) -> bytes:
        error = {"type": etype, "message": message}
        return _dumps({"type": "error", "error": error, "request_id": request_id})

    def headers(self, request_id: str, remaining: int) -> bytes:
        tokens = _TOKENS_LIMIT * remaining // _REQUESTS_LIMIT
        reset = _reset_timestamp(int(time.time()))
        return (self._headers % (request_id, remaining, reset, tokens, reset)).encode()


@lru_cache(maxsize=2)
def _reset_timestamp(now: int) -> str:
    """RFC 3339 time one minute ahead; cached per second since every response carries it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 60))


OPENAI = _OpenAI()
ANTHROPIC = _Anthropic()


# --------------------------------------------------------------------------- prompt & reply


@dataclass(slots=True)
class _Prompt:
    """The text of a request: every message (for the token count) and the last user message."""

    texts: list[str] = field(default_factory=list)
    last_user: str = ""

    def add(self, content: Any, role: str | None = "user") -> None:
        text = _text(content)
        self.texts.append(text)
        if role == "user":
            self.last_user = text

    @property
    def tokens(self) -> int:
        return max(1, sum(_count_tokens(t) for t in self.texts))


def _text(content: Any) -> str:
    """Text of a message content: a string, or text parts (`text`, `input_text`, tool results)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(filter(None, (_text(part) for part in content)))
    if isinstance(content, dict):
        text = content.get("text")
        return text if isinstance(text, str) else _text(content.get("content"))
    return ""


def _count_tokens(text: str) -> int:
    """Deterministic stand-in for a tokenizer: one token per whitespace-separated word."""
    return len(text.split())


def _add_messages(prompt: _Prompt, messages: Any) -> _Prompt:
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                prompt.add(message.get("content"), message.get("role"))
    return prompt


def _chat_prompt(payload: dict[str, Any]) -> _Prompt:
    return _add_messages(_Prompt(), payload.get("messages"))


def _anthropic_prompt(payload: dict[str, Any]) -> _Prompt:
    prompt = _Prompt()
    prompt.add(payload.get("system"), role="system")
    return _add_messages(prompt, payload.get("messages"))


def _responses_prompt(payload: dict[str, Any]) -> _Prompt:
    prompt = _Prompt()
    prompt.add(payload.get("instructions"), role="system")
    items = payload.get("input")
    if isinstance(items, list):
        return _add_messages(prompt, [i for i in items if isinstance(i, dict) and "role" in i])
    prompt.add(items)
    return prompt


def _completion_prompt(payload: dict[str, Any]) -> _Prompt:
    prompt = _Prompt()
    items = payload.get("prompt")
    for item in items if isinstance(items, list) else [items]:
        prompt.add(item if isinstance(item, str) else "")
    return prompt


def _reply_text(prompt: _Prompt, scenario: Scenario) -> str:
    """'Mock reply to: <snippet>', the verbatim message for echo_secret, padded for big:N."""
    if "echo_secret" in scenario.flags:
        text = prompt.last_user
    else:
        text = f"Mock reply to: {prompt.last_user[:60]}".rstrip()
    if scenario.big_bytes > len(text):
        text = _pad(text, scenario.big_bytes)
    return text


def _pad(text: str, size: int) -> str:
    needed = size - len(text) - 1
    filler = (_PAD_WORDS * (needed // len(_PAD_WORDS) + 1))[:needed].rstrip()
    return f"{text} {filler}"


def _pieces(text: str) -> list[str]:
    """Split a reply into stream deltas: words like a real token stream, at most _MAX_DELTAS."""
    if len(text) <= 4096:
        words = _PIECE_RE.findall(text)
        if len(words) <= _MAX_DELTAS:
            return words
    size = -(-len(text) // _MAX_DELTAS)
    return [text[i : i + size] for i in range(0, len(text), size)]


def _cached_part(tokens: int, scenario: Scenario) -> int:
    """Prompt tokens reported as served from cache: half (rounded up) under `cached`, else 0."""
    return (tokens + 1) // 2 if "cached" in scenario.flags else 0


def _dated(model: str) -> str:
    """OpenAI answers with a dated snapshot of an alias: gpt-4o-mini -> gpt-4o-mini-2024-07-18."""
    return model if _DATED_RE.search(model) else model + _DATE_SUFFIX


def _tool_name(tools: Any) -> str:
    """Name of the first declared tool (OpenAI chat, Responses or Anthropic shape)."""
    for tool in tools if isinstance(tools, list) else []:
        if isinstance(tool, dict):
            name = tool.get("name") or (tool.get("function") or {}).get("name")
            if isinstance(name, str) and name:
                return name
    return "lookup"


@dataclass(slots=True)
class Call:
    """Everything a handler needs to build its reply."""

    payload: dict[str, Any]
    scenario: Scenario
    uid: str
    provider: _Provider
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def stream(self) -> bool:
        return self.payload.get("stream") is True

    @property
    def tool_call(self) -> bool:
        return "tool_call" in self.scenario.flags


def _tool_arguments(prompt: _Prompt) -> str:
    """Tool-call arguments as the JSON string the APIs send, carrying the user's message."""
    return json.dumps({"query": prompt.last_user}, ensure_ascii=False)


def _sse(obj: Any) -> bytes:
    return b"data: " + _dumps(obj) + b"\n\n"


def _named_sse(name: str, obj: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _dumps(obj) + b"\n\n"


_DONE = b"data: [DONE]\n\n"


# --------------------------------------------------------------------------- OpenAI handlers


def _openai_usage(prompt_tokens: int, completion_tokens: int, scenario: Scenario) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {
            "cached_tokens": _cached_part(prompt_tokens, scenario),
            "audio_tokens": 0,
        },
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _wants_usage_chunk(call: Call) -> bool:
    options = call.payload.get("stream_options")
    requested = isinstance(options, dict) and options.get("include_usage") is True
    return requested and "no_usage" not in call.scenario.flags


def _chat_completions(call: Call) -> Reply:
    prompt = _chat_prompt(call.payload)
    model = _dated(str(call.payload.get("model") or "gpt-4o-mini"))
    head = {"id": f"chatcmpl-{call.uid}", "created": call.created, "model": model}
    if call.tool_call:
        tool = {"id": f"call_{call.uid}", "type": "function",
                "function": {"name": _tool_name(call.payload.get("tools")),
                             "arguments": _tool_arguments(prompt)}}  # fmt: skip
        output, finish = tool["function"]["arguments"], "tool_calls"
        message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [tool]}
    else:
        output, finish = _reply_text(prompt, call.scenario), "stop"
        message = {"role": "assistant", "content": output}
    usage = _openai_usage(prompt.tokens, _count_tokens(output), call.scenario)
    if call.stream:
        return Reply(200, content_type=_SSE, events=_chat_events(call, head, message, usage))
    choice = {"index": 0, "message": {**message, "refusal": None, "annotations": []},
              "logprobs": None, "finish_reason": finish}  # fmt: skip
    body = {**head, "object": "chat.completion", "choices": [choice]}
    if "no_usage" not in call.scenario.flags:
        body["usage"] = usage
    body.update(service_tier="default", system_fingerprint=_FINGERPRINT)
    return _json_reply(body)


def _chat_events(
    call: Call, head: dict[str, Any], message: dict[str, Any], usage: dict[str, Any]
) -> list[bytes]:
    """chat.completion.chunk events: role, content (or tool-call argument) deltas, finish."""
    base = {**head, "object": "chat.completion.chunk", "service_tier": "default",
            "system_fingerprint": _FINGERPRINT}  # fmt: skip
    with_usage = _wants_usage_chunk(call)
    if with_usage:
        base["usage"] = None

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _sse({**base, "choices": [choice]})

    if tool_calls := message.get("tool_calls"):
        tool = tool_calls[0]
        opening = {**tool, "index": 0, "function": {**tool["function"], "arguments": ""}}
        events = [chunk({"role": "assistant", "content": None, "tool_calls": [opening]})]
        events += [
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
            for piece in _pieces(tool["function"]["arguments"])
        ]
        events.append(chunk({}, "tool_calls"))
    else:
        events = [chunk({"role": "assistant", "content": "", "refusal": None})]
        events += [chunk({"content": piece}) for piece in _pieces(message["content"])]
        events.append(chunk({}, "stop"))
    if with_usage:
        events.append(_sse({**base, "choices": [], "usage": usage}))
    events.append(_DONE)
    return events


def _completions(call: Call) -> Reply:
    prompt = _completion_prompt(call.payload)
    model = _dated(str(call.payload.get("model") or "gpt-3.5-turbo-instruct"))
    text = _reply_text(prompt, call.scenario)
    head = {"id": f"cmpl-{call.uid}", "object": "text_completion", "created": call.created,
            "model": model}  # fmt: skip
    usage = _openai_usage(prompt.tokens, _count_tokens(text), call.scenario)

    def choice(piece: str, finish: str | None) -> dict[str, Any]:
        return {"text": piece, "index": 0, "logprobs": None, "finish_reason": finish}

    if call.stream:
        events = [_sse({**head, "choices": [choice(p, None)]}) for p in _pieces(text)]
        events.append(_sse({**head, "choices": [choice("", "stop")]}))
        if _wants_usage_chunk(call):
            events.append(_sse({**head, "choices": [], "usage": usage}))
        events.append(_DONE)
        return Reply(200, content_type=_SSE, events=events)
    body = {**head, "choices": [choice(text, "stop")], "system_fingerprint": _FINGERPRINT}
    if "no_usage" not in call.scenario.flags:
        body["usage"] = usage
    return _json_reply(body)


def _embedding_inputs(value: Any) -> list[str | list[int]]:
    """Normalise `input`: a string, strings, a token array, or token arrays."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str | list) for v in value):
        return value
    raise _BadRequest("'input' must be a string, an array of strings or an array of token arrays")


def _embedding(item: str | list[int], dimensions: int) -> list[float]:
    """A deterministic unit vector derived from a hash of the input."""
    seed = hashlib.sha256(_dumps(item)).digest()
    raw = b"".join(
        hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(-(-dimensions // 8))
    )
    values = [v / 2**31 - 1.0 for v in struct.unpack(f">{dimensions}I", raw[: dimensions * 4])]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in values]


def _embeddings(call: Call) -> Reply:
    items = _embedding_inputs(call.payload.get("input"))
    dimensions = call.payload.get("dimensions") or 8
    if not isinstance(dimensions, int) or not 1 <= dimensions <= 4096:
        raise _BadRequest("'dimensions' must be an integer between 1 and 4096")
    as_base64 = call.payload.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(items):
        vector: Any = _embedding(item, dimensions)
        if as_base64:
            vector = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(_count_tokens(i) if isinstance(i, str) else len(i) for i in items) or 1
    model = str(call.payload.get("model") or "text-embedding-3-small")
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return _json_reply({"object": "list", "data": data, "model": model, "usage": usage})


def _responses(call: Call) -> Reply:
    prompt = _responses_prompt(call.payload)
    if call.tool_call:
        arguments = _tool_arguments(prompt)
        name = _tool_name(call.payload.get("tools"))
        item = {"id": f"fc_{call.uid}", "type": "function_call", "status": "completed",
                "arguments": arguments, "call_id": f"call_{call.uid}", "name": name}  # fmt: skip
        output = arguments
    else:
        output = _reply_text(prompt, call.scenario)
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": output}
        item = {"id": f"msg_{call.uid}", "type": "message", "status": "completed",
                "content": [part], "role": "assistant"}  # fmt: skip
    response = _response_object(call, [item])
    if "no_usage" not in call.scenario.flags:
        prompt_tokens, completion_tokens = prompt.tokens, _count_tokens(output)
        response["usage"] = {
            "input_tokens": prompt_tokens,
            "input_tokens_details": {"cached_tokens": _cached_part(prompt_tokens, call.scenario)},
            "output_tokens": completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt_tokens + completion_tokens,
        }
    if call.stream:
        return Reply(200, content_type=_SSE, events=_response_events(response, item))
    return _json_reply(response)


def _response_object(call: Call, output: list[dict[str, Any]]) -> dict[str, Any]:
    """A completed Responses API object, echoing the request's settings like the real one."""
    payload = call.payload
    return {
        "id": f"resp_{call.uid}", "object": "response", "created_at": call.created,
        "status": "completed", "background": False, "error": None, "incomplete_details": None,
        "instructions": payload.get("instructions"),
        "max_output_tokens": payload.get("max_output_tokens"),
        "model": _dated(str(payload.get("model") or "gpt-4o-mini")), "output": output,
        "parallel_tool_calls": True, "previous_response_id": payload.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None}, "service_tier": "default",
        "store": payload.get("store", True), "temperature": payload.get("temperature", 1.0),
        "text": {"format": {"type": "text"}, "verbosity": "medium"}, "tool_choice": "auto",
        "tools": payload.get("tools") or [], "top_p": payload.get("top_p", 1.0),
        "truncation": "disabled", "usage": None, "user": None,
        "metadata": payload.get("metadata") or {},
    }  # fmt: skip


def _response_events(done: dict[str, Any], item: dict[str, Any]) -> list[bytes]:
    """The Responses API event sequence, from response.created to response.completed."""
    pending = {**done, "status": "in_progress", "output": [], "usage": None}
    common = {"item_id": item["id"], "output_index": 0}
    if item["type"] == "message":
        text = item["content"][0]["text"]
        empty_part = {**item["content"][0], "text": ""}
        steps: list[tuple[str, dict[str, Any]]] = [
            ("response.output_item.added",
             {"output_index": 0, "item": {**item, "status": "in_progress", "content": []}}),
            ("response.content_part.added", {**common, "content_index": 0, "part": empty_part}),
            *[("response.output_text.delta",
               {**common, "content_index": 0, "delta": piece, "logprobs": []})
              for piece in _pieces(text)],
            ("response.output_text.done",
             {**common, "content_index": 0, "text": text, "logprobs": []}),
            ("response.content_part.done",
             {**common, "content_index": 0, "part": item["content"][0]}),
        ]  # fmt: skip
    else:
        steps = [
            ("response.output_item.added",
             {"output_index": 0, "item": {**item, "status": "in_progress", "arguments": ""}}),
            *[("response.function_call_arguments.delta", {**common, "delta": piece})
              for piece in _pieces(item["arguments"])],
            ("response.function_call_arguments.done", {**common, "arguments": item["arguments"]}),
        ]  # fmt: skip
    sequence = [
        ("response.created", {"response": pending}),
        ("response.in_progress", {"response": pending}),
        *steps,
        ("response.output_item.done", {"output_index": 0, "item": item}),
        ("response.completed", {"response": done}),
    ]
    return [
        _named_sse(name, {"type": name, "sequence_number": number, **data})
        for number, (name, data) in enumerate(sequence)
    ]


_OPENAI_MODELS = _dumps(
    {
        "object": "list",
        "data": [
            {"id": model, "object": "model", "created": 1721172741, "owned_by": "system"}
            for model in ("gpt-4o", "gpt-4o-mini", "gpt-4.1-mini", "gpt-5.4", "gpt-5.4-mini",
                          "gpt-3.5-turbo-instruct", "text-embedding-3-small")
        ],
    }
)  # fmt: skip
_ANTHROPIC_MODELS = _dumps(
    {
        "data": [
            {"type": "model", "id": model_id, "display_name": name, "created_at": created}
            for model_id, name, created in (
                ("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17T00:00:00Z"),
                ("claude-opus-4-7", "Claude Opus 4.7", "2026-04-16T00:00:00Z"),
                ("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-01T00:00:00Z"),
            )
        ],
        "has_more": False,
        "first_id": "claude-sonnet-4-6",
        "last_id": "claude-haiku-4-5-20251001",
    }
)


def _models(call: Call) -> Reply:
    return Reply(200, _ANTHROPIC_MODELS if call.provider is ANTHROPIC else _OPENAI_MODELS)


# --------------------------------------------------------------------------- Anthropic handlers


def _anthropic_messages(call: Call) -> Reply:
    prompt = _anthropic_prompt(call.payload)
    model = str(call.payload.get("model") or "claude-sonnet-4-6")
    if call.tool_call:
        block: dict[str, Any] = {"type": "tool_use", "id": f"toolu_{call.uid}",
                                 "name": _tool_name(call.payload.get("tools")),
                                 "input": {"query": prompt.last_user}}  # fmt: skip
        output, stop_reason = _tool_arguments(prompt), "tool_use"
    else:
        output, stop_reason = _reply_text(prompt, call.scenario), "end_turn"
        block = {"type": "text", "text": output}
    prompt_tokens = prompt.tokens
    cached = _cached_part(prompt_tokens, call.scenario)
    usage = {"input_tokens": prompt_tokens - cached, "cache_creation_input_tokens": 0,
             "cache_read_input_tokens": cached, "output_tokens": _count_tokens(output),
             "service_tier": "standard"}  # fmt: skip
    message = {"id": f"msg_{call.uid}", "type": "message", "role": "assistant", "model": model,
               "content": [block], "stop_reason": stop_reason, "stop_sequence": None,
               "usage": usage}  # fmt: skip
    if call.stream:
        return Reply(200, content_type=_SSE, events=_message_events(message, output))
    return _json_reply(message)


def _message_events(message: dict[str, Any], output: str) -> list[bytes]:
    """message_start, one content block with its deltas, message_delta, message_stop."""
    block = message["content"][0]
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    if block["type"] == "tool_use":
        opening = {**block, "input": {}}
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in _pieces(output)]
    else:
        opening = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in _pieces(output)]
    stop = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    sequence: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"message": start}),
        ("content_block_start", {"index": 0, "content_block": opening}),
        ("ping", {}),
        *[("content_block_delta", {"index": 0, "delta": delta}) for delta in deltas],
        ("content_block_stop", {"index": 0}),
        ("message_delta", {"delta": stop, "usage": {"output_tokens": usage["output_tokens"]}}),
        ("message_stop", {}),
    ]
    return [_named_sse(name, {"type": name, **data}) for name, data in sequence]


def _anthropic_count_tokens(call: Call) -> Reply:
    return _json_reply({"input_tokens": _anthropic_prompt(call.payload).tokens})


# --------------------------------------------------------------------------- routing


@dataclass(frozen=True, slots=True)
class _Route:
    suffix: str
    method: str
    handler: Callable[[Call], Reply]
    provider: _Provider | None  # None: decided by the request headers (shared paths)

    def provider_for(self, headers: dict[str, str]) -> _Provider:
        if self.provider is not None:
            return self.provider
        return ANTHROPIC if "anthropic-version" in headers else OPENAI


# Longest suffix first: "/chat/completions" also ends with "/completions".
_ROUTES = (
    _Route("/messages/count_tokens", "POST", _anthropic_count_tokens, ANTHROPIC),
    _Route("/messages", "POST", _anthropic_messages, ANTHROPIC),
    _Route("/chat/completions", "POST", _chat_completions, OPENAI),
    _Route("/completions", "POST", _completions, OPENAI),
    _Route("/embeddings", "POST", _embeddings, OPENAI),
    _Route("/responses", "POST", _responses, OPENAI),
    _Route("/models", "GET", _models, None),
)


@lru_cache(maxsize=1024)
def _match_route(path: str) -> _Route | None:
    """The route whose suffix ends `path`, so /v1/…, /openai/v1/… and Azure paths all match."""
    return next((route for route in _ROUTES if path.endswith(route.suffix)), None)


def _parse_payload(request: Request) -> dict[str, Any]:
    if request.method != "POST":
        return {}
    try:
        payload = json.loads(request.body)
    except ValueError:
        raise _BadRequest(
            "We could not parse the JSON body of your request. The request body must be valid JSON."
        ) from None
    if not isinstance(payload, dict):
        raise _BadRequest("The request body must be a JSON object.")
    return payload


# --------------------------------------------------------------------------- the server


class MockLLMServer:
    """An in-process mock of the OpenAI and Anthropic APIs; see the module docstring.

    `start()` serves from a daemon thread (tests, demo, benchmarks); `serve_forever()` serves in
    the calling thread until SIGINT/SIGTERM (the CLI). The certificates exist as soon as the
    object does, so `ca_cert_path` can be handed to a proxy before the server starts.

    With TLS it offers HTTP/2 and HTTP/1.1 by ALPN (`http2=False`: HTTP/1.1 only), so a proxy's
    upstream leg can be either; a client that offers only HTTP/1.1, or no ALPN, gets HTTP/1.1.
    `requests_served_http2` counts the requests served over HTTP/2, whose responses also carry
    `x-mock-http-version: HTTP/2` (HTTP/1.1 responses stay exactly as they always were).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = True,
        latency_ms: float = 0.0,
        cert_dir: str | Path | None = None,
        *,
        http2: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.http2 = http2
        self.latency_ms = latency_ms
        self.requests_served = 0
        self.requests_served_http2 = 0
        self.received: deque[tuple[str, str, dict[str, str], bytes]] = deque(maxlen=_RECEIVED_MAX)
        self._received_bytes = 0
        self._certs = ensure_certificates(cert_dir) if tls else None
        self._id_prefix = secrets.token_hex(4)
        self._attempts: dict[str, int] = {}
        self._connections: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- public API

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def ca_cert_path(self) -> str | None:
        """PEM file of the CA that signed the server certificate (None in plain-HTTP mode)."""
        return str(self._certs.ca_cert) if self._certs else None

    def client_ssl_context(self) -> ssl.SSLContext:
        """An SSL context trusting this server's CA, e.g. for `DefaultHttpxClient(verify=…)`."""
        if self._certs is None:
            raise RuntimeError("the mock server runs without TLS")
        return ssl.create_default_context(cafile=str(self._certs.ca_cert))

    def start(self, timeout: float = 10.0) -> Self:
        """Serve from a daemon thread; return once the socket is listening."""
        if self._thread is not None:
            raise RuntimeError("the mock server is already running")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(self._serve(ready.set))
            except BaseException as exc:  # reported to the caller of start()
                failure.append(exc)
                ready.set()

        self._thread = threading.Thread(target=run, name="mock-llm-server", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("the mock server did not start in time")
        if failure:
            self._thread = None
            raise failure[0]
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close the listening socket and every open connection, then join the thread."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:  # the loop closed in the meantime
                pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._thread = None

    def serve_forever(self, on_ready: Callable[[MockLLMServer], None] | None = None) -> None:
        """Serve in the calling thread until SIGINT/SIGTERM or `stop()` from another thread."""
        asyncio.run(self._serve(lambda: on_ready(self) if on_ready else None, signals=True))

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- lifecycle

    async def _serve(self, on_ready: Callable[[], object], signals: bool = False) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(
            self._on_connection, self.host, self.port,
            ssl=self._server_ssl_context(), limit=_READ_LIMIT, backlog=1024,
        )  # fmt: skip
        self.port = server.sockets[0].getsockname()[1]
        if signals and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._loop.add_signal_handler(signum, self._stopping.set)
        on_ready()
        try:
            await self._stopping.wait()
        finally:
            await self._shutdown(server)

    async def _shutdown(self, server: asyncio.Server) -> None:
        server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        try:
            await asyncio.wait_for(server.wait_closed(), 2)
        except TimeoutError:
            pass

    def _server_ssl_context(self) -> ssl.SSLContext | None:
        if self._certs is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self._certs.server_cert, self._certs.server_key)
        context.set_alpn_protocols(["h2", "http/1.1"] if self.http2 else ["http/1.1"])
        return context

    # ----------------------------------------------------------------- connections

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            if _negotiated_h2(writer):
                await serve_http2(reader, writer, self._answer_http2)
            else:
                await self._serve_connection(reader, writer)
        except (asyncio.CancelledError, ConnectionError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError, OSError):  # fmt: skip
            writer.transport.abort()  # shutdown or a broken peer: nothing left worth flushing
        finally:
            self._connections.discard(task)
            writer.close()  # flushes a `connection: close` reply; no-op after an abort

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Answer requests until the client leaves, asks to close, or a scenario drops it."""
        while True:
            try:
                request = await _read_request(reader)
            except _BadRequest as exc:
                reply = OPENAI.error("bad_request", "req_invalid", str(exc))
                await _write_answer(writer, _prepare(reply, b"", _NO_SCENARIO), keep_alive=False)
                return
            if request is None or not await self._handle(request, reader, writer):
                return

    async def _handle(
        self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Serve one HTTP/1.1 request; False when the connection must not carry another one."""
        answer = await self._answer(request)
        if answer is Drop.RESET:
            reset_connection(writer)
            return False
        if answer is Drop.HANG:
            await _drain_until_eof(reader)
            return False
        return await _write_answer(writer, answer, request.keep_alive)

    async def _answer_http2(self, request: Request) -> Answer | Drop:
        self.requests_served_http2 += 1
        return await self._answer(request)

    async def _answer(self, request: Request) -> Answer | Drop:
        """What to send for a request, whatever the framing: the reply producer both protocols
        share. It counts and remembers the request and waits as long as the scenario says."""
        self.requests_served += 1
        number = self.requests_served
        self._remember(request)
        uid = f"{self._id_prefix}{number:08x}"
        route = _match_route(request.path)
        provider = route.provider_for(request.headers) if route else OPENAI
        try:
            scenario = parse_scenarios(request.headers.get("x-mock-scenario", ""))
        except ValueError as exc:
            scenario = _NO_SCENARIO
            reply = provider.error("bad_request", f"req_{uid}", str(exc))
        else:
            if delay := self.latency_ms + scenario.slow_ms:
                await asyncio.sleep(delay / 1000)
            if "reset" in scenario.flags:
                return Drop.RESET
            if "hang" in scenario.flags:
                return Drop.HANG
            reply = self._reply(request, route, provider, scenario, uid)
        extra = provider.headers(f"req_{uid}", _remaining_requests(number, reply.status))
        return _prepare(reply, extra, scenario)

    def _remember(self, request: Request) -> None:
        """Append to `received`, dropping the oldest entries beyond the count or byte budget."""
        received = self.received
        if len(received) == received.maxlen:
            self._received_bytes -= len(received[0][3])
        received.append((request.method, request.target, request.headers, request.body))
        self._received_bytes += len(request.body)
        while self._received_bytes > _RECEIVED_MAX_BYTES and len(received) > 1:
            self._received_bytes -= len(received.popleft()[3])

    def _reply(
        self,
        request: Request,
        route: _Route | None,
        provider: _Provider,
        scenario: Scenario,
        uid: str,
    ) -> Reply:
        request_id = f"req_{uid}"
        if route is None or route.method != request.method:
            return provider.error("not_found", request_id,
                                  f"Invalid URL ({request.method} {request.path})")  # fmt: skip
        if not provider.authenticated(request.headers):
            return provider.error("auth", request_id)
        if failure := self._failure(request, scenario):
            return provider.error(failure, request_id)
        if "malformed" in scenario.flags:
            return Reply(200, _MALFORMED_BODY)
        if "binary" in scenario.flags:
            return Reply(200, _BINARY_BODY, b"application/octet-stream")
        try:
            return route.handler(Call(_parse_payload(request), scenario, uid, provider))
        except _BadRequest as exc:
            return provider.error("bad_request", request_id, str(exc))
        except Exception as exc:  # a bug in a handler: answer, and say so loudly
            log.exception("mock LLM server failed on %s %s", request.method, request.target)
            return provider.error("server_error", request_id, f"mock server bug: {exc!r}")

    def _failure(self, request: Request, scenario: Scenario) -> str | None:
        """The error kind a failure scenario asks for, if any."""
        flags = scenario.flags
        if "rate_limit" in flags:
            return "rate_limit"
        if "rate_limit_then_ok" in flags:
            key = request.headers.get("x-mock-key") or request.headers["x-mock-scenario"]
            attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
            if attempt <= scenario.fail_first:
                return "rate_limit"
        if "server_error" in flags:
            return "server_error"
        if "overloaded" in flags:
            return "overloaded"
        return None


# --------------------------------------------------------------------------- answers


def _prepare(reply: Reply, extra_headers: bytes, scenario: Scenario) -> Answer:
    """Turn a reply into what any framing sends: its header lines, and its body compressed,
    paced and cut short as the scenario says."""
    head = [b"content-type: ", reply.content_type, b"\r\n", extra_headers]
    if reply.retry_after:
        # retry-after-ms keeps SDK retries in tests fast; SDKs prefer it to retry-after.
        head.append(b"retry-after: 0\r\nretry-after-ms: 10\r\n")
    if scenario.encoding:
        head.append(b"content-encoding: %s\r\n" % scenario.encoding.encode())
    if reply.events is not None:
        return _stream_answer(reply.status, b"".join(head), reply.events, scenario)
    body = reply.body
    if scenario.encoding:
        body = _Encoder.whole(scenario.encoding, body)
    if "stream_abort" in scenario.flags:
        return Answer(reply.status, b"".join(head), [body[: len(body) // 2]], length=len(body),
                      aborted=True)  # fmt: skip
    return Answer(reply.status, b"".join(head), [body], length=len(body))


def _stream_answer(status: int, head: bytes, events: list[bytes], scenario: Scenario) -> Answer:
    """SSE events as body pieces, each compressed on its own (decodable on arrival) and, for
    stream_abort, only the first few, without the compressor's tail."""
    encoder = _Encoder(scenario.encoding) if scenario.encoding else None
    aborting = "stream_abort" in scenario.flags
    if aborting:
        events = events[:_ABORT_AFTER_EVENTS]
    pieces = [encoder.chunk(event) for event in events] if encoder else events
    tail = encoder.finish() if encoder and not aborting else b""
    return Answer(status, head, pieces, streamed=True, tail=tail,
                  delay=scenario.chunk_delay_ms / 1000, aborted=aborting)  # fmt: skip


# --------------------------------------------------------------------------- HTTP/1.1 writing


async def _write_answer(writer: asyncio.StreamWriter, answer: Answer, keep_alive: bool) -> bool:
    """Send an answer as HTTP/1.1; False when the connection must not carry another request."""
    head = [_status_line(answer.status), answer.head]
    if not keep_alive:
        head.append(b"connection: close\r\n")
    if answer.streamed:
        head.append(STREAM_HEADERS + b"transfer-encoding: chunked\r\n\r\n")
        if not await _write_chunked(writer, b"".join(head), answer):
            return False
    else:
        head.append(b"content-length: %d\r\n\r\n" % answer.length)
        writer.write(b"".join(head) + answer.pieces[0])
        if answer.aborted:
            await _abort_after_flush(writer)
            return False
        await writer.drain()
    return keep_alive


async def _write_chunked(writer: asyncio.StreamWriter, head: bytes, answer: Answer) -> bool:
    """Send a streamed answer as HTTP chunks, paced as it says.

    Returns False if the stream was aborted on purpose (stream_abort).
    """
    out = [head]
    for piece in answer.pieces:
        out.append(_http_chunk(piece))
        if answer.delay:
            writer.write(b"".join(out))
            out.clear()
            await writer.drain()
            await asyncio.sleep(answer.delay)
    if answer.aborted:
        writer.write(b"".join(out))
        await _abort_after_flush(writer)
        return False
    if answer.tail:
        out.append(_http_chunk(answer.tail))
    out.append(b"0\r\n\r\n")
    writer.write(b"".join(out))
    await writer.drain()
    return True


def _remaining_requests(number: int, status: int) -> int:
    """Requests left in the rate-limit window: counts down with each request served, so a
    proxy's usage percentage moves; zero on a 429."""
    return 0 if status == 429 else _REQUESTS_LIMIT - 1 - (number - 1) % _REQUESTS_LIMIT


async def _abort_after_flush(writer: asyncio.StreamWriter) -> None:
    """Let what was written reach the socket, then drop the connection without a TLS
    close_notify or the final chunk, so the client sees a truncated response.

    (set_write_buffer_limits(0) + drain() would be neater but deadlocks on asyncio's SSL
    transport, which pauses writing at size 0 >= high-water 0 and never resumes.)
    """
    await writer.drain()
    for _ in range(1000):
        if not writer.transport.get_write_buffer_size():
            break
        await asyncio.sleep(0.001)
    writer.transport.abort()


async def _drain_until_eof(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass


def run_forever(
    host: str = "127.0.0.1",
    port: int = 9000,
    tls: bool = True,
    latency_ms: float = 0.0,
    cert_dir: str | Path | None = None,
    on_ready: Callable[[MockLLMServer], None] | None = None,
    *,
    http2: bool = True,
) -> None:
    """Run a mock server in the foreground until SIGINT/SIGTERM (used by the CLI entry points)."""
    MockLLMServer(host, port, tls, latency_ms, cert_dir, http2=http2).serve_forever(on_ready)
