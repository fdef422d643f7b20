"""Token estimates for exchanges whose provider reported no usage.

OpenAI streams without ``stream_options.include_usage``, a stream cut off before its usage
event, or an API that never reports usage still cost money; a record with tokens estimated (and
``usage_source = "estimated"``) is better than one that silently costs $0.

With ``tiktoken`` importable and its encoding available offline, text is counted with the
model's encoding (``o200k_base`` for current OpenAI models, ``cl100k_base`` for older ones).
Otherwise a documented heuristic is used, close to the tokenizers on English text and code:

    tokens = ceil(ASCII characters / 4 + CJK characters * 1 + other characters / 3)

Only the text a model reads or writes is counted: JSON string values of a body, skipping keys
that are metadata (model, role, ids, …) or binary payloads (base64 images, data: URLs), plus a
small per-message overhead (3 tokens per message, 3 per request), as OpenAI's chat format adds.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = [
    "NO_OUTPUT_OPERATIONS",
    "estimate_tokens",
    "estimate_usage",
    "extract_text",
    "heuristic_tokens",
]

# Operations whose response carries no generated text (vectors, counts, listings).
NO_OUTPUT_OPERATIONS = frozenset({"embeddings", "count_tokens", "models", "moderations"})
_MESSAGE_OVERHEAD = 3
_REQUEST_OVERHEAD = 3
_MAX_TEXT = 4 * 1024 * 1024  # bounded work per body; bodies are capped upstream anyway

_SKIP_KEYS = frozenset({
    "model", "role", "type", "id", "object", "created", "created_at", "stream", "user",
    "metadata", "finish_reason", "stop_reason", "stop_sequence", "index", "logprobs",
    "system_fingerprint", "service_tier", "signature", "encrypted_content", "data", "url",
    "b64_json", "mime_type", "mimetype", "media_type", "detail", "usage", "usagemetadata",
    "embedding", "safety_identifier", "prompt_cache_key", "status", "tool_call_id",
    "response_id", "previous_response_id", "store", "modelversion", "finishreason",
    "safetyratings", "avglogprobs", "file_id", "format", "reasoning_effort", "cache_control",
})
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_MESSAGE_LISTS = ("messages", "contents", "input")

_encoders: dict[str, Any] = {}


def heuristic_tokens(text: str) -> int:
    """The documented heuristic: ASCII/4 + CJK*1 + other/3, rounded up."""
    if not text:
        return 0
    if text.isascii():
        return math.ceil(len(text) / 4)
    cjk = len(_CJK.findall(text))
    ascii_chars = sum(1 for ch in text if ch < "\x80")
    other = len(text) - ascii_chars - cjk
    return math.ceil(ascii_chars / 4 + cjk + other / 3)


def _encoder(model: str | None) -> Any:
    """A tiktoken encoding for ``model``, or None (not installed, encoding not available)."""
    name_lc = (model or "").lower()
    legacy = name_lc == "gpt-4" or name_lc.startswith(("gpt-4-", "gpt-3.5"))
    name = "cl100k_base" if legacy else "o200k_base"
    if name in _encoders:
        return _encoders[name]
    try:
        import tiktoken

        enc = tiktoken.get_encoding(name)
    except Exception:  # noqa: BLE001 - optional: not installed, or no encoding file offline
        enc = None
    _encoders[name] = enc
    return enc


def estimate_tokens(text: str | None, model: str | None = None) -> int:
    """Tokens in ``text``: tiktoken when it is usable, else the heuristic."""
    if not text:
        return 0
    text = text[:_MAX_TEXT]
    enc = _encoder(model)
    if enc is None:
        return heuristic_tokens(text)
    try:
        return len(enc.encode(text, disallowed_special=()))
    except Exception:  # noqa: BLE001 - an estimate must never fail the record
        return heuristic_tokens(text)


def extract_text(body: str | None) -> tuple[str, int]:
    """(the model-visible text of a JSON body, number of messages); raw text if not JSON."""
    if not body:
        return "", 0
    try:
        doc = json.loads(body[:_MAX_TEXT])
    except (ValueError, RecursionError):
        return body[:_MAX_TEXT], 0
    parts: list[str] = []
    messages = 0
    if isinstance(doc, dict):
        for key in _MESSAGE_LISTS:
            value = doc.get(key)
            if isinstance(value, list):
                messages += sum(1 for m in value if isinstance(m, dict))
    stack: list[Any] = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if not node.startswith("data:"):
                parts.append(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key.lower() not in _SKIP_KEYS:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    parts.reverse()
    return "\n".join(parts), messages


def estimate_usage(*, provider: str | None, operation: str | None, request_body: str | None,
                   response_body: str | None, model: str | None = None) -> tuple[int, int]:
    """(input_tokens, output_tokens) estimated from the decoded request and response bodies.

    ``response_body`` should be the assembled message for streams. Operations without generated
    output (embeddings, token counting) get 0 output tokens.
    """
    del provider  # the text extraction is provider-agnostic; kept for a stable call signature
    text, messages = extract_text(request_body)
    input_tokens = estimate_tokens(text, model)
    if input_tokens or messages:
        input_tokens += messages * _MESSAGE_OVERHEAD + _REQUEST_OVERHEAD
    if operation in NO_OUTPUT_OPERATIONS:
        return input_tokens, 0
    out_text, _ = extract_text(response_body)
    return input_tokens, estimate_tokens(out_text, model)
