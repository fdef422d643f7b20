"""Shared building blocks for the provider parsers: the result type, the exchange context,
tolerant JSON access, usage bookkeeping and error normalisation.

Everything here is defensive by construction: provider bodies are untrusted (a proxy sees
whatever the upstream or a broken client sends), and a parser must return what it could read
instead of raising. The helpers therefore accept ``object`` and answer ``None`` when the value
has the wrong type, instead of assuming a shape.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ParsedExchange",
    "Exchange",
    "loads",
    "loads_obj",
    "parse_events",
    "dumps",
    "get",
    "event_type",
    "dig",
    "as_list",
    "as_int",
    "as_str",
    "short_str",
    "add_ints",
    "apply_usage",
    "drop_output_usage",
    "apply_error",
    "normalise_error_type",
    "status_error_type",
    "salvage_str",
    "read_common_request",
    "iter_json_values",
    "iter_array_elements",
    "read_error_body",
    "text_error_message",
]

INT64_MAX = 2**63 - 1
ID_LIMIT = 512  # user ids / model names are grouping keys, not content
MESSAGE_LIMIT = 4096  # error messages: enough to diagnose, bounded against hostile bodies


@dataclass(slots=True)
class ParsedExchange:
    """The LLM fields of one audit record, as far as they could be read from the exchange."""

    provider: str
    operation: str | None = None
    request_model: str | None = None
    stream: bool | None = None
    user_id: str | None = None
    response_model: str | None = None
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    total_tokens: int | None = None
    cache_status: str = "none"
    usage_reported: bool = False
    assembled_response: str | None = None
    error_type: str | None = None
    error_message: str | None = None


@dataclass(slots=True)
class Exchange:
    """What a family parser needs to know about the exchange, normalised once."""

    endpoint: str  # path without query, as sent
    status: int | None
    request_text: str
    response_text: str
    content_type: str  # lower-cased, "" when unknown
    request: dict[str, Any] | None  # the request body when it is a JSON object

    @property
    def response_is_sse(self) -> bool:
        """True for a Server-Sent Events body, by content type or, when that is missing or
        generic, by its first bytes (some gateways strip or mislabel the content type)."""
        if "event-stream" in self.content_type and "amazon" not in self.content_type:
            return True
        head = self.response_text[:16].lstrip()
        return head.startswith(("data:", "event:", ":", "id:", "retry:"))


# ---------------------------------------------------------------------------------- JSON


def loads(text: object) -> Any:
    """``json.loads`` that answers ``None`` instead of raising.

    Covers malformed and truncated JSON, a UTF-8 BOM, ints longer than Python's digit limit
    (ValueError) and pathological nesting (RecursionError).
    """
    if not isinstance(text, str) or not text:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        if text[0] == "\ufeff":
            return loads(text[1:])
        return None


def loads_obj(text: object) -> dict[str, Any] | None:
    """The body as a JSON object, or ``None`` when it is anything else."""
    value = loads(text)
    return value if isinstance(value, dict) else None


def dumps(value: object) -> str | None:
    """Compact JSON for the stored assembled response; ``None`` if it cannot be encoded.

    Non-ASCII text is kept readable, except when it holds lone surrogates (from a
    surrogate-escaped body), which would break the UTF-8 writers downstream.
    """
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (ValueError, TypeError, RecursionError):
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=True)
    return text


def parse_events(events: list[tuple[str | None, str]]) -> list[tuple[str | None, dict[str, Any]]]:
    """The JSON-object events of a stream, decoded, with their SSE names.

    All payloads are decoded in one ``json.loads`` of a synthetic array, which costs a third
    less than one call per chunk (streams have hundreds); if that fails (a truncated last
    event, a non-JSON payload) or the element count does not match, each is decoded alone.
    """
    picked = [(name, data) for name, data in events if data[:1] == "{"]
    if not picked:
        return []
    values: Any = None
    try:
        values = json.loads("[" + ",".join(data for _, data in picked) + "]")
    except (ValueError, RecursionError):
        pass
    if not isinstance(values, list) or len(values) != len(picked):
        values = [loads(data) for _, data in picked]
    return [(name, value) for (name, _), value in zip(picked, values) if isinstance(value, dict)]


_DECODER = json.JSONDecoder()
_SKIP_SEPARATORS = re.compile(r"[\s,]*")


def iter_array_elements(text: str) -> list[Any]:
    """The complete elements of a JSON array whose end may be cut off.

    Gemini streams ``streamGenerateContent`` without ``alt=sse`` as one JSON array written
    element by element; when the client hangs up, ``json.loads`` of the whole fails. The
    elements before the cut are decoded and the broken tail is dropped (not rummaged for
    nested objects, which would pass parts of a chunk off as chunks).
    """
    start = text.find("[")
    if start < 0:
        return []
    found: list[Any] = []
    pos = start + 1
    end_of_text = len(text)
    while pos < end_of_text:
        pos = _SKIP_SEPARATORS.match(text, pos).end()  # type: ignore[union-attr]
        if pos >= end_of_text or text[pos] == "]":
            break
        try:
            value, pos = _DECODER.raw_decode(text, pos)
        except (ValueError, RecursionError):
            break
        found.append(value)
    return found


def iter_json_values(text: str, start: int = 0, max_failures: int = 10_000) -> list[Any]:
    """Every JSON value that can be decoded from ``text`` starting at the ``{`` characters
    from ``start`` on, skipping the bytes in between.

    Used for the JSON payloads inside AWS binary event-stream frames, between which lie
    binary length prefixes and checksums. ``max_failures`` bounds the work on a body full of
    stray braces.
    """
    found: list[Any] = []
    pos = start
    failures = 0
    find = text.find
    while failures < max_failures:
        pos = find("{", pos)
        if pos < 0:
            break
        try:
            value, end = _DECODER.raw_decode(text, pos)
        except (ValueError, RecursionError):
            failures += 1
            pos += 1
            continue
        found.append(value)
        pos = end
    return found


# ------------------------------------------------------------------------- safe access


def event_type(event: dict[str, Any], name: str | None) -> str | None:
    """A stream event's type: its ``type`` field when that is a string, else the SSE name."""
    kind = event.get("type")
    return kind if type(kind) is str else name


def get(obj: object, key: str) -> Any:
    """``obj[key]`` when ``obj`` is a dict, else ``None``."""
    return obj.get(key) if isinstance(obj, dict) else None


def dig(obj: object, *keys: str | int) -> Any:
    """Walk dict keys / list indexes; ``None`` as soon as a step does not fit."""
    for key in keys:
        if isinstance(key, int):
            if not isinstance(obj, list) or not -len(obj) <= key < len(obj):
                return None
            obj = obj[key]
        elif isinstance(obj, dict):
            obj = obj.get(key)
        else:
            return None
    return obj


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def as_int(value: object) -> int | None:
    """A token count: a non-negative int that fits a Parquet int64, else ``None``.

    Accepts integral floats and digit strings because some OpenAI-compatible servers emit
    them; rejects bools, NaN/inf and absurd values rather than corrupting sums.
    """
    if type(value) is int:
        return value if 0 <= value <= INT64_MAX else None
    if type(value) is float:
        if math.isfinite(value) and value.is_integer() and 0 <= value <= INT64_MAX:
            return int(value)
        return None
    if type(value) is str and 0 < len(value) <= 18 and value.isascii() and value.isdigit():
        return int(value)
    return None


def as_str(value: object) -> str | None:
    """A non-empty string value, else ``None``."""
    return value if type(value) is str and value else None


def short_str(value: object, limit: int = ID_LIMIT) -> str | None:
    """An identifier-like value (model, user id) as a bounded string.

    Integers are accepted (some clients send numeric user ids); other types are ignored.
    """
    if type(value) is str:
        return value[:limit] if value else None
    if type(value) is int:
        return str(value)[:limit] if abs(value) < 10**limit else None
    return None


def add_ints(*values: int | None) -> int | None:
    """Sum of the values that are present; ``None`` when none is."""
    total = None
    for value in values:
        if value is not None:
            total = value if total is None else total + value
    return total if total is None or total <= INT64_MAX else None


# ----------------------------------------------------------------------------- usage


def apply_usage(
    px: ParsedExchange,
    *,
    input_tokens: int | None,
    output_tokens: int | None,
    total_tokens: int | None = None,
    cached: int | None = None,
    cache_write: int | None = None,
    reasoning: int | None = None,
    cache_info: bool = False,
) -> None:
    """Store normalised usage: ``input_tokens`` already includes cached input.

    ``cache_info`` says whether the provider reported caching at all, which separates a cache
    "miss" (reported, nothing cached) from "none" (nothing reported).
    """
    if input_tokens is None and output_tokens is None and total_tokens is None:
        return
    px.usage_reported = True
    px.input_tokens = input_tokens
    px.output_tokens = output_tokens
    if total_tokens is None and input_tokens is not None and output_tokens is not None:
        total_tokens = add_ints(input_tokens, output_tokens)
    px.total_tokens = total_tokens
    px.cached_input_tokens = cached
    px.cache_write_tokens = cache_write
    px.reasoning_tokens = reasoning
    px.cache_status = cache_status(input_tokens, cached, cache_info or cached is not None)


def drop_output_usage(px: ParsedExchange) -> None:
    """A stream cut off before its final usage: keep the input side (reported up front and
    final), forget output counts that were placeholders or partial, and do not claim that
    usage was reported, so that downstream estimation can take over."""
    px.output_tokens = None
    px.total_tokens = None
    px.reasoning_tokens = None
    px.usage_reported = False


def cache_status(input_tokens: int | None, cached: int | None, cache_info: bool) -> str:
    """hit: all input came from the cache; partial: some; miss: reported, none; none: unknown."""
    if not cache_info:
        return "none"
    if not cached:
        return "miss"
    if input_tokens is not None and cached >= input_tokens:
        return "hit"
    return "partial"


# ----------------------------------------------------------------------------- errors

# Ordered: the first keyword found in the provider's error type/code decides. Keys are
# matched against a lower-cased string with "-", " " and "." turned into "_".
_ERROR_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("insufficient_quota", "quota_exceeded"),
    ("quota", "quota_exceeded"),
    ("billing", "quota_exceeded"),
    ("payment", "quota_exceeded"),
    ("insufficient_credits", "quota_exceeded"),
    ("rate_limit", "rate_limit"),
    ("ratelimit", "rate_limit"),
    ("too_many_requests", "rate_limit"),
    ("throttl", "rate_limit"),
    ("resource_exhausted", "rate_limit"),
    ("overloaded", "overloaded"),
    ("timeout", "timeout"),
    ("timed_out", "timeout"),
    ("deadline_exceeded", "timeout"),
    ("authentication", "authentication"),
    ("unauthenticated", "authentication"),
    ("unauthorized", "authentication"),
    ("invalid_api_key", "authentication"),
    ("api_key_invalid", "authentication"),
    ("unrecognizedclient", "authentication"),
    ("permission", "permission"),
    ("access_denied", "permission"),
    ("accessdenied", "permission"),
    ("forbidden", "permission"),
    ("not_found", "not_found"),
    ("notfound", "not_found"),
    ("content_filter", "content_filter"),
    ("content_policy", "content_filter"),
    ("invalid_request", "invalid_request"),
    ("invalid_argument", "invalid_request"),
    ("bad_request", "invalid_request"),
    ("badrequest", "invalid_request"),
    ("validation", "invalid_request"),
    ("context_length", "invalid_request"),
    ("failed_precondition", "invalid_request"),
    ("server_error", "server_error"),
    ("internal", "server_error"),
    ("api_error", "server_error"),
    ("unavailable", "server_error"),
    ("modelerror", "server_error"),
    ("modelnotready", "server_error"),
    ("modelstreamerror", "server_error"),
)

