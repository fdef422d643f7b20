"""Amazon Bedrock runtime: ``/model/{modelId}/converse``, ``/converse-stream``, ``/invoke``,
``/invoke-with-response-stream`` and ``/count-tokens``.

The model is in the path (URL-encoded; a model id, inference profile or ARN). ``invoke``
bodies are the model vendor's own format: Anthropic-shaped for Claude, OpenAI-shaped for
gpt-oss, and a handful of legacy shapes (Titan, Llama, Mistral, Cohere) read best effort.

The ``-stream`` endpoints answer in AWS's binary event-stream framing. We do not decode the
framing (its length prefixes do not survive a text decode reliably); each frame's payload is
plain JSON, so the JSON objects are picked out of the text, ``{"bytes": base64}`` wrappers of
``invoke`` streams are unwrapped, and the resulting events are folded like any other stream.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any
from urllib.parse import unquote

from ._common import (
    Exchange,
    ParsedExchange,
    add_ints,
    apply_error,
    apply_usage,
    as_int,
    as_str,
    dig,
    dumps,
    get,
    iter_json_values,
    loads,
    normalise_error_type,
    read_common_request,
    read_error_body,
    short_str,
)
from .anthropic import MessageStream, bedrock_metrics_usage, read_message_body
from .openai import read_openai_body

__all__ = ["bedrock_operation", "parse_bedrock", "read_converse_body", "ConverseStream"]

_PATH = re.compile(r"/model/([^/]+)/([a-z-]+)$")
_OPERATIONS = {
    "converse": ("converse", False),
    "converse-stream": ("converse", True),
    "invoke": ("invoke", False),
    "invoke-with-response-stream": ("invoke", True),
    "count-tokens": ("count_tokens", False),
}
_STATUS_EXCEPTIONS = {400: "ValidationException", 424: "ModelErrorException"}
_EXCEPTION_TYPE = re.compile(r":exception-type[\s\S]{1,4}?([A-Za-z]+Exception)")


def bedrock_operation(endpoint: str) -> tuple[str | None, str | None, bool]:
    """(operation, model id, is_stream_endpoint) from a Bedrock runtime path."""
    match = _PATH.search(endpoint)
    if match:
        operation, stream = _OPERATIONS.get(match.group(2), (match.group(2), False))
        return operation, short_str(unquote(match.group(1))), stream
    if endpoint.rstrip("/").endswith("/async-invoke") or "/async-invoke/" in endpoint:
        return "invoke_async", None, False
    if "/guardrail/" in endpoint:
        return "apply_guardrail", None, False
    return None, None, False


def parse_bedrock(px: ParsedExchange, ex: Exchange) -> None:
    """Fill ``px`` from a Bedrock runtime exchange."""
    read_common_request(px, ex)
    operation, model, stream_endpoint = bedrock_operation(ex.endpoint)
    px.operation = operation
    px.request_model = model or px.request_model
    px.stream = True if stream_endpoint else (False if operation else px.stream)
    text = ex.response_text
    if not text:
        return
    if stream_endpoint and text.lstrip()[:1] != "{":
        _parse_event_stream(px, ex, text, operation)
        return
    body = loads(text)
    if not isinstance(body, dict):
        return
    if ex.status is not None and ex.status >= 400:
        # The AWS error type travels in a header we do not see; the status names it.
        read_error_body(px, ex.status, body)
        if ex.status in _STATUS_EXCEPTIONS:
            px.error_type = normalise_error_type(ex.status, _STATUS_EXCEPTIONS[ex.status])
    elif operation == "count_tokens":
        px.input_tokens = as_int(body.get("inputTokens"))  # a count, not billed usage
    elif operation == "converse":
        read_converse_body(px, body, ex.status)
    else:
        read_invoke_body(px, body, ex.status)


# ---------------------------------------------------------------------- non-stream


def read_converse_body(px: ParsedExchange, body: dict[str, Any], status: int | None) -> None:
    """Converse response (also Nova's ``invoke`` body, which has the same shape)."""
    px.finish_reason = as_str(body.get("stopReason"))
    read_converse_usage(px, body.get("usage"))


def read_converse_usage(px: ParsedExchange, usage: object) -> None:
    """Bedrock counts input without the cache, like Anthropic; input here includes it.

    The total is recomputed from the normalised parts so that it stays input + output.
    """
    if not isinstance(usage, dict):
        return
    read = as_int(usage.get("cacheReadInputTokens"))
    if read is None:
        read = as_int(usage.get("cacheReadInputTokenCount"))
    write = as_int(usage.get("cacheWriteInputTokens"))
    if write is None:
        write = as_int(usage.get("cacheWriteInputTokenCount"))
    input_tokens = add_ints(as_int(usage.get("inputTokens")), read, write)
    output_tokens = as_int(usage.get("outputTokens"))
    total = add_ints(input_tokens, output_tokens) if output_tokens is not None else None
    apply_usage(
        px,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=total if input_tokens is not None else as_int(usage.get("totalTokens")),
        cached=read,
        cache_write=write,
        cache_info=read is not None or write is not None,
    )


def read_invoke_body(px: ParsedExchange, body: dict[str, Any], status: int | None) -> None:
    """An ``invoke`` body, recognised by its shape since each model family has its own."""
    if body.get("type") == "message" or ("content" in body and "stop_reason" in body):
        read_message_body(px, body, status, "messages")
    elif "choices" in body:
        read_openai_body(px, body, status)
    elif isinstance(body.get("output"), dict) or "stopReason" in body:
        read_converse_body(px, body, status)
    elif "generation" in body:  # Meta Llama
        px.finish_reason = as_str(body.get("stop_reason"))
        _legacy_usage(px, body.get("prompt_token_count"), body.get("generation_token_count"))
    elif "inputTextTokenCount" in body:  # Amazon Titan text / embeddings
        px.finish_reason = as_str(dig(body, "results", 0, "completionReason"))
        output = as_int(dig(body, "results", 0, "tokenCount"))
        _legacy_usage(px, body.get("inputTextTokenCount"), output)
    elif "outputs" in body:  # Mistral
        px.finish_reason = as_str(dig(body, "outputs", 0, "stop_reason"))
    elif "generations" in body or "finish_reason" in body:  # Cohere
        px.finish_reason = as_str(body.get("finish_reason")) or as_str(
            dig(body, "generations", 0, "finish_reason")
        )


def _legacy_usage(px: ParsedExchange, input_tokens: object, output_tokens: object) -> None:
    apply_usage(px, input_tokens=as_int(input_tokens), output_tokens=as_int(output_tokens))


# -------------------------------------------------------------------------- streams


class ConverseStream:
    """Folds ConverseStream events into the Converse response they add up to.

    Accepts both the bare payloads of ``converse-stream`` frames (recognised by their keys,
    since the event type sits in the binary headers) and the ``{"contentBlockDelta": {...}}``
    wrapping that Nova uses inside ``invoke-with-response-stream`` chunks.
    """

    __slots__ = ("blocks", "stop", "usage", "metrics", "extra", "seen")

    def __init__(self) -> None:
        self.blocks: dict[int, dict[str, Any]] = {}
        self.stop: str | None = None
        self.usage: dict[str, Any] | None = None
        self.metrics: Any = None
        self.extra: Any = None
        self.seen = False

    def feed(self, event: dict[str, Any]) -> bool:
        """Fold one event; False when it is not a Converse stream event."""
        for wrapper in ("messageStart", "contentBlockStart", "contentBlockDelta",
                        "contentBlockStop", "messageStop", "metadata"):
            inner = event.get(wrapper)
            if isinstance(inner, dict):
                event = inner
                break
        if "contentBlockIndex" in event:
            self._block_event(event)
        elif "stopReason" in event:
            self.stop = as_str(event.get("stopReason"))
            self.extra = event.get("additionalModelResponseFields")
        elif "usage" in event or "metrics" in event:
            if isinstance(event.get("usage"), dict):
                self.usage = event["usage"]
            self.metrics = event.get("metrics", self.metrics)
        elif "role" not in event:
            return False
        self.seen = True
        return True

    def _block_event(self, event: dict[str, Any]) -> None:
        index = event.get("contentBlockIndex")
        if type(index) is not int:
            return
        block = self.blocks.setdefault(index, {"text": [], "tool": None, "input": [],
                                                "reasoning": [], "signature": None})
        start = get(event.get("start"), "toolUse")
        if isinstance(start, dict):
            block["tool"] = {k: v for k, v in start.items() if k in ("toolUseId", "name")}
        delta = event.get("delta")
        if not isinstance(delta, dict):
            return
        if type(delta.get("text")) is str:
            block["text"].append(delta["text"])
        piece = get(delta.get("toolUse"), "input")
        if type(piece) is str:
            block["input"].append(piece)
        reasoning = delta.get("reasoningContent")
        if isinstance(reasoning, dict):
            if type(reasoning.get("text")) is str:
                block["reasoning"].append(reasoning["text"])
            if type(reasoning.get("signature")) is str:
                block["signature"] = reasoning["signature"]

    def finish(self, px: ParsedExchange) -> dict[str, Any]:
        """The Converse response the events add up to (fills finish reason and usage)."""
        content: list[dict[str, Any]] = []
        for index in sorted(self.blocks):
            block = self.blocks[index]
            if block["tool"] is not None or block["input"]:
                raw = "".join(block["input"])
                parsed = loads(raw) if raw else {}
                tool = dict(block["tool"] or {})
                tool["input"] = parsed if parsed is not None else raw
                content.append({"toolUse": tool})
            elif block["reasoning"] or block["signature"]:
                text = {"text": "".join(block["reasoning"])}
                if block["signature"]:
                    text["signature"] = block["signature"]
                content.append({"reasoningContent": {"reasoningText": text}})
            else:
                content.append({"text": "".join(block["text"])})
        assembled: dict[str, Any] = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": self.stop,
        }
        if self.extra is not None:
            assembled["additionalModelResponseFields"] = self.extra
        if self.usage is not None:
            assembled["usage"] = {k: v for k, v in self.usage.items() if k != "p"}
        if self.metrics is not None:
            assembled["metrics"] = self.metrics
        px.finish_reason = self.stop
        read_converse_usage(px, self.usage)
        return assembled


