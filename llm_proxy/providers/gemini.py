"""Google Gemini (Generative Language API and Vertex AI): ``models/{model}:generateContent``,
``:streamGenerateContent`` (SSE with ``?alt=sse``, otherwise a JSON array streamed element by
element), ``:countTokens``, embeddings, model listing and ``{"error": {...}}`` bodies.

Gemini's ``promptTokenCount`` already includes cached content (as OpenTelemetry wants), while
thinking tokens are reported beside the candidates' tokens; the record's ``output_tokens``
includes them (billed as output, like OpenAI's reasoning tokens) and ``reasoning_tokens``
breaks them out.
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
    as_list,
    as_str,
    dig,
    drop_output_usage,
    dumps,
    iter_array_elements,
    loads,
    parse_events,
    read_common_request,
    read_error_body,
    salvage_str,
    short_str,
)
from .sse import split_events

__all__ = ["gemini_operation", "parse_gemini", "read_generate_response", "merge_chunks",
           "gemini_chunk_has_token"]

_MODEL_METHOD = re.compile(r"/(?:models|tunedModels)/([^/:]+):([A-Za-z]+)")
_MODELS_LIST = re.compile(r"/models(?:/[^/:]+)?$")
_METHODS = {
    "generateContent": "generate_content",
    "streamGenerateContent": "generate_content",
    "countTokens": "count_tokens",
    "embedContent": "embeddings",
    "batchEmbedContents": "embeddings",
    "batchGenerateContent": "batches",
    "predict": "predict",
    "predictLongRunning": "predict",
}


def gemini_operation(endpoint: str) -> tuple[str | None, str | None, bool]:
    """(operation, model, is_stream_method) from a Gemini/Vertex path."""
    match = _MODEL_METHOD.search(endpoint)
    if match:
        method = match.group(2)
        model = short_str(unquote(match.group(1)))
        return _METHODS.get(method, method), model, method == "streamGenerateContent"
    if _MODELS_LIST.search(endpoint):
        return "models", None, False
    if "/cachedContents" in endpoint:
        return "cached_contents", None, False
    if "/files" in endpoint:
        return "files", None, False
    return None, None, False


def parse_gemini(px: ParsedExchange, ex: Exchange) -> None:
    """Fill ``px`` from a Gemini exchange; the model comes from the path."""
    read_common_request(px, ex)
    operation, model, stream_method = gemini_operation(ex.endpoint)
    px.operation = operation
    px.request_model = model or px.request_model
    if stream_method:
        px.stream = True
    elif px.stream is None and ex.request is not None:
        px.stream = False
    text = ex.response_text
    if not text:
        return
    head = text[:64].lstrip()
    if ex.response_is_sse:
        px.stream = True
        chunks = [chunk for _, chunk in parse_events(split_events(text))]
    elif head[:1] == "[":
        whole = loads(text)
        chunks = whole if isinstance(whole, list) else iter_array_elements(text)
    else:
        body = loads(text)
        if isinstance(body, dict):
            if operation == "count_tokens":
                read_count_tokens(px, body, ex.status)
            else:
                read_generate_response(px, body, ex.status)
        elif body is None:
            px.response_model = salvage_str(text, "modelVersion")
            px.finish_reason = salvage_str(text, "finishReason")
        return
    for chunk in chunks:
        if isinstance(chunk, dict) and isinstance(chunk.get("error"), dict):
            read_error_body(px, ex.status, chunk)
    merged = merge_chunks(chunks)
    if merged:
        read_generate_response(px, merged, ex.status)
        if px.finish_reason is None and px.usage_reported:
            drop_output_usage(px)  # cut off: the counts so far are not the final usage
        px.assembled_response = dumps(merged)


def read_count_tokens(px: ParsedExchange, body: dict[str, Any], status: int | None) -> None:
    """A token count, not consumption: the call is free, so no usage is reported."""
    if read_error_body(px, status, body):
        return
    px.input_tokens = as_int(body.get("totalTokens"))
    px.cached_input_tokens = as_int(body.get("cachedContentTokenCount"))


def read_generate_response(px: ParsedExchange, body: dict[str, Any], status: int | None) -> None:
    """A GenerateContentResponse (or the merge of a stream's chunks)."""
    if isinstance(body.get("error"), dict):
        read_error_body(px, status, body)
        return
    px.response_model = short_str(body.get("modelVersion"))
    reason = as_str(dig(body, "candidates", 0, "finishReason"))
    if reason is None and not body.get("candidates"):
        reason = as_str(dig(body, "promptFeedback", "blockReason"))  # prompt was blocked
    px.finish_reason = reason
    usage = body.get("usageMetadata")
    if not isinstance(usage, dict):
        return
    prompt = as_int(usage.get("promptTokenCount"))
    candidates = as_int(usage.get("candidatesTokenCount"))
    thoughts = as_int(usage.get("thoughtsTokenCount"))
    tool_prompt = as_int(usage.get("toolUsePromptTokenCount"))
    cached = as_int(usage.get("cachedContentTokenCount"))
    total = as_int(usage.get("totalTokenCount"))
    output = add_ints(candidates, thoughts)
    if output is None and (prompt is not None or total is not None):
        output = 0  # proto3 JSON omits zero counts
    apply_usage(
        px,
        input_tokens=add_ints(prompt, tool_prompt),
        output_tokens=output,
        total_tokens=total,
        cached=cached,
        reasoning=thoughts,
    )


def merge_chunks(chunks: list[Any]) -> dict[str, Any]:
    """One GenerateContentResponse from the chunks of a stream.

    Candidates are merged by index: consecutive text parts of the same kind (answer or
    thought) are concatenated, other parts (function calls, inline data) kept in order; the
    finish reason, safety ratings, usage and model version of the latest chunk win.
    """
    merged: dict[str, Any] = {}
    candidates: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        if not isinstance(chunk, dict) or "error" in chunk:
            continue
        for key, value in chunk.items():
            if key == "candidates":
                merged.setdefault("candidates", None)
                for candidate in as_list(value):
                    if isinstance(candidate, dict):
                        _merge_candidate(candidates, candidate)
            elif value is not None:
                merged[key] = value
    if candidates:
        merged["candidates"] = [candidates[i] for i in sorted(candidates)]
    elif "candidates" in merged:
        del merged["candidates"]
    return merged


def _merge_candidate(candidates: dict[int, dict[str, Any]], candidate: dict[str, Any]) -> None:
    index = candidate.get("index")
    if type(index) is not int:
        index = 0
    current = candidates.get(index)
    if current is None:
        current = candidates[index] = {"content": {"parts": [], "role": "model"}}
    content = candidate.get("content")
    if isinstance(content, dict):
        if type(content.get("role")) is str:
            current["content"]["role"] = content["role"]
        parts = current["content"]["parts"]
        for part in as_list(content.get("parts")):
            if isinstance(part, dict):
                _merge_part(parts, part)
    for key, value in candidate.items():
        if key != "content":
            current[key] = value


def _merge_part(parts: list[dict[str, Any]], part: dict[str, Any]) -> None:
    text = part.get("text")
    last = parts[-1] if parts else None
    if (
        type(text) is str
        and last is not None
        and type(last.get("text")) is str
        and last.get("thought") == part.get("thought")
        and part.keys() <= {"text", "thought", "thoughtSignature"}
    ):
        last["text"] += text
        if "thoughtSignature" in part:
            last["thoughtSignature"] = part["thoughtSignature"]
        return
    parts.append(dict(part))


_TOKEN_PART_KEYS = ("text", "functionCall", "executableCode", "codeExecutionResult", "inlineData")


def gemini_chunk_has_token(chunk: dict[str, Any], name: str | None = None) -> bool | None:
    """Whether a ``GenerateContentResponse`` chunk carries generated output (text, thought
    text, a function call, code, inline data); ``None`` when it is not such a chunk. A
    usage-only or safety-only chunk is framing."""
    candidates = chunk.get("candidates")
    if not isinstance(candidates, list):
        return False if isinstance(chunk.get("usageMetadata"), dict) else None
    for candidate in candidates:
        for part in as_list(dig(candidate, "content", "parts")):
            if isinstance(part, dict) and any(part.get(key) for key in _TOKEN_PART_KEYS):
                return True
    return False
