"""Where secrets and personal data are found in text: pure functions over a string.

Speed comes from how the text is scanned, not from skipping checks. CPython's ``re`` jumps
quickly to a literal or to a character from a class, but a pattern that could start anywhere
costs ~5 ns a character for every attempt. So the engine makes few passes:

* *literal* detectors start with a fixed string (``sk-``, ``@``, ``-----BEGIN``, ``name``),
  some only when a cheap gate character (``@``, ``:``, ``=``) occurs in the text at all;
* two *lanes* fuse many detectors into one regex each: the capitals lane runs only where an
  upper-case letter is (names, IBANs, JWTs, AWS keys, bearer tokens) and the digits lane only
  where a digit, ``+`` or ``(`` is (phones, cards, SSNs, IPs, dates, street addresses). Every
  branch of a lane is written as (first-character class, rest), and the lane regex is
  ``[union](?:(?<=[first])(?P<branch>rest)|…)`` so that ``re`` keeps its fast class scan.

A hit only nominates a candidate; handlers confirm it (checksums, boundaries, context) and
yield ``(start, end, kind)`` findings. Overlaps are settled later by the engine.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise

from llm_proxy.redact import validators as v
from llm_proxy.redact.kinds import PLACEHOLDER_RE, SECRET_KINDS
from llm_proxy.redact.names import (
    LOWER,
    NAME_WORD,
    NAMES,
    PARTICLE,
    UPPER,
    Evidence,
    name_span,
)

__all__ = [
    "Finding",
    "Scanner",
    "is_template",
    "lower_aligned",
    "secret_value_ok",
    "token_kind",
]

Finding = tuple[int, int, str]
Handler = Callable[[str, str, re.Match[str]], Iterable[Finding]]

_ALNUM = frozenset(string.ascii_letters + string.digits)
_TOKEN_CHARS = _ALNUM | frozenset("_-")
_B64 = _ALNUM | frozenset("/+")


_REGEX_META = frozenset("\\.^$*+?{}[]|()")


def required_prefix(regex: re.Pattern[str] | str) -> str:
    """The fixed text every match of ``regex`` starts with ("" when there is none).

    Conservative: the leading run of plain characters, minus the last one when a quantifier
    makes it optional (``ab*`` -> ``a``); nothing for a top-level alternative (``ab|cd``) or
    case-insensitive / verbose flags. Used as a substring test before running the regex.
    """
    pattern = regex if isinstance(regex, str) else regex.pattern
    if not isinstance(regex, str) and regex.flags & (re.IGNORECASE | re.VERBOSE):
        return ""
    if _top_level_alternation(pattern) or pattern.startswith("(?"):
        return ""
    end = 0
    while end < len(pattern) and pattern[end] not in _REGEX_META:
        end += 1
    if end < len(pattern) and pattern[end] in "*?{":
        end -= 1
    return pattern[:max(end, 0)]


def _top_level_alternation(pattern: str) -> bool:
    depth = 0
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[":  # a class: skip to its closing bracket ("]" first is literal)
            i += 2 if pattern[i + 1:i + 2] == "]" else 1
            while i < len(pattern) and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            return True
        i += 1
    return False


@dataclass(frozen=True, slots=True)
class _Literal:
    """A standalone regex that starts with a fixed string, so ``re`` jumps between hits.

    Most strings of a body (ids, short values, prose) hold none of the fixed strings: a
    substring test of ``needle`` (C speed, ~50 ns) spares them the regex call (~0.5 µs each,
    whatever the length), which on short strings was most of the scan.
    """

    kinds: frozenset[str]
    pattern: re.Pattern[str]
    handler: Handler
    on_lower: bool = False  # match against the lower-cased text (offsets are aligned)
    gate: frozenset[str] = frozenset()  # one of these characters must occur in the text
    min_length: int = 0  # shorter texts cannot hold a match (saves a pass on short strings)
    needle: str = ""  # set from the pattern: fixed text every match starts with

    def __post_init__(self) -> None:
        object.__setattr__(self, "needle", required_prefix(self.pattern))


@dataclass(frozen=True, slots=True)
class _Branch:
    """One alternative of a lane: first-character class, the rest, and its handler."""

    name: str
    kinds: frozenset[str]
    first: str
    rest: str
    handler: Handler
    word_start: bool = True  # only try where the first character starts a word
    checks_first: bool = False  # ``rest`` itself verifies the first character


# --------------------------------------------------------------------------- small helpers


def lower_aligned(text: str) -> str:
    """``text.lower()`` with the same length, so offsets found in one apply to the other."""
    low = text.lower()
    if len(low) != len(text):  # a few characters (İ) lower-case to two
        low = "".join(ch.lower() if len(ch.lower()) == 1 else ch for ch in text)
    return low


def _clean_start(text: str, start: int, glue: frozenset[str] = _TOKEN_CHARS) -> bool:
    return start == 0 or text[start - 1] not in glue


def _clean_end(text: str, end: int, glue: frozenset[str] = _TOKEN_CHARS) -> bool:
    return end >= len(text) or text[end] not in glue


def _word_start(text: str, start: int) -> bool:
    """Not in the middle of a word (so ``McDonald`` does not start a salutation at ``D``)."""
    return start == 0 or not (text[start - 1].isalnum() or text[start - 1] in "'’_")


def _lead(words: Iterable[str]) -> tuple[str, str]:
    """Split trigger words into a lane's (first-character class, rest-of-pattern).

    Each alternative of the rest starts with a literal (``re`` skips a non-matching literal
    alternative in one comparison) and then checks the whole word with a look-behind.
    """
    ordered = sorted(set(words), key=len, reverse=True)
    first = "".join(dict.fromkeys(re.escape(w[0]) for w in ordered))
    rest = "|".join(f"{re.escape(w[1:])}(?<={re.escape(w)})" for w in ordered)
    return first, f"(?:{rest})"


def _by_initial(words: Iterable[str]) -> str:
    """An alternation of words in either initial case, grouped by first letter for speed."""
    groups: dict[str, list[str]] = {}
    for word in sorted({w.lower() for w in words}, key=len, reverse=True):
        groups.setdefault(word[0], []).append(re.escape(word[1:]))
    return "(?:" + "|".join(
        f"[{ch}{ch.upper()}](?:{'|'.join(rest)})" for ch, rest in groups.items()) + ")"


def _alternation(words: Iterable[str]) -> str:
    return "(?:" + "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True)) + ")"


_NON_VALUES = frozenset({
    "none", "null", "nil", "true", "false", "undefined", "required", "optional", "string",
    "str", "int", "bytes", "text", "redacted", "hidden", "masked", "omitted", "empty", "n/a",
    "tbd", "todo", "secret", "example", "placeholder",
})
_CODE_PREFIXES = ("os.environ", "os.getenv", "getenv", "process.env", "settings.", "config.",
                  "self.", "this.", "env.", "env[", "system.getenv", "secrets.", "vars.")


_TEMPLATE = re.compile(r"\$\{?\w+\}?|\{\w*\}|<[^<>]*>|%s|[*xX.•_\-]+")


def is_template(value: str) -> bool:
    """A stand-in rather than a value: ``${X}``, ``{{x}}``, ``<password>``, ``****``, ``[TOKEN]``.

    Only whole-value shapes count, so a real password that merely starts with ``$`` or ``*``
    is still a password. A value with an ellipsis is already masked.
    """
    return (
        value.startswith(("${", "{{", "%("))
        or _TEMPLATE.fullmatch(value) is not None
        or PLACEHOLDER_RE.fullmatch(value) is not None
        or "…" in value
    )


def secret_value_ok(value: str, kind: str) -> bool:
    """Whether the value of ``password=``/``token=``/``api_key=`` is a real credential.

    Passwords need only be non-trivial (users choose them); keys and tokens must look
    machine-generated, which keeps ``token: 1024`` and ``key=value`` out.
    """
    value = value.strip()
    low = value.lower()
    if not value or is_template(value) or low in _NON_VALUES:
        return False
    if value.endswith(("(", "[")) or low.startswith(_CODE_PREFIXES):
        return False
    if kind == "password":  # a path is what ``pwd:`` prints, not a password
        return len(value) >= 4 and not value.startswith(("/", "~/", "./"))
    return v.random_token_ok(value) or (
        len(value) >= 20 and not value.isupper() and not value.islower()
        and v.shannon_entropy(value) >= 3.5
    )


_VENDOR_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("jwt", re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")),
    ("aws_access_key",
     re.compile(r"(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA|ABIA|ACCA)[A-Z0-9]{16}")),
    ("api_key", re.compile(r"sk-[A-Za-z0-9_\-]{20,}|[spr]k_(?:live|test)_[A-Za-z0-9]{10,}"
                           r"|AIza[0-9A-Za-z_\-]{35}")),
    ("token", re.compile(r"gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{22,255}"
                         r"|xox[abposre]-[A-Za-z0-9-]{10,}")),
)


def token_kind(token: str) -> str | None:
    """The vendor-specific kind of a credential string (a JWT, an ``sk-`` key, …), if any."""
    for kind, shape in _VENDOR_SHAPES:
        if shape.fullmatch(token):
            return kind
    return None


def _before(low: str, start: int, label: re.Pattern[str], window: int = 48) -> bool:
    """Whether ``label`` ends right before ``start`` (labels end their pattern with ``\\Z``)."""
    return label.search(low, max(0, start - window), start) is not None


_DOB_LABEL = re.compile(
    r"(?:date of birth|birth ?date|birthday|d\.?o\.?b|born(?: on)?|geburtsdatum|"
    r"geboren(?: am)?|date de naissance|n[ée]e? le|fecha de nacimiento)\.?"
    r"(?:[ \t]*\([^)\n]{0,20}\))?[^\w\n]{0,4}\Z"
)
_PHONE_LABEL = re.compile(
    r"(?:phone|tel|mobile|mob|cell|fax|whatsapp|call(?: me)?(?: at| on)?|ph|contact|"
    r"telefon|téléphone|portable|handy|numéro|nummer)\.?"
    r"(?:[ \t]*(?:no|number|num|nr|#))?\.?[^\w\n]{0,4}\Z"
)
_SSN_LABEL = re.compile(r"(?:ssn|social security(?: number| no\.?)?|ss#)[^\w\n]{0,4}\Z")
_VERSION_LABEL = re.compile(r"(?<![a-z])(?:version|release|build|ver\.?)[ \t]*\Z")

# --------------------------------------------------------------------------- secrets


def _prefixed(kind: str) -> Handler:
    """A vendor key found by its literal prefix: only the boundary before it needs checking."""

    def handle(text: str, low: str, m: re.Match[str]) -> Iterator[Finding]:
        if _clean_start(text, m.start()):
            yield m.start(), m.end(), kind

    return handle


def _stripe(text: str, low: str, m: re.Match[str]) -> Iterator[Finding]:
    start = m.start() - 1  # the pattern starts at "k_"; the letter before says sk/rk/pk
    if start >= 0 and text[start] in "spr" and _clean_start(text, start):
        yield start, m.end(), "api_key"


_PEM_END = re.compile(r"-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
_PEM_BODY = re.compile(r"(?:(?:\s|\\n)*[A-Za-z0-9+/=]{16,})*")


def _pem(text: str, low: str, m: re.Match[str]) -> Iterator[Finding]:
    end = _PEM_END.search(text, m.end())
    # A truncated body has no END line: take the base64 lines that follow.
    stop = end.end() if end else _PEM_BODY.match(text, m.end()).end()  # type: ignore[union-attr]
    yield m.start(), stop, "private_key"


def _url_credentials(text: str, low: str, m: re.Match[str]) -> Iterator[Finding]:
    if not is_template(m.group(2)):
        yield m.start(1), m.end(2), "url_credentials"


_ASSIGN_TAIL = (
    r"[a-z0-9_.\-]{0,24}?[\"']?[ \t]*(?:=>|:=|==|=|:)[ \t]*(?:(?:bearer|basic|token)[ \t]+)?"
    r"(?:\"([^\"\n]{1,256})\"|'([^'\n]{1,256})'|([^\s\"'`,;<>)\]}]{1,256}))"
)


def _assignment(kind: str) -> Handler:
    """``password=…``, ``"api_key": "…"``, ``DB_PASSWORD: …``: the value, if it is real."""

    def handle(text: str, low: str, m: re.Match[str]) -> Iterator[Finding]:
        group = next(g for g in (1, 2, 3) if m.group(g) is not None)
        start, end = m.span(group)
        value = text[start:end]
        if secret_value_ok(value, kind):
            yield start, end, token_kind(value) or kind

    return handle


def _bearer(text: str, low: str, m: re.Match[str]) -> Iterator[Finding]:
    detail = _BEARER_DETAIL.match(text, m.start())
    if detail and _word_start(text, m.start()):
        token = detail.group(1)
        if any(ch.isdigit() for ch in token) and not is_template(token):
            yield detail.start(1), detail.end(1), token_kind(token) or "token"


_BEARER_DETAIL = re.compile(r"B(?:earer|EARER)[ \t]+([A-Za-z0-9\-._~+/]{8,}=*)")
_BASIC_DETAIL = re.compile(r"B(?:asic|ASIC)[ \t]+([A-Za-z0-9+/]{4,}={0,2})(?![A-Za-z0-9+/=])")


def _basic(text: str, low: str, m: re.Match[str]) -> Iterator[Finding]:
    detail = _BASIC_DETAIL.match(text, m.start())
    if detail and _word_start(text, m.start()) and v.basic_auth_ok(detail.group(1)):
        yield detail.start(1), detail.end(1), "basic_auth"


def _bounded(kind: str) -> Handler:
    def handle(text: str, low: str, m: re.Match[str]) -> Iterator[Finding]:
        if _clean_start(text, m.start()) and _clean_end(text, m.end()):
            yield m.start(), m.end(), kind

    return handle


def _bare_secret(text: str, low: str, m: re.Match[str]) -> Iterator[Finding]:
    """A bare 40-character AWS secret key: base64, mixed case with digits, high entropy.

    The branch starts at the first capital of a long base64 run; walk back to the run's
    start. A git SHA (hex, one case) and words glued by ``_``, ``-`` or ``.`` do not pass.
    """
    start, end = m.start(), m.end()
    while start > 0 and text[start - 1] in _B64 and end - start <= 40:
        start -= 1
    if end - start != 40 or (start > 0 and text[start - 1] in "_-."):
        return
    after = text[end : end + 2]
    if after[:1] and (after[0] in "=_-" or (after[0] == "." and after[1:2] in _B64)):
        return
    token = text[start:end]
    if (any(c.isupper() for c in token) and any(c.islower() for c in token)
            and any(c.isdigit() for c in token) and v.shannon_entropy(token) >= 4.0):
        yield start, end, "aws_secret_key"


# --------------------------------------------------------------------------- contact data


_EMAIL_LOCAL = re.compile(r"[\w.%+\-]{1,64}\Z")


def _email(text: str, low: str, m: re.Match[str]) -> Iterator[Finding]:
    at, end = m.start(), m.end()
    local = _EMAIL_LOCAL.search(text, max(0, at - 64), at)
    if local is None:
        return
    start = local.start()
    while start < at and text[start] in ".-+":
        start += 1
    if start == at:
        return
    # "scheme://user:pass@host" is URL credentials, "git@host:org/repo" an scp path.
    if start and text[start - 1] == ":" and not low.endswith("mailto:", 0, start):
        return
    if text[end : end + 1] == ":" and text[end + 1 : end + 2].strip():
        return
    yield start, end, "email"


_IPV6_TAIL = re.compile(r"[0-9A-Fa-f:.]*")
_HEX_COLON = frozenset("0123456789abcdefABCDEF:.")


def _ipv6(text: str, low: str, m: re.Match[str]) -> Iterator[Finding]:
    start = m.start()
    while start > 0 and text[start - 1] in _HEX_COLON and m.start() - start < 40:
        start -= 1
    end = _IPV6_TAIL.match(text, m.end()).end()  # type: ignore[union-attr]
    while end > start and text[end - 1] == ".":
        end -= 1
    while start < end and text[start] == ".":
        start += 1
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    if before.isalnum() or before in "_:" or after.isalnum() or after in "_:":
        return
    if v.ipv6_ok(text[start:end]):
        yield start, end, "ip_address"


_NAME_PREFIXES_GLUED = frozenset({"full", "first", "last", "sur", "given", "family", "middle",
                                  "maiden", "fore"})
_NAME_PREFIXES = frozenset({
    "", "full", "first", "last", "given", "family", "middle", "maiden", "legal", "customer",
    "client", "patient", "contact", "employee", "holder", "cardholder", "applicant",
    "candidate", "student", "guest", "passenger", "member", "sender", "recipient", "display",
    "my", "his", "her", "their", "your", "our", "mein", "dein", "sein", "ihr",
})
_NAME_IS_PREFIXES = frozenset({"my", "his", "her", "their", "your", "our", "mein", "dein"})
_NAMES_RE = re.compile(NAMES)


def _word_before(low: str, end: int) -> str:
    start = end
    while start > 0 and low[start - 1].isalpha() and end - start < 24:
        start -= 1
    return low[start:end]


def _label_prefix(low: str, start: int, glued: frozenset[str]) -> str | None:
    """The word qualifying a label (``full`` in ``full name:``), or None if not allowed."""
    if start and low[start - 1].isalpha():
        word = _word_before(low, start)
        return word if word in glued else None
    if start and low[start - 1] in " _-":
        return _word_before(low, start - 1)
    return ""


def _name_label(text: str, low: str, m: re.Match[str]) -> Iterator[Finding]:
    """``Name: X``, ``customer_name = X``, ``my name is X``, ``"full name": "X"``."""
    prefix = _label_prefix(low, m.start(), _NAME_PREFIXES_GLUED)
    if prefix is None:
        return
    is_form = not m.group().rstrip("\"' \t").endswith((":", "="))
    allowed = _NAME_IS_PREFIXES if is_form else _NAME_PREFIXES | _NAME_PREFIXES_GLUED
    if prefix not in allowed:
        return
    names = _NAMES_RE.match(text, m.end())
    if names is None:
        return
    evidence = Evidence.STRONG if prefix else Evidence.LABELLED
    span = name_span(text, names.start(), names.end(), evidence)
    if span:
        yield span[0], span[1], "person"


_ADDRESS_PREFIXES = frozenset({
    "", "home", "street", "postal", "mailing", "shipping", "billing", "delivery", "my", "our",
    "your", "his", "her", "their", "residential", "business", "office", "permanent", "current",
    "registered", "new", "old", "full", "correspondence", "return",
})
_ADDRESS_VALUE = re.compile(r"[^\n\"|;{}<>]{5,150}")


def _address_label(text: str, low: str, m: re.Match[str]) -> Iterator[Finding]:
    """``Address: Flat 3, 45 Oak Road, Leeds``: the rest of the line, if it looks postal."""
    if _label_prefix(low, m.start(), frozenset()) not in _ADDRESS_PREFIXES:
        return
    value = _ADDRESS_VALUE.match(text, m.end())
    if value is None:
        return
    start, end = value.span()
    while end > start and text[end - 1] in " \t.,;:":
        end -= 1
    body = text[start:end]
    words = [w for w in body.replace(",", " ").split() if any(c.isalpha() for c in w)]
    if (any(c.isdigit() for c in body) and len(words) >= 2 and "@" not in body
            and "://" not in body and not body.lower().startswith("0x")):
        yield start, end, "address"


# --------------------------------------------------------------------------- the digits lane

_DIGIT_RUN = re.compile(r"[0-9]+")
_IPV4_IN = re.compile(r"(?<![0-9.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9]|\.[0-9])")
_DATE_IN = re.compile(
    r"(?<![0-9])(?<![0-9][-/.])(?:"
    r"(?:19|20)[0-9]{2}([-/.])(?:0?[1-9]|1[0-2])\1(?:0?[1-9]|[12][0-9]|3[01])"
    r"|(?:0?[1-9]|[12][0-9]|3[01])([-/.])(?:0?[1-9]|[12][0-9]|3[01])\2(?:19|20)?[0-9]{2}"
    r")(?![0-9])(?![-/.][0-9])"
)
_SSN_IN = re.compile(
    r"(?<![0-9])(?<![0-9][-. ])([0-9]{3})([- ])([0-9]{2})\2([0-9]{4})(?![0-9])(?![-. ][0-9])"
)
_PHONE_IN = re.compile(
    r"(?<![0-9])(?<![0-9][-. ])(?:"
    r"\+[1-9][0-9 ().\-/]{5,}[0-9]|00[1-9][0-9]*[ ().\-/][0-9 ().\-/]{4,}[0-9]"  # international
    r"|(?:1[ .-]?)?\(?[2-9][0-9]{2}\)?[ .-]?[2-9][0-9]{2}[ .-][0-9]{4}"  # North America
    r"|0[1-9][0-9]*[ ().\-/][0-9 ().\-/]{4,15}[0-9]"  # national, trunk 0: UK, DE, FR, IN
    r"|[6-9][0-9]{4}[ -][0-9]{5}"  # Indian mobile
    r")(?![0-9])(?![-. ][0-9])"
)
_BARE_DIGITS_IN = re.compile(r"(?<![0-9])[0-9]{7,15}(?![0-9])")


def _phone_ok(candidate: str) -> bool:
    digits = "".join(ch for ch in candidate if ch.isdigit())
    groups = len(_DIGIT_RUN.findall(candidate))
    if groups > 6 or "  " in candidate or "--" in candidate:
        return False
    if candidate.startswith("+"):
        return 8 <= len(digits) - ("(0)" in candidate) <= 15
    if candidate.startswith("00"):
        return 8 <= len(digits) - 2 <= 15
    if candidate.startswith("0"):
        return 9 <= len(digits) <= 12
    return len(digits) in (10, 11)


def _cards(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Card numbers among the digit groups of a cluster: 4-4-4-4, 4-6-5, or one run; Luhn."""
    runs = [mm.span() for mm in _DIGIT_RUN.finditer(text, start, end)]
    i = 0
    while i < len(runs):
        for j in range(len(runs) - 1, i - 1, -1):  # longest first
            group = runs[i : j + 1]
            if _card_grouping_ok(text, group) and v.card_ok(
                "".join(text[a:b] for a, b in group)
            ):
                yield group[0][0], group[-1][1]
                i = j
                break
        i += 1