def _parse_event_stream(
    px: ParsedExchange, ex: Exchange, text: str, operation: str | None
) -> None:
    """Read a ``converse-stream`` / ``invoke-with-response-stream`` body.

    Exception frames (throttling, model errors) carry only ``{"message"}``; their type is
    a header, found by pattern in the raw text.
    """
    payloads = [p for p in iter_json_values(text) if isinstance(p, dict)]
    exception = _EXCEPTION_TYPE.search(text)
    events: list[dict[str, Any]] = []
    for payload in payloads:
        wrapped = payload.get("bytes")
        if type(wrapped) is str:
            chunk = _decode_chunk(wrapped)
            if chunk is not None:
                events.append(chunk)
        elif "message" in payload and len(payload.keys() - {"p", "originalStatusCode",
                                                            "originalMessage"}) == 1:
            raw_type = exception.group(1) if exception else None
            apply_error(px, ex.status, payload.get("message"), raw_type)
        else:
            events.append(payload)
    if exception and px.error_type is None:
        apply_error(px, ex.status, None, exception.group(1))
    if not events:
        return
    if any(e.get("type") == "message_start" for e in events[:2]):
        _fold_anthropic(px, ex, events)
        return
    converse = ConverseStream()
    unknown = [e for e in events if not converse.feed(e)]
    if converse.seen:
        px.assembled_response = dumps(converse.finish(px))
    elif operation == "invoke":
        px.assembled_response = dumps(_strip_padding(unknown))
        _fold_other_invoke(px, unknown)
    if not px.usage_reported:  # Bedrock appends its own counts to the last invoke chunk
        for event in reversed(events):
            if isinstance(event.get("amazon-bedrock-invocationMetrics"), dict):
                bedrock_metrics_usage(px, event["amazon-bedrock-invocationMetrics"])
                break


def _decode_chunk(wrapped: str) -> dict[str, Any] | None:
    try:
        raw = base64.b64decode(wrapped, validate=False)
    except (binascii.Error, ValueError):
        return None
    chunk = loads(raw.decode("utf-8", "replace"))
    return chunk if isinstance(chunk, dict) else None


def _fold_anthropic(px: ParsedExchange, ex: Exchange, events: list[dict[str, Any]]) -> None:
    stream = MessageStream()
    for event in events:
        stream.feed(px, event, ex.status)
    message = stream.finish(px)
    if message is not None:
        px.assembled_response = dumps(message)


def _fold_other_invoke(px: ParsedExchange, events: list[dict[str, Any]]) -> None:
    """Legacy model streams: the finish reason of the last chunk that has one."""
    for event in events:
        reason = (
            as_str(event.get("stop_reason"))
            or as_str(event.get("completionReason"))
            or as_str(event.get("finish_reason"))
            or as_str(dig(event, "outputs", 0, "stop_reason"))
        )
        if reason:
            px.finish_reason = reason


def _strip_padding(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k != "p"} for e in events]
