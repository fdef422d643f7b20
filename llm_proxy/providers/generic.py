"""Best effort for APIs we do not recognise (a company's vLLM, an internal gateway, Ollama):
read the common request fields, then sniff the response shape and read it with the parser
of the family it looks like. The provider name stays "unknown"."""

from __future__ import annotations

from typing import Any

from ._common import (
    Exchange,
    ParsedExchange,
    apply_usage,
    as_int,
    as_str,
    dumps,
    loads,
    loads_obj,
    parse_events,
    read_common_request,
    short_str,
)
from .anthropic import assemble_message_stream, read_message_body
from .gemini import merge_chunks, read_generate_response
from .openai import (
    assemble_chat_stream,
    assemble_responses_stream,
    openai_operation,
    read_openai_body,
)
from .sse import SSEEvent, split_events

__all__ = ["parse_unknown"]


def parse_unknown(px: ParsedExchange, ex: Exchange) -> None:
    """Fill ``px`` from an exchange with an unrecognised API, by the shape of its bodies."""
    read_common_request(px, ex)
    px.operation = openai_operation(ex.endpoint)
    text = ex.response_text
    if not text:
        return
    if ex.response_is_sse:
        px.stream = True
        _read_stream(px, ex, split_events(text))
        return
    body = loads(text)
    if body is None and text.lstrip()[:1] == "{" and "\n{" in text:
        body = _last_ndjson(text)  # Ollama-style newline-delimited stream
        if body is not None:
            px.stream = True
    if not isinstance(body, dict):
        return
    if px.stream is None and ex.request is not None:
        px.stream = False
    if body.get("type") in ("message", "error"):
        read_message_body(px, body, ex.status, px.operation)
    elif "candidates" in body or "usageMetadata" in body:
        read_generate_response(px, body, ex.status)
    elif "prompt_eval_count" in body or "eval_count" in body:
        _read_ollama(px, body)
    else:
        read_openai_body(px, body, ex.status)


def _read_stream(px: ParsedExchange, ex: Exchange, events: list[SSEEvent]) -> None:
    shape = _sniff_stream(events)
    assembled: Any
    if shape == "anthropic":
        assembled = assemble_message_stream(px, events, ex.status)
    elif shape == "responses":
        assembled = assemble_responses_stream(px, events, ex.status)
    elif shape == "gemini":
        assembled = merge_chunks([chunk for _, chunk in parse_events(events)])
        read_generate_response(px, assembled, ex.status)
    else:
        assembled = assemble_chat_stream(px, events, ex.status)
    if assembled:
        px.assembled_response = dumps(assembled)


def _sniff_stream(events: list[SSEEvent]) -> str:
    """The family a stream belongs to, from its first events."""
    for name, data in events[:3]:
        head = data[:48].replace(" ", "")
        if (name or "").startswith("message_") or head.startswith('{"type":"message_start"'):
            return "anthropic"
        if (name or "").startswith("response.") or head.startswith('{"type":"response.'):
            return "responses"
        if head.startswith(('{"candidates"', '{"usageMetadata"')):
            return "gemini"
    return "openai"


def _last_ndjson(text: str) -> dict[str, Any] | None:
    for line in reversed(text.strip().splitlines()):
        value = loads_obj(line)
        if value is not None:
            return value
    return None


def _read_ollama(px: ParsedExchange, body: dict[str, Any]) -> None:
    px.response_model = short_str(body.get("model"))
    px.finish_reason = as_str(body.get("done_reason"))
    apply_usage(px, input_tokens=as_int(body.get("prompt_eval_count")),
                output_tokens=as_int(body.get("eval_count")))