def _card_grouping_ok(text: str, group: list[tuple[int, int]]) -> bool:
    """One run, or groups of 4 (Amex: 4-6-5) joined by one kind of single separator."""
    if len(group) == 1:
        return True
    gaps = list(pairwise(group))
    if any(a - b != 1 for (_, b), (a, _) in gaps):
        return False
    if {text[b] for (_, b), _ in gaps} not in ({" "}, {"-"}):
        return False
    lengths = [b - a for a, b in group]
    return all(n == 4 for n in lengths[:-1]) or lengths[:2] == [4, 6]


def _classify_numbers(text: str, low: str, start: int, end: int) -> Iterator[Finding]:
    """Every IP, date of birth, card, SSN and phone number inside one cluster of digits.

    Ordered so that the strict shapes claim their digits first: a date is never read as a
    phone number, a card never as two phone numbers.
    """
    taken: list[tuple[int, int]] = []

    def free(a: int, b: int) -> bool:
        return all(b <= x or a >= y for x, y in taken)

    for mm in _IPV4_IN.finditer(text, start, end):
        if v.ipv4_ok(mm.group()) and not _before(low, mm.start(), _VERSION_LABEL, 16):
            taken.append(mm.span())
            yield mm.start(), mm.end(), "ip_address"
    for mm in _DATE_IN.finditer(text, start, end):
        if free(*mm.span()):
            taken.append(mm.span())
            if _before(low, mm.start(), _DOB_LABEL):
                yield mm.start(), mm.end(), "date_of_birth"
    for a, b in _cards(text, start, end):
        if free(a, b):
            taken.append((a, b))
            yield a, b, "credit_card"
    for mm in _SSN_IN.finditer(text, start, end):
        if (free(*mm.span()) and v.ssn_ok(mm.group(1), mm.group(3), mm.group(4))
                and (mm.group(2) == "-" or _before(low, mm.start(), _SSN_LABEL))):
            taken.append(mm.span())
            yield mm.start(), mm.end(), "ssn"
    for mm in _PHONE_IN.finditer(text, start, end):
        if free(*mm.span()) and _phone_ok(mm.group()):
            taken.append(mm.span())
            yield mm.start(), mm.end(), "phone"
    for mm in _BARE_DIGITS_IN.finditer(text, start, end):
        if not free(*mm.span()):
            continue
        digits = mm.group()
        if (len(digits) == 9 and _before(low, mm.start(), _SSN_LABEL)
                and v.ssn_ok(digits[:3], digits[3:5], digits[5:])):
            yield mm.start(), mm.end(), "ssn"
        elif _before(low, mm.start(), _PHONE_LABEL):
            yield mm.start(), mm.end(), "phone"


