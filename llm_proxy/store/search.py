"""Pure search logic: filters → SQL with bound parameters, query text → terms, snippets.

Nothing here touches the store, so every rule a user relies on (what ``--status 4xx`` means,
how ``"exact phrases"`` match, where a snippet is cut) is testable without one. User values are
always bound as parameters, never formatted into SQL; only ``--where`` is SQL by design, and it
passes ``llm_proxy.store.sqlguard`` first.

Text semantics (FTS-like, case-insensitive): TEXT is split into terms — bare words and
``"quoted phrases"``; every term is required somewhere in the request body, the response body or
the error message. A word matches whole words (``falcon`` does not match ``falconry``; ``falc*``
does). A phrase matches its words in order with only separators between them.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from llm_proxy.errors import QueryError
from llm_proxy.store.textindex import SEPARATOR_RE2, TEXT_COLUMNS, words
from llm_proxy.timeparse import parse_time

__all__ = [
    "SUMMARY_COLUMNS",
    "Filters",
    "Term",
    "build_where",
    "parse_terms",
    "prompt_preview",
    "snippet",
    "status_condition",
    "time_range",
]

# What a search returns per record: enough for the table and for scripts; `show` has the rest.
SUMMARY_COLUMNS = (
    "id", "ts", "method", "host", "endpoint", "status_code", "provider", "request_model",
    "response_model", "user_id", "key_id", "input_tokens", "output_tokens", "total_tokens",
    "cost_usd", "latency_ms", "stream", "error_type", "error_message",
)


@dataclass(frozen=True, slots=True)
class Filters:
    """One search as the user gave it; times stay as typed so a saved ``7d`` stays relative."""

    text: str | None = None
    user: str | None = None
    model: str | None = None
    provider: str | None = None
    endpoint: str | None = None
    status: str | None = None
    key_id: str | None = None
    since: str | None = None
    until: str | None = None
    where: str | None = None

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v not in (None, "")}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Filters:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise QueryError(f"unknown filter(s) {', '.join(sorted(unknown))} in saved query")
        return cls(**{k: (None if v is None else str(v)) for k, v in data.items()})

    def merged(self, **overrides: str | None) -> Filters:
        """A copy with the non-empty ``overrides`` replacing saved values."""
        data = self.to_dict()
        data.update({k: v for k, v in overrides.items() if v not in (None, "")})
        return Filters.from_dict(data)


@dataclass(frozen=True, slots=True)
class Term:
    """A required word or phrase: its lower-cased words; ``prefix`` if the last ends in ``*``."""

    words: tuple[str, ...]
    prefix: bool = False
    source: str = field(default="", compare=False)

    def regex(self) -> str:
        """RE2 pattern matching the term as whole words, case-insensitively."""
        sep = SEPARATOR_RE2
        body = f"{sep}+".join(re.escape(w) for w in self.words)
        tail = "" if self.prefix else f"(?:{sep}|$)"
        return f"(?i)(?:^|{sep}){body}{tail}"

    def literal(self) -> str:
        """RE2 pattern of the term's longest word as a plain substring: a fast pre-filter."""
        return "(?i)" + re.escape(max(self.words, key=len))

    def index_keys(self) -> list[tuple[str, bool]]:
        """(word, is_prefix) pairs every matching file's word index must contain."""
        last = len(self.words) - 1
        return [(w, self.prefix and i == last) for i, w in enumerate(self.words)]


def parse_terms(text: str | None) -> list[Term]:
    """``falcon "project x" ref*`` → three terms; raise ``QueryError`` if there is nothing to find."""
    if not text or not text.strip():
        return []
    try:
        parts = shlex.split(text)
    except ValueError:
        raise QueryError(f"search text {text!r} has an unclosed quote") from None
    terms = []
    for part in parts:
        prefix = part.endswith("*")
        ws = words(part.rstrip("*"))
        if ws:
            terms.append(Term(tuple(ws), prefix=prefix, source=part))
    if not terms:
        raise QueryError(f"search text {text!r} has no words to look for (letters or digits)")
    return terms


_STATUS = re.compile(r"^(?:(?P<code>[1-5]\d\d)|(?P<cls>[1-5])xx)$", re.IGNORECASE)