# Exact provider values whose keywords would mislead (OpenAI rate limits say "requests"/"tokens").
_ERROR_EXACT = {"requests": "rate_limit", "tokens": "rate_limit", "429": "rate_limit"}

_STATUS_ERRORS = {
    401: "authentication",
    402: "quota_exceeded",
    403: "permission",
    404: "not_found",
    408: "timeout",
    429: "rate_limit",
    504: "timeout",
    529: "overloaded",
}


def status_error_type(status: int | None) -> str | None:
    """The error type an HTTP status implies on its own; ``None`` for non-errors."""
    if status is None or status < 400:
        return None
    known = _STATUS_ERRORS.get(status)
    if known:
        return known
    return "server_error" if status >= 500 else "client_error"


def normalise_error_type(status: int | None, *raw: object) -> str:
    """One normalised error type from the provider's own type/code strings and the status.

    Provider vocabularies differ (``rate_limit_error``, ``RESOURCE_EXHAUSTED``,
    ``ThrottlingException``, ``requests``); reports and alerts need one. ``raw`` is ordered
    most specific first (an OpenAI ``code`` before its ``type``). A generic body type
    (``invalid_request_error`` on a 401) yields to a specific status; when the provider's
    words say nothing known, the status decides; an error inside a 2xx stream with no known
    type is a provider-side failure.
    """
    by_status = status_error_type(status)
    for value in raw:
        kind = _raw_error_kind(value)
        if kind is None:
            continue
        if kind in _GENERIC_KINDS and by_status in _SPECIFIC_STATUS_KINDS:
            return by_status
        return kind
    return by_status or "server_error"


