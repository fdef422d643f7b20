"""``Redactor``: replace what the detectors find, in text, JSON bodies and query strings.

The record builder calls it once per record, so it is built once (regexes compiled at
construction) and every method is a pure function of its input and the policy.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, unquote_plus

from llm_proxy.redact.detectors import Finding, Scanner, is_template, secret_value_ok
from llm_proxy.redact.kinds import BUILTIN_KINDS, PLACEHOLDER_RE, SECRET_KINDS, placeholder, rank
from llm_proxy.redact.names import NAMES, Evidence, name_span
from llm_proxy.redact.policy import BODY_FIELDS, RedactionPolicy

__all__ = ["Redactor", "merge_counts"]

# Nothing the engine detects is shorter: "a@b.io", "1.2.3.4", "Al Bo".
_MIN_LENGTH = 5
_EDGE_JUNK = " \t\r\n,;:"
# JSON keys and values such as "role", "assistant", "tool_calls": letters, "_" and "-" only.
# Nothing built in matches such a string (no digits, no "@", no spaces), so skip the scan.
_PLAIN_WORD = re.compile(r"[A-Za-z_\-]{1,64}")
# Results of scanning a string are remembered: LLM traffic repeats itself (system prompts, tool
# schemas, model names, roles, finish reasons), and a dict lookup costs a fraction of a scan.
# Bounded by the characters held, not just entries: a full memo is simply cleared.
_MEMO_MAX_TEXT = 16 * 1024
_MEMO_MAX_CHARS = 4 * 1024 * 1024
_PLAIN_KEYS_MAX = 8192  # object keys found to need no redaction (field names repeat)
_SCALARS = frozenset({int, float, bool, type(None)})
_JSON_OPENERS = frozenset("{[ \t\r\n")
# Kinds whose matches are free-form text rather than one fixed-shape value.
_FREE_FORM = frozenset({"address", "person", "date_of_birth"})


def merge_counts(*counts: dict[str, int]) -> dict[str, int]:
    """Add per-kind counts, e.g. of a request and a response, for the ``redactions`` column."""
    total: dict[str, int] = {}
    for part in counts:
        for kind, n in part.items():
            total[kind] = total.get(kind, 0) + n
    return total


# --------------------------------------------------------------------------- JSON key hints


@dataclass(frozen=True, slots=True)
class _Hint:
    """A JSON key (or query parameter) that says what its value is: ``"password": "…"``."""

    kind: str
    accepts: Callable[[str], bool]


_NAME_VALUE = re.compile(NAMES)
_PHONE_VALUE = re.compile(r"[+(]?[0-9][0-9 ().\-/]{5,}[0-9]")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _whole_name(evidence: Evidence) -> Callable[[str], bool]:
    def accepts(value: str) -> bool:
        value = value.strip()
        return bool(_NAME_VALUE.fullmatch(value)) and name_span(
            value, 0, len(value), evidence) is not None

    return accepts


def _digits_between(low: int, high: int) -> Callable[[str], bool]:
    def accepts(value: str) -> bool:
        return bool(_PHONE_VALUE.fullmatch(value.strip())) and low <= sum(
            ch.isdigit() for ch in value) <= high

    return accepts


def _not_masked(value: str) -> bool:
    return not (is_template(value) or "***" in value or PLACEHOLDER_RE.search(value))


_HINTS: tuple[tuple[re.Pattern[str], _Hint], ...] = (
    (re.compile(r"(?:^|_)(?:password|passwd|pwd|passphrase|pass)$"),
     _Hint("password", lambda s: secret_value_ok(s, "password"))),
    (re.compile(r"(?:^|_)(?:api_?key|apikey|[a-z]*secret|(?:secret|access|private|signing|"
                r"encryption|master|auth)_?key)$"),
     _Hint("api_key", lambda s: secret_value_ok(s, "api_key"))),
    (re.compile(r"(?:^|_)(?:[a-z]*token|session_?id|sessionid|cookie|set_cookie|"
                r"(?:proxy_)?authorization)$"),
     _Hint("token", lambda s: _not_masked(s) and secret_value_ok(s, "token"))),
    (re.compile(r"^(?:name|display_?name)$"), _Hint("person", _whole_name(Evidence.LABELLED))),
    (re.compile(r"^(?:full|first|last|given|family|middle|maiden|legal|customer|patient|contact|"
                r"client|employee|card_?holder|account_?holder|holder|billing|shipping|"
                r"recipient|sender)_?name$|^(?:surname|forename)$"),
     _Hint("person", _whole_name(Evidence.STRONG))),
    (re.compile(r"(?:^|_)(?:phone|phone_?number|mobile|mobile_?number|cell|cellphone|tel|"
                r"telephone|fax|whatsapp|contact_?number)$"),
     _Hint("phone", _digits_between(7, 15))),
    (re.compile(r"(?:^|_)(?:dob|date_?of_?birth|birth_?date|birthdate|birthday)$"),
     _Hint("date_of_birth", lambda s: any(c.isdigit() for c in s) and len(s) <= 40)),
    (re.compile(r"(?:^|_)(?:ssn|social_?security(?:_?number)?)$"),
     _Hint("ssn", lambda s: sum(c.isdigit() for c in s) == 9)),
    (re.compile(r"^(?:(?:home|street|postal|mailing|shipping|billing|delivery|residential)_)?"
                r"address(?:_?line_?[0-9])?$|^street(?:_address)?$|^addr$"),
     _Hint("address", lambda s: any(c.isdigit() for c in s) and " " in s.strip())),
)


@lru_cache(maxsize=4096)
def _hint(key: str) -> _Hint | None:
    norm = _CAMEL.sub("_", key).lower().replace("-", "_").replace(" ", "_")
    for pattern, hint in _HINTS:
        if pattern.search(norm):
            return hint
    return None


# --------------------------------------------------------------------------- overlaps


def _uncovered(start: int, end: int, taken: list[tuple[int, int]]) -> list[tuple[int, int]]:
    pieces = [(start, end)]
    for t_start, t_end in taken:
        rest = []
        for a, b in pieces:
            if t_end <= a or t_start >= b:
                rest.append((a, b))
                continue
            if a < t_start:
                rest.append((a, t_start))
            if t_end < b:
                rest.append((t_end, b))
        pieces = rest
    return pieces


def _resolve(text: str, found: list[Finding], allow: frozenset[str]) -> list[Finding]:
    """Settle overlaps: higher-precedence kinds first, then longer matches.

    A value of a fixed shape (an e-mail, a card, a key) that overlaps a stronger finding was
    misread and is dropped. A free-form finding (an address, a name, a custom rule's match)
    keeps the part not already covered, so a labelled address that swallowed a phone number
    loses nothing. Existing placeholders are never touched; allow-listed values are left alone.
    """
    taken = [m.span() for m in PLACEHOLDER_RE.finditer(text)] if "[" in text else []
    ordered = sorted(set(found), key=lambda f: (rank(f[2]), f[0] - f[1], f[0]))
    kept: list[Finding] = []
    for start, end, kind in ordered:
        if allow and text[start:end].strip().casefold() in allow:
            continue
        pieces = _uncovered(start, end, taken)
        if kind not in _FREE_FORM and kind in BUILTIN_KINDS and pieces != [(start, end)]:
            continue
        for a, b in pieces:
            while a < b and text[a] in _EDGE_JUNK:
                a += 1
            while b > a and text[b - 1] in _EDGE_JUNK:
                b -= 1
            if any(ch.isalnum() for ch in text[a:b]):
                kept.append((a, b, kind))
                taken.append((a, b))
    kept.sort()
    return kept


# --------------------------------------------------------------------------- the redactor


def _normalised(kind: str, value: str) -> str:
    """The form a pseudonym is keyed on, so ``+44 20 7946 0958`` and ``+442079460958`` agree."""
    if kind in ("phone", "credit_card", "iban", "ssn", "ni_number"):
        return "".join(ch for ch in value if ch.isalnum()).upper()
    if kind in ("email", "person", "address"):
        return " ".join(value.split()).casefold()
    return value.strip()


class Redactor:
    """Replaces secrets and personal data with typed placeholders (or keyed pseudonyms).

    Every method returns the redacted value and the number of replacements per kind.
    """

    __slots__ = ("_full", "_memo", "_memo_chars", "_modes", "_plain_keys", "_secrets", "policy")

    def __init__(self, policy: RedactionPolicy) -> None:
        self.policy = policy
        self._full = Scanner(policy.kinds, policy.rules)
        self._secrets = Scanner(frozenset(SECRET_KINDS))
        self._modes = dict(policy.field_modes)
        # (scanner, text) -> (redacted text, counts); see _MEMO_MAX_CHARS
        self._memo: dict[tuple[int, str], tuple[str, tuple[tuple[str, int], ...]]] = {}
        self._memo_chars = 0
        self._plain_keys: set[tuple[int, str]] = set()

    # -- public API ------------------------------------------------------------------------

    def redact_text(self, text: str) -> tuple[str, dict[str, int]]:
        """Redact plain text with the policy's kinds and custom rules."""
        counts: dict[str, int] = {}
        return self._text(text, self._full, counts), counts

    def redact_json(self, value: object) -> tuple[object, dict[str, int]]:
        """Redact every string in a parsed JSON value (keys too); returns a new structure."""
        counts: dict[str, int] = {}
        return self._walk(value, self._full, counts), counts

    def redact_body(
        self, body: str | None, *, field: str = "request_body"
    ) -> tuple[str | None, dict[str, int]]:
        """JSON-aware: if body parses as JSON (object/array), redact string values at any depth
        (and JSON-in-string values) and re-serialise compactly; else redact as text. Applies the
        field's mode (drop -> None) and metadata_only (-> None).

        A JSON body in which nothing was redacted is returned byte for byte as it came. A
        ``query`` field is treated as ``a=1&b=2`` with each value decoded before scanning.
        """
        mode = self.field_mode(field)
        if body is None or mode == "drop" or (self.policy.metadata_only and field in BODY_FIELDS):
            return None, {}
        scanner = self._secrets if mode == "keep" else self._full
        counts: dict[str, int] = {}
        parsed = _parse_json_container(body)
        if parsed is not None:
            redacted = self._walk(parsed, scanner, counts)
            return (_dump(redacted) if counts else body), counts
        if field == "query":
            return self._query(body, scanner, counts), counts
        return self._text(body, scanner, counts), counts

    def mask_secrets(self, text: str) -> tuple[str, dict[str, int]]:
        """Mask only secrets (keys, tokens, passwords, private keys), whatever the policy."""
        counts: dict[str, int] = {}
        return self._text(text, self._secrets, counts), counts

    def field_mode(self, field: str) -> str:
        """``redact``, ``drop`` or ``keep`` for a record field (default ``redact``)."""
        return self._modes.get(field, "redact")

    # -- internals -------------------------------------------------------------------------

    def _text(self, text: str, scanner: Scanner, counts: dict[str, int]) -> str:
        size = len(text)
        if size < _MIN_LENGTH or (not self.policy.rules and _PLAIN_WORD.fullmatch(text)):
            return text
        if size > _MEMO_MAX_TEXT:
            return self._scan(text, scanner, counts)
        key = (id(scanner), text)
        hit = self._memo.get(key)
        if hit is None:
            found: dict[str, int] = {}
            hit = (self._scan(text, scanner, found), tuple(found.items()))
            if self._memo_chars + size > _MEMO_MAX_CHARS:
                self._memo.clear()
                self._memo_chars = 0
            self._memo[key] = hit
            self._memo_chars += size
        for kind, n in hit[1]:
            counts[kind] = counts.get(kind, 0) + n
        return hit[0]

    def _scan(self, text: str, scanner: Scanner, counts: dict[str, int]) -> str:
        found = scanner.find(text)
        if not found:
            return text
        parts: list[str] = []
        pos = 0
        for start, end, kind in _resolve(text, found, self.policy.allow):
            parts.append(text[pos:start])
            parts.append(self._placeholder(kind, text[start:end]))
            counts[kind] = counts.get(kind, 0) + 1
            pos = end
        parts.append(text[pos:])
        return "".join(parts)

    def _placeholder(self, kind: str, value: str) -> str:
        secret = self.policy.pseudonym_secret
        if secret is None:
            return placeholder(kind)
        message = f"{kind}\x00{_normalised(kind, value)}".encode()
        return placeholder(kind, hmac.new(secret, message, hashlib.sha256).hexdigest()[:6])

    def _string(self, value: str, scanner: Scanner, counts: dict[str, int]) -> str:
        """A JSON string value; JSON inside it (tool-call arguments) stays valid JSON."""
        if value[:1] not in _JSON_OPENERS:  # the common case, without stripping a copy
            return self._text(value, scanner, counts)
        parsed = _parse_json_container(value)
        if parsed is None:
            return self._text(value, scanner, counts)
        inner: dict[str, int] = {}
        redacted = self._walk(parsed, scanner, inner)
        if not inner:
            return value
        for kind, n in inner.items():
            counts[kind] = counts.get(kind, 0) + n
        return _dump(redacted)

    def _pair(self, key: str, value: str, scanner: Scanner, counts: dict[str, int]) -> str:
        """A value whose key names it (``"password": "…"``), else an ordinary string."""
        hint = _hint(key)
        allowed = self.policy.allow and value.strip().casefold() in self.policy.allow
        if hint and hint.kind in scanner.kinds and hint.accepts(value) and not allowed:
            counts[hint.kind] = counts.get(hint.kind, 0) + 1
            return self._placeholder(hint.kind, value)
        return self._string(value, scanner, counts)

    def _walk(self, value: object, scanner: Scanner, counts: dict[str, int]) -> object:
        # Hot: every value of every body passes here, so scalars and plain keys (the same few
        # field names in every call) are settled inline rather than by a call each.
        cls = value.__class__
        if cls is str:
            return self._string(value, scanner, counts)  # type: ignore[arg-type]
        if cls is list:
            return [item if item.__class__ in _SCALARS else self._walk(item, scanner, counts)
                    for item in value]  # type: ignore[attr-defined]
        if cls is dict:
            out: dict[object, object] = {}
            plain = self._plain_keys
            for key, item in value.items():  # type: ignore[attr-defined]
                if key.__class__ is str:
                    if (id(scanner), key) in plain:
                        new_key = key
                    else:
                        new_key = self._text(key, scanner, counts)
                        if new_key is key and len(plain) < _PLAIN_KEYS_MAX:
                            plain.add((id(scanner), key))
                    while new_key in out:  # two keys redacted alike must not overwrite
                        new_key = f"{new_key}#"
                    icls = item.__class__
                    if icls is str:
                        out[new_key] = self._pair(key, item, scanner, counts)
                    elif icls in _SCALARS:
                        out[new_key] = item
                    else:
                        out[new_key] = self._walk(item, scanner, counts)
                else:
                    out[key] = self._walk(item, scanner, counts)
            return out
        for base in (str, list, dict):  # a subclass: walked as its base type
            if isinstance(value, base):
                return self._walk(base(value), scanner, counts)
        return value

    def _query(self, query: str, scanner: Scanner, counts: dict[str, int]) -> str:
        """``a=1&email=x%40y.com``: decode each value, redact it, re-encode only what changed."""
        prefix = "?" if query.startswith("?") else ""
        parts = []
        for part in query[len(prefix):].split("&"):
            key, sep, raw = part.partition("=")
            if not sep:
                parts.append(self._text(part, scanner, counts))
                continue
            value = unquote_plus(raw)
            new = self._pair(unquote_plus(key), value, scanner, counts)
            parts.append(part if new == value else f"{key}={quote(new, safe='[]:')}")
        return prefix + "&".join(parts)


def _parse_json_container(text: str) -> object | None:
    """The parsed object/array if ``text`` is one, else None (cheap check before parsing)."""
    stripped = text.strip()
    if len(stripped) < 2 or (stripped[0], stripped[-1]) not in (("{", "}"), ("[", "]")):
        return None
    try:
        parsed = json.loads(stripped)
    except ValueError:
        return None
    return parsed if isinstance(parsed, (dict, list)) else None


def _dump(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