def _numbers(text: str, low: str, m: re.Match[str]) -> Iterator[Finding]:
    start, end = m.span()
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    # Glued to a word, a version or an id (gpt-4o-2024-08-06, ORD-2024-000123, v1.2.3.4,
    # 2024-11-01T12:00) it is part of something else.
    if before.isalnum() or before in "_.-" or after.isalpha() or after == "_":
        return
    if before == "#":  # "#123-456-7890" is an order or ticket number; a card is still a card
        for a, b in _cards(text, start, end):
            yield a, b, "credit_card"
        return
    yield from _classify_numbers(text, low, start, end)


_UK_POSTCODE = r"[A-Z]{1,2}[0-9][A-Z0-9]?[ \t]?[0-9][A-Z]{2}(?![A-Za-z0-9])"
_STREET_TYPES = _alternation((
    "Street", "St", "Road", "Rd", "Avenue", "Ave", "Lane", "Ln", "Boulevard", "Blvd", "Drive",
    "Dr", "Way", "Court", "Ct", "Place", "Pl", "Square", "Sq", "Terrace", "Close", "Crescent",
    "Highway", "Hwy", "Parkway", "Pkwy", "Circle", "Cir", "Trail", "Row", "Gardens", "Mews",
    "Grove", "Alley", "Plaza", "Embankment", "Hill", "Park", "Walk", "Green", "Loop",
))
_LETTER = f"{UPPER}{LOWER}"
_US_STREET = (
    rf"[0-9]{{0,4}}+[A-Za-z]?+(?:-[0-9]{{1,5}})?+,?+[ \t]++(?:(?:N[EW]?|S[EW]?|E|W)\.?[ \t]+)?"
    rf"(?:(?:{NAME_WORD}|[0-9]{{1,3}}(?:st|nd|rd|th))\.?[ \t]+){{1,3}}"
    rf"{_STREET_TYPES}(?![{_LETTER}])\.?"
)
_US_TAIL = re.compile(
    rf"(?:[ \t]+(?:N[EW]?|S[EW]?|E|W)\b\.?)?"
    rf"(?:,?[ \t]+(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|#)\.?[ \t]*#?[0-9A-Za-z-]+)?"
    rf"(?:,[ \t]*{NAME_WORD}(?:[ \t]+{NAME_WORD}){{0,2}})?"
    rf"(?:,?[ \t]*(?:[A-Z]{{2}}[ \t]+[0-9]{{5}}(?:-[0-9]{{4}})?|{_UK_POSTCODE}))?"
)


