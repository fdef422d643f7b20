"""Anthropic Messages API (also as served by Bedrock ``invoke`` and Vertex ``rawPredict``):
messages, count_tokens, the legacy text completions, the SSE stream and error bodies.

Anthropic reports ``input_tokens`` *without* the cached part; the record follows
OpenTelemetry, where input includes cached input, so cache reads and cache writes are added
back and also kept separately for pricing (they are billed at different rates).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from ._common import (
    Exchange,
    ParsedExchange,
    add_ints,
    apply_usage,
    as_int,
    as_str,
    drop_output_usage,
    dumps,
    loads,
    parse_events,
    read_common_request,
    read_error_body,
    salvage_str,
    short_str,
)
from ._common import (
    event_type as _event_type,
)
from .sse import SSEEvent, split_events

__all__ = [
    "anthropic_operation",
    "parse_anthropic",
    "read_message_body",
    "read_anthropic_usage",
    "assemble_message_stream",
    "MessageStream",
    "bedrock_metrics_usage",
    "message_event_has_token",
]

_VERTEX_MODEL = re.compile(r"/models/([^/:]+):(\w+)")


def anthropic_operation(endpoint: str) -> str | None:
    """messages / count_tokens / batches / completion / models from a Messages-API path."""
    if endpoint.endswith(("/count_tokens", "count-tokens:rawPredict")):
        return "count_tokens"
    if "/messages/batches" in endpoint:
        return "batches"
    if endpoint.endswith(("/messages", ":rawPredict", ":streamRawPredict")):
        return "messages"
    if endpoint.endswith("/complete"):
        return "completion"
    if "/models" in endpoint:
        return "models"
    if "/files" in endpoint:
        return "files"
    return None


def parse_anthropic(px: ParsedExchange, ex: Exchange) -> None:
    """Fill ``px`` from an Anthropic-shaped exchange (direct API or Claude on Vertex AI)."""
    read_common_request(px, ex)
    px.operation = anthropic_operation(ex.endpoint)
    vertex = _VERTEX_MODEL.search(ex.endpoint) if ":" in ex.endpoint else None
    if vertex:
        if px.request_model is None and vertex.group(1) != "count-tokens":
            px.request_model = short_str(unquote(vertex.group(1)))
        if vertex.group(2) == "streamRawPredict":
            px.stream = True
    text = ex.response_text
    if not text:
        return
    if ex.response_is_sse:
        px.stream = True
        assembled = assemble_message_stream(px, split_events(text), ex.status)
        if assembled is not None:
            px.assembled_response = dumps(assembled)
        return
    if px.stream is None and ex.request is not None:
        px.stream = False
    body = loads(text)
    if isinstance(body, dict):
        read_message_body(px, body, ex.status, px.operation)
    elif body is None:
        px.response_model = salvage_str(text, "model")
        px.finish_reason = salvage_str(text, "stop_reason")


def read_message_body(
    px: ParsedExchange, body: dict[str, Any], status: int | None, operation: str | None
) -> None:
    """A non-stream body: message, count_tokens result, legacy completion or error."""
    if body.get("type") == "error" or isinstance(body.get("error"), dict):
        read_error_body(px, status, body)
        return
    if operation == "count_tokens" or body.keys() == {"input_tokens"}:
        # A count, not consumption: the call is free, so no usage is reported for pricing.
        px.input_tokens = as_int(body.get("input_tokens"))
        return
    px.response_model = short_str(body.get("model"))
    px.finish_reason = as_str(body.get("stop_reason"))
    read_anthropic_usage(px, body.get("usage"))
    if px.error_type is None and status is not None and status >= 400:
        read_error_body(px, status, body)


def read_anthropic_usage(px: ParsedExchange, usage: object) -> None:
    """Anthropic usage → record usage (input includes cache reads and writes)."""
    if not isinstance(usage, dict):
        return
    uncached = as_int(usage.get("input_tokens"))
    read = as_int(usage.get("cache_read_input_tokens"))
    write = as_int(usage.get("cache_creation_input_tokens"))
    apply_usage(
        px,
        input_tokens=add_ints(uncached, read, write),
        output_tokens=as_int(usage.get("output_tokens")),
        cached=read,
        cache_write=write,
        cache_info=read is not None or write is not None,
    )


class MessageStream:
    """Folds Messages-API stream events into the message they describe.

    Separate from the SSE layer because Bedrock ``invoke-with-response-stream`` delivers the
    same events base64-wrapped in AWS event-stream frames.
    """

    __slots__ = ("message", "blocks", "parts", "usage", "bedrock_metrics", "legacy", "seen",
                 "final_usage")

    def __init__(self) -> None:
        self.message: dict[str, Any] | None = None
        self.blocks: dict[int, dict[str, Any]] = {}
        self.parts: dict[tuple[int, str], list[str]] = {}
        self.usage: dict[str, Any] = {}
        self.bedrock_metrics: dict[str, Any] | None = None
        self.legacy: list[dict[str, Any]] = []
        self.seen = False
        self.final_usage = False  # message_delta seen: output_tokens is the real count

    def feed(self, px: ParsedExchange, event: dict[str, Any], status: int | None,
             name: str | None = None) -> None:
        kind = _event_type(event, name)
        self.seen = True
        if kind == "content_block_delta":
            self._delta(event)
        elif kind == "message_start":
            message = event.get("message")
            if isinstance(message, dict):
                self.message = dict(message)
                self._merge_usage(message.get("usage"))
        elif kind == "content_block_start":
            index, block = event.get("index"), event.get("content_block")
            if type(index) is int and isinstance(block, dict):
                self.blocks[index] = dict(block)
        elif kind == "message_delta":
            delta = event.get("delta")
            if isinstance(delta, dict):
                message = self._message()
                for key in ("stop_reason", "stop_sequence", "container"):
                    if key in delta:
                        message[key] = delta[key]
            self._merge_usage(event.get("usage"))
            self.final_usage = self.final_usage or isinstance(event.get("usage"), dict)
        elif kind == "message_stop":
            metrics = event.get("amazon-bedrock-invocationMetrics")
            if isinstance(metrics, dict):
                self.bedrock_metrics = metrics
        elif kind == "error":
            read_error_body(px, status, event)
        elif kind == "completion":
            self.legacy.append(event)

    def _message(self) -> dict[str, Any]:
        if self.message is None:
            self.message = {"type": "message", "role": "assistant"}
        return self.message

    def _merge_usage(self, usage: object) -> None:
        """Usage in ``message_delta`` is cumulative and may update input/cache counts."""
        if isinstance(usage, dict):
            for key, value in usage.items():
                if value is not None:
                    self.usage[key] = value

    def _delta(self, event: dict[str, Any]) -> None:
        index, delta = event.get("index"), event.get("delta")
        if type(index) is not int or not isinstance(delta, dict):
            return
        kind = delta.get("type")
        if kind == "text_delta":
            self._part(index, "text", delta.get("text"), "text")
        elif kind == "input_json_delta":
            self._part(index, "input", delta.get("partial_json"), "tool_use")
        elif kind == "thinking_delta":
            self._part(index, "thinking", delta.get("thinking"), "thinking")
        elif kind == "signature_delta":
            block = self.blocks.setdefault(index, {"type": "thinking"})
            if type(delta.get("signature")) is str:
                block["signature"] = delta["signature"]
        elif kind == "citations_delta":
            block = self.blocks.setdefault(index, {"type": "text"})
            citations = block.get("citations")
            if not isinstance(citations, list):
                citations = block["citations"] = []
            if "citation" in delta:
                citations.append(delta["citation"])

    def _part(self, index: int, key: str, piece: object, block_type: str) -> None:
        if type(piece) is not str:
            return
        if index not in self.blocks:
            self.blocks[index] = {"type": block_type}
        parts = self.parts.get((index, key))
        if parts is None:
            parts = self.parts[(index, key)] = []
        parts.append(piece)

    def finish(self, px: ParsedExchange) -> dict[str, Any] | None:
        """The assembled message (fills model, stop reason and usage into ``px``)."""
        if self.legacy and self.message is None:
            return self._finish_legacy(px)
        if self.message is None and not self.blocks and not self.usage:
            if self.bedrock_metrics:
                _apply_bedrock_metrics(px, self.bedrock_metrics)
            return None
        message = self._message()
        for (index, key), parts in self.parts.items():
            block = self.blocks[index]
            joined = "".join(parts)
            if key == "input":  # a cut-off tool input stays visible as its raw text
                parsed = loads(joined) if joined else {}
                block["input"] = parsed if parsed is not None else joined
            else:
                prefix = block.get(key)
                block[key] = (prefix if type(prefix) is str else "") + joined
        message["content"] = [self.blocks[index] for index in sorted(self.blocks)]
        if self.usage:
            message["usage"] = self.usage
        px.response_model = short_str(message.get("model"))
        px.finish_reason = as_str(message.get("stop_reason"))
        read_anthropic_usage(px, self.usage or None)
        if not self.final_usage:
            drop_output_usage(px)  # message_start's output_tokens is a placeholder
        if self.bedrock_metrics and not self.final_usage:
            _apply_bedrock_metrics(px, self.bedrock_metrics)
        return message

    def _finish_legacy(self, px: ParsedExchange) -> dict[str, Any]:
        last = self.legacy[-1]
        text = "".join(c for e in self.legacy if type(c := e.get("completion")) is str)
        px.response_model = short_str(last.get("model"))
        reasons = [e.get("stop_reason") for e in self.legacy if as_str(e.get("stop_reason"))]
        px.finish_reason = reasons[-1] if reasons else None
        return {"type": "completion", "completion": text, "stop_reason": px.finish_reason,
                "model": last.get("model")}


def _apply_bedrock_metrics(px: ParsedExchange, metrics: dict[str, Any]) -> None:
    """Bedrock's own per-invocation counts (uncached input, like Anthropic's)."""
    uncached = as_int(metrics.get("inputTokenCount"))
    read = as_int(metrics.get("cacheReadInputTokenCount"))
    write = as_int(metrics.get("cacheWriteInputTokenCount"))
    apply_usage(
        px,
        input_tokens=add_ints(uncached, read, write),
        output_tokens=as_int(metrics.get("outputTokenCount")),
        cached=read,
        cache_write=write,
    )


def assemble_message_stream(
    px: ParsedExchange, events: list[SSEEvent], status: int | None
) -> dict[str, Any] | None:
    """The Anthropic ``message`` an SSE stream adds up to; ``None`` if it held no event."""
    stream = MessageStream()
    for name, event in parse_events(events):
        stream.feed(px, event, status, name)
    return stream.finish(px) if stream.seen else None


def bedrock_metrics_usage(px: ParsedExchange, metrics: object) -> None:
    """Public wrapper used by the Bedrock parser for non-Anthropic invoke streams."""
    if isinstance(metrics, dict):
        _apply_bedrock_metrics(px, metrics)


# Deltas that carry generated output, with the field holding it. ``signature_delta`` and
# ``citations_delta`` only annotate a block; an ``input_json_delta`` may open with "".
_TOKEN_DELTAS = {"text_delta": "text", "input_json_delta": "partial_json",
                 "thinking_delta": "thinking"}
_FRAMING_EVENTS = frozenset({"message_start", "content_block_start", "content_block_stop",
                             "message_delta", "message_stop", "ping", "error"})


def message_event_has_token(event: dict[str, Any], name: str | None = None) -> bool | None:
    """Whether a Messages API stream event carries generated output; ``None`` when it is not
    such an event. Used to time the first token (``ttfb_ms``): the stream opens with
    ``message_start``, ``content_block_start`` and ``ping``, none of which holds a token."""
    kind = _event_type(event, name)
    if kind == "content_block_delta":
        delta = event.get("delta")
        kind = delta.get("type") if isinstance(delta, dict) else None
        key = _TOKEN_DELTAS.get(kind) if type(kind) is str else None
        return key is not None and bool(delta.get(key))  # type: ignore[union-attr]
    if kind == "completion":  # the legacy Text Completions stream
        return bool(event.get("completion"))
    return False if kind in _FRAMING_EVENTS else None