def status_condition(spec: str) -> tuple[str, list[Any]]:
    """``429`` / ``4xx`` / ``429,5xx`` → SQL condition on ``status_code`` and its parameters."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    conds, params = [], []
    for part in parts:
        m = _STATUS.match(part)
        if not m:
            raise QueryError(f"--status {spec!r} is not understood: use a code like 429, a class "
                             "like 4xx or 5xx, or a comma list such as 429,5xx")
        if m["code"]:
            conds.append("status_code = ?")
            params.append(int(m["code"]))
        else:
            base = int(m["cls"]) * 100
            conds.append("status_code BETWEEN ? AND ?")
            params += [base, base + 99]
    if not conds:
        raise QueryError("--status is empty: use a code like 429 or a class like 4xx")
    return "(" + " OR ".join(conds) + ")", params


def _like_pattern(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def _match(column: str, value: str) -> tuple[str, list[Any]]:
    """Exact match, or a glob when ``value`` contains ``*``."""
    if "*" in value:
        return f"{column} LIKE ? ESCAPE '\\'", [_like_pattern(value)]
    return f"{column} = ?", [value]


def time_range(filters: Filters, now: datetime | None = None
               ) -> tuple[datetime | None, datetime | None]:
    """``--since`` / ``--until`` as UTC datetimes (relative forms count back from ``now``)."""
    since = parse_time(filters.since, now=now, option="--since") if filters.since else None
    until = parse_time(filters.until, now=now, option="--until") if filters.until else None
    if since and until and since >= until:
        raise QueryError(f"--since {filters.since!r} is not before --until {filters.until!r}")
    return since, until


def build_where(filters: Filters, since: datetime | None, until: datetime | None,
                terms: list[Term]) -> tuple[str, list[Any]]:
    """The WHERE clause (without the keyword; ``TRUE`` if empty) and its parameters."""
    conds: list[str] = []
    params: list[Any] = []

    def add(sql: str, values: list[Any]) -> None:
        conds.append(sql)
        params.extend(values)

    if since:
        add("ts >= ?", [since])
    if until:
        add("ts < ?", [until])
    if filters.user:
        add(*_match("user_id", filters.user))
    if filters.model:
        req, p1 = _match("request_model", filters.model)
        resp, p2 = _match("response_model", filters.model)
        add(f"({req} OR {resp})", p1 + p2)
    if filters.provider:
        add(*_match("provider", filters.provider))
    if filters.endpoint:
        add(*_match("endpoint", filters.endpoint))
    if filters.status:
        add(*status_condition(filters.status))
    if filters.key_id:
        add("contains(key_id, ?)", [filters.key_id])
    for term in terms:
        # a cheap case-insensitive literal first; the word-boundary regex only where it hits
        for pattern in (term.literal(), term.regex()):
            add("(" + " OR ".join(f"regexp_matches({c}, ?)" for c in TEXT_COLUMNS) + ")",
                [pattern] * len(TEXT_COLUMNS))
    if filters.where:
        conds.append(f"({filters.where})")
    return (" AND ".join(conds) or "TRUE"), params


_WS = re.compile(r"(?:\\[nrt]|\s)+")
_PY_SEP = r"(?:\\[nrtbf]|\\u[0-9a-fA-F]{4}|[\W_])"


def _py_regex(term: Term) -> re.Pattern[str]:
    body = f"{_PY_SEP}+".join(re.escape(w) for w in term.words)
    tail = "" if term.prefix else f"(?={_PY_SEP}|$)"
    return re.compile(f"(?:^|{_PY_SEP})({body}){tail}", re.IGNORECASE)


def _clean(text: str) -> str:
    return _WS.sub(" ", text).strip()


def snippet(texts: list[str | None], terms: list[Term], width: int = 60) -> str:
    """About ``width`` characters around the first match of any term, whitespace collapsed."""
    for text in texts:
        if not text:
            continue
        best: re.Match[str] | None = None
        for term in terms:
            m = _py_regex(term).search(text)
            if m and (best is None or m.start(1) < best.start(1)):
                best = m
        if best is None:
            continue
        before = max(0, best.start(1) - width // 3)
        piece = text[before:before + width + 40]
        out = _clean(piece)[:width]
        return ("…" if before else "") + out + ("…" if before + len(piece) < len(text) else "")
    return ""


def _content_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [c.get("text") for c in content if isinstance(c, dict)
                 and isinstance(c.get("text"), str)]
        return " ".join(texts) if texts else None
    return None


def prompt_preview(request_body: str | None, width: int = 60) -> str:
    """The last user message of a chat/messages/responses/Gemini request, else the raw start."""
    if not request_body:
        return ""
    text: str | None = None
    try:
        data = json.loads(request_body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        messages = data.get("messages") or data.get("contents")
        if isinstance(messages, list) and messages:
            last = messages[-1]
            if isinstance(last, dict):
                text = _content_text(last.get("content")) or _content_text(last.get("parts"))
        if text is None:
            for key in ("input", "prompt", "inputText"):
                value = data.get(key)
                if isinstance(value, str):
                    text = value
                elif isinstance(value, list) and value:
                    last = value[-1]
                    text = _content_text(last.get("content")) if isinstance(last, dict) \
                        else " ".join(str(v) for v in value)
                if text:
                    break
    out = _clean(text if text else request_body)
    return out[:width] + ("…" if len(out) > width else "")