_FR_WAYS = _alternation(w for base in ("rue", "avenue", "av.", "boulevard", "bd", "place",
                                       "chemin", "allée", "impasse", "quai", "cours", "route",
                                       "square", "passage")
                        for w in (base, base.capitalize()))
_FR_STREET = rf"[0-9]{{0,3}}+(?:[ \t]?(?:bis|ter))?+,?+[ \t]++{_FR_WAYS}[ \t]+"
_FR_LINK = r"(?:(?:de|du|des|la|le|les|l['’]|d['’]|aux?|sur|en|et|sous)[ \t]*)*"
_FR_TAIL = re.compile(
    rf"{_FR_LINK}{NAME_WORD}(?:[ \t-]+{_FR_LINK}{NAME_WORD}){{0,4}}"
    rf"(?:,?[ \t]*[0-9]{{5}}[ \t]+{NAME_WORD}(?:[ \t-]+{_FR_LINK}{NAME_WORD}){{0,3}}"
    rf"(?:[ \t]+(?:CEDEX|Cedex)(?:[ \t]+[0-9]{{1,2}})?)?)?"
)


_DE_SUFFIXES = ("straße", "strasse", "str.", "weg", "platz", "allee", "gasse", "damm", "ufer",
                "chaussee", "markt", "steig", "pfad", "straat", "laan", "gracht", "plein",
                "kade", "singel")
