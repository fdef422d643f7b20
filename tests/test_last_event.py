"""Which chunk completes a stream's last event (llm_proxy.addon.last_event): the capture is
handed to the worker before that chunk is relayed, since an SDK returns at that event.

Real tails of each API's streams, cut at every byte into two or three chunks: the watch must
answer True exactly for the chunk holding the last byte of the blank line after the last
event — or, when the marker line itself is cut, never (the capture then goes at the end of
the body, as before) — and never for anything that only mentions the marker.
"""

from __future__ import annotations

import json

import pytest

from llm_proxy.addon.last_event import LastEventWatch, last_event_markers

CHAT_TAIL = (b'data: {"choices":[{"delta":{"content":"The word is [DONE]"},"index":0}]}\n\n'
             b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3}}\n\n'
             b"data: [DONE]\n\n")
ANTHROPIC_TAIL = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
                  b'"delta":{"type":"text_delta","text":"say event: message_stop"}}\n\n'
                  b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":9}}'
                  b'\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n')
RESPONSES_TAIL = (b'event: response.output_text.done\r\ndata: {"text":"response.completed"}\r\n\r\n'
                  b"event: response.completed\r\ndata: "
                  + json.dumps({"type": "response.completed",
                                "response": {"output": "x" * 40_000}}).encode() + b"\r\n\r\n")
CASES = [("/v1/chat/completions", CHAT_TAIL, b"data: [DONE]"),
         ("/v1/messages", ANTHROPIC_TAIL, b"event: message_stop"),
         ("/v1/responses", RESPONSES_TAIL, b"event: response.completed")]


def answers(path: str, chunks: list[bytes]) -> list[bool]:
    watch = LastEventWatch(last_event_markers(path))
    return [watch.completes(c) for c in chunks]


@pytest.mark.parametrize("path,tail,marker", CASES, ids=["chat", "anthropic", "responses"])
def test_the_chunk_with_the_last_blank_line_is_the_one(path: str, tail: bytes, marker: bytes):
    marker_at = tail.rindex(marker)
    cuts = range(1, len(tail)) if len(tail) < 2000 else [
        *range(1, marker_at + 40), *range(len(tail) - 40, len(tail))]
    for cut in cuts:
        got = answers(path, [tail[:cut], tail[cut:]])
        if marker_at < cut < marker_at + len(marker):
            assert got == [False, False], cut  # the marker itself cut in two: not seen
        else:
            assert got == [False, True], cut


@pytest.mark.parametrize("path,tail,marker", CASES, ids=["chat", "anthropic", "responses"])
def test_a_large_last_event_completes_chunks_after_its_name(path: str, tail: bytes,
                                                            marker: bytes):
    """response.completed repeats the whole response: tens of KB in 16 KiB reads."""
    chunks = [tail[i:i + 16384] for i in range(0, len(tail), 16384)]
    got = answers(path, chunks)
    assert got.count(True) == 1 and got[-1] is True


def test_mentions_are_not_the_last_event():
    mentions = [b'data: {"content":"data: [DONE]"}\n\n', b"data: [DONE] later\n\n",
                b': comment data: [DONE]\n\n', b"xdata: [DONE]\n\n"]
    for chunk in mentions:
        assert answers("/v1/chat/completions", [chunk]) == [False], chunk
    assert answers("/v1/messages", [b"event: message_stop_soon\ndata: {}\n\n"]) == [False]
    assert answers("/v1/responses", [b"event: response.created\ndata: {}\n\n"]) == [False]


def test_only_once_and_only_its_own_api():
    assert answers("/v1/chat/completions", [b"data: [DONE]\n\n", b"data: [DONE]\n\n"]) == [
        True, False]
    assert answers("/v1/chat/completions", [b"event: message_stop\ndata: {}\n\n"]) == [False]
    assert answers("/v1/projects/p/locations/l/publishers/anthropic/models/m:streamRawPredict",
                   [b"event: message_stop\ndata: {}\n\n"]) == [True]
    assert answers("/v1/chat/completions", [b"data:[DONE]\n\n"]) == [True]  # no space: valid SSE
