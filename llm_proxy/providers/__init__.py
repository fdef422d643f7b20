"""Turn one HTTP exchange with an LLM API into the LLM fields of an audit record.

Pure functions: no I/O, no mitmproxy. ``parse_exchange`` runs once per record in the
store's background worker, so it is built to be cheap (one ``json.loads`` per body, no
per-field re-parsing) and it never raises: provider bodies are untrusted input, and a record
with what could be read beats a lost record. Each provider family has its own module; this
one picks the family from the host and path and finishes the cross-provider fields.

Families: ``openai`` (OpenAI and every OpenAI-compatible API, Azure included),
``anthropic``, ``gemini``, ``bedrock``, ``cohere``, and a sniffing fallback for unknown
hosts. Where a vendor serves another family's format (Gemini's and Anthropic's
OpenAI-compatible endpoints, gpt-oss on Bedrock) the family follows the path while the
provider name stays the vendor's.
"""

from __future__ import annotations

from ._common import (
    Exchange,
    ParsedExchange,
    loads,
    loads_obj,
    read_error_body,
    status_error_type,
    text_error_message,
)
from .anthropic import message_event_has_token, parse_anthropic
from .bedrock import parse_bedrock
from .cohere import cohere_event_has_token, parse_cohere
from .gemini import gemini_chunk_has_token, parse_gemini
from .generic import parse_unknown
from .hosts import KNOWN_LLM_HOSTS, detect_provider, is_anthropic_path, is_llm_host
from .openai import chat_chunk_has_token, parse_openai, responses_event_has_token
from .sse import iter_events_at

__all__ = [
    "ParsedExchange",
    "PROVIDERS",
    "KNOWN_LLM_HOSTS",
    "detect_provider",
    "first_token_offset",
    "is_llm_host",
    "parse_exchange",
]

PROVIDERS: tuple[str, ...] = (
    "openai", "anthropic", "azure_openai", "gemini", "mistral", "groq", "openrouter",
    "deepseek", "xai", "together", "fireworks", "cohere", "bedrock", "unknown",
)

# Tests flip this to make the safety net re-raise, so that robustness is proven by the
# parsers themselves and not by the catch-all below.
_STRICT = False


def parse_exchange(
    *,
    host: str,
    path: str,
    method: str,
    status_code: int | None,
    request_body: str | None,
    response_body: str | None,
    response_content_type: str | None,
) -> ParsedExchange:
    """The LLM fields of one exchange. Never raises; returns whatever could be read.

    ``path`` may carry a query string. Bodies are decompressed, decoded text, possibly
    truncated or not JSON at all. For streamed responses ``assembled_response`` holds the
    message the stream added up to, in the provider's non-stream response shape.
    """
    px = ParsedExchange(provider="unknown")
    try:
        _parse(px, host, path, status_code, request_body, response_body, response_content_type)
    except Exception:
        if _STRICT:
            raise
    return px


def _parse(
    px: ParsedExchange,
    host: object,
    path: object,
    status_code: object,
    request_body: object,
    response_body: object,
    content_type: object,
) -> None:
    endpoint = path.partition("?")[0] if isinstance(path, str) else ""
    host_text = host if isinstance(host, str) else ""
    request_text = _text(request_body)
    ex = Exchange(
        endpoint=endpoint,
        status=status_code if type(status_code) is int else None,
        request_text=request_text,
        response_text=_text(response_body),
        content_type=content_type.lower() if isinstance(content_type, str) else "",
        request=loads_obj(request_text) if request_text[:64].lstrip()[:1] == "{" else None,
    )
    px.provider = detect_provider(host_text, endpoint)
    _FAMILIES[_family(px.provider, endpoint)](px, ex)
    _finish_error(px, ex)


def _text(body: object) -> str:
    if isinstance(body, str):
        return body
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body).decode("utf-8", "replace")
    return ""


def _family(provider: str, endpoint: str) -> str:
    """Which parser reads this provider at this path."""
    openai_shaped = endpoint.endswith(("/chat/completions", "/embeddings")) or (
        "/openai/" in endpoint
    )
    match provider:
        case "bedrock":
            return "openai" if openai_shaped else "bedrock"
        case "gemini":
            return "openai" if openai_shaped or "/endpoints/openapi/" in endpoint else "gemini"
        case "anthropic":
            return "openai" if endpoint.endswith("/chat/completions") else "anthropic"
        case "cohere":
            return "openai" if "/compatibility/" in endpoint else "cohere"
        case "unknown":
            return "unknown"
        case _:  # OpenAI-compatible vendors; Azure AI Foundry also serves Claude's API
            return "anthropic" if is_anthropic_path(endpoint) else "openai"


def _finish_error(px: ParsedExchange, ex: Exchange) -> None:
    """A failed status always yields an error type, from the body if a parser missed it."""
    status = ex.status
    if status is None or status < 400 or px.error_type is not None:
        return
    text = ex.response_text
    body = loads(text) if text[:64].lstrip()[:1] in ("{", "[") else None
    if isinstance(body, list) and body:
        body = body[0]  # Gemini's array stream answering with an error
    if not read_error_body(px, status, body):
        px.error_type = status_error_type(status)
    if px.error_message is None and text and not isinstance(body, (dict, list)):
        px.error_message = text_error_message(text)


_FAMILIES = {
    "openai": parse_openai,
    "anthropic": parse_anthropic,
    "gemini": parse_gemini,
    "bedrock": parse_bedrock,
    "cohere": parse_cohere,
    "unknown": parse_unknown,
}


# ------------------------------------------------------------------------- first token

# Each answers True (carries a token), False (this family's framing) or None (not its shape).
# The shapes do not overlap — typed events first (Anthropic, Responses, Cohere v2), then
# OpenAI's ``choices`` and Gemini's ``candidates`` — so no family needs to be known.
_TOKEN_TESTS = (message_event_has_token, responses_event_has_token, cohere_event_has_token,
                chat_chunk_has_token, gemini_chunk_has_token)


def _has_token(name: str | None, data: str) -> bool | None:
    event = loads_obj(data) if data[:1] == "{" else None
    if event is None:
        return None  # "[DONE]", a non-JSON payload
    for test in _TOKEN_TESTS:
        verdict = test(event, name)
        if verdict is not None:
            return verdict
    return False if "error" in event else None


def first_token_offset(body: bytes, limit: int | None = None) -> int | None:
    """Where the event carrying the first generated token is complete in a raw event-stream
    body (the last byte of its blank line), as a byte offset.

    ``body`` is the stream as it came off the wire (not content-encoded), so that the
    offset can be matched to the chunk that brought it; events from ``limit`` on are not
    looked at. The first event carrying output counts (text, reasoning, a tool call, a
    refusal), not the framing before it (Anthropic's ``message_start`` and ``ping``,
    OpenAI's role-only delta, ``response.created``, keep-alive comments). A stream of a shape
    no family knows counts from its first data event; a known stream without any token (an
    error, a client gone before the first token) answers ``None``. Never raises.
    """
    first_data: int | None = None
    framed = False
    try:
        for offset, name, data in iter_events_at(body, limit):
            verdict = _has_token(name, data)
            if verdict:
                return offset
            if first_data is None:
                first_data = offset
            framed = framed or verdict is False
    except Exception:
        if _STRICT:
            raise
        return None
    return None if framed else first_data