_DE_WORDS = tuple(s.capitalize() for s in _DE_SUFFIXES)
_DE_NUMBER = (
    "(?<=[eg.zmrtdnl] [0-9])(?:"
    + "|".join(f"(?<={re.escape(s)} [0-9])" for s in _DE_SUFFIXES + _DE_WORDS)
    + ")[0-9]{0,3}[a-zA-Z]?(?![0-9A-Za-z])"
)
_DE_STREET = re.compile(
    rf"(?:(?:{NAME_WORD}[ \t-]+|{NAME_WORD}-){_alternation(_DE_WORDS)}"
    rf"|[{UPPER}][{LOWER}]*{_alternation(_DE_SUFFIXES)})[ \t]+\Z"
)
_DE_TAIL = re.compile(
    rf"(?:[ \t]*[-/][ \t]*[0-9]{{1,4}}[a-z]?)?"
    rf"(?:,?[ \t]*(?:(?:D-)?[0-9]{{5}}|[0-9]{{4}}[ \t]?[A-Z]{{2}})[ \t]+{NAME_WORD}"
    rf"(?:[ \t]+(?:am|an der|im|in der|ob der)[ \t]+{NAME_WORD})?)?"
)


def _de_address(text: str, low: str, m: re.Match[str]) -> Iterator[Finding]:
    """``Hauptstraße 5, 10115 Berlin``: found at the house number, extended both ways."""
    street = _DE_STREET.search(text, max(0, m.start() - 64), m.start())
    if street:
        yield street.start(), _DE_TAIL.match(text, m.end()).end(), "address"  # type: ignore[union-attr]


_MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December", "Jan", "Feb", "Mar", "Apr",
              "Jun", "Jul", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec")
_MONTHS_ANY = _by_initial(_MONTHS_EN + (
    "januar", "februar", "märz", "maerz", "mai", "juni", "juli", "oktober", "dezember",
    "janvier", "février", "fevrier", "mars", "avril", "juin", "juillet", "août", "aout",
    "septembre", "octobre", "novembre", "décembre", "decembre", "enero", "febrero", "marzo",
    "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre", "noviembre",
    "diciembre",
))
_DAY_MONTH_YEAR = (
    rf"[0-9]?+(?:st|nd|rd|th|er|\.)?+[ \t]++{_MONTHS_ANY}\.?,?[ \t]+[0-9]{{4}}(?![0-9])"
)


def _labelled_date(text: str, low: str, m: re.Match[str]) -> Iterator[Finding]:
    if _word_start(text, m.start()) and _before(low, m.start(), _DOB_LABEL):
        yield m.start(), m.end(), "date_of_birth"


_US_STREET_RE = re.compile(f"[0-9]{_US_STREET}")
_FR_STREET_RE = re.compile(f"[0-9]{_FR_STREET}")
_DAY_MONTH_YEAR_RE = re.compile(f"[0-9]{_DAY_MONTH_YEAR}")
# A number followed by a word that could make it a street address or a written date: one
# shared, possessive prefix in the lane, then the exact shapes in the handler.
_NUMBER_WORD = (
    r"[0-9]{0,4}+(?:[A-Za-z]{1,3}+|\.)?+(?:-[0-9]{1,5})?+,?+[ \t]++"
    rf"(?=[{UPPER}]|[0-9]{{1,3}}(?:st|nd|rd|th)|{_FR_WAYS}|{_MONTHS_ANY})"
)


def _number_word(text: str, low: str, m: re.Match[str]) -> Iterator[Finding]:
    """``221B Baker Street``, ``12 rue de la Paix``, ``born 3 March 1985``."""
    start = m.start()
    if not _word_start(text, start) or (start and text[start - 1] in ".-/#:"):
        return
    if street := _US_STREET_RE.match(text, start):
        yield start, _US_TAIL.match(text, street.end()).end(), "address"  # type: ignore[union-attr]
    elif (street := _FR_STREET_RE.match(text, start)) and (
        tail := _FR_TAIL.match(text, street.end())
    ):
        yield start, tail.end(), "address"
    elif (date := _DAY_MONTH_YEAR_RE.match(text, start)) and _before(low, start, _DOB_LABEL):
        yield start, date.end(), "date_of_birth"


# --------------------------------------------------------------------------- the capitals lane


def _person(evidence: Evidence, detail: re.Pattern[str]) -> Handler:
    """A name introduced by a context; ``detail`` re-matches the branch to find the name."""

    def handle(text: str, low: str, m: re.Match[str]) -> Iterator[Finding]:
        if not _word_start(text, m.start()):
            return
        found = detail.match(text, m.start())
        if found:
            span = name_span(text, found.start("n"), found.end("n"), evidence)
            if span:
                yield span[0], span[1], "person"

    return handle


def _pair(text: str, low: str, m: re.Match[str]) -> Iterator[Finding]:
    if _word_start(text, m.start()):
        span = name_span(text, m.start(), m.end(), Evidence.PAIR)
        if span:
            yield span[0], span[1], "person"


def _iban(text: str, low: str, m: re.Match[str]) -> Iterator[Finding]:
    """Walk exactly the country's IBAN length (single spaces allowed), then check mod-97."""
    start = m.start()
    length = v.IBAN_LENGTHS.get(text[start : start + 2])
    if length is None or (start and text[start - 1].isalnum()):
        return
    count, i = 0, start
    while i < len(text) and count < length:
        ch = text[i]
        if ch.isascii() and ch.isalnum():
            count += 1
        elif ch != " " or text[i - 1] == " ":
            break
        i += 1
    complete = count == length and not (i < len(text) and text[i].isalnum())
    if complete and v.iban_ok(text[start:i].replace(" ", "")):
        yield start, i, "iban"


def _ni(text: str, low: str, m: re.Match[str]) -> Iterator[Finding]:
    if (v.ni_ok(text[m.start() : m.start() + 2]) and _clean_start(text, m.start(), _ALNUM)
            and _clean_end(text, m.end(), _ALNUM)):
        yield m.start(), m.end(), "ni_number"


_TITLES = ("Mr", "Mrs", "Ms", "Miss", "Mx", "Dr", "Prof", "Professor", "Sir", "Dame", "Herr",
           "Frau", "Mme", "Mlle", "Monsieur", "Madame", "Señor", "Señora", "Sr", "Sra",
           "Signor", "Signora", "Sig", "Dott")
_STRONG_GREETINGS = ("Dear", "Dearest", "Liebe", "Lieber", "Cher", "Chère", "Estimado",
                     "Estimada", "Querido", "Querida", "Caro", "Cara", "Gentile", "Egregio",
                     "Sehr geehrte Frau", "Sehr geehrter Herr", "Sehr geehrte", "Sehr geehrter",
                     "Geachte", "My name is", "My name's", "Mein Name ist", "Ich heiße",
                     "Ich heisse", "Je m'appelle", "Je m’appelle", "Me llamo", "Mi nombre es",
                     "Mi chiamo", "Il mio nome è", "Meu nome é", "Mijn naam is", "Ik heet",
                     "Jag heter", "Nazywam się")
