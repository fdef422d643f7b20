"""OpenAI and every OpenAI-compatible API (Azure OpenAI, Mistral, Groq, OpenRouter, DeepSeek,
xAI, Together, Fireworks, vLLM, …): chat completions, legacy completions, embeddings, the
Responses API, models, their SSE streams and error bodies.

Compatible servers add or rename a few usage fields (DeepSeek's ``prompt_cache_hit_tokens``,
Groq's ``x_groq.usage``, OpenRouter's ``reasoning`` deltas); the readers accept those too,
because one tolerant reader is cheaper to keep right than one per vendor.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from ._common import (
    Exchange,
    ParsedExchange,
    apply_error,
    apply_usage,
    as_int,
    as_list,
    as_str,
    dig,
    dumps,
    get,
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
    "openai_operation",
    "parse_openai",
    "read_openai_usage",
    "read_openai_body",
    "assemble_chat_stream",
    "assemble_responses_stream",
    "chat_chunk_has_token",
    "responses_event_has_token",
]

_RESOURCES = {
    "completions": "completion",
    "embeddings": "embeddings",
    "responses": "responses",
    "models": "models",
    "moderations": "moderation",
    "images": "images",
    "files": "files",
    "batches": "batches",
    "fine_tuning": "fine_tuning",
    "assistants": "assistants",
    "threads": "threads",
    "vector_stores": "vector_stores",
    "uploads": "uploads",
    "realtime": "realtime",
    "conversations": "conversations",
    "rerank": "rerank",
}
_AUDIO = {"transcriptions": "transcription", "translations": "translation", "speech": "speech"}
_AZURE_DEPLOYMENT = re.compile(r"/deployments/([^/]+)/")


def openai_operation(endpoint: str) -> str | None:
    """The operation an OpenAI-style path names: the first known resource segment.

    Works under any prefix (``/v1``, Groq's ``/openai/v1``, OpenRouter's ``/api/v1``, Azure's
    ``/openai/deployments/{name}``, whose deployment name is skipped since it is free text).
    """
    segments = endpoint.split("/")
    skip_next = False
    for i, seg in enumerate(segments):
        if skip_next:
            skip_next = False
            continue
        if seg == "deployments":
            skip_next = True
            continue
        following = segments[i + 1] if i + 1 < len(segments) else ""
        if seg == "chat":
            if following == "completions":
                return "chat"
            continue
        if seg == "audio":
            return _AUDIO.get(following, "audio")
        if seg == "responses" and following == "input_tokens":
            return "count_tokens"
        op = _RESOURCES.get(seg)
        if op is not None:
            return op
    return None


def parse_openai(px: ParsedExchange, ex: Exchange) -> None:
    """Fill ``px`` from an OpenAI-shaped exchange."""
    read_common_request(px, ex)
    px.operation = openai_operation(ex.endpoint)
    if px.request_model is None and px.provider == "azure_openai":
        match = _AZURE_DEPLOYMENT.search(ex.endpoint)
        if match:
            px.request_model = short_str(unquote(match.group(1)))
    text = ex.response_text
    if not text:
        return
    if ex.response_is_sse:
        px.stream = True
        events = split_events(text)
        if px.operation == "responses" or _looks_like_responses_stream(events):
            assembled = assemble_responses_stream(px, events, ex.status)
        else:
            assembled = assemble_chat_stream(px, events, ex.status)
        if assembled is not None:
            px.assembled_response = dumps(assembled)
        return
    if px.stream is None and ex.request is not None:
        px.stream = False
    body = loads(text)
    if isinstance(body, dict):
        read_openai_body(px, body, ex.status)
    elif body is None:
        px.response_model = salvage_str(text, "model")
        px.finish_reason = salvage_str(text, "finish_reason")


def read_openai_body(px: ParsedExchange, body: dict[str, Any], status: int | None) -> None:
    """A non-stream response: chat.completion, text_completion, list, response, or error."""
    if body.get("object") == "response":
        read_response_object(px, body, status)
        return
    if read_error_body(px, status, body) and not body.get("choices"):
        return
    px.response_model = short_str(body.get("model"))
    choice = dig(body, "choices", 0)
    px.finish_reason = as_str(get(choice, "finish_reason"))
    choice_error = get(choice, "error")  # OpenRouter reports provider failures per choice
    if isinstance(choice_error, dict):
        apply_error(px, status, choice_error.get("message"), choice_error.get("code"))
    usage = body.get("usage")
    if not isinstance(usage, dict):
        usage = dig(body, "x_groq", "usage")
    read_openai_usage(px, usage)


def read_openai_usage(px: ParsedExchange, usage: object) -> None:
    """Chat-style (prompt/completion) and Responses-style (input/output) usage alike."""
    if not isinstance(usage, dict):
        return
    prompt = as_int(usage.get("prompt_tokens"))
    if prompt is None:
        prompt = as_int(usage.get("input_tokens"))
    completion = as_int(usage.get("completion_tokens"))
    if completion is None:
        completion = as_int(usage.get("output_tokens"))
    in_details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
    out_details = usage.get("completion_tokens_details") or usage.get("output_tokens_details")
    cached = as_int(get(in_details, "cached_tokens"))
    if cached is None:
        cached = as_int(usage.get("prompt_cache_hit_tokens"))  # DeepSeek
    cache_write = as_int(get(in_details, "cache_write_tokens"))
    reasoning = as_int(get(out_details, "reasoning_tokens"))
    total = as_int(usage.get("total_tokens"))
    completion, reasoning = _output_with_reasoning(
        px.provider, prompt, completion, reasoning, total
    )
    apply_usage(
        px,
        input_tokens=prompt,
        output_tokens=completion,
        total_tokens=total,
        cached=cached,
        cache_write=cache_write,
        reasoning=reasoning,
    )


def _output_with_reasoning(
    provider: str, prompt: int | None, completion: int | None, reasoning: int | None,
    total: int | None,
) -> tuple[int | None, int | None]:
    """Output tokens that include reasoning, as OpenAI counts them.

    Some compatible APIs leave reasoning out of ``completion_tokens`` (xAI reports it beside;
    Gemini's compatibility endpoint omits it and only the total shows it). The total tells
    which convention a response follows; reasoning is billed as output either way.
    """
    if prompt is None or completion is None or total is None:
        return completion, reasoning
    if reasoning and total == prompt + completion + reasoning:
        return completion + reasoning, reasoning
    if reasoning is None and provider == "gemini" and total > prompt + completion:
        hidden = total - prompt - completion
        return completion + hidden, hidden
    return completion, reasoning


def read_response_object(px: ParsedExchange, obj: dict[str, Any], status: int | None) -> None:
    """A Responses API ``response`` object (non-stream body or a stream's final event).

    The finish reason is the response ``status``; for ``incomplete`` it is the more telling
    ``incomplete_details.reason`` (``max_output_tokens``, ``content_filter``).
    """
    px.response_model = short_str(obj.get("model")) or px.response_model
    state = as_str(obj.get("status"))
    reason = as_str(dig(obj, "incomplete_details", "reason"))
    px.finish_reason = reason if state == "incomplete" and reason else state
    px.user_id = px.user_id or short_str(obj.get("user")) or short_str(obj.get("safety_identifier"))
    err = obj.get("error")
    if isinstance(err, dict):
        apply_error(px, status, err.get("message"), err.get("code"), err.get("type"))
    read_openai_usage(px, obj.get("usage"))


# ------------------------------------------------------------------ chat completion SSE


class _Choice:
    """Accumulates one choice index of a chat/text completion stream."""

    __slots__ = ("role", "content", "refusal", "reasoning", "reasoning_key", "tools",
                 "function_call", "finish_reason")

    def __init__(self) -> None:
        self.role: str = "assistant"
        self.content: list[str] = []
        self.refusal: list[str] = []
        self.reasoning: list[str] = []
        self.reasoning_key = "reasoning_content"
        self.tools: dict[int, dict[str, Any]] = {}
        self.function_call: dict[str, list[str]] | None = None
        self.finish_reason: str | None = None

    def add_delta(self, delta: dict[str, Any]) -> None:
        """Fold one ``delta``; iterates its keys because a delta usually carries just one."""
        for key, value in delta.items():
            if key == "content":
                if type(value) is str:
                    self.content.append(value)
            elif key == "reasoning_content" or key == "reasoning":
                if type(value) is str:
                    self.reasoning.append(value)
                    self.reasoning_key = key
            elif key == "tool_calls":
                if type(value) is list:
                    for call in value:
                        if isinstance(call, dict):
                            self._add_tool_call(call)
            elif key == "role":
                if type(value) is str:
                    self.role = value
            elif key == "refusal":
                if type(value) is str:
                    self.refusal.append(value)
            elif key == "function_call" and isinstance(value, dict):
                fc = self.function_call or {"name": [], "arguments": []}
                self.function_call = fc
                for part in ("name", "arguments"):
                    piece = value.get(part)
                    if type(piece) is str:
                        fc[part].append(piece)

    def _add_tool_call(self, call: dict[str, Any]) -> None:
        index = call.get("index")
        if type(index) is not int:
            index = len(self.tools)
        tool = self.tools.get(index)
        if tool is None:
            tool = {"id": None, "type": "function", "name": [], "arguments": []}
            self.tools[index] = tool
        if type(call.get("id")) is str:
            tool["id"] = call["id"]
        if type(call.get("type")) is str:
            tool["type"] = call["type"]
        function = call.get("function")
        if isinstance(function, dict):
            for key in ("name", "arguments"):
                piece = function.get(key)
                if type(piece) is str:
                    tool[key].append(piece)

    def as_chat_choice(self, index: int) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": self.role,
            "content": "".join(self.content) if self.content else None,
        }
        if self.refusal:
            message["refusal"] = "".join(self.refusal)
        if self.reasoning:
            message[self.reasoning_key] = "".join(self.reasoning)
        if self.tools:
            message["tool_calls"] = [
                {
                    "id": tool["id"],
                    "type": tool["type"],
                    "function": {"name": "".join(tool["name"]),
                                 "arguments": "".join(tool["arguments"])},
                }
                for _, tool in sorted(self.tools.items())
            ]
        if self.function_call is not None:
            message["function_call"] = {k: "".join(v) for k, v in self.function_call.items()}
        return {"index": index, "message": message, "logprobs": None,
                "finish_reason": self.finish_reason}

    def as_text_choice(self, index: int) -> dict[str, Any]:
        return {"index": index, "text": "".join(self.content), "logprobs": None,
                "finish_reason": self.finish_reason}


_HEAD_KEYS = ("id", "created", "model", "system_fingerprint", "service_tier")
_EMPTY = (None, "", 0)


def assemble_chat_stream(
    px: ParsedExchange, events: list[SSEEvent], status: int | None
) -> dict[str, Any] | None:
    """Rebuild the ``chat.completion`` (or ``text_completion``) a stream of chunks adds up to.

    Content, refusals, reasoning and tool-call arguments are concatenated per choice and per
    tool-call index; the last usage seen wins (it arrives in a final chunk with
    ``stream_options.include_usage``, or per chunk on some compatible servers). Fills the
    model, finish reason, usage and any in-stream error into ``px``.
    """
    head: dict[str, Any] = {}
    choices: dict[int, _Choice] = {}
    usage: dict[str, Any] | None = None
    text_completion = False
    seen = False
    head_done = False
    for _, chunk in parse_events(events):  # skips "[DONE]" and keep-alives
        seen = True
        if isinstance(chunk.get("error"), (dict, str)):
            read_error_body(px, status, chunk)
            continue
        if not head_done:  # first non-empty values: Azure opens with an anonymous chunk
            for key in _HEAD_KEYS:
                if key not in head and chunk.get(key) not in _EMPTY:
                    head[key] = chunk[key]
            head_done = "id" in head and "model" in head
        if chunk.get("object") == "text_completion":
            text_completion = True
        chunk_usage = chunk.get("usage")
        if not isinstance(chunk_usage, dict):
            chunk_usage = dig(chunk, "x_groq", "usage")
        if isinstance(chunk_usage, dict):
            usage = chunk_usage
        for raw in as_list(chunk.get("choices")):
            if not isinstance(raw, dict):
                continue
            index = raw.get("index")
            if type(index) is not int:
                index = 0
            choice = choices.get(index)
            if choice is None:
                choice = choices[index] = _Choice()
            delta = raw.get("delta")
            if isinstance(delta, dict):
                choice.add_delta(delta)
            text = raw.get("text")
            if type(text) is str:
                choice.content.append(text)
                text_completion = True
            reason = raw.get("finish_reason")
            if type(reason) is str and reason:
                choice.finish_reason = reason
    if not seen:
        return None
    px.response_model = short_str(head.get("model"))
    ordered = sorted(choices.items())
    if ordered:
        px.finish_reason = ordered[0][1].finish_reason
    read_openai_usage(px, usage)
    if text_completion:
        out_choices = [c.as_text_choice(i) for i, c in ordered]
        obj = "text_completion"
    else:
        out_choices = [c.as_chat_choice(i) for i, c in ordered]
        obj = "chat.completion"
    assembled: dict[str, Any] = {"id": head.get("id"), "object": obj}
    for key in ("created", "model", "system_fingerprint", "service_tier"):
        if key in head:
            assembled[key] = head[key]
    assembled["choices"] = out_choices
    if usage is not None:
        assembled["usage"] = usage
    return assembled


# -------------------------------------------------------------------- Responses API SSE

_TERMINAL = {"response.completed", "response.incomplete", "response.failed", "response.cancelled"}
_SNAPSHOT = {"response.created", "response.in_progress", "response.queued"}


def _looks_like_responses_stream(events: list[SSEEvent]) -> bool:
    """A Responses stream on a path we did not classify (a gateway's custom route)."""
    for name, data in events[:3]:
        if (name or "").startswith("response.") or '"type":"response.' in data[:80]:
            return True
    return False


def assemble_responses_stream(
    px: ParsedExchange, events: list[SSEEvent], status: int | None
) -> dict[str, Any] | None:
    """The ``response`` object a Responses stream ends with.

    ``response.completed`` (or ``incomplete``/``failed``) carries the whole response with
    usage, so it is taken as is. A stream cut off before it is rebuilt from the latest
    snapshot, the finished output items and the text/argument deltas of unfinished ones; its
    finish reason and usage then stay unknown, which is the truth.
    """
    final: dict[str, Any] | None = None
    snapshot: dict[str, Any] | None = None
    items: dict[int, Any] = {}
    texts: dict[int, list[str]] = {}
    arguments: dict[int, list[str]] = {}
    for name, event in parse_events(events):
        kind = _event_type(event, name)
        if kind in _TERMINAL:
            response = event.get("response")
            if isinstance(response, dict):
                final = response
        elif kind in _SNAPSHOT:
            response = event.get("response")
            if isinstance(response, dict):
                snapshot = response
        elif kind in ("response.output_item.added", "response.output_item.done"):
            index = event.get("output_index")
            if type(index) is int and isinstance(event.get("item"), dict):
                items[index] = event["item"]
                if kind.endswith("done"):
                    texts.pop(index, None)
                    arguments.pop(index, None)
        elif kind == "response.output_text.delta":
            _append(texts, event)
        elif kind == "response.function_call_arguments.delta":
            _append(arguments, event)
        elif kind == "error" or kind == "response.error":
            err = event.get("error") if isinstance(event.get("error"), dict) else event
            apply_error(px, status, err.get("message"), err.get("code"), err.get("type"))
    if final is not None:
        read_response_object(px, final, status)
        return final
    if snapshot is None and not items and not texts:
        return None
    rebuilt = dict(snapshot or {"object": "response", "status": "in_progress"})
    rebuilt["output"] = [_finish_item(items.get(i), texts.get(i), arguments.get(i))
                         for i in sorted(set(items) | set(texts) | set(arguments))]
    px.response_model = short_str(rebuilt.get("model"))
    return rebuilt


def _append(parts: dict[int, list[str]], event: dict[str, Any]) -> None:
    index = event.get("output_index")
    delta = event.get("delta")
    if type(index) is int and type(delta) is str:
        parts.setdefault(index, []).append(delta)


def _finish_item(item: Any, text: list[str] | None, args: list[str] | None) -> dict[str, Any]:
    """An output item completed with the deltas received for it before the stream ended."""
    out = dict(item) if isinstance(item, dict) else {"type": "message", "role": "assistant"}
    if text is not None:
        out["content"] = [{"type": "output_text", "text": "".join(text), "annotations": []}]
    if args is not None:
        out["arguments"] = "".join(args)
    return out


# ------------------------------------------------------------------------- first token

# Delta keys that carry generated output; a first chunk holding only ``role`` (and an empty
# ``content``) is framing, and so is a final chunk with only a finish reason or usage.
_TOKEN_DELTA_KEYS = ("content", "tool_calls", "function_call", "refusal", "reasoning_content",
                     "reasoning", "audio")


def chat_chunk_has_token(chunk: dict[str, Any], name: str | None = None) -> bool | None:
    """Whether a chat (or legacy text) completion chunk carries generated output; ``None``
    when it is not such a chunk. Used to time the first token (``ttfb_ms``)."""
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return None
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        if isinstance(delta, dict) and any(delta.get(key) for key in _TOKEN_DELTA_KEYS):
            return True
        text = choice.get("text")
        if type(text) is str and text:
            return True
    return False


def responses_event_has_token(event: dict[str, Any], name: str | None = None) -> bool | None:
    """Whether a Responses API stream event carries generated output; ``None`` when it is not
    such an event. Every ``response.….delta`` (output text, refusal, function-call and tool
    arguments, reasoning text and summaries, audio) is generated by the model; snapshots,
    item and part boundaries are framing."""
    kind = _event_type(event, name)
    if type(kind) is not str or not kind.startswith("response."):
        return None
    return kind.endswith(".delta") and bool(event.get("delta"))