_GENERIC_KINDS = frozenset({"invalid_request", "server_error"})
_SPECIFIC_STATUS_KINDS = frozenset(
    {"authentication", "permission", "not_found", "rate_limit", "timeout", "overloaded",
     "quota_exceeded"}
)


def _raw_error_kind(value: object) -> str | None:
    if type(value) is int:
        value = str(value)
    if not isinstance(value, str) or not value:
        return None
    key = value[:200].lower().replace("-", "_").replace(" ", "_").replace(".", "_")
    exact = _ERROR_EXACT.get(key)
    if exact:
        return exact
    for needle, kind in _ERROR_KEYWORDS:
        if needle in key:
            return kind
    return None


def apply_error(
    px: ParsedExchange, status: int | None, message: object, *raw_types: object
) -> None:
    """Record a provider-reported error (first one wins: it is the cause, later ones echo it)."""
    if px.error_type is not None:
        return
    px.error_type = normalise_error_type(status, *raw_types)
    if isinstance(message, str) and message:
        px.error_message = message[:MESSAGE_LIMIT]
    elif isinstance(message, (dict, list)):
        px.error_message = (dumps(message) or "")[:MESSAGE_LIMIT] or None


# ------------------------------------------------------------------ request + salvage


def salvage_str(text: str, key: str) -> str | None:
    """The first top-level-looking ``"key": "value"`` in a body that is not valid JSON.

    For truncated bodies (the proxy caps what it keeps) the model is usually still readable.
    The look-behind skips keys quoted inside JSON strings (``\\"model\\"``).
    """
    pattern = _SALVAGE_CACHE.get(key)
    if pattern is None:
        pattern = re.compile(r'(?<!\\)"' + re.escape(key) + r'"\s*:\s*"((?:[^"\\]|\\.){0,512})"')
        _SALVAGE_CACHE[key] = pattern
    match = pattern.search(text, 0, 1_000_000)
    if not match:
        return None
    raw = match.group(1)
    if "\\" in raw:
        decoded = loads('"' + raw + '"')
        return decoded if isinstance(decoded, str) and decoded else None
    return raw or None