_WEAK_GREETINGS = ("Hi", "Hello", "Hey", "Hiya", "Howdy", "Hallo", "Servus", "Moin", "Bonjour",
                   "Salut", "Coucou", "Hola", "Ciao", "Salve", "Olá", "Oi", "Hej", "Hei",
                   "Thanks", "Thank you", "Good morning", "Good afternoon", "Good evening",
                   "Congratulations", "Congrats", "Welcome", "Sorry", "I am", "I'm", "I’m",
                   "This is", "It's", "Call me", "Ich bin", "Je suis", "Soy", "Sono", "Ik ben")
_CLOSINGS = ("Regards", "Best regards", "Kind regards", "Warm regards", "Warmest regards",
             "Many thanks", "Best wishes", "Best", "Sincerely", "Yours sincerely", "Yours truly",
             "Yours faithfully", "Sincerely yours", "Respectfully", "Cheers", "Thanks",
             "Thank you", "Thanks again", "Love", "Take care", "Mit freundlichen Grüßen",
             "Mit freundlichen Grüssen", "Freundliche Grüße", "Viele Grüße", "Liebe Grüße",
             "Beste Grüße", "Herzliche Grüße", "Gruß", "Grüße", "Cordialement",
             "Bien cordialement", "Bien à vous", "Salutations", "Amitiés", "Bises", "Saludos",
             "Un saludo", "Atentamente", "Cordiali saluti", "Distinti saluti", "Saluti",
             "Met vriendelijke groet", "Vriendelijke groeten", "Groeten",
             "Med vänliga hälsningar", "Hälsningar", "Pozdrawiam", "Atenciosamente", "Abraços")
_NAME_LABELS = ("Patient", "Customer", "Client", "Employee", "Contact", "Attn", "Attention",
                "Signed", "Signed by", "Author", "Applicant", "Sender", "Recipient", "Guest",
                "Passenger", "Beneficiary", "Account holder", "Cardholder", "Prepared by",
                "Submitted by", "Reviewed by", "Approved by", "Requested by", "Written by",
                "Vorname", "Nachname", "Nom", "Prénom", "Nombre", "Apellido", "Apellidos",
                "Cognome", "Naam")

_SEP = r"[ \t]+"
_TITLE = rf"(?:{_alternation(_TITLES)}\.?[ \t]+)?"  # "Dear Mr. X": the name is X
_NAME_END = r"(?=[ \t]*(?:[\r\n,|]|\\[rn]|\Z))"  # a signature's name line ends after the name
_PERSON = frozenset({"person"})
_PERSON_BRANCHES = (
    ("title", _TITLES, rf"\.?{_SEP}", Evidence.STRONG, ""),
    ("greeting", _STRONG_GREETINGS, _SEP + _TITLE, Evidence.STRONG, ""),
    ("closing", _CLOSINGS, r"[ \t]*[,!.]?[ \t]*(?:\r?\n|\\r?\\n)+[ \t]*(?:-{1,2}[ \t]*)?",
     Evidence.STRONG, _NAME_END),
    ("hello", _WEAK_GREETINGS, r"[ \t,]+" + _TITLE, Evidence.WEAK, ""),
    ("labelled", _NAME_LABELS, r"[ \t]*:[ \t]*", Evidence.LABELLED, ""),
)


def _person_branches() -> list[_Branch]:
    branches = []
    for name, words, sep, evidence, after in _PERSON_BRANCHES:
        first, rest = _lead(words)
        detail = re.compile(rf"{_alternation(words)}{sep}(?P<n>{NAMES}){after}")
        branches.append(_Branch(name, _PERSON, first, rf"{rest}{sep}{NAMES}{after}",
                                _person(evidence, detail)))
    return branches


_MONTH_FIRST, _MONTH_REST = _lead(_MONTHS_EN)
_AWS_FIRST, _AWS_REST = _lead(("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA",
                               "APKA", "ABIA", "ACCA"))
_BEARER_FIRST, _BEARER_REST = _lead(("Bearer", "BEARER"))
_BASIC_FIRST, _BASIC_REST = _lead(("Basic", "BASIC"))
# Lane start classes stay within Latin-1: ``re`` scans for those with a fast bitmap. A bare
# "Given Surname" pair whose given name starts with Ł, Š, Ž … is therefore not found (a name
# after a context word still is: the context word starts the match).
_LATIN1_UPPER = "A-ZÀ-ÖØ-Þ"

_CAPITALS_LANE: tuple[_Branch, ...] = (
    _Branch("aws_access_key", frozenset({"aws_access_key"}), _AWS_FIRST,
            rf"{_AWS_REST}[A-Z0-9]{{16}}", _bounded("aws_access_key")),
    _Branch("google_key", frozenset({"api_key"}), "A", r"Iza(?<=AIza)[0-9A-Za-z_\-]{35}",
            _bounded("api_key"), checks_first=True),
    _Branch("bearer", frozenset({"token"}), _BEARER_FIRST,
            rf"{_BEARER_REST}[ \t]+[A-Za-z0-9\-._~+/]{{8,}}", _bearer),
    _Branch("basic", frozenset({"basic_auth"}), _BASIC_FIRST,
            rf"{_BASIC_REST}[ \t]+[A-Za-z0-9+/]{{4,}}", _basic),
    *_person_branches(),
    _Branch("month_date", frozenset({"date_of_birth"}), _MONTH_FIRST,
            rf"{_MONTH_REST}\.?[ \t]+[0-9]{{1,2}}(?:st|nd|rd|th)?,?[ \t]+[0-9]{{4}}(?![0-9])",
            _labelled_date),
    _Branch("iban", frozenset({"iban"}), "A-Z",
            r"[A-Z][0-9]{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?", _iban),
    _Branch("ni_number", frozenset({"ni_number"}), "A-CEGHJ-PR-TW-Z",
            r"[A-CEGHJ-NPR-TW-Z][ ]?[0-9]{2}[ ]?[0-9]{2}[ ]?[0-9]{2}[ ]?[A-D]", _ni),
    _Branch("pair", _PERSON, _LATIN1_UPPER,
            NAME_WORD[len(f"[{UPPER}]"):]
            + rf"(?:[ \t]+(?:{PARTICLE}[ \t]+){{0,2}}{NAME_WORD}){{1,2}}",
            _pair,
            checks_first=True),
    _Branch("bare_secret", frozenset({"aws_secret_key"}), "A-Z", r"[A-Za-z0-9/+]{15,}+",
            _bare_secret, word_start=False),
)

