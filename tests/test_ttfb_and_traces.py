"""``ttfb_ms`` of a stream is its first token's time; error traces and the worker's log are
redacted.

The tee notes (bytes so far, arrival time) per early chunk; the worker finds the chunk that
brought the first event carrying output. Unit tests feed hand-made chunk sequences whose
first chunks are framing (OpenAI's role-only delta, Anthropic's ``message_start``), and one
end-to-end test times a paced Anthropic stream through a real proxy.
"""

from __future__ import annotations

import gzip
import json
import time
import uuid
from pathlib import Path

import pytest
from e2e_support import anthropic_client, records

from llm_proxy.addon import record as record_mod
from llm_proxy.addon.capture import _MARKS_CAP, _Tee
from llm_proxy.addon.last_event import LastEventWatch, last_event_markers
from llm_proxy.addon.record import RecordBuilder, first_token_at
from llm_proxy.audit import AuditConfig
from llm_proxy.cli.proxy_process import ProxyProcess
from llm_proxy.mock.server import MockLLMServer
from llm_proxy.providers import first_token_offset
from llm_proxy.providers.sse import iter_events_at, split_events

T0 = 1_764_140_000.0
SSE = ((b"content-type", b"text/event-stream"),)


def sse(obj: object, name: str | None = None) -> bytes:
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {json.dumps(obj)}\n\n".encode()


def tee_of(chunks: list[bytes], gaps_ms: list[float]) -> tuple[bytes, list[tuple[int, float]]]:
    """The body and marks a real ``_Tee`` keeps for ``chunks`` arriving at T0 + gaps_ms."""
    tee = _Tee(1 << 20)
    times = iter(T0 + ms / 1000 for ms in gaps_ms)
    for chunk in chunks:
        tee(chunk)
        size, _ = tee.marks[-1]
        tee.marks[-1] = (size, next(times))  # the clock, made deterministic
    return b"".join(tee.chunks), tee.marks


def stream_capture(host: str, path: str, chunks: list[bytes], gaps_ms: list[float],
                   **over: object) -> dict:
    body, marks = tee_of(chunks, gaps_ms)
    cap = {"fid": f"f-{uuid.uuid4().hex}", "t0": T0, "t1": marks[0][1],
           "t2": T0 + gaps_ms[-1] / 1000 + 0.001, "method": "POST", "host": host, "port": 443,
           "path": path, "hv": "HTTP/1.1", "cip": "10.0.0.5",
           "rqh": ((b"content-type", b"application/json"),),
           "rqb": b'{"model":"m","stream":true}', "rql": 27, "status": 200, "rsh": SSE,
           "rsb": body, "rsl": len(body), "sm": True, "tm": marks}
    cap.update(over)
    return cap


def build(cap: dict) -> dict:
    return RecordBuilder.from_config(AuditConfig(), "unit").build(cap)


# ------------------------------------------------------------------------- OpenAI chat