_SALVAGE_CACHE: dict[str, re.Pattern[str]] = {}
_STREAM_TRUE = re.compile(r'(?<!\\)"stream"\s*:\s*true')


def read_common_request(px: ParsedExchange, ex: Exchange) -> None:
    """``model``, ``stream`` and the end-user id, the fields most request bodies share.

    OpenAI-style bodies carry ``user`` / ``safety_identifier``; Anthropic-style bodies carry
    ``metadata.user_id``. A body that is not JSON (typically truncated) is salvaged by regex.
    """
    req = ex.request
    if req is None:
        text = ex.request_text
        if text and text.lstrip()[:1] == "{":
            px.request_model = salvage_str(text, "model")
            if _STREAM_TRUE.search(text, 0, 1_000_000):
                px.stream = True
        return
    px.request_model = short_str(req.get("model"))
    stream = req.get("stream")
    if type(stream) is bool:
        px.stream = stream
    px.user_id = (
        short_str(req.get("user"))
        or short_str(req.get("safety_identifier"))
        or short_str(dig(req, "metadata", "user_id"))
    )


def read_error_body(px: ParsedExchange, status: int | None, body: object) -> bool:
    """Read an error from a JSON body in any of the common provider shapes.

    ``{"error": {"message", "type", "code"}}`` (OpenAI and compatibles, Anthropic inside
    ``{"type": "error"}``, Gemini with ``status``), ``{"error": "text"}``, vLLM's
    ``{"object": "error", "message", ...}`` and AWS's ``{"message"}`` / ``{"Message"}``. Only
    a failed status makes a bare top-level ``message`` an error: successful bodies use that
    key for content (Cohere, Bedrock).
    """
    if not isinstance(body, dict):
        return False
    err = body.get("error")
    if isinstance(err, dict):
        apply_error(
            px, status, err.get("message") or err.get("msg"),
            _detail_reason(err.get("details")),
            err.get("code"), err.get("status"), err.get("type"), err.get("__type"),
        )
        return True
    if isinstance(err, str) and err:
        apply_error(px, status, body.get("message") or err, body.get("code"), body.get("type"), err)
        return True
    failed = (status is not None and status >= 400) or body.get("object") == "error"
    if not failed:
        return False
    message = body.get("message") or body.get("Message") or body.get("detail")
    apply_error(px, status, message, body.get("__type"), body.get("code"), body.get("type"))
    return True


def _detail_reason(details: object) -> str | None:
    """Google's most specific cause (``ErrorInfo.reason``, e.g. ``API_KEY_INVALID``)."""
    if isinstance(details, list):
        for detail in details[:8]:
            reason = get(detail, "reason")
            if isinstance(reason, str) and reason:
                return reason
    return None


_HTML_TITLE = re.compile(r"<(?:title|h1)[^>]*>([^<]{1,300})<", re.IGNORECASE)


def text_error_message(text: str) -> str | None:
    """A short message from a non-JSON error body (a gateway's HTML page, plain text)."""
    head = text[:MESSAGE_LIMIT]
    if head.lstrip()[:1] == "<":
        match = _HTML_TITLE.search(head)
        return " ".join(match.group(1).split()) if match else None
    message = " ".join(head.split())
    return message[:MESSAGE_LIMIT] or None