_DIGITS_LANE: tuple[_Branch, ...] = (
    _Branch("de_address", frozenset({"address"}), "0-9", _DE_NUMBER, _de_address,
            checks_first=True),
    _Branch("number_word", frozenset({"address", "date_of_birth"}), "0-9", _NUMBER_WORD,
            _number_word),
    _Branch("numbers", frozenset({"ip_address", "date_of_birth", "credit_card", "ssn", "phone"}),
            "0-9+(", r"[0-9 ().\-/]{5,}[0-9]", _numbers, checks_first=True),
)

_SECRETS = frozenset(SECRET_KINDS)
_LITERALS: tuple[_Literal, ...] = (
    _Literal(frozenset({"api_key"}), re.compile(r"sk-[A-Za-z0-9_\-]{20,}"), _prefixed("api_key"),
             min_length=23),
    _Literal(frozenset({"api_key"}), re.compile(r"k_(?:live|test)_[A-Za-z0-9]{10,}"), _stripe,
             min_length=18),
    _Literal(frozenset({"token"}), re.compile(r"gh[pousr]_[A-Za-z0-9]{30,255}"),
             _prefixed("token"), min_length=34),
    _Literal(frozenset({"token"}), re.compile(r"github_pat_[A-Za-z0-9_]{22,255}"),
             _prefixed("token"), min_length=33),
    _Literal(frozenset({"token"}), re.compile(r"xox[abposre]-[A-Za-z0-9-]{10,}"),
             _prefixed("token"), min_length=15),
    _Literal(frozenset({"jwt"}),
             re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
             _prefixed("jwt"), min_length=20),
    _Literal(frozenset({"private_key"}),
             re.compile(r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"), _pem, min_length=31),
    _Literal(frozenset({"url_credentials"}),
             re.compile(r"://([^\s/?#@:'\"<>\[\]]*):([^\s/?@'\"<>]+)@"), _url_credentials,
             gate=frozenset("@")),
    _Literal(frozenset({"email"}),
             re.compile(r"@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,24}(?![\w-])"), _email,
             gate=frozenset("@")),
    _Literal(frozenset({"ip_address"}), re.compile(r":[0-9A-Fa-f]{0,4}:"), _ipv6,
             gate=frozenset(":")),
    *(
        _Literal(_SECRETS, re.compile(keyword + _ASSIGN_TAIL), _assignment(kind), on_lower=True,
                 gate=frozenset("=:"))
        for keyword, kind in (("key", "api_key"), ("secret", "api_key"), ("token", "token"),
                              ("pass(?:w(?:or)?d|phrase)", "password"), ("pwd", "password"))
    ),
    _Literal(_PERSON, re.compile(r"name(?:[ \t]+(?:is|ist)[ \t]+|'s[ \t]+|[\"']?[ \t]*[:=][ \t]*"
                                 r"[\"']?)"), _name_label, on_lower=True),
    _Literal(frozenset({"address"}), re.compile(r"addr(?:ess|esse)?[\"']?[ \t]*[:=][ \t]*[\"']?"),
             _address_label, on_lower=True, gate=frozenset(":=")),
)


def _lane(branches: Sequence[_Branch]) -> tuple[re.Pattern[str], dict[str, Handler]] | None:
    """Fuse branches into one regex whose leading class keeps ``re``'s fast scan."""
    if not branches:
        return None
    union = "".join(dict.fromkeys(b.first for b in branches))

    def alternative(b: _Branch) -> str:
        return f"{'' if b.checks_first else f'(?<=[{b.first}])'}(?P<{b.name}>{b.rest})"

    at_start = "|".join(alternative(b) for b in branches if b.word_start)
    anywhere = [alternative(b) for b in branches if not b.word_start]
    body = "|".join(([f"{_AT_WORD_START}(?:{at_start})"] if at_start else []) + anywhere)
    return re.compile(f"[{union}](?:{body})"), {b.name: b.handler for b in branches}


# After the lane consumed a branch's first character: the one before it is not a word
# character. Handlers check boundaries exactly; this only saves attempts mid-word.
_AT_WORD_START = r"(?<!\w.)"


class Scanner:
    """The detectors for one set of kinds (and custom rules), compiled once."""

    __slots__ = ("_lanes", "_literals", "_rules", "kinds")

    def __init__(
        self, kinds: frozenset[str], rules: Sequence[tuple[str, re.Pattern[str]]] = ()
    ) -> None:
        self.kinds = kinds | {name for name, _ in rules}
        self._literals = tuple(lit for lit in _LITERALS if lit.kinds & kinds)
        lanes = (_lane([b for b in lane if b.kinds & kinds])
                 for lane in (_CAPITALS_LANE, _DIGITS_LANE))
        self._lanes = tuple(lane for lane in lanes if lane)
        self._rules = tuple(rules)

    def find(self, text: str) -> list[Finding]:
        """Every finding of an enabled kind; they may overlap (the engine resolves that)."""
        low = lower_aligned(text)
        present = {ch for ch in "@:=" if ch in text}
        found: list[Finding] = []
        size = len(text)
        for lit in self._literals:
            if size < lit.min_length or (lit.gate and not lit.gate & present):
                continue
            haystack = low if lit.on_lower else text
            if lit.needle not in haystack:
                continue
            for m in lit.pattern.finditer(haystack):
                found.extend(lit.handler(text, low, m))
        for regex, handlers in self._lanes:
            for m in regex.finditer(text):
                found.extend(handlers[m.lastgroup](text, low, m))  # type: ignore[index]
        for name, rule in self._rules:
            group = "value" if "value" in rule.groupindex else 0
            found.extend((m.start(group), m.end(group), name)
                         for m in rule.finditer(text) if m.end(group) > m.start(group))
        return [f for f in found if f[2] in self.kinds]