def chat_chunk(delta: dict, finish: str | None = None) -> dict:
    return {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


OPENAI_CHUNKS = [
    sse(chat_chunk({"role": "assistant", "content": "", "refusal": None})),
    sse(chat_chunk({"content": "Hel"})),
    sse(chat_chunk({"content": "lo"})),
    sse(chat_chunk({}, "stop")) + b"data: [DONE]\n\n",
]


def test_openai_ttfb_is_the_first_content_delta_not_the_role_chunk():
    r = build(stream_capture("api.openai.com", "/v1/chat/completions", OPENAI_CHUNKS,
                             [5, 200, 230, 260]))
    assert r["ttfb_ms"] == 200.0
    assert json.loads(r["response_body"])["choices"][0]["message"]["content"] == "Hello"


def test_openai_event_split_over_chunks_counts_when_its_data_is_complete():
    first_content = OPENAI_CHUNKS[1]
    cut = len(first_content) // 2
    chunks = [OPENAI_CHUNKS[0], first_content[:cut], first_content[cut:], *OPENAI_CHUNKS[2:]]
    r = build(stream_capture("api.openai.com", "/v1/chat/completions", chunks,
                             [5, 100, 150, 200, 230]))
    assert r["ttfb_ms"] == 150.0


def test_openai_tool_call_and_keepalive_comments():
    chunks = [b": OPENROUTER PROCESSING\n\n",
              sse(chat_chunk({"role": "assistant", "content": None})),
              sse(chat_chunk({"tool_calls": [{"index": 0, "id": "t", "type": "function",
                                              "function": {"name": "f", "arguments": ""}}]}))]
    r = build(stream_capture("openrouter.ai", "/api/v1/chat/completions", chunks, [1, 50, 300]))
    assert r["ttfb_ms"] == 300.0


def test_openai_responses_stream():
    events = [("response.created", {"response": {"id": "r", "status": "in_progress"}}),
              ("response.in_progress", {"response": {"id": "r", "status": "in_progress"}}),
              ("response.output_item.added", {"output_index": 0, "item": {"type": "message"}}),
              ("response.content_part.added", {"output_index": 0, "content_index": 0}),
              ("response.output_text.delta", {"output_index": 0, "delta": "Hi"})]
    chunks = [sse({"type": name, **data}, name) for name, data in events]
    r = build(stream_capture("api.openai.com", "/v1/responses", chunks, [3, 4, 90, 91, 420]))
    assert r["ttfb_ms"] == 420.0


# --------------------------------------------------------------------------- Anthropic

def ant(name: str, **data: object) -> bytes:
    return sse({"type": name, **data}, name)


ANTHROPIC_CHUNKS = [
    ant("message_start", message={"id": "m", "type": "message", "role": "assistant",
                                  "model": "claude-sonnet-4-6", "content": [],
                                  "usage": {"input_tokens": 5, "output_tokens": 1}}),
    ant("content_block_start", index=0, content_block={"type": "text", "text": ""})
    + ant("ping"),
    ant("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hi"}),
    ant("content_block_stop", index=0)
    + ant("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 2})
    + ant("message_stop"),
]


def test_anthropic_ttfb_is_the_first_text_delta_not_message_start():
    r = build(stream_capture("api.anthropic.com", "/v1/messages", ANTHROPIC_CHUNKS,
                             [8, 40, 310, 330]))
    assert r["ttfb_ms"] == 310.0
    assert json.loads(r["response_body"])["content"][0]["text"] == "Hi"


def test_anthropic_empty_input_json_delta_is_not_a_token():
    chunks = [ANTHROPIC_CHUNKS[0],
              ant("content_block_start", index=0,
                  content_block={"type": "tool_use", "id": "t", "name": "f", "input": {}}),
              ant("content_block_delta", index=0,
                  delta={"type": "input_json_delta", "partial_json": ""}),
              ant("content_block_delta", index=0,
                  delta={"type": "input_json_delta", "partial_json": '{"a":'})]
    r = build(stream_capture("api.anthropic.com", "/v1/messages", chunks, [8, 60, 61, 250]))
    assert r["ttfb_ms"] == 250.0


def test_anthropic_thinking_delta_is_a_token():
    chunks = [ANTHROPIC_CHUNKS[0],
              ant("content_block_delta", index=0,
                  delta={"type": "thinking_delta", "thinking": "Let me"})]
    r = build(stream_capture("api.anthropic.com", "/v1/messages", chunks, [8, 120]))
    assert r["ttfb_ms"] == 120.0


# ------------------------------------------------------------------------------ fallbacks

def test_unknown_stream_counts_from_its_first_data_event():
    chunks = [b": connected\n\n", b"data: hello\n\n", b"data: world\n\n"]
    r = build(stream_capture("llm.internal", "/generate", chunks, [2, 75, 90]))
    assert r["ttfb_ms"] == 75.0


def test_capture_without_chunk_times_keeps_the_first_chunk_time():
    cap = stream_capture("api.anthropic.com", "/v1/messages", ANTHROPIC_CHUNKS, [8, 40, 310, 330])
    del cap["tm"]  # a capture journaled by a proxy from before this change
    assert build(cap)["ttfb_ms"] == 8.0


def test_compressed_stream_falls_back_to_the_first_chunk():
    # offsets in the decoded text cannot be placed in the compressed chunks the tee saw
    body = gzip.compress(b"".join(ANTHROPIC_CHUNKS))
    chunks = [body[:20], body[20:40], body[40:]]
    cap = stream_capture("api.anthropic.com", "/v1/messages", chunks, [8, 40, 310],
                         rsh=(*SSE, (b"content-encoding", b"gzip")))
    r = build(cap)
    assert r["ttfb_ms"] == 8.0
    assert json.loads(r["response_body"])["content"][0]["text"] == "Hi"


def test_stream_without_a_token_keeps_the_first_chunk_time():
    chunks = [ANTHROPIC_CHUNKS[0],
              ant("error", error={"type": "overloaded_error", "message": "Overloaded"})]
    r = build(stream_capture("api.anthropic.com", "/v1/messages", chunks, [8, 500]))
    assert r["ttfb_ms"] == 8.0 and r["error_type"] == "overloaded"


def test_token_after_the_noted_chunks_keeps_the_first_chunk_time():
    body = b"".join(ANTHROPIC_CHUNKS)
    marks = [(len(ANTHROPIC_CHUNKS[0]), T0 + 0.008)]  # only the first chunk was noted
    assert first_token_at(marks, body, "text/event-stream", None) is None


def test_non_sse_streams_and_plain_responses_are_not_looked_into():
    body = b"".join(ANTHROPIC_CHUNKS)
    marks = [(len(body), T0 + 0.3)]
    assert first_token_at(marks, body, "application/x-ndjson", None) is None
    assert first_token_at(marks, body, "text/event-stream", "identity") == T0 + 0.3
    assert first_token_at(None, body, "text/event-stream", None) is None


def test_an_event_counts_when_its_blank_line_arrives():
    """A client dispatches an SSE event at the blank line that ends it: when that line comes a
    chunk after the event's data (a TLS record or TCP segment boundary between them), the
    first token is the later chunk's."""
    first_token = OPENAI_CHUNKS[1]
    data_line, blank = first_token[:-1], first_token[-1:]
    chunks = [OPENAI_CHUNKS[0], data_line, blank, *OPENAI_CHUNKS[2:]]
    r = build(stream_capture("api.openai.com", "/v1/chat/completions", chunks,
                             [5, 40, 95, 120, 130]))
    assert r["ttfb_ms"] == 95.0


@pytest.mark.parametrize("path,last", [
    ("/v1/chat/completions", b"data: [DONE]\n\n"),
    ("/v1/messages", b'event: message_stop\ndata: {"type":"message_stop"}\n\n'),
    ("/v1/responses", b'event: response.completed\r\ndata: {"type":"response.completed"}\r\n\r\n'),
])
def test_tee_calls_back_once_before_relaying_a_streams_last_event(path, last):
    """The capture is handed over before the chunk with the last event is relayed (an SDK
    returns at it), once; not for an event that merely mentions it, nor before its blank line."""
    calls: list[int] = []
    tee = _Tee(1 << 20, lambda: calls.append(tee.size), LastEventWatch(last_event_markers(path)))
    assert tee(b'data: {"text": "data: [DONE] and event: message_stop"}\n\n') and not calls
    assert tee(b"event: response.output_text.delta\ndata: {}\n\n") and not calls
    assert tee(last) == last and calls == [tee.size]  # before it is relayed, the chunk kept
    tee(last)
    assert len(calls) == 1


def test_tee_notes_a_bounded_number_of_chunks():
    tee = _Tee(10)
    for _ in range(1000):
        assert tee(b"data: x\n\n") == b"data: x\n\n"
    assert len(tee.marks) == _MARKS_CAP and tee.marks[-1][0] == _MARKS_CAP * 9 and tee.size == 9000
    assert [size for size, _ in tee.marks[:3]] == [9, 18, 27]


def test_iter_events_at_agrees_with_split_events():
    body = (b"\xef\xbb\xbf: hi\r\nevent: a\r\ndata: 1\r\ndata:2\r\n\r\n"
            b"data\n\nevent: b\rdata: {\"x\": \"\xc3\xa9\"}\r\rdata: tail")
    found = list(iter_events_at(body))
    assert [(n, d) for _, n, d in found] == split_events(body.decode("utf-8-sig"))
    *ended, (tail_offset, _, tail) = found
    for offset, _, data in ended:  # the last byte of the blank line that ends the event
        assert body[offset:offset + 1] in (b"\n", b"\r")
        seen = body[: offset + 1].decode("utf-8", "replace")
        assert seen.rstrip("\r\n").endswith(data.rpartition("\n")[2])
    # a last event the body ended without a blank line: its data line's last byte
    assert tail == "tail" and tail_offset == len(body) - 1


def test_first_token_offset_stops_at_the_limit():
    body = b"".join(OPENAI_CHUNKS)
    end_of_first = len(OPENAI_CHUNKS[0])
    # the last byte of the second chunk: the blank line that completes the first token's event
    assert first_token_offset(body) == end_of_first + len(OPENAI_CHUNKS[1]) - 1
    assert first_token_offset(body, limit=end_of_first) is None


GOLDEN = Path(__file__).parent / "golden" / "providers"
TOKEN_MARKS = ('"text_delta"', '"thinking_delta"', '"content-delta"', '"content":"', '"text":',
               '"reasoning_content":"', '"tool_calls":[{', '.delta"')


@pytest.mark.parametrize("case", sorted(p.parent.name for p in GOLDEN.glob("*/response.sse")))
def test_golden_streams_have_their_first_token_after_the_framing(case):
    body = (GOLDEN / case / "response.sse").read_bytes()
    offset = first_token_offset(body)
    assert offset is not None
    [(first_data, _, _), *_] = iter_events_at(body)
    line = body[: offset + 1].decode().rstrip("\r\n").rpartition("\n")[2]
    assert any(mark in line for mark in TOKEN_MARKS), line
    if case in ("openai_chat_stream", "anthropic_messages_stream", "openai_responses_stream",
                "azure_chat_stream", "cohere_chat_stream"):
        assert offset > first_data  # these open with framing events
    elif case == "openai_chat_stream_tools":
        assert offset == first_data  # the role chunk already names the tool


# -------------------------------------------------------------- redacted traces and logs

SECRET = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0f"


def plain_capture() -> dict:
    return {"fid": "flow-trace", "t0": T0, "t1": T0 + 0.05, "t2": T0 + 0.2, "method": "POST",
            "host": "api.openai.com", "port": 443, "path": "/v1/chat/completions",
            "hv": "HTTP/1.1", "cip": "10.0.0.5", "rqh": ((b"content-type", b"application/json"),),
            "rqb": b'{"model":"gpt-4o"}', "rql": 18, "status": 200,
            "rsh": ((b"content-type", b"application/json"),), "rsb": b"{}", "rsl": 2}


def test_exception_message_is_redacted_in_error_trace_and_stderr(monkeypatch, capsys):
    def parser_that_quotes_the_body(**_: object) -> None:
        raise ValueError(f"unexpected value near {SECRET!r} in body")

    monkeypatch.setattr(record_mod, "parse_exchange", parser_that_quotes_the_body)
    r = build(plain_capture())
    err = capsys.readouterr().err
    assert r["error_type"] == "audit_error" and r["id"]
    assert "ValueError" in r["error_trace"] and "unexpected value near" in r["error_trace"]
    assert "ValueError" in err and "unexpected value near" in err
    for text in (r["error_trace"], err):
        assert SECRET not in text and SECRET[8:] not in text
        assert "sk-proj-Ab3dEf6hIj9kLm2nOp5q" not in text


def test_failing_redactor_still_yields_a_record(capsys):
    class Broken:
        def __getattr__(self, name: str) -> object:
            def fail(*_: object, **__: object) -> None:
                raise RuntimeError(f"redactor down near {SECRET}")
            return fail

    builder = RecordBuilder.from_config(AuditConfig(), "unit")
    builder.redactor = Broken()  # type: ignore[assignment]
    r = builder.build(plain_capture())
    err = capsys.readouterr().err
    assert r["error_type"] == "audit_error"
    assert r["error_trace"].startswith("[text withheld")
    assert SECRET not in r["error_trace"] and SECRET not in err


# ------------------------------------------------------------------------ end to end

@pytest.mark.e2e
def test_e2e_anthropic_stream_ttfb_is_after_message_start(tmp_path):
    delay_ms = 60  # the mock sends message_start, content_block_start, ping, then text
    user = f"user-{uuid.uuid4().hex[:8]}"
    with MockLLMServer(tls=True, cert_dir=tmp_path / "certs") as mock, \
            ProxyProcess(store=tmp_path / "store", confdir=tmp_path / "mitm",
                         intercept=["127.0.0.1"], upstream_ca=Path(mock.ca_cert_path)) as proxy:
        client = anthropic_client(mock.url, proxy.url, proxy.ca_bundle, default_headers={
            "x-user-id": user, "x-mock-scenario": f"chunk_delay:{delay_ms}"})
        sent = time.time()
        seen: dict[str, float] = {}
        with client.messages.create(model="claude-sonnet-4-6", max_tokens=100, stream=True,
                                    messages=[{"role": "user", "content": "Hi"}]) as stream:
            for event in stream:
                seen.setdefault(event.type, (time.time() - sent) * 1000)
        [r] = records(proxy.store, f"user_id = '{user}'", expect=1)
    assert r["stream"] is True and r["ttfb_ms"] <= r["latency_ms"]
    # message_start comes with the headers at once, the first text delta three pauses later
    # (the client's clock starts before its connection is set up, so only gaps compare)
    assert seen["content_block_delta"] - seen["message_start"] >= 2.5 * delay_ms
    assert r["ttfb_ms"] >= 2.5 * delay_ms  # the first chunk's time would be a few ms
