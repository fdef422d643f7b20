"""Cohere: v2 ``/v2/chat`` (JSON and SSE), v1 ``/v1/chat`` (JSON and newline-delimited JSON
stream), embed and rerank. Kept light: usage, finish reason, the assembled text.

Cohere reports both ``billed_units`` and raw ``tokens``; the billed figures are used because
they are what the invoice is computed from (raw counts include the provider's own preamble).
"""

from __future__ import annotations

from typing import Any

from ._common import (
    Exchange,
    ParsedExchange,
    apply_usage,
    as_int,
    as_str,
    dig,
    dumps,
    get,
    loads,
    loads_obj,
    parse_events,
    read_common_request,
    read_error_body,
)
from ._common import (
    event_type as _event_type,
)
from .sse import split_events

__all__ = ["cohere_operation", "parse_cohere", "read_cohere_usage", "cohere_event_has_token"]

_OPERATIONS = {
    "chat": "chat",
    "embed": "embeddings",
    "rerank": "rerank",
    "generate": "completion",
    "classify": "classify",
    "tokenize": "tokenize",
    "detokenize": "detokenize",
    "models": "models",
}


def cohere_operation(endpoint: str) -> str | None:
    """The operation named by the first path segment after the version."""
    for segment in endpoint.split("/"):
        op = _OPERATIONS.get(segment)
        if op is not None:
            return op
    return None


def parse_cohere(px: ParsedExchange, ex: Exchange) -> None:
    """Fill ``px`` from a Cohere exchange."""
    read_common_request(px, ex)
    px.operation = cohere_operation(ex.endpoint)
    text = ex.response_text
    if not text:
        return
    if ex.response_is_sse:
        px.stream = True
        _read_v2_stream(px, ex, text)
        return
    body = loads(text)
    if isinstance(body, dict):
        if px.stream is None and ex.request is not None:
            px.stream = False
        _read_body(px, body, ex.status)
    elif body is None and text.lstrip()[:1] == "{":
        px.stream = True
        _read_v1_stream(px, ex, text)


def _read_body(px: ParsedExchange, body: dict[str, Any], status: int | None) -> None:
    if (status is not None and status >= 400) or isinstance(body.get("error"), (dict, str)):
        read_error_body(px, status, body)
        return
    px.finish_reason = as_str(body.get("finish_reason"))
    px.response_model = as_str(body.get("model"))
    read_cohere_usage(px, body.get("usage") or body.get("meta"))


def read_cohere_usage(px: ParsedExchange, usage: object) -> None:
    """v2 ``usage`` and v1 ``meta`` share ``billed_units`` / ``tokens``."""
    if not isinstance(usage, dict):
        return
    billed = usage.get("billed_units")
    tokens = usage.get("tokens")
    source = billed if isinstance(billed, dict) and "input_tokens" in billed else tokens
    cached = as_int(usage.get("cached_tokens"))
    apply_usage(
        px,
        input_tokens=as_int(get(source, "input_tokens")),
        output_tokens=as_int(get(source, "output_tokens")),
        cached=cached,
    )


def _read_v2_stream(px: ParsedExchange, ex: Exchange, text: str) -> None:
    message_id = None
    texts: list[str] = []
    end: dict[str, Any] = {}
    for name, event in parse_events(split_events(text)):
        kind = _event_type(event, name)
        if kind == "message-start":
            message_id = event.get("id")
        elif kind == "content-delta":
            piece = dig(event, "delta", "message", "content", "text")
            if type(piece) is str:
                texts.append(piece)
        elif kind == "message-end":
            end = event.get("delta") if isinstance(event.get("delta"), dict) else {}
        elif kind == "error" or "error" in event:
            read_error_body(px, ex.status, event)
    px.finish_reason = as_str(end.get("finish_reason"))
    read_cohere_usage(px, end.get("usage"))
    assembled: dict[str, Any] = {
        "id": message_id,
        "finish_reason": px.finish_reason,
        "message": {"role": "assistant", "content": [{"type": "text", "text": "".join(texts)}]},
    }
    if isinstance(end.get("usage"), dict):
        assembled["usage"] = end["usage"]
    px.assembled_response = dumps(assembled)


def _read_v1_stream(px: ParsedExchange, ex: Exchange, text: str) -> None:
    """v1 streams one JSON object per line; ``stream-end`` carries the full response."""
    for line in text.splitlines():
        event = loads_obj(line)
        if event is None:
            continue
        if event.get("event_type") == "stream-end":
            px.finish_reason = as_str(event.get("finish_reason"))
            response = event.get("response")
            if isinstance(response, dict):
                read_cohere_usage(px, response.get("meta"))
                px.assembled_response = dumps(response)


_FRAMING_EVENTS = frozenset({"message-start", "content-start", "content-end", "tool-call-end",
                             "citation-start", "citation-end", "message-end", "debug"})


def cohere_event_has_token(event: dict[str, Any], name: str | None = None) -> bool | None:
    """Whether a v2 chat stream event carries generated output (text, a tool plan, a tool
    call); ``None`` when it is not such an event."""
    kind = _event_type(event, name)
    if kind == "content-delta":
        return bool(dig(event, "delta", "message", "content", "text"))
    if kind == "tool-plan-delta":
        return bool(dig(event, "delta", "message", "tool_plan"))
    if kind in ("tool-call-start", "tool-call-delta"):
        return True
    return False if kind in _FRAMING_EVENTS else None
